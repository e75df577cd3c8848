/**
 * The registry of embedded servers, and every way we make sure none of them outlives its owner:
 *
 * - a file per server under `<tmp>/effect-pg-pool-testkit/servers/` (owner pid, data directory), so that the next
 *   server start, or the vitest global setup, can reap servers whose owner died;
 * - `exit` and signal handlers that synchronously stop this process's servers;
 * - a detached watchdog shell per server that waits for EOF on a pipe from its owner: the kernel closes that pipe
 *   however the owner dies, `SIGKILL` included, and the watchdog then stops the server and removes its files.
 *
 * @internal
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import type * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Processes from "./processes.js"

const dirName = (): string => {
  const uid = process.getuid?.()
  // Per user, because a directory created by one user is not writable by the next one.
  return uid === undefined || uid === 0 ? "effect-pg-pool-testkit" : `effect-pg-pool-testkit-${uid}`
}

/**
 * Where the registry lives, always: reapers of every later run must find it.
 *
 * @internal
 */
export const baseDir = (): string => Path.join(Os.tmpdir(), dirName())

const shmDir = (): string | undefined => (process.platform === "linux" ? Path.join("/dev/shm", dirName()) : undefined)

const TMPFS_MAGIC = 0x01021994
const MIN_SHM_BYTES = 1024 ** 3

let chosenDataBaseDir: string | undefined

/**
 * Where templates and data directories go: a tmpfs when the machine has a roomy one, as copying a 30 MB cluster of
 * a thousand files takes ~0.1 s there and up to 1.5 s on a disk; the temp directory otherwise (Docker gives
 * containers a 64 MB /dev/shm).
 *
 * @internal
 */
export const dataBaseDir = (): string => {
  if (chosenDataBaseDir !== undefined) return chosenDataBaseDir
  chosenDataBaseDir = baseDir()
  const shm = shmDir()
  if (shm !== undefined) {
    try {
      const stats = Fs.statfsSync("/dev/shm")
      Fs.accessSync("/dev/shm", Fs.constants.W_OK)
      if (stats.type === TMPFS_MAGIC && stats.bavail * stats.bsize >= MIN_SHM_BYTES) chosenDataBaseDir = shm
    } catch {
      // no usable /dev/shm
    }
  }
  return chosenDataBaseDir
}

const serversDir = (): string => Path.join(baseDir(), "servers")

const dataBaseDirs = (): Array<string> => [baseDir(), ...(shmDir() === undefined ? [] : [shmDir()!])]

/**
 * Creates a directory readable by everyone: when we run as root the server runs as the `postgres` user, which must
 * be able to traverse every parent of its data directory (initdb fails with "Permission denied" otherwise).
 *
 * @internal
 */
export const ensureDir = (dir: string): void => {
  Fs.mkdirSync(dir, { recursive: true, mode: 0o755 })
  try {
    Fs.chmodSync(dir, 0o755)
  } catch {
    // owned by another user: it is theirs to fix, and mkdir above already proved it exists
  }
}

/** @internal */
export interface Entry {
  readonly id: string
  readonly ownerPid: number
  readonly ownerStartTime?: string | undefined
  readonly rootDir: string
  readonly dataDir: string
  readonly createdAt: string
  readonly postmasterPid?: number | undefined
  /** The process's pid file; default `<dataDir>/postmaster.pid`. */
  readonly pidFile?: string | undefined
  /** What its command name contains (pids are recycled: anything else is left alone); default `postgres`. */
  readonly command?: string | undefined
  readonly port?: number | undefined
}

interface Owned {
  entry: Entry
  readonly watchdog: ChildProcess.ChildProcess | undefined
}

interface State {
  readonly owned: Map<string, Owned>
  orphaned: boolean
  parentWatched: boolean
  handlers:
    | {
        readonly exit: () => void
        readonly signals: ReadonlyArray<readonly [NodeJS.Signals, () => void]>
      }
    | undefined
}

// Global rather than module state: vitest may evaluate this module once per test file in the same process, and
// one set of handlers must see every server of the process.
const STATE = Symbol.for("@effect-pg-pool/testkit/internal/registry")
const state: State = ((globalThis as { [STATE]?: State })[STATE] ??= {
  owned: new Map(),
  orphaned: false,
  parentWatched: false,
  handlers: undefined
})

const entryFile = (id: string): string => Path.join(serversDir(), `${id}.json`)

// A corrupt or forged registry file must not make us delete anything else.
const isInsideBaseDir = (dir: string): boolean =>
  dataBaseDirs().some((base) => {
    const relative = Path.relative(base, dir)
    return relative !== "" && !relative.startsWith("..") && !Path.isAbsolute(relative)
  })

const writeEntry = (entry: Entry): void => {
  ensureDir(serversDir())
  const file = entryFile(entry.id)
  const temp = `${file}.${process.pid}.tmp`
  Fs.writeFileSync(temp, JSON.stringify(entry))
  Fs.renameSync(temp, file)
}

/**
 * Records a server before its directory or process exists, so that a crash at any later point leaves something
 * for a reaper to find.
 *
 * @internal
 */
