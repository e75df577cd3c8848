/**
 * The fault-suite harness: concurrent callers against a pool while a fault is injected, then the fault-suite
 * invariants — every call succeeded or failed with a typed error within its bound, nothing leaked (the pool
 * and pg_stat_activity agree), nothing hung, and the pool recovered.
 */
import { assert } from "@effect/vitest"
import { Cause, Effect, Fiber, Option } from "effect"
import type * as Pg from "pg"
import type { Db } from "../src/Db.js"
import { backendPids, eventually, realSleep } from "./utils.js"

export interface Totals {
  ok: number
  failed: Record<string, number>
  hung: number
  interrupted: number
  /** Wall-clock time of every successful call's completion, for recovery measurements. */
  okTimes: Array<number>
}

export const emptyTotals = (): Totals => ({ ok: 0, failed: {}, hung: 0, interrupted: 0, okTimes: [] })

export const failedCount = (totals: Totals) => Object.values(totals.failed).reduce((a, b) => a + b, 0)

const errorTag = (error: unknown): string => {
  const tag = (error as any)?._tag
  if (tag === "SqlError") {
    const cause = (error as any).cause
    return cause?._tag ? `SqlError(${cause._tag})` : "SqlError"
  }
  return typeof tag === "string" ? tag : `untyped: ${String(error)}`
}

export interface LoadOptions {
  readonly callers: number
  /** A call that has not finished within this bound counts as hung: an invariant violation. */
  readonly callBoundMillis: number
  /** The work of one call. */
  readonly call: (db: Db.Service, caller: number, iteration: number) => Effect.Effect<unknown, unknown>
  /** Interrupt this fraction of calls after a random 1–20 ms (the interruption storm). */
  readonly interruptFraction?: number
  /** Where the interruptions' randomness comes from: a `seededRandom`, so that a failing run can be replayed. */
  readonly random?: () => number
}

/**
 * The seed of a randomised test: `TEST_SEED` when set (to replay a run), else a fresh one; printed either way as
 * `[seed] <scenario>: TEST_SEED=<n>`.
 */
export const testSeed = (scenario: string): number => {
  const fromEnv = process.env.TEST_SEED
  const seed = fromEnv === undefined || fromEnv === "" ? Math.floor(Math.random() * 2 ** 32) : Number(fromEnv)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`TEST_SEED (${fromEnv}) must be an integer ≥ 0`)
  process.stdout.write(`[seed] ${scenario}: TEST_SEED=${seed}\n`)
  return seed
}

/**
 * A random source from a seed; each `stream` of one seed is independent, so the faults' choices do not depend on
 * how many calls the machine managed to make meanwhile. The seed fixes the random choices (which fault, when, which
 * call is interrupted and after how long), not the machine's timing.
 */
export const seededRandom = (seed: number, stream = 0): (() => number) => {
  // mulberry32: small, fast, and good enough to pick faults and delays
  let state = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Starts the callers; the returned effect stops them and yields the totals. */
export const startLoad = (db: Db.Service, options: LoadOptions) =>
  Effect.gen(function* () {
    const totals = emptyTotals()
    const random =
      options.random ?? (options.interruptFraction !== undefined ? seededRandom(testSeed("load")) : Math.random)
    let running = true
    const caller = (id: number) =>
      Effect.gen(function* () {
        for (let i = 0; running; i++) {
          const interrupt = options.interruptFraction !== undefined && random() < options.interruptFraction
          let call: Effect.Effect<unknown, unknown> = options.call(db, id, i)
          if (interrupt) call = Effect.timeout(call, 1 + Math.floor(random() * 20))
          const exit = yield* call.pipe(Effect.timeoutOption(options.callBoundMillis), Effect.exit)
          if (exit._tag === "Success") {
            if (Option.isNone(exit.value)) totals.hung++
            else {
              totals.ok++
              totals.okTimes.push(Date.now())
            }
          } else {
            const failure = Cause.failureOption(exit.cause)
            if (Option.isSome(failure)) {
              const tag = errorTag(failure.value)
              if (tag === "TimeoutException" && interrupt) totals.interrupted++
              else totals.failed[tag] = (totals.failed[tag] ?? 0) + 1
              // a closed pool stays closed: a caller that kept hammering it would only spin
              if (tag.includes("PoolClosed")) return
            } else {
              // a defect is a bug of the pool (a lost COMMIT is a typed SqlError): counted, and the suites fail
              const tag = `defect: ${Cause.pretty(exit.cause).split("\n")[0]!}`
              totals.failed[tag] = (totals.failed[tag] ?? 0) + 1
            }
          }
        }
      })
    const fibers = yield* Effect.forEach(
      Array.from({ length: options.callers }, (_, i) => i),
      (id) => Effect.fork(caller(id))
    )
    return Effect.gen(function* () {
      running = false
      yield* Fiber.joinAll(fibers)
      return totals
    })
  })

/**
 * Connections still checked out (or callers still waiting) once every caller has returned and `graceMillis` has
 * passed: a release that is still settling (a reset, a cancellation) has that long. Read before
 * `assertQuiescent`, which waits for these to reach 0 and so cannot count them.
 */
export const leakedAfter = (db: Db.Service, graceMillis: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + graceMillis
    for (;;) {
      const s = yield* db.statistics
      if (s.active + s.waiting === 0 || Date.now() > deadline) return s.active + s.waiting
      yield* realSleep(10)
    }
  })

/** After quiescence: nothing checked out, nobody waiting, and the server sees exactly the pool's connections. */
export const assertQuiescent = (db: Db.Service, admin: Pg.Client, applicationName: string) =>
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
      `pg_stat_activity agrees with the pool (${stats.total} connections)`,
      Effect.flatMap(backendPids(admin, applicationName), (pids) =>
        Effect.map(db.statistics, (s) => pids.length === s.total)
      ),
      20_000
    )
    return stats
  })

/** The pool serves again: a burst of queries all succeed. */
export const assertServes = (db: Db.Service) =>
  Effect.gen(function* () {
    const results = yield* Effect.all(
      Array.from({ length: 20 }, () => Effect.either(db.sql`SELECT 1`)),
      {
        concurrency: "unbounded"
      }
    )
    assert.strictEqual(results.filter((r) => r._tag === "Left").length, 0)
  })

export const report = (scenario: string, totals: Totals, extra: Record<string, unknown> = {}) =>
  Effect.sync(() => {
    // the suite's figures go to the test output on purpose: they are the evidence
    process.stdout.write(
      `[fault] ${scenario}: ok=${totals.ok} failed=${JSON.stringify(totals.failed)} hung=${totals.hung} ` +
        `interrupted=${totals.interrupted} ${JSON.stringify(extra)}\n`
    )
  })

export { realSleep }
