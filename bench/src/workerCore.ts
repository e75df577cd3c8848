/**
 * One client in its own process (fair RSS and CPU), whichever worker bundle runs it (bench/src/worker.ts for the
 * effect 3 side, bench/effect4/src/worker.ts for effect 4): the measurements are this one module, the workers
 * differ only in the adapters they can load. Started by main.ts over IPC:
 *
 *   worker workload <client> <url> <plan-json>   every workload in sequence, one result message
 *   worker reconnect <client> <url> <callers>    closed loops through an outage the orchestrator causes
 *   worker http <live|static> <url>              a node:http /health server (reference for the HTTP row)
 *   worker profile <client> <url> <ms> <select|checkout|init|shutdown> <out.cpuprofile>   a CPU profile
 *   worker probe <client>                        whether the client's adapter loads here ("available")
 */
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Inspector from "node:inspector/promises"
import {
  type Adapter,
  type AdapterOptions,
  type LoadAdapter,
  type MakeAdapter,
  NotAvailable,
  type Operation
} from "./adapter.js"
import {
  type ClientName,
  defaultPoolSize,
  type FromWorker,
  isClientName,
  type LoopStats,
  poolScalingCallers,
  type ScalingStep,
  scalingCallers,
  scalingPoolSizes,
  type ToWorker,
  type WorkloadPlan
} from "./protocol.js"
import { Recorder, wallNow } from "./stats.js"

const maxSize = defaultPoolSize

const send = (message: FromWorker): Promise<void> =>
  new Promise((resolve) => {
    if (process.send === undefined) {
      process.stdout.write(`${JSON.stringify(message)}\n`)
      resolve()
    } else process.send(message, undefined, undefined, () => resolve())
  })

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

const nextMessage = <T extends ToWorker["type"]>(type: T): Promise<Extract<ToWorker, { type: T }>> =>
  new Promise((resolve) => {
    const listener = (message: ToWorker) => {
      if (message.type !== type) return
      process.off("message", listener)
      resolve(message as Extract<ToWorker, { type: T }>)
    }
    process.on("message", listener)
  })

const cpuMicros = () => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

const measureLoop = async (
  adapter: Adapter,
  op: Operation,
  callers: number,
  warmupMs: number,
  durationMs: number,
  recorder: Recorder
): Promise<LoopStats> => {
  await adapter.loop(op, callers, performance.now() + warmupMs, recorder)
  recorder.reset()
  const cpuBefore = cpuMicros()
  const started = performance.now()
  const errors = await adapter.loop(op, callers, started + durationMs, recorder)
  const elapsedMs = performance.now() - started
  const cpu = cpuMicros() - cpuBefore
  const ops = recorder.count
  return {
    callers,
    ops,
    errors,
    elapsedMs,
    opsPerSec: (ops / elapsedMs) * 1000,
    p50Ms: recorder.quantile(0.5),
    p99Ms: recorder.quantile(0.99),
    cpuMicrosPerOp: ops === 0 ? Number.NaN : cpu / ops
  }
}

/**
 * SELECT 1 on a pool of its own of `poolSize` connections: built, prewarmed (up to 50 connections to open, each
 * a SCRAM handshake of client CPU that must not be charged to the queries), measured, closed.
 */
const measureOnPool = async (
  makeAdapter: MakeAdapter,
  url: string,
  poolSize: number,
  callers: number,
  plan: WorkloadPlan,
  recorder: Recorder
): Promise<LoopStats> => {
  const adapter = makeAdapter({ url, maxSize: poolSize })
  await adapter.init()
  try {
    await adapter.loop("select", callers, performance.now() + plan.prewarmMs, recorder)
    return await measureLoop(adapter, "select", callers, plan.warmupMs, plan.scalingMs, recorder)
  } finally {
    await adapter.close()
  }
}