export const register = (entry: Entry): void => {
  watchParent()
  if (state.orphaned) {
    throw new Error(
      "this vitest worker lost its main process (the run was interrupted), so nobody would stop the server: " +
        "not starting it"
    )
  }
  writeEntry(entry)
  state.owned.set(entry.id, { entry, watchdog: spawnWatchdog(entry, entryFile(entry.id)) })
  installHandlers()
}

/**
 * False once the server was reaped (its worker lost the test run): a start still in flight must then stop at once.
 *
 * @internal
 */
export const isActive = (id: string): boolean => state.owned.has(id)

/** @internal */
export const update = (id: string, patch: Pick<Entry, "postmasterPid" | "port">): void => {
  const owned = state.owned.get(id)
  if (owned === undefined) return
  owned.entry = { ...owned.entry, ...patch }
  try {
    writeEntry(owned.entry)
  } catch {
    // reapers read the postmaster pid from the data directory anyway
  }
}

/**
 * Forgets a server whose process and files are already gone.
 *
 * @internal
 */
export const unregister = (id: string): void => {
  const owned = state.owned.get(id)
  state.owned.delete(id)
  Fs.rmSync(entryFile(id), { force: true })
  // EOF on its stdin makes the watchdog check the (now removed) directory and exit.
  owned?.watchdog?.stdin?.destroy()
  if (state.owned.size === 0) uninstallHandlers()
}

const pidFileOf = (entry: Entry): string => entry.pidFile ?? Path.join(entry.dataDir, "postmaster.pid")

