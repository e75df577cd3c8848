/**
 * `pnpm bench`: the same workloads through our pool (SqlClient and Db.withConnection), @effect/sql-pg,
 * pg.Pool, postgres.js and pgbench, against one embedded PostgreSQL, in alternating rounds. Each client runs in its
 * own child process (worker.ts). Prints the table; a complete run writes `bench/results/latest.json`, a dated copy,
 * `latest.md` and the table section of BENCHMARKS.md, any other run a `*.tmp.json` (ignored by git).
 *
 *   pnpm bench                 full run (3 rounds, ~5 minutes)
 *   pnpm bench --quick         1 round, short phases (~1 minute)
 *   pnpm bench --rounds 5      more rounds
 *   pnpm bench --clients ours-sql,pg-pool
 *   pnpm bench --skip reconnect,http,pgbench
 *   pnpm bench --profile       CPU profile per client of SELECT 1 with 100 callers (--profile-op checkout|init|
 *                              shutdown for the others): top self-time frames, .cpuprofile files in results/profiles
 *   pnpm bench --no-md         leave BENCHMARKS.md alone
 *   pnpm bench --effect3 <dir> our pool from another copy of packages/effect3 (bundled in place of the workspace's),
 *                              for A/B runs of a pool patch
 */
import { PgTestServer } from "@effect-pg-pool/testkit"
import autocannon from "autocannon"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Url from "node:url"
import Pg from "pg"
import { type Bundle, bundleWorker } from "./bundle.js"
import * as Pgbench from "./pgbench.js"
import { summarize } from "./profile.js"
import {
  type ClientName,
  clientLabels,
  clients,
  type FromWorker,
  isClientName,
  type ReconnectResult,
  type ToWorker,
  type WorkloadPlan,
  type WorkloadResult
} from "./protocol.js"
import {
  aggregate,
  type Column,
  columns,
  type HttpResult,
  type HttpServer,
  httpLabels,
  type ReconnectSummary,
  type RoundData,
  render,
  targets
} from "./report.js"
import { wallNow } from "./stats.js"

const benchDir = Path.resolve(Path.dirname(Url.fileURLToPath(import.meta.url)), "..")
const rootDir = Path.resolve(benchDir, "..")
const resultsDir = Path.join(benchDir, "results")
let bundle: Bundle | undefined

// -------------------------------------------------------------------------------------------------------------
// options
// -------------------------------------------------------------------------------------------------------------

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const option = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  return i === -1 ? undefined : argv[i + 1]
}

const quick = flag("quick")
const rounds = Number(option("rounds") ?? (quick ? 1 : 3))
const selected: ReadonlyArray<ClientName> = (option("clients")?.split(",") ?? [...clients]).filter(isClientName)
const skip = new Set(option("skip")?.split(",") ?? [])
const corePath = (() => {
  const given = option("effect3")
  if (given === undefined) return undefined
  const resolved = Path.resolve(process.env["INIT_CWD"] ?? process.cwd(), given)
  return Fs.statSync(resolved).isDirectory() ? Path.join(resolved, "src", "index.ts") : resolved
})()

const plan: WorkloadPlan = quick
  ? {
      warmupMs: 150,
      selectMs: 700,
      checkoutMs: 400,
      healthIterations: 10_000,
      busyQueries: 10,
      busyShutdownTimeoutMs: 500
    }
  : {
      warmupMs: 300,
      selectMs: 2_000,
      checkoutMs: 1_000,
      healthIterations: 20_000,
      busyQueries: 10,
      busyShutdownTimeoutMs: 500
    }
const pgbenchSeconds = quick ? 1 : 2
const outageMs = quick ? 1_500 : 3_000
const reconnectCallers = 10
const httpSeconds = quick ? 1 : 3
const httpWarmupSeconds = quick ? 0.3 : 1
const httpConnections = 32

const log = (message: string) => process.stderr.write(`${message}\n`)

