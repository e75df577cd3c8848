/**
 * Queries per second of 100 callers, `SELECT 1`, on 10 connections: pg.Pool against 10 pipelined sessions
 * (internal/pipeline.ts) driven by Effect fibers, each caller taking the least-loaded session as the engine's
 * statement slots will, against our statements (the SqlClient's `sql` template) on those sessions, and against the
 * pool itself (`Db.make`, its SqlClient) with `pipeline: 16` and with pipelining off. Not a test: figures depend on the machine, so nothing here asserts on them. Each mode runs
 * in a fresh process, alternating, and the machine's load average is printed with the figures.
 *
 *   nice bench/node_modules/.bin/tsx packages/effect3/test/PipelineBench.ts [seconds=5] [rounds=3]
 *
 * With DATABASE_URL set it uses that server; otherwise it starts an embedded one from the testkit.
 */
import { PgTestServer } from "@effect-pg-pool/testkit"
import { Reactivity } from "@effect/experimental"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Effect, Exit, Logger, LogLevel, Redacted, Scope, Stream } from "effect"
import * as ChildProcess from "node:child_process"
import * as Os from "node:os"
import * as Pg from "pg"
import * as Db from "../src/Db.js"
import * as Pipeline from "../src/internal/pipeline.js"
import { makeConstructor } from "../src/internal/statement.js"

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

/** The sessions and how each caller picks one: the least loaded, as the engine's statement slots do. */
const openSessions = async (url: string) => {
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
  return { leastLoaded, close: () => Promise.all(clients.map((client) => client.end())) }
}

const callersLoop = (label: string, call: Effect.Effect<unknown, unknown>, seconds: number) =>
  measure(
    label,
    (stop) => {
      let n = 0
      const caller = Effect.whileLoop({
        while: () => !stop(),
        body: () => call,
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

/**
 * Our statements (statement.ts's constructor over @effect/sql's compiler, as the pool's SqlClient builds them) on a
 * connection that pipelines each one on the least-loaded session: the adapter's path without the engine's
 * bookkeeping, to show what the SqlClient layers cost on top of the sessions.
 */
const statements = async (url: string, seconds: number) => {
  const { leastLoaded, close } = await openSessions(url)
  const fail = (error: Pipeline.PipelineError) => new SqlError({ cause: error, message: error.message })
  const execute = (text: string, params: ReadonlyArray<unknown>, rowMode?: "array") =>
    Effect.mapBoth(leastLoaded().run(text, params.length === 0 ? undefined : params, rowMode, undefined), {
      onFailure: fail,
      onSuccess: (result) => result.rows
    })
  const connection: SqlConnection.Connection = {
    execute: (text, params, transform) =>
      Effect.map(execute(text, params), (rows) => (transform ? transform(rows) : rows)),
    executeRaw: (text, params) => execute(text, params),
    executeStream: () => Stream.die("not in this benchmark"),
    executeValues: (text, params) => execute(text, params, "array"),
    executeUnprepared: (text, params, transform) =>
      Effect.map(execute(text, params), (rows) => (transform ? transform(rows) : rows))
  }
  const sql = await Effect.runPromise(
    SqlClient.make({
      acquirer: Effect.succeed(connection),
      compiler: PgClient.makeCompiler(),
      spanAttributes: [],
      transformRows: undefined
    }).pipe(
      Effect.map((base) => makeConstructor(base, { connection, joinsTransactions: () => true }, [], undefined)),
      Effect.provide(Reactivity.layer)
    )
  )
  await callersLoop(
    "our statements on pipelined sessions",
    Effect.suspend(() => sql`SELECT 1`),
    seconds
  )
  await close()
}

/** The pool itself: `Db.make` with `pipeline` slots (0 = off), its SqlClient's `sql` template. */
const ourPool = (pipeline: number) => async (url: string, seconds: number) => {
  const label = pipeline >= 2 ? `our pool, pipeline ${pipeline}` : "our pool, pipeline off"
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const db = yield* Db.make({ url, minSize: connections, maxSize: connections, pipeline })
        yield* Effect.promise(() =>
          callersLoop(
            label,
            Effect.suspend(() => db.sql`SELECT 1`),
            seconds
          )
        )
      })
    ).pipe(Effect.provide(Reactivity.layer), Logger.withMinimumLogLevel(LogLevel.Warning))
  )
}

const pipelined = async (url: string, seconds: number) => {
  const { leastLoaded, close } = await openSessions(url)
  await callersLoop(
    "pipelined sessions (Effect)",
    Effect.suspend(() => leastLoaded().run(sql, undefined, undefined)),
    seconds
  )
  await close()
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
    for (const mode of ["pg.Pool", "pipelined", "statements", "pool-pipelined", "pool"]) {
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
  const ourStatements = rate("our statements on pipelined sessions")
  const poolPipelined = rate("our pool, pipeline 16")
  const poolOff = rate("our pool, pipeline off")
  process.stdout.write(
    `median: pg.Pool ${Math.round(pool)} q/s, pipelined sessions ${Math.round(ours)} q/s (${(ours / pool).toFixed(2)}×), ` +
      `our statements on them ${Math.round(ourStatements)} q/s (${(ourStatements / pool).toFixed(2)}×), ` +
      `our pool's SqlClient with pipeline 16 ${Math.round(poolPipelined)} q/s (${(poolPipelined / pool).toFixed(2)}×), ` +
      `pipeline off ${Math.round(poolOff)} q/s (${(poolOff / pool).toFixed(2)}×) ` +
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
  const modes: Record<string, (url: string, seconds: number) => Promise<void>> = {
    "pg.Pool": pgPool,
    pipelined,
    statements,
    "pool-pipelined": ourPool(16),
    pool: ourPool(0)
  }
  const run = modes[process.argv[3]!]!
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
