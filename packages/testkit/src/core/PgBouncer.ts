/**
 * PgBouncer in front of a test server, from the machine's `pgbouncer` binary (Debian's package: 1.18 here), as
 * plain Promises. Each instance: its own directory with `pgbouncer.ini` and `userlist.txt`, a free port on
 * 127.0.0.1, `transaction` or `session` pool mode, and real authentication — `auth_type = scram-sha-256`, the
 * user's SCRAM secret copied from the server's `pg_authid` (PgBouncer checks clients against it and, with the keys
 * the client's SCRAM exchange gives it, logs in to the server: no password on disk), or the password itself when
 * the secret cannot be read (not a superuser, an MD5 or plain password on the server).
 *
 * No `pgbouncer` binary (looked for in `PGBOUNCER`, then `PATH`, `/usr/sbin`, `/usr/local/bin`,
 * `/opt/homebrew/bin`): `start` fails with `BackendUnavailable` saying how to install it — a suite that needs
 * PgBouncer fails, never skips. Run as root, PgBouncer (which refuses root) runs as the `postgres` user, as the
 * embedded servers do; it is registered and reaped like them (registry, exit handlers, watchdog).
 *
 * @since 0.2.0
 */
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Connect from "../internal/connect.js"
import * as Embedded from "../internal/embedded.js"
import * as Ports from "../internal/ports.js"
import * as Processes from "../internal/processes.js"
import * as Registry from "../internal/registry.js"
import { describe, makeLock, type Reason, TestServerError } from "../internal/serverError.js"

/**
 * `transaction`: a server connection per transaction (a statement outside one is its own transaction), so
 * consecutive statements of a client may run on different backends and session state does not carry over;
 * `session`: one server connection for the client's whole session, as direct.
 *
 * @since 0.2.0
 * @category models
 */
export type PoolMode = "transaction" | "session"

/**
 * The server PgBouncer forwards to: any of the core's servers fits.
 *
 * @since 0.2.0
 * @category models
 */
export interface Target {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string
  readonly database: string
}

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Default `transaction`. */
  readonly poolMode?: PoolMode | undefined
  /** Server connections per user and database (`default_pool_size`). Default 20. */
  readonly poolSize?: number | undefined
  /** Default 1000. */
  readonly maxClientConn?: number | undefined
  /** Extra `[pgbouncer]` settings, e.g. `{ server_lifetime: 60 }`. */
  readonly settings?: Readonly<Record<string, string | number | boolean>> | undefined
  /** Default 10 000 ms. */
  readonly startTimeoutMillis?: number | undefined
}

/**
 * A running PgBouncer. `stop` is its immediate shutdown (`SIGTERM`: every client and server connection closed),
 * `kill` a `SIGKILL`; `start` brings it back on the same port.
 *
 * @since 0.2.0
 * @category models
 */
export interface PgBouncer {
  /** The target's user, password and database, through PgBouncer. */
  readonly url: string
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string
  readonly database: string
  readonly poolMode: PoolMode
  readonly version: string
  /** How PgBouncer authenticates the user: its SCRAM secret, or the password (see the module's notes). */
  readonly userlist: "scram-secret" | "password"
  readonly stop: () => Promise<void>
  readonly kill: () => Promise<void>
  readonly start: () => Promise<void>
  readonly restart: () => Promise<void>
  readonly isRunning: () => Promise<boolean>
  /** Stops it and removes its files. Idempotent. */
  readonly close: () => Promise<void>
}

const COMMAND = "pgbouncer"
const PLACES = ["/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/opt/homebrew/bin", "/usr/bin"]

const INSTALL =
  "Install it: `apt-get install -y pgbouncer` (Debian/Ubuntu; CI's .ci/run does this), `brew install pgbouncer` " +
  "(macOS), or point PGBOUNCER at the binary."

const fail = (reason: Reason, message: string, cause?: unknown) =>
  new TestServerError({ reason, backend: "embedded", message, cause })