const readPid = (file: string): number | undefined => {
  try {
    const pid = Number(Fs.readFileSync(file, "utf8").split("\n")[0])
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

const serverPids = (entry: Entry): Array<number> => {
  const pids = new Set<number>()
  // The pid file is the truth after a restart; the recorded pid covers a server killed before writing it.
  const fromFile = readPid(pidFileOf(entry))
  if (fromFile !== undefined) pids.add(fromFile)
  if (entry.postmasterPid !== undefined) pids.add(entry.postmasterPid)
  return [...pids].filter((pid) =>
    entry.command === undefined ? Processes.isPostgresProcess(pid) : Processes.isProcessNamed(pid, entry.command)
  )
}

const removeFiles = (entry: Entry): void => {
  if (isInsideBaseDir(entry.rootDir)) Fs.rmSync(entry.rootDir, { recursive: true, force: true })
  Fs.rmSync(entryFile(entry.id), { force: true })
}

/** @internal */
export const reapEntrySync = (entry: Entry): void => {
  Processes.terminateSync(serverPids(entry), 2_000)
  removeFiles(entry)
}

/** @internal */
export const reapEntry = async (entry: Entry): Promise<void> => {
  await Processes.terminate(serverPids(entry), 2_000)
  removeFiles(entry)
}

const isEntry = (u: unknown): u is Entry =>
  typeof u === "object" &&
  u !== null &&
  typeof (u as Entry).id === "string" &&
  typeof (u as Entry).ownerPid === "number" &&
  typeof (u as Entry).rootDir === "string" &&
  typeof (u as Entry).dataDir === "string"

/** @internal */
export const readAll = (): Array<Entry> => {
  let files: Array<string>
  try {
    files = Fs.readdirSync(serversDir()).filter((file) => file.endsWith(".json"))
  } catch {
    return []
  }
  const entries: Array<Entry> = []
  for (const file of files) {
    try {
      const parsed: unknown = JSON.parse(Fs.readFileSync(Path.join(serversDir(), file), "utf8"))
      if (isEntry(parsed)) entries.push(parsed)
    } catch {
      // being written or removed right now: its owner is alive and will deal with it
    }
  }
  return entries
}

/** @internal */
export type Predicate = (entry: Entry) => boolean

/** @internal */
export const ownerIsDead: Predicate = (entry) => {
  if (!Processes.isAlive(entry.ownerPid)) return true
  if (entry.ownerStartTime === undefined) return false
  const started = Processes.startTime(entry.ownerPid)
  return started !== undefined && started !== entry.ownerStartTime
}

/**
 * Servers of a vitest run: owned by the given process (the vitest main process) or one of its descendants (its
 * workers), or by a process that died.
 *
 * @internal
 */
export const ownedByRunOrDead =
  (runPid: number): Predicate =>
  (entry) =>
    ownerIsDead(entry) || Processes.isDescendantOf(entry.ownerPid, runPid)

const reapable = (predicate: Predicate): Array<Entry> =>
  readAll().filter((entry) => entry.ownerPid !== process.pid && predicate(entry))

/**
 * Cache directories half-written (`template-<key>.tmp-<pid>-<random>`, `binaries-<key>.tmp-<pid>-<random>`) or
 * half-removed (`trash-<pid>-<random>`) by a process that died.
 */
const staleTemplateDirs = (): Array<string> =>
  dataBaseDirs().flatMap((base) => {
    let names: Array<string>
    try {
      names = Fs.readdirSync(base)
    } catch {
      return []
    }
    return names.flatMap((name) => {
      const match = /^(?:(?:template|binaries)-.+\.tmp|trash)-(\d+)-[0-9a-f]+$/.exec(name)
      return match !== null && !Processes.isAlive(Number(match[1])) ? [Path.join(base, name)] : []
    })
  })

/** @internal */
export const reapSync = (predicate: Predicate): number => {
  const entries = reapable(predicate)
  for (const entry of entries) {
    try {
      reapEntrySync(entry)
    } catch {
      // best effort: the next reaper tries again
    }
  }
  for (const dir of staleTemplateDirs()) Fs.rmSync(dir, { recursive: true, force: true })
  return entries.length
}

/** @internal */
export const reap = async (predicate: Predicate): Promise<number> => {
  const entries = reapable(predicate)
  await Promise.all(entries.map((entry) => reapEntry(entry).catch(() => undefined)))
  for (const dir of staleTemplateDirs()) await Fs.promises.rm(dir, { recursive: true, force: true })
  return entries.length
}

/**
 * Stops every server of this process at once. Runs inside `exit` and signal handlers, hence synchronous.
 *
 * @internal
 */
export const cleanupOwnedSync = (): void => {
  const owned = [...state.owned.values()]
  state.owned.clear()
  const pids = owned.flatMap(({ entry }) => serverPids(entry))
  Processes.terminateSync(pids, 2_000)
  for (const { entry, watchdog } of owned) {
    try {
      removeFiles(entry)
    } catch {
      // the watchdog removes it once we are gone
    }
    watchdog?.stdin?.destroy()
  }
}

/**
 * A vitest worker outlives its main process when the run is interrupted (the main exits on Ctrl+C without waiting
 * for it) and may go on running tests: its servers go as soon as the IPC channel to the main process closes, and
 * it may not start new ones. Only for vitest workers: other programs may disconnect from their parent on purpose.
 */
const watchParent = (): void => {
  if (state.parentWatched) return
  state.parentWatched = true
  if (typeof process.send !== "function" || process.env.VITEST_POOL_ID === undefined) return
  process.once("disconnect", () => {
    state.orphaned = true
    cleanupOwnedSync()
  })
}

const SIGNALS: ReadonlyArray<NodeJS.Signals> =
  process.platform === "win32" ? ["SIGINT", "SIGTERM"] : ["SIGINT", "SIGTERM", "SIGHUP"]

const installHandlers = (): void => {
  if (state.handlers !== undefined) return
  const exit = () => cleanupOwnedSync()
  const signals = SIGNALS.map((sig) => {
    const handler = () => {
      // Someone else (NodeRuntime.runMain, vitest) owns this signal and will exit; our exit handler runs then.
      if (process.listenerCount(sig) > 1) return
      cleanupOwnedSync()
      uninstallHandlers()
      // Listening to a signal disables Node's default action: re-raise it so the process still dies of it.
      process.kill(process.pid, sig)
    }
    return [sig, handler] as const
  })
  process.on("exit", exit)
  // Prepended, so that a handler which removes itself when it fires (NodeRuntime.runMain's) is still counted
  // while ours runs, and its graceful shutdown is not cut short.
  for (const [sig, handler] of signals) process.prependListener(sig, handler)
  state.handlers = { exit, signals }
}

const uninstallHandlers = (): void => {
  const handlers = state.handlers
  if (handlers === undefined) return
  state.handlers = undefined
  process.off("exit", handlers.exit)
  for (const [sig, handler] of handlers.signals) process.off(sig, handler)
}

// Kept out of the command line (passed through the environment) so that `ps aux | grep postgres` shows servers only.
const WATCHDOG_SCRIPT = `
trap '' INT TERM HUP
while read -r _; do :; done
pidfile="$3"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  name=$(cat "/proc/$pid/comm" 2>/dev/null || ps -o comm= -p "$pid" 2>/dev/null)
  case "$name" in
    *"$WATCHDOG_EXPECT"*)
      kill -QUIT "$pid" 2>/dev/null
      i=0
      while kill -0 "$pid" 2>/dev/null && [ "$(cut -d ' ' -f 3 "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
        [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
      kill -KILL "$pid" 2>/dev/null ;;
  esac
fi
rm -rf "$1" "$2"
`

const spawnWatchdog = (entry: Entry, registryFile: string): ChildProcess.ChildProcess | undefined => {
  if (process.platform === "win32") return undefined
  try {
    const child = ChildProcess.spawn(
      "/bin/sh",
      [
        "-c",
        'eval "$WATCHDOG_SCRIPT"',
        "effect-pg-pool-testkit-watchdog",
        entry.rootDir,
        registryFile,
        pidFileOf(entry)
      ],
      {
        detached: true,
        stdio: ["pipe", "ignore", "ignore"],
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          WATCHDOG_SCRIPT,
          WATCHDOG_EXPECT: entry.command ?? "postgres"
        }
      }
    )
    child.on("error", () => undefined)
    child.stdin?.on("error", () => undefined)
    // Neither the watchdog nor its pipe may keep the owner's event loop alive.
    child.unref()
    ;(child.stdin as Net.Socket | null)?.unref()
    return child
  } catch {
    return undefined
  }
}
