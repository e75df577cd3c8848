/**
 * `pnpm bench`: the same workloads through both editions of our pool (Effect 3: SqlClient and Db.withConnection;
 * Effect 4: Db.layer's SqlClient, multiplex off and on), @effect/sql-pg 0.53 and 4.0.5 (multiplex off and on),
 * pg.Pool, postgres.js and pgbench, against one embedded PostgreSQL, in alternating rounds. Each client runs in its
 * own child process (bench/src/worker.ts, or bench/effect4/src/worker.ts for the effect 4 clients). Prints the
 * tables; a complete run writes `bench/results/latest.json`, a dated copy, `latest.md` and the table and profile
 * sections of BENCHMARKS.md, any other run a `*.tmp.json` (ignored by git). A client whose package does not
 * provide what it needs yet is listed as not available (the probe at the start), never measured in its place.
 *
 *   pnpm bench                 full run (3 rounds and the per-edition profiles)
 *   pnpm bench --quick         1 round, short phases, no profiles (~2 minutes)
 *   pnpm bench --rounds 5      more rounds
 *   pnpm bench --clients ours-sql,pg-pool
 *   pnpm bench --skip reconnect,http,pgbench,profiles
 *   pnpm bench --profile       CPU profile per client of SELECT 1 with 100 callers (--profile-op checkout|rows|init|
 *                              shutdown for the others): top self-time frames, .cpuprofile files in results/profiles
 *   pnpm bench --no-md         leave BENCHMARKS.md alone
 *   pnpm bench --effect3 <dir> our pool from another copy of packages/effect3 (bundled in place of the workspace's),
 *                              for A/B runs of a pool patch; its third-party imports resolve from this workspace
 *                              (one effect, one pg on both sides), a dependency only the copy has from the copy
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
import { NotAvailable, rowsSetup } from "./adapter.js"
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
  type WorkloadResult,
  workerOf
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
  scalingFlags,
  targets,
  type Unavailable
} from "./report.js"
import { fmt, wallNow } from "./stats.js"

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
      prewarmMs: 700,
      warmupMs: 150,
      selectMs: 600,
      checkoutMs: 400,
      scalingMs: 300,
      rowsMs: 300,
      healthIterations: 10_000,
      busyQueries: 10,
      busyShutdownTimeoutMs: 500
    }
  : {
      prewarmMs: 2_000,
      warmupMs: 300,
      selectMs: 2_000,
      checkoutMs: 1_000,
      scalingMs: 1_000,
      rowsMs: 1_000,
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

/** The worker bundle that runs `client` (each major's clients load from their own node_modules). */
const entryOf = (client: ClientName): string => {
  const built = bundle!.workers[workerOf[client]]
  if ("error" in built)
    throw new NotAvailable(
      `bench/${workerOf[client] === "effect4" ? "effect4/" : ""}src/worker.ts did not build: ${built.error}`
    )
  return built.path
}