const timed = async <A>(label: string, f: () => Promise<A>): Promise<A> => {
  const started = Date.now()
  const result = await f()
  log(`  ${label} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
  return result
}

// -------------------------------------------------------------------------------------------------------------
// child processes
// -------------------------------------------------------------------------------------------------------------

interface Worker {
  readonly child: ChildProcess.ChildProcess
  readonly next: <T extends FromWorker["type"]>(
    type: T,
    timeoutMs?: number
  ) => Promise<Extract<FromWorker, { type: T }>>
  readonly send: (message: ToWorker) => void
  readonly exited: Promise<void>
}

const spawnWorker = (
  args: ReadonlyArray<string>,
  execArgv: ReadonlyArray<string> = [],
  env: NodeJS.ProcessEnv = {},
  entry = bundle!.workerPath
) => {
  const child = ChildProcess.fork(entry, [...args], {
    cwd: benchDir,
    execArgv: [...bundle!.execArgv, ...execArgv],
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe", "ipc"]
  })
  let tail = ""
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4000)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  const inbox: Array<FromWorker> = []
  const waiting: Array<() => void> = []
  child.on("message", (message: FromWorker) => {
    inbox.push(message)
    for (const wake of waiting.splice(0)) wake()
  })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  let exitCode: number | null = null
  child.once("exit", (code) => {
    exitCode = code
    for (const wake of waiting.splice(0)) wake()
  })
  const next = async <T extends FromWorker["type"]>(type: T, timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const error = inbox.find((m) => m.type === "error")
      if (error !== undefined && error.type === "error")
        throw new Error(`worker ${args.join(" ")} failed: ${error.message}`)
      const index = inbox.findIndex((m) => m.type === type)
      if (index !== -1) return inbox.splice(index, 1)[0] as Extract<FromWorker, { type: T }>
      if (exitCode !== null || child.exitCode !== null) {
        throw new Error(`worker ${args[0]} ${args[1]} exited (${child.exitCode}) before "${type}":\n${tail}`)
      }
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new Error(`worker ${args[0]} ${args[1]}: no "${type}" within ${timeoutMs} ms:\n${tail}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(remaining, 1_000))
        waiting.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }
  // a worker may have finished and closed its channel already: a late message is dropped, not an EPIPE crash
  child.on("error", () => undefined)
  const send = (message: ToWorker) => {
    if (child.connected) child.send(message, (error) => error ?? undefined)
  }
  return { child, next, send, exited } satisfies Worker
}

const finish = async (worker: Worker) => {
  worker.send({ type: "finish" })
  const timer = setTimeout(() => worker.child.kill("SIGKILL"), 5_000)
  await worker.exited
  clearTimeout(timer)
}

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

// -------------------------------------------------------------------------------------------------------------
// phases
// -------------------------------------------------------------------------------------------------------------

const runWorkload = async (client: ClientName, url: string): Promise<WorkloadResult> => {
  const worker = spawnWorker(["workload", client, url, JSON.stringify(plan)])
  const { result } = await worker.next("result", 180_000)
  await worker.exited
  return result
}

const runReconnect = async (client: ClientName, url: string, server: PgTestServer.PgTestServer.Service) => {
  const worker = spawnWorker(["reconnect", client, url, String(reconnectCallers)])
  try {
    await worker.next("running", 60_000)
    await sleep(300)
    const stopStarted = wallNow()
    await Effect.runPromise(server.stop({ mode: "fast" }))
    worker.send({ type: "outage-started", at: wallNow() })
    await sleep(outageMs)
    // "ready" is the first moment a session opens: our own probe, or the testkit seeing the server's
    // "ready to accept connections", whichever comes first
    const probe = { stopped: false }
    const probed = probeReady(url, probe)
    await Effect.runPromise(server.start)
    const startedAt = wallNow()
    const probedAt = await Promise.race([probed, sleep(2_000).then(() => undefined)])
    probe.stopped = true
    const readyAt = Math.min(startedAt, probedAt ?? startedAt)
    await worker.next("recovered", 30_000).catch(() => undefined)
    await sleep(300)
    worker.send({ type: "finish" })
    const { result } = await worker.next("reconnect-result", 30_000)
    return summarizeReconnect(result, stopStarted, readyAt)
  } finally {
    if (!(await Effect.runPromise(server.isRunning))) await Effect.runPromise(server.start)
    await finish(worker)
  }
}

