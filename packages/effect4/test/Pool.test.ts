import { Db, PoolError } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Option, Schedule, Scope } from "effect"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, serverSessions, uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

describe("acquisition", () => {
  it.live("hands a released session to the waiters in arrival order, before its holder takes it again", () =>
    Effect.gen(function* () {
      const order: Array<string> = []
      const holding = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(
        Effect.gen(function* () {
          yield* Db.withConnection(() => Effect.andThen(Deferred.succeed(holding, undefined), Deferred.await(release)))
          // re-acquires at once: it must queue behind the waiters already there
          yield* Db.withConnection(() => Effect.sync(() => order.push("holder again")))
        })
      )
      yield* Deferred.await(holding)
      const waiters = yield* Effect.forEach(
        ["first", "second", "third"],
        (name) =>
          Effect.gen(function* () {
            const fiber = yield* Effect.forkChild(Db.withConnection(() => Effect.sync(() => order.push(name))))
            // the next one arrives once this one is queued
            yield* Effect.repeat(Db.statistics, {
              until: (s) => s.waiting >= 1 + ["first", "second", "third"].indexOf(name)
            })
            return fiber
          }),
        { concurrency: 1 }
      )
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.joinAll([...waiters, holder])
      assert.deepStrictEqual(order, ["first", "second", "third", "holder again"])
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1 })))
  )

  it.live("fails a caller that waited acquireTimeout with AcquireTimeout and the figures", () =>
    Effect.gen(function* () {
      const holding = yield* Deferred.make<void>()
      yield* Effect.forkChild(
        Db.withConnection(() => Effect.andThen(Deferred.succeed(holding, undefined), Effect.never))
      )
      yield* Deferred.await(holding)
      const exit = yield* Effect.exit(Db.withConnection((sql) => sql`SELECT 1`))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
      assert.instanceOf(error, PoolError.AcquireTimeout)
      const timeout = error as PoolError.AcquireTimeout
      assert.isAtLeast(timeout.waitedMillis, 300)
      assert.include(timeout.message, "Timed out after")
      assert.include(timeout.message, "all 1 of 1 connections stayed busy")
      const stats = yield* Db.statistics
      assert.strictEqual(stats.acquireTimeouts, 1)
    }).pipe(
      Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, acquireTimeout: "300 millis", shutdownTimeout: 0 }))
    )
  )

  it.live("an interrupted waiter leaves the queue", () =>
    Effect.gen(function* () {
      const holding = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      yield* Effect.forkChild(
        Db.withConnection(() => Effect.andThen(Deferred.succeed(holding, undefined), Deferred.await(release)))
      )
      yield* Deferred.await(holding)
      const waiter = yield* Effect.forkChild(Db.withConnection(() => Effect.void))
      yield* Effect.repeat(Db.statistics, { until: (s) => s.waiting === 1 })
      yield* Fiber.interrupt(waiter)
      const stats = yield* Db.statistics
      assert.strictEqual(stats.waiting, 0)
      // it left when interrupted, not when its wait timed out
      assert.strictEqual(stats.acquireTimeouts, 0)
      yield* Deferred.succeed(release, undefined)
      const rows = yield* Db.withConnection((sql) => sql<{ one: number }>`SELECT 1 AS one`)
      assert.strictEqual(rows[0]!.one, 1)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1 })))
  )
})

describe("cancellation", () => {
  it.live("interrupting an exclusive statement cancels it on the server, and the session serves again", () => {
    const name = uniqueAppName("cancel")
    return Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Db.withConnection((sql) => sql`SELECT pg_sleep(30)`).pipe(Effect.timeout("300 millis"))
      )
      assert.isTrue(Exit.isFailure(exit))
      const sessions = yield* serverSessions(server, name)
      assert.isFalse(
        sessions.some((s) => s.state === "active" && s.query.includes("pg_sleep")),
        `still running on the server: ${JSON.stringify(sessions)}`
      )
      const rows = yield* Db.withConnection((sql) => sql<{ one: number }>`SELECT 1 AS one`)
      assert.strictEqual(rows[0]!.one, 1)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, applicationName: name })))
  })
})

describe("health and statistics", () => {
  it.live("a started pool is healthy, counts its sessions and reports the last probe", () =>
    Effect.gen(function* () {
      const health = yield* Db.health
      assert.strictEqual(health.status, "healthy")
      assert.isTrue(Option.isNone(health.reason))
      const stats = yield* Db.statistics
      assert.strictEqual(stats.total, 2)
      assert.strictEqual(stats.idle, 2)
      assert.strictEqual(stats.minSize, 2)
      assert.strictEqual(stats.maxSize, 3)
      assert.strictEqual(stats.state, "healthy")
      assert.strictEqual(stats.connectionsCreated, 2)
      // three holders at once: each waits until all three hold a session
      let holders = 0
      const allHold = yield* Deferred.make<void>()
      yield* Effect.forEach(
        [1, 2, 3],
        () =>
          Db.withConnection(() =>
            Effect.andThen(
              Effect.sync(() => ++holders === 3 && Deferred.doneUnsafe(allHold, Effect.void)),
              Deferred.await(allHold)
            )
          ),
        { concurrency: 3 }
      )
      const after = yield* Db.statistics
      assert.strictEqual(after.acquisitions, 3)
      assert.strictEqual(after.peakActive, 3)
      assert.strictEqual(after.active, 0, JSON.stringify(after))
    }).pipe(Effect.provide(dbLayer(server, { minSize: 2, maxSize: 3 })))
  )
})

describe("shutdown", () => {
  it.live(
    "closing the scope closes every session, fails new acquisitions with PoolClosed and waits for holders",
    () => {
      const name = uniqueAppName("shutdown")
      return Effect.gen(function* () {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          dbLayer(server, { minSize: 2, maxSize: 2, applicationName: name }),
          scope
        )
        const db = Context.get(context, Db.Db)
        assert.strictEqual((yield* serverSessions(server, name)).length, 2)
        const holding = yield* Deferred.make<void>()
        const holder = yield* Effect.forkChild(
          db.withConnection((sql) => Effect.andThen(Deferred.succeed(holding, undefined), sql`SELECT pg_sleep(0.3)`))
        )
        yield* Deferred.await(holding)
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* Effect.repeat(db.statistics, { until: (s) => s.state === "unhealthy" })
        const refused = yield* Effect.exit(db.withConnection((sql) => sql`SELECT 1`))
        assert.isTrue(Exit.isFailure(refused))
        assert.instanceOf(
          Exit.isFailure(refused) ? Option.getOrUndefined(Exit.findErrorOption(refused)) : undefined,
          PoolError.PoolClosed
        )
        // the holder finished its statement: shutdown waited for it
        const held = yield* Fiber.join(holder)
        assert.lengthOf(held, 1)
        yield* Fiber.join(closing)
        const left = yield* Effect.repeat(serverSessions(server, name), {
          until: (s) => s.length === 0,
          schedule: Schedule.spaced("50 millis")
        })
        assert.lengthOf(left, 0)
      })
    }
  )
})