const workload = async (loadAdapter: LoadAdapter, client: ClientName, url: string, plan: WorkloadPlan) => {
  const recorder = new Recorder()
  const importStarted = performance.now()
  const makeAdapter = await loadAdapter(client)
  const importMs = performance.now() - importStarted
  const rssAfterImportMb = process.memoryUsage.rss() / 2 ** 20
  const options: AdapterOptions = { url, maxSize }

  const adapter = makeAdapter(options)
  const initStarted = performance.now()
  await adapter.init()
  const coldInitMs = performance.now() - initStarted
  const rssAfterInitMb = process.memoryUsage.rss() / 2 ** 20
  // the first window must not pay for opening the pool's other connections or for the JIT's first compiles
  await adapter.loop("select", maxSize, performance.now() + plan.prewarmMs, recorder)

  const select10 = await measureLoop(adapter, "select", 10, plan.warmupMs, plan.selectMs, recorder)
  const select100 = await measureLoop(adapter, "select", 100, plan.warmupMs, plan.selectMs, recorder)
  const memory = process.memoryUsage()
  const checkout1 = await measureLoop(adapter, "checkout", 1, plan.warmupMs, plan.checkoutMs, recorder)
  const checkout10 = await measureLoop(adapter, "checkout", 10, plan.warmupMs, plan.checkoutMs, recorder)
  const rows = await measureLoop(adapter, "rows", 10, plan.warmupMs, plan.rowsMs, recorder)
  const blob = await measureLoop(adapter, "blob", 10, plan.warmupMs, plan.rowsMs, recorder)

  // scaling, SELECT 1: callers 1 → 10 → 100 → 1,000 at the default pool size (10 and 100 are the runs above, so
  // RSS after the 100-caller run is not taken after 1,000), then pool sizes 1 → 10 → 50 at 100 callers, each on
  // a pool of its own
  const scaling: Array<ScalingStep> = []
  for (const callers of scalingCallers) {
    const stats =
      callers === 10
        ? select10
        : callers === 100
          ? select100
          : await measureLoop(adapter, "select", callers, plan.warmupMs, plan.scalingMs, recorder)
    scaling.push({ callers, poolSize: maxSize, stats })
  }

  let health: { p50Us: number; p99Us: number; iterations: number } | undefined
  if (adapter.health !== undefined) {
    await adapter.health(Math.min(1000, plan.healthIterations), recorder)
    recorder.reset()
    await adapter.health(plan.healthIterations, recorder)
    // an Effect client without a health check records nothing
    if (recorder.count > 0)
      health = {
        p50Us: recorder.quantile(0.5) * 1000,
        p99Us: recorder.quantile(0.99) * 1000,
        iterations: plan.healthIterations
      }
  }

  // idle shutdown: every connection returned, nothing in flight
  await sleep(50)
  const idleStarted = performance.now()
  await adapter.close()
  const shutdownIdleMs = performance.now() - idleStarted

  for (const poolSize of scalingPoolSizes) {
    if (poolSize === maxSize) continue
    const stats = await measureOnPool(makeAdapter, url, poolSize, poolScalingCallers, plan, recorder)
    scaling.push({ callers: poolScalingCallers, poolSize, stats })
  }

  // busy shutdown: a second pool with `busyQueries` pg_sleep(1) in flight
  const busyAdapter = makeAdapter({ ...options, shutdownTimeoutMs: plan.busyShutdownTimeoutMs })
  await busyAdapter.init()
  let unsettled = plan.busyQueries
  let outcome = { ok: 0, failed: 0 }
  const busy = busyAdapter.busy(plan.busyQueries).then((o) => {
    unsettled = 0
    outcome = o
  })
  await sleep(150)
  const busyStarted = performance.now()
  await busyAdapter.close()
  const shutdownBusyMs = performance.now() - busyStarted
  await Promise.race([busy, sleep(3_000)])

  await send({
    type: "result",
    result: {
      client,
      importMs,
      coldInitMs,
      select10,
      select100,
      rssAfterImportMb,
      rssAfterInitMb,
      rssAfter100Mb: memory.rss / 2 ** 20,
      heapUsedAfter100Mb: memory.heapUsed / 2 ** 20,
      checkout1,
      checkout10,
      rows,
      blob,
      scaling,
      health,
      shutdownIdleMs,
      shutdownBusyMs,
      busyOutcome: { ...outcome, unsettled }
    }
  })
}

const reconnect = async (loadAdapter: LoadAdapter, client: ClientName, url: string, callers: number) => {
  const adapter = (await loadAdapter(client))({ url, maxSize })
  await adapter.init()
  let okTotal = 0
  let failedTotal = 0
  const failedAt: Array<number> = []
  let outageAt: number | undefined
  let lastOkBefore: number | undefined
  let firstOkAfter: number | undefined
  const control = {
    stopped: false,
    onOk: () => {
      okTotal++
      const now = wallNow()
      if (outageAt === undefined) lastOkBefore = now
      else if (firstOkAfter === undefined) {
        firstOkAfter = now
        void send({ type: "recovered", at: now })
      }
    },
    onFail: () => {
      failedTotal++
      if (failedAt.length < 1_000_000) failedAt.push(wallNow())
    }
  }
  void nextMessage("outage-started").then((message) => {
    outageAt = message.at
  })
  const running = adapter.outage(callers, control)
  await sleep(200)
  await send({ type: "running" })
  await nextMessage("finish")
  control.stopped = true
  await Promise.race([running, sleep(1_000)])
  await send({
    type: "reconnect-result",
    result: { client, okTotal, failedTotal, failedAt, firstOkAfter, lastOkBefore }
  })
  await Promise.race([adapter.close(), sleep(2_000)])
}