/** Opens sessions in a tight loop until one succeeds; resolves with the moment it did. */
const probeReady = async (url: string, control: { stopped: boolean }): Promise<number | undefined> => {
  while (!control.stopped) {
    const client = new Pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 })
    client.on("error", () => undefined)
    try {
      await client.connect()
      const at = wallNow()
      await client.end().catch(() => undefined)
      return at
    } catch {
      await client.end().catch(() => undefined)
      await sleep(5)
    }
  }
  return undefined
}

const summarizeReconnect = (result: ReconnectResult, stopStarted: number, readyAt: number): ReconnectSummary => ({
  recoveryMs: result.firstOkAfter === undefined ? undefined : result.firstOkAfter - readyAt,
  failed: result.failedAt.filter((t) => t >= stopStarted).length,
  failedAfterReady: result.failedAt.filter((t) => t >= readyAt).length,
  outageMs: readyAt - stopStarted
})

const autocannonRun = (url: string, seconds: number): Promise<autocannon.Result> =>
  new Promise((resolve, reject) => {
    autocannon({ url, connections: httpConnections, duration: seconds, pipelining: 1 }, (error, result) =>
      error ? reject(error) : resolve(result)
    )
  })

const measureHttp = async (url: string): Promise<HttpResult> => {
  await autocannonRun(url, httpWarmupSeconds)
  const result = await autocannonRun(url, httpSeconds)
  return {
    reqPerSec: result.requests.total / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx
  }
}

const runHttp = async (url: string, round: number, notes: Set<string>) => {
  const results: Partial<Record<HttpServer, HttpResult>> = {}
  const live = spawnWorker(["http", "live", url])
  const staticServer = spawnWorker(["http", "static", url])
  const exampleEntry = bundle!.exampleServer
  const example = "path" in exampleEntry ? spawnWorker([url], [], {}, exampleEntry.path) : undefined
  if ("error" in exampleEntry) notes.add(`examples/health-server skipped: ${exampleEntry.error}`)
  try {
    const livePort = (await live.next("listening", 60_000)).port
    const staticPort = (await staticServer.next("listening", 60_000)).port
    const urls: Partial<Record<HttpServer, string>> = {
      live: `http://127.0.0.1:${livePort}/health`,
      static: `http://127.0.0.1:${staticPort}/health`
    }
    if (example !== undefined) {
      try {
        urls.example = `http://127.0.0.1:${(await example.next("listening", 60_000)).port}/health`
      } catch (error) {
        notes.add(`examples/health-server skipped: ${error instanceof Error ? error.message.split("\n")[0] : error}`)
      }
    }
    // the static reference answers the very JSON the example (or our live server) answers
    const body = await (await fetch(urls.example ?? urls.live!)).text()
    staticServer.send({ type: "static-body", body })
    await sleep(50)
    const order = (["example", "live", "static"] as const).filter((s) => urls[s] !== undefined)
    const rotated = order.map((_, i) => order[(i + round) % order.length]!)
    for (const server of rotated) results[server] = await measureHttp(urls[server]!)
  } finally {
    await Promise.all([finish(live), finish(staticServer), ...(example === undefined ? [] : [finish(example)])])
  }
  return results
}

// -------------------------------------------------------------------------------------------------------------
// machine
// -------------------------------------------------------------------------------------------------------------

