/**
 * Queries per second of 100 callers, `SELECT 1`, on 10 connections: pg.Pool against 10 pipelined sessions
 * (internal/pipeline.ts) driven by Effect fibers, each caller taking the least-loaded session as the engine's
 * statement slots will. Not a test: figures depend on the machine, so nothing here asserts on them. Each mode runs
 * in a fresh process, alternating, and the machine's load average is printed with the figures.
 *
 *   nice bench/node_modules/.bin/tsx packages/effect3/test/PipelineBench.ts [seconds=5] [rounds=3]
 *
 * With DATABASE_URL set it uses that server; otherwise it starts an embedded one from the testkit.
 */
import { PgTestServer } from "@effect-pg-pool/testkit"
import { Effect, Exit, Redacted, Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as Os from "node:os"
import * as Pg from "pg"
import * as Pipeline from "../src/internal/pipeline.js"

const callers = 100
const connections = 10
const sql = "SELECT 1"

interface Figures {
  readonly mode: string
  readonly queries: number
  readonly seconds: number
  readonly cpuMicros: number
}

const measure = async (mode: string, run: (stop: () => boolean) => Promise<number>, seconds: number) => {
  let stopped = false
  const timer = setTimeout(() => {
    stopped = true
  }, seconds * 1000)
  const cpu = process.cpuUsage()
  const startedAt = performance.now()
  const queries = await run(() => stopped)
  clearTimeout(timer)
  const used = process.cpuUsage(cpu)
  const figures: Figures = {
    mode,
    queries,
    seconds: (performance.now() - startedAt) / 1000,
    cpuMicros: used.user + used.system
  }
  process.stdout.write(`${JSON.stringify(figures)}\n`)
}

const pgPool = async (url: string, seconds: number) => {
  const pool = new Pg.Pool({ connectionString: url, max: connections })
  await Promise.all(Array.from({ length: connections }, () => pool.query(sql)))
  await measure(
    "pg.Pool",
    async (stop) => {
      let n = 0
      await Promise.all(
        Array.from({ length: callers }, async () => {
          while (!stop()) {
            await pool.query(sql)
            n++
          }
        })
      )
      return n
    },
    seconds
  )
  await pool.end()
}

const pipelined = async (url: string, seconds: number) => {
  const clients = await Promise.all(
    Array.from({ length: connections }, async () => {
      const client = new Pg.Client({ connectionString: url })
      client.on("error", () => {})
      await client.connect()
      return client
    })
  )
  const sessions = clients.map(Pipeline.make)
  const leastLoaded = () => {
    let best = sessions[0]!
    for (const session of sessions) if (session.inFlight < best.inFlight) best = session
    return best
  }
  await measure(
    "pipelined sessions (Effect)",
    (stop) => {
      let n = 0
      const caller = Effect.whileLoop({
        while: () => !stop(),
        body: () => Effect.suspend(() => leastLoaded().run(sql, undefined, undefined)),
        step: () => {
          n++
        }
      })
      return Effect.runPromise(
        Effect.map(
          Effect.all(
            Array.from({ length: callers }, () => caller),
            { concurrency: "unbounded" }
          ),
          () => n
        )
      )
    },
    seconds
  )
  await Promise.all(clients.map((client) => client.end()))
}

const child = (mode: string, url: string, seconds: number): Promise<Figures> =>
  new Promise((resolve, reject) => {
    const proc = ChildProcess.spawn(process.execPath, [...process.execArgv, process.argv[1]!, "--child", mode], {
      env: { ...process.env, BENCH_URL: url, BENCH_SECONDS: String(seconds) },
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    proc.stdout.on("data", (chunk) => {
      out += chunk
    })
    proc.on("error", reject)
    proc.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop()!)) : reject(code)))
  })

const main = async () => {
  const seconds = Number(process.argv[2] ?? 5)
  const rounds = Number(process.argv[3] ?? 3)
  const fromEnv = process.env.DATABASE_URL
  const scope = Effect.runSync(Scope.make())
  const url =
    fromEnv ??
    Redacted.value(await Effect.runPromise(Effect.map(Scope.extend(PgTestServer.makeEmbedded(), scope), (s) => s.url)))
  const results: Record<string, Array<Figures>> = {}
  for (let round = 0; round < rounds; round++) {
    for (const mode of ["pg.Pool", "pipelined"]) {
      const figures = await child(mode, url, seconds)
      const line = `round ${round + 1} ${figures.mode}: ${Math.round(figures.queries / figures.seconds)} q/s, ${(figures.cpuMicros / figures.queries).toFixed(1)} µs CPU/query, load ${Os.loadavg()[0]!.toFixed(2)}`
      process.stdout.write(`${line}\n`)
      ;(results[figures.mode] ??= []).push(figures)
    }
  }
  const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const rate = (mode: string) => median(results[mode]!.map((f) => f.queries / f.seconds))
  const pool = rate("pg.Pool")
  const ours = rate("pipelined sessions (Effect)")
  process.stdout.write(
    `median: pg.Pool ${Math.round(pool)} q/s, pipelined ${Math.round(ours)} q/s: ${(ours / pool).toFixed(2)}× ` +
      `(${callers} callers, ${connections} connections, ${seconds} s × ${rounds} rounds, ${Os.cpus().length} cores, ` +
      `load ${Os.loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")})\n`
  )
  await Effect.runPromise(Scope.close(scope, Exit.void))
}

if (process.argv[2] === "--child") {
  const url = process.env.BENCH_URL!
  const seconds = Number(process.env.BENCH_SECONDS)
  const run = process.argv[3] === "pg.Pool" ? pgPool : pipelined
  run(url, seconds).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${String(error)}\n`)
      process.exit(1)
    }
  )
} else {
  main().then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${String(error)}\n`)
      process.exit(1)
    }
  )
}