const http = async (loadAdapter: LoadAdapter, mode: string, url: string) => {
  let body = "{}"
  let answer: () => string
  if (mode === "live") {
    const adapter = (await loadAdapter("ours-conn"))({ url, maxSize })
    await adapter.init()
    answer = adapter.healthJson!
  } else {
    answer = () => body
    void nextMessage("static-body").then((message) => {
      body = message.body
    })
  }
  const server = Http.createServer((req, res) => {
    if (req.url !== "/health") {
      res.writeHead(404).end()
      return
    }
    const json = answer()
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(json) })
    res.end(json)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  await send({ type: "listening", port: typeof address === "object" && address !== null ? address.port : 0 })
  await nextMessage("finish")
  server.closeAllConnections()
  server.close()
}

type ProfileOp = "select" | "checkout" | "rows" | "init" | "shutdown"

const startProfiler = async () => {
  const session = new Inspector.Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 100 })
  await session.post("Profiler.start")
  return async (out: string) => {
    const { profile } = await session.post("Profiler.stop")
    session.disconnect()
    Fs.writeFileSync(out, JSON.stringify(profile))
  }
}

/**
 * The V8 profiler on for the measured window only (not startup, imports or warm-up): 100 callers of SELECT 1,
 * 10 of the checkout cycle, 10 reading the 100-row query (the rows workload), the cold init (pool + first query), or the shutdown of an idle pool. The
 * `.cpuprofile` goes to `out`.
 */
const profile = async (
  loadAdapter: LoadAdapter,
  client: ClientName,
  url: string,
  durationMs: number,
  op: ProfileOp,
  out: string
) => {
  const adapter = (await loadAdapter(client))({ url, maxSize })
  const recorder = new Recorder()
  const cpuBefore = cpuMicros()
  const started = performance.now()
  let stop: ((out: string) => Promise<void>) | undefined
  let closeStarted: number | undefined
  let cpuAtClose: number | undefined
  let ops = 1
  if (op === "init") {
    stop = await startProfiler()
    await adapter.init()
  } else {
    await adapter.init()
    if (op === "shutdown") {
      await adapter.loop("select", 10, performance.now() + 500, recorder)
      await sleep(50)
      stop = await startProfiler()
      closeStarted = performance.now()
      cpuAtClose = cpuMicros()
      await adapter.close()
    } else {
      const callers = op === "select" ? 100 : 10
      await adapter.loop(op, callers, performance.now() + 1_000, recorder)
      recorder.reset()
      stop = await startProfiler()
      await adapter.loop(op, callers, performance.now() + durationMs, recorder)
      ops = recorder.count
    }
  }
  const elapsedMs = performance.now() - (closeStarted ?? started)
  const cpu = cpuMicros() - (cpuAtClose ?? cpuBefore)
  await stop(out)
  if (op !== "shutdown") await adapter.close()
  await send({ type: "profiled", opsPerSec: (ops / elapsedMs) * 1000, cpuMicrosPerOp: cpu / ops, elapsedMs })
}

const dispatch = async (loadAdapter: LoadAdapter) => {
  const [mode, a, b, c] = process.argv.slice(2)
  if (mode === "http") return http(loadAdapter, a ?? "static", b ?? "")
  if (a === undefined || !isClientName(a)) throw new Error(`bad arguments: ${process.argv}`)
  if (mode === "probe") {
    await loadAdapter(a)
    return send({ type: "available" })
  }
  if (b === undefined) throw new Error(`bad arguments: ${process.argv}`)
  switch (mode) {
    case "workload":
      return workload(loadAdapter, a, b, JSON.parse(c ?? "{}") as WorkloadPlan)
    case "reconnect":
      return reconnect(loadAdapter, a, b, Number(c ?? 10))
    case "profile":
      return profile(loadAdapter, a, b, Number(c ?? 5000), (process.argv[6] ?? "select") as ProfileOp, process.argv[7]!)
    default:
      throw new Error(`unknown mode ${mode}`)
  }
}

/** Runs the mode named on the command line with the worker's adapters, then exits. */
export const runWorker = (loadAdapter: LoadAdapter): void => {
  dispatch(loadAdapter).then(
    () => {
      process.disconnect?.()
      // pools that keep timers (or sockets still closing) must not hold the measurement up
      setTimeout(() => process.exit(0), 200).unref()
    },
    async (error: unknown) => {
      await send(
        error instanceof NotAvailable
          ? { type: "unavailable", reason: error.message }
          : { type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) }
      )
      process.exit(1)
    }
  )
}
