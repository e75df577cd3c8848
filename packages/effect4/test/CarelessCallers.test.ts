/**
 * Careless callers: a callback that throws, a transform that throws, a statement interrupted while it is queued
 * behind a sibling, a transaction given up while it waits, a stream cut short or left open (issue 10, items 1, 2,
 * 5 and 13; the Effect 3 edition's test/Interruption.test.ts). Whatever the caller does, its session comes back and
 * the next caller is served.
 */
import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Schedule, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, serverSessions, uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

const failureMessage = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : "succeeded"

const isDefect = (exit: Exit.Exit<unknown, unknown>) => Exit.isFailure(exit) && Cause.hasDies(exit.cause)

/** Statements of this application_name the server is running (pg_stat_activity's `active`). */
const running = (applicationName: string) =>
  Effect.map(serverSessions(server, applicationName), (sessions) => sessions.filter((s) => s.state === "active").length)

const until = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  Effect.repeat(effect, { until: done, schedule: Schedule.spaced("20 millis") }).pipe(Effect.timeout("5 seconds"))

describe("careless callers", () => {
  it.live("a withConnection callback that throws instead of returning an effect still returns its session", () =>
    Effect.gen(function* () {
      for (let i = 0; i < 3; i++) {
        const exit = yield* Effect.exit(
          Db.withConnection((): Effect.Effect<void> => {
            throw new Error(`boom ${i}`)
          })
        )
        assert.isTrue(isDefect(exit), failureMessage(exit))
      }
      assert.strictEqual((yield* Db.statistics).active, 0)
      const sql = yield* SqlClient.SqlClient
      assert.deepStrictEqual(yield* sql<{ n: number }>`SELECT 1::int AS n`, [{ n: 1 }])
    }).pipe(Effect.provide(dbLayer(server, { minSize: 0, maxSize: 2, acquireTimeout: "2 seconds" })))
  )

  it.live("a result transform that throws is a defect of that statement, and its session comes back", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const exit = yield* Effect.exit(sql`SELECT 1 AS a`)
      assert.isTrue(isDefect(exit), failureMessage(exit))
      assert.include(failureMessage(exit), "bad transform")
      const streamed = yield* Effect.exit(Stream.runCollect(sql`SELECT 1 AS a`.stream))
      assert.isTrue(isDefect(streamed), failureMessage(streamed))
      // a stream cut short is reset before its session is offered again: it comes back once that is done
      yield* until(Db.statistics, (s) => s.active === 0)
      assert.deepStrictEqual(yield* sql`SELECT 1 AS a`.withoutTransform, [{ a: 1 }])
    }).pipe(
      Effect.provide(
        dbLayer(server, {
          minSize: 0,
          maxSize: 1,
          transformResultNames: () => {
            throw new Error("bad transform")
          }
        })
      )
    )
  )

  it.live("interrupting a statement queued behind a sibling leaves it unsent and spares the sibling", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`DROP TABLE IF EXISTS e4_queued_insert`
      yield* sql`CREATE TABLE e4_queued_insert (x int)`
      yield* Db.withConnection((sql) =>
        Effect.gen(function* () {
          const sibling = yield* Effect.forkChild(sql`SELECT pg_sleep(0.4)`)
          const queued = yield* Effect.forkChild(sql`INSERT INTO e4_queued_insert VALUES (1)`)
          yield* Effect.sleep("100 millis")
          yield* Fiber.interrupt(queued)
          assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(queued)))
          // the sibling was not cancelled in its place
          const exit = yield* Fiber.await(sibling)
          assert.isTrue(Exit.isSuccess(exit), failureMessage(exit))
        })
      )
      // and in a transaction run with concurrency, a timed-out statement is neither run nor fatal to the others
      const [, inserted] = yield* sql.withTransaction(
        Effect.all(
          [sql`SELECT pg_sleep(0.4)`, Effect.timeoutOption(sql`INSERT INTO e4_queued_insert VALUES (2)`, "100 millis")],
          { concurrency: 2 }
        )
      )
      assert.isTrue(Option.isNone(inserted))
      assert.deepStrictEqual(yield* sql`SELECT count(*)::int AS n FROM e4_queued_insert`, [{ n: 0 }])
      const stats = yield* Db.statistics
      assert.strictEqual(stats.connectionsCreated, 1)
      assert.strictEqual(stats.connectionsClosed.cancel + stats.connectionsClosed.broken, 0)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 0, maxSize: 1 })))
  )

  it.live("a transaction waiting for a session on a saturated pool can be interrupted", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const holding = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(
        Db.withConnection(() => Effect.andThen(Deferred.succeed(holding, undefined), Deferred.await(release)))
      )
      yield* Deferred.await(holding)
      const attempt = yield* Effect.forkChild(Effect.timeoutOption(sql.withTransaction(sql`SELECT 1`), "100 millis"))
      const given = yield* Fiber.join(attempt).pipe(Effect.timeout("3 seconds"))
      assert.isTrue(Option.isNone(given))
      assert.strictEqual((yield* Db.statistics).waiting, 0)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      assert.deepStrictEqual(yield* sql.withTransaction(sql<{ n: number }>`SELECT 1::int AS n`), [{ n: 1 }])
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1 })))
  )

  it.live("interrupting a stream whose read runs on the server cancels it there and keeps the session", () => {
    const applicationName = uniqueAppName("stream-cancel")
    return Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const pidOf = Effect.map(sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`, (rows) => rows[0]!.pid)
      const pid = yield* pidOf
      const fiber = yield* Effect.forkChild(Stream.runDrain(sql`SELECT pg_sleep(30)`.stream))
      yield* until(running(applicationName), (n) => n === 1)
      const startedAt = Date.now()
      yield* Fiber.interrupt(fiber)
      // cancelled, not waited out until cancelTimeout (5 s) and discarded
      assert.isBelow(Date.now() - startedAt, 3_000)
      assert.strictEqual(yield* running(applicationName), 0)
      assert.strictEqual(yield* pidOf, pid)
      const stats = yield* Db.statistics
      assert.strictEqual(stats.connectionsClosed.broken + stats.connectionsClosed.cancel, 0)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, applicationName })))
  })

  it.live("shutdown counts an open stream as in flight and cancels its query on the server", () => {
    const applicationName = uniqueAppName("stream-shutdown")
    return Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forkDetach(Stream.runDrain(sql`SELECT pg_sleep(30)`.stream))
          yield* until(running(applicationName), (n) => n === 1)
        }).pipe(
          Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, applicationName, shutdownTimeout: "200 millis" }))
        )
      )
      assert.isTrue(Exit.isSuccess(exit), failureMessage(exit))
      yield* until(running(applicationName), (n) => n === 0)
    })
  })

  it.live("a statement on a pinned session while its stream is open fails at once instead of hanging", () =>
    Effect.gen(function* () {
      const exit = yield* Db.withConnection((sql) =>
        Stream.runForEach(sql<{ n: number }>`SELECT generate_series(1, 1000) AS n`.stream, () => sql`SELECT 1`)
      ).pipe(Effect.timeout("5 seconds"), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      assert.include(failureMessage(exit), "stream (cursor) is still open")
      // the session is fine afterwards
      const sql = yield* SqlClient.SqlClient
      assert.deepStrictEqual(yield* sql<{ n: number }>`SELECT 1::int AS n`, [{ n: 1 }])
      assert.strictEqual((yield* Db.statistics).connectionsCreated, 1)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1 })))
  )
})
