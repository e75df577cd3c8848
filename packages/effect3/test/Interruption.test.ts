import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option, Stream } from "effect"
import type * as Db from "../src/Db.js"
import { activeQueries, adminClient, eventually, hold, makeDb, realSleep, uniqueAppName } from "./utils.js"

const pidOf = (db: Db.Db.Service) =>
  Effect.map(db.sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`, (rows) => rows[0]!.pid)

const failureMessage = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : "succeeded"

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("careless callers", (it) => {
  it.scoped("a withConnection callback that throws instead of returning an effect still returns its connection", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 0, maxSize: 2, acquireTimeout: "2 seconds" })
      for (let i = 0; i < 3; i++) {
        const exit = yield* Effect.exit(
          db.withConnection((): Effect.Effect<void> => {
            throw new Error(`boom ${i}`)
          })
        )
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), failureMessage(exit))
      }
      assert.strictEqual((yield* db.statistics).active, 0)
      assert.deepStrictEqual(yield* db.sql<{ n: number }>`SELECT 1::int AS n`, [{ n: 1 }])
    })
  )

  it.scoped("a result transform that throws is a defect of that statement, and its connection comes back", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({
        minSize: 0,
        maxSize: 1,
        transformResultNames: () => {
          throw new Error("bad transform")
        }
      })
      const exit = yield* Effect.exit(db.sql`SELECT 1 AS a`)
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), failureMessage(exit))
      assert.include(failureMessage(exit), "bad transform")
      const streamed = yield* Effect.exit(Stream.runCollect(db.sql`SELECT 1 AS a`.stream))
      assert.isTrue(Exit.isFailure(streamed) && Cause.isDie(streamed.cause), failureMessage(streamed))
      assert.strictEqual((yield* db.statistics).active, 0)
      assert.deepStrictEqual(yield* db.sql`SELECT 1 AS a`.withoutTransform, [{ a: 1 }])
    })
  )

  it.scoped("interrupting a statement queued behind a sibling leaves it unsent and spares the sibling", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 0, maxSize: 1 })
      yield* db.sql`CREATE TABLE queued_insert (x int)`
      yield* db.withConnection((sql) =>
        Effect.gen(function* () {
          const running = yield* Effect.fork(sql`SELECT pg_sleep(0.4)`)
          const queued = yield* Effect.fork(sql`INSERT INTO queued_insert VALUES (1)`)
          yield* realSleep(100)
          assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(queued)))
          // the sibling was not cancelled in its place
          const exit = yield* Fiber.await(running)
          assert.isTrue(Exit.isSuccess(exit), failureMessage(exit))
        })
      )
      // and in a transaction run with concurrency, a timed-out statement is neither run nor fatal to the others
      const [, inserted] = yield* db.sql.withTransaction(
        Effect.all(
          [
            db.sql`SELECT pg_sleep(0.4)`,
            Effect.timeoutOption(db.sql`INSERT INTO queued_insert VALUES (2)`, "100 millis")
          ],
          { concurrency: 2 }
        )
      )
      assert.isTrue(Option.isNone(inserted))
      assert.deepStrictEqual(yield* db.sql`SELECT count(*)::int AS n FROM queued_insert`, [{ n: 0 }])
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsCreated, 1)
      assert.strictEqual(stats.connectionsClosed.cancel + stats.connectionsClosed.broken, 0)
    })
  )

  it.scoped("a transaction waiting for a connection on a saturated pool can be interrupted", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1 })
      const holder = yield* hold(db)
      const attempt = yield* Effect.fork(Effect.timeoutOption(db.sql.withTransaction(db.sql`SELECT 1`), "100 millis"))
      yield* eventually("the transaction gave up waiting", Effect.map(Fiber.poll(attempt), Option.isSome), 3_000)
      assert.isTrue(Option.isNone(yield* Fiber.join(attempt)))
      assert.strictEqual((yield* db.statistics).waiting, 0)
      yield* holder.release
      assert.deepStrictEqual(yield* db.sql.withTransaction(db.sql<{ n: number }>`SELECT 1::int AS n`), [{ n: 1 }])
    })
  )

  it.scoped("interrupting a stream whose read runs on the server cancels it there and keeps the connection", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("stream-cancel")
      const db = yield* makeDb({ minSize: 1, maxSize: 1, applicationName })
      const admin = yield* adminClient
      const pid = yield* pidOf(db)
      const fiber = yield* Effect.fork(Stream.runDrain(db.sql`SELECT pg_sleep(30)`.stream))
      yield* eventually(
        "the cursor's query runs",
        Effect.map(activeQueries(admin, applicationName), (n) => n === 1)
      )
      const startedAt = Date.now()
      assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(fiber)))
      // cancelled, not waited out until cancelTimeout (5 s) and discarded
      assert.isBelow(Date.now() - startedAt, 3_000)
      assert.strictEqual(yield* activeQueries(admin, applicationName), 0)
      assert.strictEqual(yield* pidOf(db), pid)
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsClosed.broken + stats.connectionsClosed.cancel, 0)
    })
  )

  it.scoped("shutdown counts an open stream as in flight and cancels its query on the server", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("stream-shutdown")
      const admin = yield* adminClient
      const exit = yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* makeDb({ minSize: 1, maxSize: 1, applicationName, shutdownTimeout: "200 millis" })
          yield* Effect.forkDaemon(Stream.runDrain(db.sql`SELECT pg_sleep(30)`.stream))
          yield* eventually(
            "the cursor's query runs",
            Effect.map(activeQueries(admin, applicationName), (n) => n === 1)
          )
        })
      ).pipe(Effect.exit)
      assert.isTrue(Exit.isSuccess(exit))
      yield* eventually(
        "the server no longer runs the stream's query",
        Effect.map(activeQueries(admin, applicationName), (n) => n === 0),
        3_000
      )
    })
  )

  it.scoped("a statement on a pinned connection while its stream is open fails at once instead of hanging", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1 })
      const exit = yield* db
        .withConnection((sql) =>
          Stream.runForEach(sql<{ n: number }>`SELECT generate_series(1, 1000) AS n`.stream, () => sql`SELECT 1`)
        )
        .pipe(Effect.timeout("5 seconds"), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      assert.include(failureMessage(exit), "stream (cursor) is still open")
      // the connection is fine afterwards
      assert.deepStrictEqual(yield* db.sql<{ n: number }>`SELECT 1::int AS n`, [{ n: 1 }])
      assert.strictEqual((yield* db.statistics).connectionsCreated, 1)
    })
  )
})