const isExecutable = (file: string): boolean => {
  try {
    Fs.accessSync(file, Fs.constants.X_OK)
    return Fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/**
 * The `pgbouncer` binary: `PGBOUNCER` when set, else the first on `PATH` or in the usual places; undefined when
 * there is none.
 *
 * @since 0.2.0
 * @category constructors
 */
export const findBinary = (env: Readonly<Record<string, string | undefined>> = process.env): string | undefined => {
  if (env.PGBOUNCER !== undefined && env.PGBOUNCER !== "")
    return isExecutable(env.PGBOUNCER) ? env.PGBOUNCER : undefined
  const dirs = [...(env.PATH ?? "").split(Path.delimiter).filter(Boolean), ...PLACES]
  return dirs.map((dir) => Path.join(dir, COMMAND)).find(isExecutable)
}

const iniValue = (value: string | number | boolean) =>
  typeof value === "boolean" ? (value ? "1" : "0") : String(value).replace(/[\r\n]/g, " ")

// userlist.txt: "name" "secret", a double quote doubled.
const quoteUserlist = (value: string) => `"${value.replace(/"/g, '""')}"`
// [databases] connection strings: libpq-style, single quotes with \ and ' escaped.
const quoteConninfo = (value: string) => `'${value.replace(/[\\']/g, "\\$&")}'`

const validate = (options: Options): TestServerError | undefined => {
  const invalid = (text: string) => fail("InvalidConfig", text)
  if (options.poolMode !== undefined && options.poolMode !== "transaction" && options.poolMode !== "session") {
    return invalid(`poolMode (${JSON.stringify(options.poolMode)}) must be "transaction" or "session".`)
  }
  for (const [name, value] of [
    ["poolSize", options.poolSize],
    ["maxClientConn", options.maxClientConn]
  ] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
      return invalid(`${name} (${value}) must be an integer ≥ 1.`)
    }
  }
  for (const key of Object.keys(options.settings ?? {})) {
    if (!/^[a-z_][a-z0-9_]*$/i.test(key)) return invalid(`settings key "${key}" is not a PgBouncer setting name.`)
  }
  return undefined
}

/** The user's SCRAM secret as the server stores it, when we may read it. */
const scramSecret = async (target: Target): Promise<string | undefined> => {
  try {
    const [row] = await Connect.query<{ secret: string | null }>(
      target,
      `SELECT rolpassword AS secret FROM pg_authid WHERE rolname = current_user`
    )
    return row?.secret?.startsWith("SCRAM-SHA-256$") ? row.secret : undefined
  } catch {
    return undefined
  }
}

interface Process {
  readonly child: ChildProcess.ChildProcess
  readonly pid: number
  readonly exited: Promise<void>
  hasExited: boolean
}

/**
 * Starts PgBouncer in front of `target`; resolves once a session through it opens (authentication included).
 *
 * @since 0.2.0
 * @category constructors
 */
export const start = async (target: Target, options: Options = {}): Promise<PgBouncer> => {
  const invalid = validate(options)
  if (invalid !== undefined) throw invalid
  const binary = findBinary()
  if (binary === undefined) {
    throw fail(
      "BackendUnavailable",
      process.env.PGBOUNCER
        ? `PGBOUNCER (${process.env.PGBOUNCER}) is not an executable file. ${INSTALL}`
        : `No pgbouncer binary on PATH (${process.env.PATH ?? ""}) nor in ${PLACES.join(", ")}. ${INSTALL}`
    )
  }
  let version: string
  try {
    version = /PgBouncer (\S+)/.exec(ChildProcess.execFileSync(binary, ["--version"], { encoding: "utf8" }))?.[1] ?? "?"
  } catch (cause) {
    throw fail("BackendUnavailable", `${binary} --version failed: ${describe(cause)}. ${INSTALL}`, cause)
  }
  const owner = await Embedded.account()
  const poolMode = options.poolMode ?? "transaction"
  const startTimeoutMillis = options.startTimeoutMillis ?? 10_000
  const secret = await scramSecret(target)

  await Registry.reap(Registry.ownerIsDead).catch(() => 0)
  const id = `pgbouncer-${Crypto.randomBytes(6).toString("hex")}`
  const rootDir = Path.join(Registry.dataBaseDir(), id)
  const pidFile = Path.join(rootDir, "pgbouncer.pid")
  const ini = Path.join(rootDir, "pgbouncer.ini")
  try {
    Registry.register({
      id,
      ownerPid: process.pid,
      ownerStartTime: Processes.startTime(process.pid),
      rootDir,
      dataDir: rootDir,
      pidFile,
      command: COMMAND,
      createdAt: new Date().toISOString()
    })
  } catch (cause) {
    throw fail("StartFailed", `Cannot register PgBouncer's directory ${rootDir}: ${describe(cause)}.`, cause)
  }
  let running: Process | undefined
  const removeAll = async () => {
    if (running !== undefined) await stopProcess(running, "SIGKILL")
    running = undefined
    await Fs.promises.rm(rootDir, { recursive: true, force: true }).catch(() => undefined)
    Registry.unregister(id)
  }

  const spawn = (port: number): Promise<Process> =>
    new Promise((resolve, reject) => {
      const logs = new Embedded.Logs()
      let child: ChildProcess.ChildProcess
      try {
        child = ChildProcess.spawn(binary, [ini], {
          ...Embedded.asOwner(owner),
          stdio: ["ignore", "pipe", "pipe"],
          detached: true
        })
      } catch (error) {
        return reject(new Error(`could not spawn ${binary}: ${describe(error)}`))
      }
      const proc: Process = {
        child,
        pid: child.pid ?? -1,
        hasExited: false,
        exited: new Promise<void>((done) =>
          child.once("exit", () => {
            proc.hasExited = true
            done()
          })
        )
      }
      child.stdout?.on("data", (chunk: Buffer) => logs.push(chunk))
      child.stderr?.on("data", (chunk: Buffer) => logs.push(chunk))
      child.once("error", (error) => reject(new Error(`could not spawn ${binary}: ${describe(error)}`)))
      const onExit = (code: number | null, sig: NodeJS.Signals | null) =>
        reject(
          Object.assign(new Error(`pgbouncer exited during startup (${sig ?? `exit code ${code}`}):\n${logs.tail()}`), {
            portInUse: logs.includes("Address already in use")
          })
        )
      child.once("exit", onExit)
      Registry.update(id, { postmasterPid: proc.pid, port })
      const params = { ...target, host: Ports.HOST, port }
      Connect.waitForSession(params, Date.now() + startTimeoutMillis).then(
        () => {
          child.off("exit", onExit)
          resolve(proc)
        },
        async (error) => {
          child.off("exit", onExit)
          await stopProcess(proc, "SIGKILL")
          reject(new Error(`no session through pgbouncer on port ${port}: ${describe(error)}\n${logs.tail()}`))
        }
      )
    })

  const redact = (text: string) => text.split(target.password).join("***")
  try {
    Registry.ensureDir(rootDir)
    Embedded.chown(rootDir, owner)
    const userlist = Path.join(rootDir, "userlist.txt")
    Fs.writeFileSync(userlist, `${quoteUserlist(target.user)} ${quoteUserlist(secret ?? target.password)}\n`, {
      mode: 0o600
    })
    Embedded.chown(userlist, owner)

    let port = 0
    for (let attempt = 1; ; attempt++) {
      port = await Ports.findFreePort()
      const settings: Record<string, string | number | boolean> = {
        listen_addr: Ports.HOST,
        listen_port: port,
        // TCP only: no socket files in /tmp shared between instances.
        unix_socket_dir: "",
        auth_type: "scram-sha-256",
        auth_file: userlist,
        pool_mode: poolMode,
        default_pool_size: options.poolSize ?? 20,
        max_client_conn: options.maxClientConn ?? 1000,
        pidfile: pidFile,
        admin_users: target.user,
        // Sent by many drivers (pgjdbc, some Node clients); PgBouncer refuses unknown startup parameters.
        ignore_startup_parameters: "extra_float_digits,options",
        ...options.settings
      }
      const text =
        `[databases]\n* = host=${quoteConninfo(target.host)} port=${target.port}\n\n[pgbouncer]\n` +
        Object.entries(settings)
          .map(([key, value]) => `${key} = ${iniValue(value)}`)
          .join("\n") +
        "\n"
      Fs.writeFileSync(ini, text, { mode: 0o600 })
      Embedded.chown(ini, owner)
      try {
        running = await spawn(port)
        break
      } catch (error) {
        if (!(error as { portInUse?: boolean }).portInUse || attempt >= 10) throw error
      }
    }
    const boundPort = port
    const lock = makeLock()
    const isRunningNow = () => running !== undefined && !running.hasExited
    const startUnlocked = async () => {
      if (isRunningNow()) return
      try {
        running = await spawn(boundPort)
      } catch (cause) {
        throw fail(
          "StartFailed",
          `PgBouncer did not start again on ${Ports.HOST}:${boundPort}: ${redact(describe(cause))}`,
          cause
        )
      }
    }
    const stopUnlocked = async (signal: NodeJS.Signals) => {
      if (running === undefined) return
      await stopProcess(running, signal)
      running = undefined
    }
    let closed: Promise<void> | undefined
    return {
      url: `postgres://${encodeURIComponent(target.user)}:${encodeURIComponent(target.password)}@${Ports.HOST}:${boundPort}/${encodeURIComponent(target.database)}`,
      host: Ports.HOST,
      port: boundPort,
      user: target.user,
      password: target.password,
      database: target.database,
      poolMode,
      version,
      userlist: secret === undefined ? "password" : "scram-secret",
      stop: () => lock(() => stopUnlocked("SIGTERM")),
      kill: () => lock(() => stopUnlocked("SIGKILL")),
      start: () => lock(startUnlocked),
      restart: () =>
        lock(async () => {
          await stopUnlocked("SIGTERM")
          await startUnlocked()
        }),
      isRunning: async () => isRunningNow(),
      close: () => (closed ??= lock(removeAll))
    }
  } catch (cause) {
    await removeAll()
    throw cause instanceof TestServerError
      ? cause
      : fail(
          "StartFailed",
          `PgBouncer ${version} (${binary}) did not start in front of ${target.host}:${target.port}: ` +
            `${redact(describe(cause))}`,
          cause
        )
  }
}

/** `signal`, then `SIGKILL` if it is still there after 5 s. */
const stopProcess = async (proc: Process, signal: NodeJS.Signals): Promise<void> => {
  if (proc.hasExited || proc.pid <= 0) return
  Processes.signal(proc.pid, signal)
  const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000).unref())
  if (await Promise.race([proc.exited.then(() => true), timer])) return
  Processes.signal(proc.pid, "SIGKILL")
  await proc.exited
}
