/**
 * pgbench as the reference: the same `SELECT 1` from C, one connection per client (pgbench has no pool), simple
 * query protocol. Latencies from its per-transaction log, client CPU from the shell's `times` for its children.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { LoopStats } from "./protocol.js"
import { quantileOf } from "./stats.js"

export interface Connection {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string
  readonly database: string
}

export const findPgbench = (): string | undefined => {
  for (const dir of (process.env["PATH"] ?? "").split(Path.delimiter)) {
    const candidate = Path.join(dir, "pgbench")
    try {
      Fs.accessSync(candidate, Fs.constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

export const version = (binary: string): string =>
  ChildProcess.execFileSync(binary, ["--version"], { encoding: "utf8" }).trim()

const parseTimes = (text: string): number => {
  // `times` prints two lines, the shell's own and its children's: "0m1.234s 0m0.567s"
  const lines = text.trim().split("\n")
  const children = lines[lines.length - 1] ?? ""
  let micros = 0
  for (const match of children.matchAll(/(\d+)m([\d.]+)s/g)) {
    micros += (Number(match[1]) * 60 + Number(match[2])) * 1e6
  }
  return micros
}

/**
 * pgbench's `-T` counts its connection phase: 100 clients opening SCRAM sessions on a loaded machine can use up a
 * short window and process nothing. Such a run is repeated once with twice the time.
 */
export const run = (
  binary: string,
  conn: Connection,
  clients: number,
  seconds: number,
  mode: "simple" | "prepared" = "simple"
): LoopStats => {
  const first = runOnce(binary, conn, clients, seconds, mode)
  return first.ops > 0 ? first : runOnce(binary, conn, clients, seconds * 2, mode)
}

const runOnce = (
  binary: string,
  conn: Connection,
  clients: number,
  seconds: number,
  mode: "simple" | "prepared" = "simple"
): LoopStats => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgbench-"))
  try {
    const script = Path.join(dir, "select1.sql")
    Fs.writeFileSync(script, "SELECT 1;\n")
    const args = [
      "-n",
      "-M",
      mode,
      "-f",
      script,
      "-c",
      String(clients),
      "-j",
      String(Math.min(clients, Os.availableParallelism())),
      "-T",
      String(seconds),
      "-h",
      conn.host,
      "-p",
      String(conn.port),
      "-U",
      conn.user,
      "-l",
      `--log-prefix=${Path.join(dir, "log")}`,
      conn.database
    ]
    const quoted = [binary, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ")
    const output = ChildProcess.execFileSync("bash", ["-c", `${quoted}; status=$?; times; exit $status`], {
      encoding: "utf8",
      env: { ...process.env, PGPASSWORD: conn.password },
      cwd: dir,
      timeout: (seconds + 60) * 1000
    })
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(output)?.[1] ?? Number.NaN)
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(output)?.[1] ?? Number.NaN)
    const failed = Number(/number of failed transactions: (\d+)/.exec(output)?.[1] ?? 0)
    const latencies: Array<number> = []
    for (const file of Fs.readdirSync(dir)) {
      if (!file.startsWith("log")) continue
      for (const line of Fs.readFileSync(Path.join(dir, file), "utf8").split("\n")) {
        const fields = line.split(" ")
        if (fields.length >= 3) latencies.push(Number(fields[2]) / 1000)
      }
    }
    return {
      callers: clients,
      ops: processed,
      errors: failed,
      elapsedMs: seconds * 1000,
      opsPerSec: tps,
      p50Ms: quantileOf(latencies, 0.5),
      p99Ms: quantileOf(latencies, 0.99),
      cpuMicrosPerOp: parseTimes(output) / processed
    }
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}
