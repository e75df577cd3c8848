/**
 * The PgBouncer suites' helpers: PgBouncer (the testkit core's: the machine's `pgbouncer`, which the suites need —
 * they fail when it is missing, never skip) in front of the file's server, a pool on its URL, the referees of
 * "nothing leaked", and the fault suite's load (callers that count what they saw).
 *
 * Behind PgBouncer pg_stat_activity shows PgBouncer's server connections, not the pool's, and PgBouncer's admin
 * console speaks only the simple query protocol, which PgConnection does not: the referee of "nothing leaked" is
 * this process's own TCP connections to PgBouncer's port (Linux's /proc), which must be exactly the pool's.
 */
import { Db } from "@effect-pg-pool/effect4"
import { PgBouncer } from "@effect-pg-pool/testkit/core"
import { assert } from "@effect/vitest"
import { PgConnection } from "@effect/sql-pg"
import { Cause, Effect, Exit, Fiber, Logger, Option, Redacted, Schedule } from "effect"
import { Reactivity } from "effect/reactivity"
import * as Fs from "node:fs"
import type { TestServer } from "./server.js"

export type Bouncer = PgBouncer.PgBouncer

/**
 * PgBouncer in front of `server`. `server_login_retry` is PgBouncer's wait after a failed server login (15 s by
 * default): at 1 s PgBouncer, like the pool, tries again within a second of the server coming back.
 */
export const startBouncer = (server: TestServer, poolMode: PgBouncer.PoolMode, options: PgBouncer.Options = {}) =>
  PgBouncer.start(server, {
    poolMode,
    poolSize: 20,
    ...options,
    settings: { server_login_retry: 1, ...options.settings }
  })

/** A pool on PgBouncer's URL in the current scope, its logs silenced. */
export const makeBounced = (bouncer: Bouncer, options: Omit<Db.DbOptions, "url">) =>
  Db.make({
    url: Redacted.make(bouncer.url),
    reconnect: { initialDelay: "100 millis", maxDelay: "1 second" },
    ...options
  }).pipe(Effect.provide(Reactivity.layer), Effect.provide(Logger.layer([])))

/** A session of its own on `url` (PgBouncer's, or the server's), outside any pool. */
export const connect = (url: string) => PgConnection.make({ url: Redacted.make(url), applicationName: "e4-referee" })

/** One statement on a session of its own to `url`: its rows. */
export const queryOn = <A>(url: string, sql: string) =>
  Effect.scoped(
    Effect.flatMap(connect(url), (connection) => connection.query(sql, [], false)).pipe(
      Effect.map((result) => result.rows as unknown as ReadonlyArray<A>)
    )
  )

/**
 * Five times: a `pg_sleep(30)` through PgBouncer, interrupted once it runs on the server; the interruption must end
 * the fiber as interrupted, the server must see the statement cancelled within 3 s (PgBouncer forwards the
 * CancelRequest), and the pool's one session must serve the next statement.
 */
export const cancelFiveTimes = (db: Db.Service, server: TestServer) =>
  Effect.gen(function* () {
    for (let i = 0; i < 5; i++) {
      const fiber = yield* Effect.forkChild(db.sql`SELECT pg_sleep(30)`)
      yield* eventually(
        "the statement runs on the server",
        Effect.map(sleepingStatements(server), (n) => n === 1)
      )
      yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(fiber)))
      yield* eventually(
        "the statement was cancelled",
        Effect.map(sleepingStatements(server), (n) => n === 0),
        3_000
      )
      const rows = yield* db.sql<{ n: number }>`SELECT 1 AS n`
      assert.strictEqual(rows[0]!.n, 1)
    }
  })

/** The tests' `pg_sleep(30)` statements running on the server. */
export const sleepingStatements = (server: TestServer) =>
  Effect.map(
    queryOn<{ n: number }>(
      server.url,
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'"
    ),
    (rows) => rows[0]!.n
  )

/** Statements running on the server, the referee's own aside: a lost cancel would leave one. */
export const runningStatements = (server: TestServer) =>
  Effect.map(
    queryOn<{ n: number }>(
      server.url,
      "SELECT count(*)::int AS n FROM pg_stat_activity " +
        "WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()"
    ),
    (rows) => rows[0]!.n
  )

const socketInodes = (): Set<string> => {
  const inodes = new Set<string>()
  for (const fd of Fs.readdirSync("/proc/self/fd")) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(Fs.readlinkSync(`/proc/self/fd/${fd}`))
      if (match !== null) inodes.add(match[1]!)
    } catch {
      // the descriptor closed while the directory was read
    }
  }
  return inodes
}

/** This process's established TCP connections to `port` (on any address): the pool's sessions, and ours. */
export const connectionsTo = (port: number): number => {
  const inodes = socketInodes()
  let count = 0
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (!Fs.existsSync(table)) continue
    for (const line of Fs.readFileSync(table, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10) continue
      const remotePort = Number.parseInt(fields[2]!.split(":")[1]!, 16)
      // 01: ESTABLISHED
      if (remotePort === port && fields[3] === "01" && inodes.has(fields[9]!)) count++
    }
  }
  return count
}

