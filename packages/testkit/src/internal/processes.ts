/**
 * Process helpers shared by the embedded server, the registry and the reapers. Everything here is synchronous
 * on purpose: the same helpers run inside `process.on("exit")`, where nothing asynchronous gets a chance to run.
 *
 * @internal
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"

/** @internal */
export const isAlive = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
  // A zombie still answers signal 0, but it is gone for every purpose we care about.
  return processState(pid) !== "Z"
}

const procStat = (pid: number): string | undefined => {
  try {
    return Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
}

const processState = (pid: number): string | undefined => {
  const stat = procStat(pid)
  if (stat === undefined) return undefined
  // The command name sits in parentheses and may itself contain spaces or parentheses.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]
}

/**
 * When the process started (clock ticks since boot, Linux only): tells a live owner from a recycled pid.
 *
 * @internal
 */
export const startTime = (pid: number): string | undefined => {
  const stat = procStat(pid)
  return stat === undefined ? undefined : stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
}

/** @internal */
export const parentPid = (pid: number): number | undefined => {
  const stat = procStat(pid)
  if (stat !== undefined) {
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
    return Number.isInteger(ppid) ? ppid : undefined
  }
  if (process.platform === "win32") return undefined
  try {
    const out = ChildProcess.execFileSync("ps", ["-o", "ppid=", "-p", String(pid)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"]
    })
    const ppid = Number(out.trim())
    return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined
  } catch {
    return undefined
  }
}

/** @internal */
export const isDescendantOf = (pid: number, ancestor: number): boolean => {
  let current: number | undefined = pid
  // Bounded walk: a process tree deeper than this is not one we started.
  for (let depth = 0; depth < 64 && current !== undefined && current > 1; depth++) {
    if (current === ancestor) return true
    current = parentPid(current)
  }
  return false
}

/**
 * The executable name of a process, used to make sure a pid read from a stale file still belongs to a PostgreSQL
 * server before it is signalled (pids are recycled).
 *
 * @internal
 */
export const commandName = (pid: number): string | undefined => {
  try {
    return Fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim()
  } catch {
    // no procfs (macOS): fall through to ps
  }
  if (process.platform === "win32") return undefined
  try {
    const out = ChildProcess.execFileSync("ps", ["-o", "comm=", "-p", String(pid)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"]
    })
    return out.trim() || undefined
  } catch {
    return undefined
  }
}

/** @internal */
export const isPostgresProcess = (pid: number): boolean => {
  if (!isAlive(pid)) return false
  const name = commandName(pid)
  // Without a way to tell (no procfs, no ps), trust the caller's evidence rather than leak a server.
  return name === undefined || name.includes("postgres") || name.includes("postmaster")
}

/** @internal */
export const isProcessNamed = (pid: number, command: string): boolean => {
  if (!isAlive(pid)) return false
  const name = commandName(pid)
  return name === undefined || name.includes(command)
}

/** @internal */
export const signal = (pid: number, sig: NodeJS.Signals): void => {
  // 0 and negative pids address process groups (-1: every process we may signal): never what we mean.
  if (!Number.isInteger(pid) || pid <= 0) return
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4))

/** @internal */
export const sleepSync = (millis: number): void => {
  Atomics.wait(sleeper, 0, 0, millis)
}

/**
 * Sends `SIGQUIT` (PostgreSQL's immediate shutdown: the postmaster takes its backends down with it), waits up to
 * `graceMillis`, then `SIGKILL`s whatever is left.
 *
 * @internal
 */
export const terminateSync = (pids: ReadonlyArray<number>, graceMillis: number): void => {
  const alive = pids.filter(isAlive)
  if (alive.length === 0) return
  for (const pid of alive) signal(pid, "SIGQUIT")
  const deadline = Date.now() + graceMillis
  while (Date.now() < deadline && alive.some(isAlive)) sleepSync(10)
  const stubborn = alive.filter(isAlive)
  for (const pid of stubborn) signal(pid, "SIGKILL")
  const killDeadline = Date.now() + 1_000
  while (Date.now() < killDeadline && stubborn.some(isAlive)) sleepSync(10)
}

/**
 * The asynchronous twin of {@link terminateSync}, for callers that must not block the event loop.
 *
 * @internal
 */
export const terminate = async (pids: ReadonlyArray<number>, graceMillis: number): Promise<void> => {
  const alive = pids.filter(isAlive)
  if (alive.length === 0) return
  for (const pid of alive) signal(pid, "SIGQUIT")
  const deadline = Date.now() + graceMillis
  while (Date.now() < deadline && alive.some(isAlive)) await sleep(10)
  const stubborn = alive.filter(isAlive)
  for (const pid of stubborn) signal(pid, "SIGKILL")
  const killDeadline = Date.now() + 1_000
  while (Date.now() < killDeadline && stubborn.some(isAlive)) await sleep(10)
}

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

/**
 * The direct children of a process (Linux: from /proc; elsewhere: `pgrep -P`). PostgreSQL puts every backend in its
 * own session, so signalling the postmaster's process group would not reach them.
 *
 * @internal
 */
export const childrenOf = (pid: number): Array<number> => {
  let names: Array<string>
  try {
    names = Fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name))
  } catch {
    try {
      const out = ChildProcess.execFileSync("pgrep", ["-P", String(pid)], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"]
      })
      return out.split(/\s+/).filter(Boolean).map(Number)
    } catch {
      return []
    }
  }
  return names.map(Number).filter((child) => parentPid(child) === pid)
}
