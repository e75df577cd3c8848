/**
 * Start and shutdown: queued waiters woken with PoolClosed, an idle pool closed at once, a failing onConnect hook
 * failing its session and not the pool, a lazy start serving once the database is back (the Effect 3 edition's
 * test/Lifecycle.test.ts; its eager-init and shutdownTimeout cases are in Reconnect.test.ts and Lifecycle.test.ts).
 */
import { Db, PoolError } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, serverSessions, uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"
import { eventually, failureOf, hold } from "./utils/waits.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

/** The pool built in a scope of its own, to close while the test goes on. */
const scopedPool = (options: Db.DbOptions) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(dbLayer(server, options), scope)
    return { scope, context, db: Context.get(context, Db.Db) }
  })

describe("shutdown", () => {
  it.live("wakes queued waiters with PoolClosed", () =>
    Effect.gen(function* () {
      const { context, db, scope } = yield* scopedPool({ minSize: 1, maxSize: 1, shutdownTimeout: "300 millis" })
      const holder = yield* Effect.provide(hold, context)
      const waiters = yield* Effect.forEach([1, 2, 3], () =>
        Effect.forkChild(db.withConnection((sql) => sql`SELECT 1`))
      )
      yield* eventually("three waiting", db.statistics, (s) => s.waiting === 3)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      for (const waiter of waiters) {
        const error = failureOf(yield* Fiber.await(waiter))
        assert.instanceOf(error, PoolError.PoolClosed)
        assert.include((error as PoolError.PoolClosed).message, "shutting down or closed")
      }
      yield* Fiber.join(closing).pipe(Effect.timeout("5 seconds"))
      yield* Effect.exit(holder.release)
    })
  )

  it.live("an idle pool shuts down at once", () =>
    Effect.gen(function* () {
      const { db, scope } = yield* scopedPool({ minSize: 4, maxSize: 4, shutdownTimeout: "20 seconds" })
      yield* eventually("all four idle", db.statistics, (s) => s.idle === 4)
      // bounded well below shutdownTimeout: the idle path must not wait on it
      yield* Scope.close(scope, Exit.void).pipe(Effect.timeout("3 seconds"))
      const stats = yield* db.statistics
      assert.deepStrictEqual([stats.total, stats.connectionsClosed.shutdown], [0, 4])
    })
  )
})

describe("start", () => {
  it.live("onConnect runs on every new session; a failing hook fails that session, not the pool", () => {
    const applicationName = uniqueAppName("hook")
    let calls = 0
    return Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // the pool serves on the session whose hook succeeded, with what the hook set
      const rows = yield* sql<{ search_path: string }>`SHOW search_path`
      assert.strictEqual(rows[0]!.search_path, "pg_catalog, public")
      // the failed session was closed on the server, and the open is retried with backoff
      const stats = yield* eventually("both open", Db.statistics, (s) => s.total === 2)
      assert.strictEqual(calls, 3)
      assert.deepStrictEqual([stats.connectionsCreated, stats.connectionsClosed.broken], [2, 0])
      yield* eventually("two backends", serverSessions(server, applicationName), (s) => s.length === 2)
    }).pipe(
      Effect.provide(
        dbLayer(server, {
          minSize: 2,
          maxSize: 2,
          applicationName,
          // the second session's hook fails; the retry's succeeds
          onConnect: (sql) =>
            Effect.suspend(() =>
              ++calls === 2 ? sql`SET search_path = no_such_syntax(` : sql`SET search_path = pg_catalog, public`
            )
        })
      )
    )
  })

  it.live("a lazy pool starts without the database and serves once it is back", () =>
    Effect.gen(function* () {
      yield* Effect.promise(() => server.stop())
      yield* Effect.gen(function* () {
        assert.notStrictEqual((yield* Db.statistics).state, "healthy")
        const sql = yield* SqlClient.SqlClient
        let served = false
        const query = yield* Effect.forkChild(
          Effect.tap(sql<{ n: number }>`SELECT 1::int AS n`, () => Effect.sync(() => (served = true)))
        )
        yield* Effect.sleep("500 millis")
        assert.isFalse(served, "served while the database was down")
        yield* Effect.promise(() => server.start())
        assert.deepStrictEqual(yield* Fiber.join(query), [{ n: 1 }])
        yield* eventually("healthy", Db.statistics, (s) => s.state === "healthy")
      }).pipe(
        Effect.provide(
          dbLayer(server, {
            init: "lazy",
            minSize: 1,
            reconnect: { initialDelay: "200 millis", maxDelay: "400 millis" },
            acquireTimeout: "20 seconds"
          })
        )
      )
    })
  )
})