/** Polls `check` every 50 ms until it holds; fails with `what` after `timeoutMillis`. */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, timeoutMillis = 10_000) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("50 millis") }).pipe(
    Effect.timeoutOrElse({
      duration: timeoutMillis,
      orElse: () => Effect.fail(new Error(`timed out after ${timeoutMillis} ms waiting until ${what}`))
    })
  )

/** After quiescence: nothing checked out, nobody waiting, and this process holds exactly the pool's connections. */
export const assertQuiescentBehind = (db: Db.Service, bouncer: Bouncer) =>
  Effect.gen(function* () {
    yield* eventually(
      "the pool is quiescent",
      Effect.map(db.statistics, (s) => s.active === 0 && s.waiting === 0 && s.pending === 0),
      20_000
    )
    const stats = yield* db.statistics
    assert.strictEqual(stats.total, stats.idle)
    assert.isAtMost(stats.total, stats.maxSize)
    yield* eventually(
      `the connections to PgBouncer are the pool's (${stats.total})`,
      Effect.map(db.statistics, (s) => connectionsTo(bouncer.port) === s.total),
      20_000
    )
    return stats
  })

/** The pool serves again: a burst of 20 queries all succeed. */
export const assertServes = (db: Db.Service) =>
  Effect.gen(function* () {
    const exits = yield* Effect.all(
      Array.from({ length: 20 }, () => Effect.exit(db.sql`SELECT 1`)),
      { concurrency: "unbounded" }
    )
    assert.deepStrictEqual(exits.filter(Exit.isFailure).map(String), [])
  })

export interface Totals {
  ok: number
  failed: Record<string, number>
  hung: number
  interrupted: number
  /** Wall-clock time of every successful call's completion, for recovery measurements. */
  okTimes: Array<number>
}

export const failedCount = (totals: Totals) => Object.values(totals.failed).reduce((a, b) => a + b, 0)

/** A failure by its tag and reason, with the cause's SQLSTATE and message: the report says what callers saw. */
const describeError = (error: unknown): string => {
  const tag = (error as { _tag?: unknown })?._tag
  if (tag === "SqlError") {
    const reason = (error as { reason?: { _tag?: string; cause?: { code?: string; message?: string } } }).reason
    return `SqlError(${reason?._tag}) ${reason?.cause?.code ?? "-"} ${reason?.cause?.message ?? ""}`.trim()
  }
  return typeof tag === "string" ? tag : `untyped: ${String(error)}`
}

/** mulberry32: the interruptions' choices from one seed (printed by the suite to replay a run). */
export const seededRandom = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

export interface LoadOptions {
  readonly callers: number
  /** A call not finished within this bound counts as hung: an invariant violation. */
  readonly callBoundMillis: number
  readonly call: (db: Db.Service, caller: number) => Effect.Effect<unknown, unknown>
  /** Interrupt this fraction of calls after a random 1–20 ms (the interruption storm). */
  readonly interruptFraction?: number
  readonly random?: () => number
}

const cutShort = Symbol("interrupted")

/** Starts the callers; the returned effect stops them and yields the totals. */
export const startLoad = (db: Db.Service, options: LoadOptions) =>
  Effect.gen(function* () {
    const totals: Totals = { ok: 0, failed: {}, hung: 0, interrupted: 0, okTimes: [] }
    const random = options.random ?? Math.random
    let running = true
    const caller = (id: number) =>
      Effect.gen(function* () {
        while (running) {
          const interrupt = options.interruptFraction !== undefined && random() < options.interruptFraction
          const call = options.call(db, id)
          const bounded = interrupt
            ? Effect.timeoutOrElse(call, {
                duration: 1 + Math.floor(random() * 20),
                orElse: () => Effect.succeed(cutShort)
              })
            : call
          const exit = yield* Effect.exit(Effect.timeoutOption(bounded, options.callBoundMillis))
          if (Exit.isSuccess(exit)) {
            if (Option.isNone(exit.value)) totals.hung++
            else if (exit.value.value === cutShort) totals.interrupted++
            else {
              totals.ok++
              totals.okTimes.push(Date.now())
            }
          } else {
            const error = Exit.findErrorOption(exit)
            // a defect is a bug of the pool: counted, and the suites fail
            const tag = Option.isSome(error)
              ? describeError(error.value)
              : `defect: ${Cause.pretty(exit.cause).split("\n")[0]!}`
            totals.failed[tag] = (totals.failed[tag] ?? 0) + 1
          }
        }
      })
    const fibers = yield* Effect.forEach(
      Array.from({ length: options.callers }, (_, i) => i),
      (id) => Effect.forkChild(caller(id))
    )
    return Effect.gen(function* () {
      running = false
      yield* Fiber.joinAll(fibers)
      return totals
    })
  })

/** The suite's figures go to the test output on purpose: they are the evidence. */
export const report = (scenario: string, totals: Totals, extra: Record<string, unknown> = {}) =>
  Effect.sync(() => {
    process.stdout.write(
      `[fault] ${scenario}: ok=${totals.ok} failed=${JSON.stringify(totals.failed)} hung=${totals.hung} ` +
        `interrupted=${totals.interrupted} ${JSON.stringify(extra)}\n`
    )
  })

/** Real time, whatever clock the test runs under. */
export const realSleep = (millis: number) =>
  Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))
