import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Logger, Option, TestClock } from "effect"
import type * as Db from "../src/Db.js"
import { activeQueries, adminClient, type adminQuery, eventually, makeDb, realSleep, uniqueAppName } from "./utils.js"

/** Starts `pg_sleep(30)` on the pool's only connection; returns once the server runs it. */
const startLongQuery = (db: Db.Db.Service, admin: Parameters<typeof adminQuery>[0], applicationName: string) =>
  Effect.gen(function* () {
    const pid = (yield* db.sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)[0]!.pid
    const fiber = yield* Effect.fork(db.sql`SELECT pg_sleep(30)`)
    yield* eventually(
      "the query runs",
      Effect.map(activeQueries(admin, applicationName), (n) => n === 1)
    )
    return { pid, fiber }
  })

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("query cancellation", (it) => {
  it.scoped("an interrupted query is cancelled server-side and its connection serves the next query", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("cancel")
      const db = yield* makeDb({ minSize: 1, maxSize: 1, applicationName })
      const admin = yield* adminClient
      const { pid, fiber } = yield* startLongQuery(db, admin, applicationName)
      yield* realSleep(100)
      const startedAt = Date.now()
      const exit = yield* Fiber.interrupt(fiber)
      // interruption surfaces as interruption, never as a SqlError
      assert.isTrue(Exit.isInterrupted(exit))
      assert.isTrue(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause))
      assert.isBelow(Date.now() - startedAt, 1000)
      assert.strictEqual(yield* activeQueries(admin, applicationName), 0)
      // the same connection, at once, not a replacement
      const next = yield* db.sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
      assert.strictEqual(next[0]!.pid, pid)
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsClosed.cancel, 0)
      assert.strictEqual(stats.connectionsCreated, 1)
    })
  )

  it.scoped("Effect.timeout cancels the query; the transaction it was in is rolled back", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("cancel-tx")
      const db = yield* makeDb({ minSize: 1, maxSize: 1, applicationName })
      const admin = yield* adminClient
      yield* db.sql`CREATE TABLE IF NOT EXISTS cancel_tx (x int)`
      const result = yield* db.sql
        .withTransaction(Effect.zipRight(db.sql`INSERT INTO cancel_tx VALUES (1)`, db.sql`SELECT pg_sleep(30)`))
        .pipe(Effect.timeout("100 millis"), Effect.either)
      assert.strictEqual(result._tag, "Left")
      assert.strictEqual(yield* activeQueries(admin, applicationName), 0)
      const rows = yield* db.sql<{ n: number }>`SELECT count(*)::int AS n FROM cancel_tx`
      assert.deepStrictEqual(rows, [{ n: 0 }])
    })
  )

  it.scoped("a late cancel never hits the next caller's query", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1, applicationName: uniqueAppName("late") })
      let nextFailures = 0
      // interrupt right around the moment the short query completes, so the cancel races its completion;
      // the next caller's query on the same connection must never be the one cancelled
      for (let i = 0; i < 60; i++) {
        const fiber = yield* Effect.fork(db.sql`SELECT pg_sleep(0.02)`)
        yield* realSleep(15 + (i % 10))
        yield* Fiber.interrupt(fiber)
        const next = yield* Effect.either(db.sql`SELECT pg_sleep(0.01), ${i}::int AS i`)
        if (next._tag === "Left") nextFailures++
      }
      assert.strictEqual(nextFailures, 0)
    })
  )

  it.scoped("a query that cannot be cancelled in time costs its connection, not the caller", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("uncancellable")
      const db = yield* makeDb({ minSize: 1, maxSize: 1, applicationName, cancelTimeout: "200 millis" })
      const admin = yield* adminClient
      // a backend that cannot act on the cancel in time: suspended with SIGSTOP (the server runs on this machine)
      const { pid, fiber } = yield* startLongQuery(db, admin, applicationName)
      process.kill(pid, "SIGSTOP")
      const startedAt = Date.now()
      yield* Fiber.interrupt(fiber)
      const elapsed = Date.now() - startedAt
      process.kill(pid, "SIGCONT")
      assert.isAtLeast(elapsed, 150)
      assert.isBelow(elapsed, 2000)
      yield* eventually(
        "discarded",
        Effect.map(db.statistics, (s) => s.connectionsClosed.cancel === 1)
      )
      const next = yield* db.sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
      assert.notStrictEqual(next[0]!.pid, pid)
    })
  )

  it.scoped("queryTimeout bounds a statement and cancels it", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("query-timeout")
      const db = yield* makeDb({ minSize: 1, maxSize: 1, applicationName, queryTimeout: "200 millis" })
      const admin = yield* adminClient
      const error = yield* Effect.flip(db.sql`SELECT pg_sleep(30)`)
      assert.include(error.message, "queryTimeout")
      assert.strictEqual(yield* activeQueries(admin, applicationName), 0)
      assert.deepStrictEqual(yield* db.sql<{ n: number }>`SELECT 1::int AS n`, [{ n: 1 }])
    })
  )
})

layer(PgTestServer.layer, { timeout: 60_000 })("leak detection", (it) => {
  it.scoped("warns once per checkout held past the threshold, with the acquisition site, and again on return", () =>
    Effect.gen(function* () {
      const logs: Array<{ message: string; annotations: Record<string, unknown> }> = []
      const collector = Logger.make(({ annotations, message }) => {
        const record: Record<string, unknown> = {}
        for (const [key, value] of annotations) record[key] = value
        logs.push({ message: String(Array.isArray(message) ? message[0] : message), annotations: record })
      })
      const db = yield* makeDb({ minSize: 1, maxSize: 2, leakDetectionThreshold: "5 seconds" }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, collector))
      )
      const fiber = yield* Effect.fork(
        db.withConnection(() => Effect.never).pipe(Effect.withSpan("checkout-held-by-report-job"))
      )
      yield* eventually(
        "checked out",
        Effect.map(db.statistics, (s) => s.active === 1)
      )
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual((yield* db.statistics).leaksSuspected, 0)
      yield* TestClock.adjust("2 seconds")
      yield* TestClock.adjust("30 seconds")
      const leaks = logs.filter((l) => l.message.includes("leak detection threshold"))
      assert.strictEqual(leaks.length, 1)
      assert.include(String(leaks[0]!.annotations.acquiredAt), "checkout-held-by-report-job")
      assert.strictEqual((yield* db.statistics).leaksSuspected, 1)
      yield* Fiber.interrupt(fiber)
      yield* eventually(
        "returned",
        Effect.sync(() => logs.some((l) => l.message.includes("was returned")))
      )
      assert.strictEqual(Option.getOrUndefined(Option.some((yield* db.statistics).active)), 0)
    })
  )
})