const machineInfo = async (url: string, pgbench: string | undefined) => {
  const client = new Pg.Client({ connectionString: url })
  await client.connect()
  const { rows } = await client.query<{ version: string }>("SELECT version()")
  await client.end()
  const cpus = Os.cpus()
  return {
    cpuModel: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memoryGb: Math.round((Os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${Os.type()} ${Os.release()} ${Os.arch()}`,
    node: process.version,
    postgres: rows[0]?.version ?? "unknown",
    pgbench: pgbench === undefined ? "not on PATH" : Pgbench.version(pgbench)
  }
}

// -------------------------------------------------------------------------------------------------------------
// profile mode
// -------------------------------------------------------------------------------------------------------------

const profileOps = ["select", "checkout", "init", "shutdown"] as const

const runProfiles = async (url: string) => {
  const dir = Path.join(resultsDir, "profiles")
  Fs.mkdirSync(dir, { recursive: true })
  const op = profileOps.find((o) => o === option("profile-op")) ?? "select"
  const what = {
    select: "SELECT 1, 100 callers",
    checkout: "checkout cycle, 10 callers",
    init: "cold init (pool + first query)",
    shutdown: "shutdown of an idle pool"
  }[op]
  for (const client of selected) {
    const out = Path.join(dir, `${client}-${op}.cpuprofile`)
    log(`profiling ${clientLabels[client]}: ${what}`)
    const worker = spawnWorker(["profile", client, url, quick ? "2000" : "5000", op, out])
    const result = await worker.next("profiled", 120_000)
    await worker.exited
    const figures =
      op === "select" || op === "checkout"
        ? `${Math.round(result.opsPerSec)}/s, ${result.cpuMicrosPerOp.toFixed(1)} µs CPU each`
        : `${result.elapsedMs.toFixed(1)} ms, ${(result.cpuMicrosPerOp / 1000).toFixed(1)} ms CPU`
    console.log(`\n## ${clientLabels[client]}, ${what}: ${figures} — ${Path.relative(rootDir, out)}`)
    console.log(summarize(JSON.parse(Fs.readFileSync(out, "utf8")), 30, /packages\/|examples\/|bench\//))
  }
}

// -------------------------------------------------------------------------------------------------------------
// main
// -------------------------------------------------------------------------------------------------------------

const updateBenchmarksMd = (markdown: string) => {
  const file = Path.join(rootDir, "BENCHMARKS.md")
  const begin = "<!-- bench:begin -->"
  const end = "<!-- bench:end -->"
  const current = Fs.existsSync(file) ? Fs.readFileSync(file, "utf8") : `# Benchmarks\n\n${begin}\n${end}\n`
  const from = current.indexOf(begin)
  const to = current.indexOf(end)
  if (from === -1 || to === -1) return log(`BENCHMARKS.md has no ${begin} … ${end} section: left unchanged`)
  Fs.writeFileSync(file, `${current.slice(0, from + begin.length)}\n${markdown}\n${current.slice(to)}`)
  log("BENCHMARKS.md updated")
}

const main = async () => {
  bundle = await bundleWorker(benchDir, corePath)
  log(bundle.description)
  const scope = Effect.runSync(Scope.make())
  try {
    log("starting the embedded PostgreSQL")
    const server = await Effect.runPromise(Scope.extend(PgTestServer.makeEmbedded(), scope))
    const url = Redacted.value(server.url)
    const pgbench = skip.has("pgbench") ? undefined : Pgbench.findPgbench()
    const machine = await machineInfo(url, Pgbench.findPgbench())
    log(`${machine.cpuModel} × ${machine.cores}, ${machine.memoryGb} GB, ${machine.node}; ${machine.postgres}`)

    if (flag("profile")) return await runProfiles(url)

    const notes = new Set<string>()
    if (pgbench === undefined && !skip.has("pgbench")) notes.add("pgbench not on PATH: its column is empty")
    const data: Array<RoundData> = []
    const started = Date.now()
    for (let round = 0; round < rounds; round++) {
      const loadAtStart = Os.loadavg()[0]!
      const order = selected.map((_, i) => selected[(i + round) % selected.length]!)
      log(`round ${round + 1}/${rounds}: ${order.join(", ")}`)
      const workload: Partial<Record<ClientName, WorkloadResult>> = {}
      for (const client of order) {
        workload[client] = await timed(`workload ${client}`, () => runWorkload(client, url))
      }
      let pgbenchResult: RoundData["pgbench"]
      if (pgbench !== undefined) {
        const conn = {
          host: server.host,
          port: server.port,
          user: server.user,
          password: Redacted.value(server.password),
          database: server.database
        }
        pgbenchResult = await timed("pgbench", async () => ({
          select10: Pgbench.run(pgbench, conn, 10, pgbenchSeconds),
          select100: Pgbench.run(pgbench, conn, 100, pgbenchSeconds)
        }))
      }
      const reconnect: Partial<Record<ClientName, ReconnectSummary>> = {}
      if (!skip.has("reconnect")) {
        for (const client of order) {
          reconnect[client] = await timed(`reconnect ${client}`, () => runReconnect(client, url, server))
        }
      }
      const http = skip.has("http") ? {} : await timed("http", () => runHttp(url, round, notes))
      const loadAverage = [loadAtStart, Os.loadavg()[0]!] as const
      data.push({ round, loadAverage, order, workload, pgbench: pgbenchResult, reconnect, http })
    }

    const agg = aggregate(data)
    const httpNote =
      agg.http.example === undefined && agg.http.live !== undefined
        ? "example not measured: node:http + Db.health stands in"
        : undefined
    const targetResults = targets(agg, httpNote)
    const shown = columns.filter((c): c is Column => (c === "pgbench" ? pgbench !== undefined : selected.includes(c)))
    const rendered = render(agg, targetResults, shown)
    const elapsedSeconds = Math.round((Date.now() - started) / 1000)
    const command = `pnpm bench ${argv.join(" ")}`.trim()
    const header =
      `Machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGb} GB RAM, ${machine.os}; ` +
      `Node ${machine.node}; ${machine.postgres.split(",")[0]}; ${machine.pgbench}.\n` +
      `Command: \`${command}\` — ${rounds} round(s), ${elapsedSeconds} s, ${new Date().toISOString()}; ` +
      `maxSize 10 for every pool, each client in its own process, one embedded server.` +
      ` ${bundle!.description}.` +
      (corePath === undefined ? "" : `\nOur pool from ${corePath} (--effect3).`)
    const loads = data.flatMap((r) => r.loadAverage)
    notes.add(
      `1-minute load average during the run: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} on ` +
        `${machine.cores} cores (everything else running on the machine counts)`
    )
    const notesText = [...notes].map((n) => `- ${n}`).join("\n")

    console.log(`\n${header}\n\n${rendered.text}\n${notesText === "" ? "" : `\n${notesText}\n`}`)

    Fs.mkdirSync(resultsDir, { recursive: true })
    const json = {
      machine,
      command,
      quick,
      rounds,
      plan,
      settings: {
        pgbenchSeconds,
        outageMs,
        reconnectCallers,
        httpSeconds,
        httpWarmupSeconds,
        httpConnections,
        maxSize: 10
      },
      elapsedSeconds,
      at: new Date().toISOString(),
      notes: [...notes],
      httpLabels,
      clientLabels,
      medians: agg.medians,
      ratios: agg.ratios,
      http: agg.http,
      targets: targetResults,
      rounds_: data
    }
    const stamp = new Date()
      .toISOString()
      .replaceAll(":", "-")
      .replace(/\.\d+Z$/, "Z")
    const body = JSON.stringify(json, null, 2)
    const markdown = `${header}\n\n${rendered.markdown}\n${notesText === "" ? "" : `\n${notesText}\n`}`
    // Only a complete run of the workspace's pool is the record (latest.json, latest.md, BENCHMARKS.md); quick,
    // partial and --effect3 runs go to *.tmp.json, which git ignores.
    const complete = !quick && corePath === undefined && selected.length === clients.length && skip.size === 0
    if (complete) {
      Fs.writeFileSync(Path.join(resultsDir, "latest.json"), body)
      Fs.writeFileSync(Path.join(resultsDir, `full-${stamp}.json`), body)
      Fs.writeFileSync(Path.join(resultsDir, "latest.md"), markdown)
      log(`results written to ${Path.relative(rootDir, resultsDir)}/latest.json, full-${stamp}.json and latest.md`)
      if (!flag("no-md")) updateBenchmarksMd(markdown)
    } else {
      const file = Path.join(resultsDir, `${quick ? "quick" : "partial"}-${stamp}.tmp.json`)
      Fs.writeFileSync(file, body)
      log(`results written to ${Path.relative(rootDir, file)} (not a complete run: latest.json is left alone)`)
    }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
