import { Reactivity } from "@effect/experimental"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, it, layer } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Redacted, Scope, TestClock } from "effect"
import * as Db from "../src/Db.js"
import { DatabaseUnreachable, PoolClosed } from "../src/PoolError.js"
import { adminClient, backendPids, eventually, freePort, makeDb, realSleep, uniqueAppName } from "./utils.js"

const failureOf = <E>(exit: Exit.Exit<unknown, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

it.layer(PgTestServer.layer, { timeout: 60_000 })("lifecycle", (it) => {
  it.scoped("eager init fails after the initial attempts with host, port, attempts and cause — no password", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const fiber = yield* Effect.fork(
        Db.make({
          url: Redacted.make(`postgres://app:s3cr3t-PW@127.0.0.1:${port}/appdb`),
          reconnect: { initialAttempts: 3 }
        }).pipe(Effect.provide(Reactivity.layer))
      )
      // backoff 1 s then 2 s, driven by the TestClock while the real connection attempts fail
      while ((yield* Fiber.poll(fiber))._tag === "None") {
        yield* TestClock.adjust("100 millis")
        yield* realSleep(2)
      }
      const error = failureOf(yield* Fiber.await(fiber))
      assert.instanceOf(error, DatabaseUnreachable)
      const unreachable = error as DatabaseUnreachable
      assert.strictEqual(unreachable.attempts, 3)
      assert.strictEqual(unreachable.port, port)
      assert.isAtLeast(unreachable.elapsedMillis, 3000)
      assert.include(unreachable.message, `127.0.0.1:${port}/appdb after 3 attempts`)
      assert.include(unreachable.message, "ECONNREFUSED")
      assert.include(unreachable.message, "DB_POOL_INIT=lazy")
      assert.notInclude(unreachable.message, "s3cr3t-PW")
    })
  )

  it.scoped("shutdown: waiters fail at once, idle close, busy ones are cancelled after shutdownTimeout", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("shutdown")
      const scope = yield* Scope.make()
      const db = yield* makeDb({ minSize: 3, maxSize: 2 + 1, applicationName, shutdownTimeout: "5 seconds" }).pipe(
        Scope.extend(scope)
      )
      const admin = yield* adminClient
      const started = yield* Deferred.make<void>()
      const busy = yield* Effect.fork(
        Effect.all(
          [
            db.sql`SELECT pg_sleep(30)`,
            Effect.zipRight(Deferred.succeed(started, undefined), db.sql`SELECT pg_sleep(30)`)
          ],
          { concurrency: 2 }
        )
      )
      yield* Deferred.await(started)
      yield* eventually(
        "two busy",
        Effect.map(db.statistics, (s) => s.active === 2)
      )
      const quick = yield* Effect.fork(db.withConnection(() => Effect.never))
      yield* eventually(
        "three busy",
        Effect.map(db.statistics, (s) => s.active === 3)
      )
      const waiter = yield* Effect.fork(db.sql`SELECT 1`)
      yield* eventually(
        "one waiting",
        Effect.map(db.statistics, (s) => s.waiting === 1)
      )
      yield* Fiber.interrupt(quick)
      // quick's connection went to the waiter; make a truly idle one by waiting for it to finish
      yield* Fiber.await(waiter)

      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* eventually(
        "shutdown started",
        Effect.map(db.statistics, (s) => s.state === "unhealthy")
      )
      const rejected = failureOf(yield* Effect.exit(db.withConnection(() => Effect.void)))
      assert.instanceOf(rejected, PoolClosed)
      assert.include((rejected as PoolClosed).message, "shutting down or closed")
      assert.strictEqual((yield* db.statistics).idle, 0)
      assert.isNull(Option.getOrNull(yield* Fiber.poll(closing)))
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(closing)
      const busyExit = yield* Fiber.await(busy)
      assert.isTrue(Exit.isFailure(busyExit))
      yield* eventually(
        "no backend left",
        Effect.map(backendPids(admin, applicationName), (p) => p.length === 0)
      )
      const stats = yield* db.statistics
      assert.strictEqual(stats.total, 0)
      assert.isAtLeast(stats.connectionsClosed.shutdown, 3)
    })
  )

  it.scoped("shutdown wakes queued waiters with PoolClosed", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const db = yield* makeDb({ minSize: 1, maxSize: 1, shutdownTimeout: "1 second" }).pipe(Scope.extend(scope))
      const held = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        db.withConnection(() => Effect.zipRight(Deferred.succeed(held, undefined), Effect.never))
      )
      yield* Deferred.await(held)
      const waiters = yield* Effect.forEach([1, 2, 3], () => Effect.fork(db.sql`SELECT 1`))
      yield* eventually(
        "three waiting",
        Effect.map(db.statistics, (s) => s.waiting === 3)
      )
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      for (const waiter of waiters) {
        const exit = yield* Fiber.await(waiter)
        assert.include(String(Exit.isFailure(exit) ? Cause.squash(exit.cause) : ""), "shutting down or closed")
      }
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      yield* Fiber.interrupt(holder)
    })
  )

  it.scoped("an idle pool shuts down at once", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const db = yield* makeDb({ minSize: 4, maxSize: 4 }).pipe(Scope.extend(scope))
      // the health probe borrows one for a round trip right after start
      yield* eventually(
        "all four idle",
        Effect.map(db.statistics, (s) => s.idle === 4)
      )
      // no clock adjustment: the idle path must not wait on shutdownTimeout
      yield* Scope.close(scope, Exit.void)
      const stats = yield* db.statistics
      assert.deepStrictEqual([stats.total, stats.connectionsClosed.shutdown], [0, 4])
    })
  )

  it.scoped("onConnect runs on every new connection; a failing hook fails that connection, not the pool", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("hook")
      const admin = yield* adminClient
      let calls = 0
      const db = yield* makeDb({
        minSize: 2,
        maxSize: 2,
        applicationName,
        // the second connection's hook fails; the retry's succeeds
        onConnect: (sql) =>
          Effect.zipRight(
            Effect.sync(() => calls++),
            calls === 1 ? sql`SET search_path = no_such_syntax(` : sql`SET search_path = pg_catalog, public`
          )
      })
      assert.strictEqual(calls, 2)
      // the pool serves on the connection whose hook succeeded, with what the hook set
      const rows = yield* db.sql<{ search_path: string }>`SHOW search_path`
      assert.strictEqual(rows[0]!.search_path, "pg_catalog, public")
      const failed = yield* db.statistics
      assert.deepStrictEqual([failed.total, failed.connectionsCreated, failed.state], [1, 1, "degraded"])
      assert.include(Option.getOrThrow(failed.lastError), "the onConnect hook failed")
      // the failed connection was closed on the server, not kept
      yield* eventually(
        "one backend",
        Effect.map(backendPids(admin, applicationName), (p) => p.length === 1)
      )
      // and it is retried with backoff
      while ((yield* db.statistics).total < 2) {
        yield* TestClock.adjust("100 millis")
        yield* realSleep(2)
      }
      const stats = yield* db.statistics
      assert.strictEqual(calls, 3)
      assert.deepStrictEqual([stats.total, stats.connectionsCreated, stats.connectionsClosed.broken], [2, 2, 0])
      yield* eventually(
        "healthy",
        Effect.map(db.statistics, (s) => s.state === "healthy")
      )
      assert.lengthOf(yield* backendPids(admin, applicationName), 2)
    })
  )
})

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("lazy init", (it) => {
  it.scoped("starts without the database and serves once it is back", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      yield* server.stop()
      const db = yield* makeDb({
        init: "lazy",
        minSize: 1,
        reconnect: { initialDelay: "200 millis", maxDelay: "400 millis" },
        acquireTimeout: "20 seconds"
      })
      assert.notStrictEqual((yield* db.statistics).state, "healthy")
      const query = yield* Effect.fork(db.sql<{ n: number }>`SELECT 1::int AS n`)
      yield* realSleep(500)
      assert.isNull(Option.getOrNull(yield* Fiber.poll(query)))
      yield* server.start
      assert.deepStrictEqual(yield* Fiber.join(query), [{ n: 1 }])
      yield* eventually(
        "healthy",
        Effect.map(db.statistics, (s) => s.state === "healthy")
      )
      const admin = yield* adminClient
      assert.isAtLeast((yield* backendPids(admin, "effect-pg-pool")).length, 1)
    })
  )
})