const spawnWorker = (
  args: ReadonlyArray<string>,
  execArgv: ReadonlyArray<string> = [],
  env: NodeJS.ProcessEnv = {},
  entry = isClientName(args[1] ?? "") ? entryOf(args[1] as ClientName) : entryOf("ours-conn")
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
      const error = inbox.find((m) => m.type === "error" || m.type === "unavailable")
      if (error?.type === "unavailable") throw new NotAvailable(error.reason)
      if (error?.type === "error") throw new Error(`worker ${args.join(" ")} failed: ${error.message}`)
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

/** Whether `client`'s adapter loads in its worker: undefined when it does, else why not. */
const probe = async (client: ClientName): Promise<string | undefined> => {
  try {
    const worker = spawnWorker(["probe", client])
    await worker.next("available", 60_000)
    await worker.exited
    return undefined
  } catch (error) {
    if (error instanceof NotAvailable) return error.message
    throw error
  }
}

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

const profileOps = ["select", "checkout", "rows", "init", "shutdown"] as const

const profileWhat = {
  select: "SELECT 1, 100 callers",
  checkout: "checkout cycle, 10 callers",
  rows: "100 rows × 10 columns, 10 callers",
  init: "cold init (pool + first query)",
  shutdown: "shutdown of an idle pool"
} as const

/** One CPU profile of `client` in a fresh process: its heading line and the summary of its top frames. */
const profileOne = async (
  client: ClientName,
  url: string,
  op: (typeof profileOps)[number],
  ms: number,
  top: number
) => {
  const dir = Path.join(resultsDir, "profiles")
  Fs.mkdirSync(dir, { recursive: true })
  const out = Path.join(dir, `${client}-${op}.cpuprofile`)
  log(`profiling ${clientLabels[client]}: ${profileWhat[op]}`)
  const worker = spawnWorker(["profile", client, url, String(ms), op, out])
  const result = await worker.next("profiled", 120_000)
  await worker.exited
  const figures =
    op === "select" || op === "checkout" || op === "rows"
      ? `${fmt(result.opsPerSec)}/s, ${result.cpuMicrosPerOp.toFixed(1)} µs CPU each`
      : `${result.elapsedMs.toFixed(1)} ms, ${(result.cpuMicrosPerOp / 1000).toFixed(1)} ms CPU`
  return {
    heading: `${clientLabels[client]}, ${profileWhat[op]}: ${figures}`,
    out: Path.relative(rootDir, out),
    summary: summarize(JSON.parse(Fs.readFileSync(out, "utf8")), top, /packages\/|examples\/|bench\//)
  }
}

const runProfiles = async (url: string) => {
  const op = profileOps.find((o) => o === option("profile-op")) ?? "select"
  for (const client of selected) {
    const reason = await probe(client)
    if (reason !== undefined) {
      console.log(`\n## ${clientLabels[client]}: not available — ${reason}`)
      continue
    }
    const { heading, out, summary } = await profileOne(client, url, op, quick ? 2_000 : 5_000, 30)
    console.log(`\n## ${heading} — ${out}\n${summary}`)
  }
}

/** The clients whose profile BENCHMARKS.md keeps: every path of both editions. */
const editionProfiled: ReadonlyArray<ClientName> = ["ours-sql", "ours-pipe", "ours-conn", "ours4", "ours4-mux"]

/** Where each edition's CPU goes, SELECT 1 with 100 callers: the profile section of BENCHMARKS.md. */
const editionProfiles = async (url: string, available: ReadonlyArray<ClientName>): Promise<string> => {
  const parts: Array<string> = []
  for (const client of editionProfiled) {
    if (!available.includes(client)) {
      parts.push(`#### ${clientLabels[client]}\n\nnot available in this run.`)
      continue
    }
    const { heading, summary } = await profileOne(client, url, "select", quick ? 1_500 : 4_000, 12)
    parts.push(`#### ${heading}\n\n\`\`\`text\n${summary}\n\`\`\``)
  }
  return parts.join("\n\n")
}

// -------------------------------------------------------------------------------------------------------------
// main
// -------------------------------------------------------------------------------------------------------------

/**
 * Rewrites the text between `<!-- bench:<name>:begin -->` and its end marker (`bench:begin` / `bench:end` for the
 * tables); a section the file does not have yet is appended under `heading`.
 */
const replaceSection = (current: string, name: string, content: string, heading: string): string => {
  const begin = name === "" ? "<!-- bench:begin -->" : `<!-- bench:${name}:begin -->`
  const end = name === "" ? "<!-- bench:end -->" : `<!-- bench:${name}:end -->`
  const from = current.indexOf(begin)
  const to = current.indexOf(end)
  if (from === -1 || to === -1) return `${current.trimEnd()}\n\n${heading}\n\n${begin}\n${content}\n${end}\n`
  return `${current.slice(0, from + begin.length)}\n${content}\n${current.slice(to)}`
}

const updateBenchmarksMd = (markdown: string, profiles: string | undefined) => {
  const file = Path.join(rootDir, "BENCHMARKS.md")
  let text = Fs.existsSync(file) ? Fs.readFileSync(file, "utf8") : "# Benchmarks\n"
  text = replaceSection(text, "", markdown, "## Latest run")
  if (profiles !== undefined)
    text = replaceSection(
      text,
      "profiles",
      profiles,
      "## Where each edition's CPU goes\n\nWritten by `pnpm bench` from V8 CPU profiles of SELECT 1 with 100 callers " +
        "(the measured window only); `pnpm bench --profile [--profile-op …] [--clients …]` profiles any client."
    )
  Fs.writeFileSync(file, text)
  log("BENCHMARKS.md updated")
}

/** The tables the row workloads read (`rowsQuery`, `blobQuery`), made once per server. */
const setupRows = async (url: string) => {
  const client = new Pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(rowsSetup)
  } finally {
    await client.end()
  }
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

    await setupRows(url)

    if (flag("profile")) return await runProfiles(url)

    const started = Date.now()
    const notes = new Set<string>()
    if (pgbench === undefined && !skip.has("pgbench")) notes.add("pgbench not on PATH: its column is empty")
    // every client is probed in its own worker first: one that cannot run here is reported, not silently dropped
    const unavailable: Unavailable = {}
    for (const client of selected) {
      const reason = await probe(client)
      if (reason === undefined) continue
      unavailable[client] = reason
      notes.add(`${clientLabels[client]}: not available — ${reason}; its column and targets are empty`)
      log(`  ${client}: not available (${reason})`)
    }
    const available = selected.filter((c) => unavailable[c] === undefined)
    const data: Array<RoundData> = []
    for (let round = 0; round < rounds; round++) {
      const loadAtStart = Os.loadavg()[0]!
      const order = available.map((_, i) => available[(i + round) % available.length]!)
      log(`round ${round + 1}/${rounds}: ${order.join(", ")}`)
      const workload: Partial<Record<ClientName, WorkloadResult>> = {}
      for (const client of order) {
        workload[client] = await timed(`workload ${client}`, () => runWorkload(client, url))
      }
      let pgbenchResult: RoundData["pgbench"]
      let pgbenchPrepared: RoundData["pgbenchPrepared"]
      if (pgbench !== undefined) {
        const conn = {
          host: server.host,
          port: server.port,
          user: server.user,
          password: Redacted.value(server.password),
          database: server.database
        }
        pgbenchResult = await timed("pgbench -M simple", async () => ({
          select10: Pgbench.run(pgbench, conn, 10, pgbenchSeconds),
          select100: Pgbench.run(pgbench, conn, 100, pgbenchSeconds)
        }))
        pgbenchPrepared = await timed("pgbench -M prepared", async () => ({
          select10: Pgbench.run(pgbench, conn, 10, pgbenchSeconds, "prepared"),
          select100: Pgbench.run(pgbench, conn, 100, pgbenchSeconds, "prepared")
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
      data.push({ round, loadAverage, order, workload, pgbench: pgbenchResult, pgbenchPrepared, reconnect, http })
    }

    const agg = aggregate(data)
    const httpNote =
      agg.http.example === undefined && agg.http.live !== undefined
        ? "example not measured: node:http + Db.health stands in"
        : undefined
    const flags = scalingFlags(agg)
    const targetResults = targets(agg, flags, unavailable, httpNote)
    const shown = columns.filter((c): c is Column =>
      c === "pgbench" || c === "pgbench-prepared" ? pgbench !== undefined : available.includes(c)
    )
    const rendered = render(agg, targetResults, flags, shown)
    for (const line of rendered.flags) notes.add(line)
    const profiles = skip.has("profiles") ? undefined : await timed("profiles", () => editionProfiles(url, available))
    const elapsedSeconds = Math.round((Date.now() - started) / 1000)
    const command = `pnpm bench ${argv.join(" ")}`.trim()
    const header =
      `Machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGb} GB RAM, ${machine.os}; ` +
      `Node ${machine.node}; ${machine.postgres.split(",")[0]}; ${machine.pgbench}.\n` +
      `Command: \`${command}\` — ${rounds} round(s), ${elapsedSeconds} s, ${new Date().toISOString()}; ` +
      `maxSize 10 for every pool (the pool-size scaling steps aside), each client in its own process, one ` +
      `embedded server.` +
      ` ${bundle!.description}.` +
      (corePath === undefined ? "" : `\nOur pool from ${corePath} (--effect3).`)
    const loads = data.flatMap((r) => r.loadAverage)
    notes.add(
      `1-minute load average during the run: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} on ` +
        `${machine.cores} cores (everything else running on the machine counts)`
    )
    const notesText = [...notes].map((n) => `- ${n}`).join("\n")

    console.log(`\n${header}\n\n${rendered.text}\n${notesText === "" ? "" : `\n${notesText}\n`}`)
    if (profiles !== undefined) console.log(`\nWhere each edition's CPU goes (SELECT 1, 100 callers):\n\n${profiles}\n`)

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
      scalingFlags: flags,
      unavailable,
      profiles,
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
      if (!flag("no-md")) updateBenchmarksMd(markdown, profiles)
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
