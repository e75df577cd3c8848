/**
 * Health says what the pool is — healthy, degraded (saturated, below minSize, reconnecting while some connections
 * serve) or unhealthy (no connection can be made, closed) — with a reason that names figures and the last error,
 * never waits for a connection, and agrees with the statistics' state (the Effect 3 edition's test/Health.test.ts).
 * The Effect 4 edition's clock is live: waits here are real and short.
 */
import { Db, type Health } from "@effect-pg-pool/effect4"
import { FaultProxy } from "@effect-pg-pool/testkit/core"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Logger, Option, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"
import { eventually, hold, waitingIs } from "./utils/waits.js"

let server: TestServer
let proxy: FaultProxy.FaultProxy
beforeAll(async () => {
  server = await startServer()
  proxy = await FaultProxy.start(server)
})
afterAll(async () => {
  await proxy?.close()
  await server?.close()
})

const reasonOf = (health: Health.HealthStatus) => Option.getOrElse(health.reason, () => "")

const statusIs = (status: Health.HealthStatus["status"]) =>
  eventually(`the pool is ${status}`, Db.health, (h) => h.status === status)

const fastReconnect = { initialDelay: "100 millis", maxDelay: "200 millis" } as const

describe("health", () => {
  it.live("an idle pool at minSize is healthy; the probe finds the database reachable and times it", () =>
    Effect.gen(function* () {
      const health = yield* Db.health
      assert.strictEqual(health.status, "healthy")
      assert.isTrue(Option.isNone(health.reason))
      assert.deepStrictEqual([health.statistics.total, health.statistics.idle], [2, 2])
      // the background probe runs every 5 seconds, on an idle connection
      const probed = yield* eventually("the probe ran", Db.health, (h) => Option.isSome(h.database.latencyMs))
      assert.strictEqual(probed.status, "healthy")
      assert.isTrue(probed.database.reachable)
      const latency = Option.getOrThrow(probed.database.latencyMs)
      assert.isAbove(latency, 0)
      assert.isBelow(latency, 2000)
      yield* eventually("the probe's session is back", Db.statistics, (s) => s.idle === 2)
      // the probe is not a caller: no acquisition, no new connection
      const stats = yield* Db.statistics
      assert.strictEqual(stats.acquisitions, 0)
      assert.strictEqual(stats.connectionsCreated, 2)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 2, maxSize: 4 })))
  )

  it.live("a saturated pool is degraded once a caller has waited more than a second, on health and statistics", () =>
    Effect.gen(function* () {
      const holder = yield* hold
      assert.strictEqual((yield* Db.health).status, "healthy")
      const waiter = yield* Effect.forkChild(Db.withConnection(() => Effect.void))
      yield* waitingIs(1)
      yield* Effect.sleep("500 millis")
      assert.strictEqual((yield* Db.health).status, "healthy")
      yield* Effect.sleep("1100 millis")
      const health = yield* Db.health
      assert.strictEqual(health.status, "degraded")
      const reason = reasonOf(health)
      assert.include(reason, "saturated")
      assert.include(reason, "1 callers waiting")
      assert.include(reason, "1 of 1 connections busy")
      // PoolStatistics documents `degraded` as "reconnecting, below minSize, or saturated"
      assert.strictEqual(health.statistics.state, "degraded")
      assert.strictEqual((yield* Db.statistics).state, "degraded")
      yield* holder.release
      yield* Fiber.join(waiter)
      const after = yield* Db.health
      assert.strictEqual(after.status, "healthy")
      assert.isTrue(Option.isNone(after.reason))
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, acquireTimeout: "10 seconds" })))
  )

  it.live("below minSize the pool is degraded until the missing connections are open", () => {
    const applicationName = uniqueAppName("health-min")
    let opened = 0
    return Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      // sessions after the first two stay in their onConnect hook until the gate opens
      const layer = dbLayer(server, {
        minSize: 2,
        maxSize: 2,
        applicationName,
        onConnect: () => Effect.suspend(() => (++opened <= 2 ? Effect.void : Deferred.await(gate)))
      })
      yield* Effect.gen(function* () {
        assert.strictEqual((yield* Db.health).status, "healthy")
        const sql = yield* SqlClient.SqlClient
        // another pool terminates one of this pool's sessions
        yield* Effect.provide(
          Db.withConnection(
            (admin) => admin`
              SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${applicationName}
              LIMIT 1`
          ),
          Db.layer({ url: Redacted.make(server.url), minSize: 0, maxSize: 1 }).pipe(Layer.provide(Logger.layer([])))
        )
        yield* eventually(
          "one session lost, its replacement opening",
          Db.statistics,
          (s) => s.total === 1 && s.pending === 1
        )
        const health = yield* Db.health
        assert.strictEqual(health.status, "degraded")
        assert.include(reasonOf(health), "1 of the minimum 2 connections open")
        yield* Deferred.succeed(gate, undefined)
        yield* statusIs("healthy")
        assert.isTrue(Option.isNone((yield* Db.health).reason))
        assert.strictEqual((yield* Db.statistics).total, 2)
        assert.deepStrictEqual(yield* sql<{ n: number }>`SELECT 1::int AS n`, [{ n: 1 }])
      }).pipe(Effect.provide(layer))
    })
  })

  it.live("health answers at once from a saturated pool, without opening or waiting for a connection", () =>
    Effect.gen(function* () {
      const holder = yield* hold
      for (let i = 0; i < 50; i++) yield* Effect.forkChild(Db.withConnection(() => Effect.void))
      yield* waitingIs(50)
      yield* Effect.sleep("1100 millis")
      // bounded: a health check that queued for the connection would not return before the holder lets go
      const health = yield* Db.health.pipe(Effect.timeout("1 second"))
      assert.strictEqual(health.status, "degraded")
      assert.include(reasonOf(health), "50 callers waiting")
      const stats = yield* Db.statistics
      assert.deepStrictEqual([stats.total, stats.connectionsCreated, stats.waiting], [1, 1, 50])
      yield* holder.release
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, acquireTimeout: "20 seconds" })))
  )

  it.live("a pool holding no connection still reports a reachable database while healthy", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`SELECT 1`
      yield* eventually("the idle session closed", Db.statistics, (s) => s.total === 0)
      const health = yield* eventually("the probe ran", Db.health, (h) => Option.isSome(h.database.probedAt), 10_000)
      assert.strictEqual(health.status, "healthy")
      assert.strictEqual(health.statistics.total, 0)
      assert.isTrue(health.database.reachable, "healthy, yet the database is reported unreachable")
    }).pipe(Effect.provide(dbLayer(server, { minSize: 0, maxSize: 2, maxIdleTime: "500 millis" })))
  )

  it.live("a closed pool is unhealthy", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(dbLayer(server, { minSize: 1, maxSize: 1 }), scope)
      const db = Context.get(context, Db.Db)
      yield* Scope.close(scope, Exit.void)
      const health = yield* db.health
      assert.strictEqual(health.status, "unhealthy")
      assert.include(reasonOf(health), "shut down")
      assert.strictEqual(health.statistics.state, "unhealthy")
      assert.strictEqual(health.statistics.connectionsClosed.shutdown, 1)
    })
  )

  it.live("statistics after work are consistent: peaks, acquisitions, latencies, churn, state", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const fresh = yield* Db.statistics
      assert.deepStrictEqual([fresh.acquisitions, fresh.acquisitionTimeAvgMs, fresh.acquisitionTimeP99Ms], [0, 0, 0])
      assert.deepStrictEqual([fresh.peakActive, fresh.peakWaiting], [0, 0])
      // three held, two queued behind them
      const holders = [yield* hold, yield* hold, yield* hold]
      const waiters = yield* Effect.forEach([1, 2], () => Effect.forkChild(sql`SELECT 1`))
      yield* waitingIs(2)
      yield* Effect.sleep("20 millis")
      yield* Effect.forEach(holders, (h) => h.release, { discard: true })
      yield* Fiber.joinAll(waiters)
      const peaks = yield* Db.statistics
      assert.deepStrictEqual([peaks.peakActive, peaks.peakWaiting, peaks.acquisitions], [3, 2, 5])
      yield* Effect.all(
        Array.from({ length: 20 }, () => sql`SELECT 1`),
        { concurrency: 3 }
      )
      const stats = yield* eventually("all back", Db.statistics, (s) => s.active === 0 && s.pending === 0)
      assert.strictEqual(stats.acquisitions, 25)
      assert.strictEqual(stats.peakActive, 3)
      assert.isAtLeast(stats.peakWaiting, 2)
      assert.deepStrictEqual([stats.waiting, stats.acquireTimeouts, stats.leaksSuspected], [0, 0, 0])
      assert.isAbove(stats.acquisitionTimeAvgMs, 0)
      // a queued caller waited ~20 ms: the top percentiles see it, the average sits below them
      assert.isAtLeast(stats.acquisitionTimeP99Ms, 15)
      assert.isAtLeast(stats.acquisitionTimeP99Ms, stats.acquisitionTimeP95Ms)
      assert.isAtMost(stats.acquisitionTimeAvgMs, stats.acquisitionTimeP99Ms)
      // churn: every connection ever created is open or was closed for a reason
      const closedTotal = (Object.values(stats.connectionsClosed) as Array<number>).reduce((a, b) => a + b, 0)
      assert.isAtLeast(stats.connectionsClosed.maxQueries, 1)
      assert.strictEqual(stats.connectionsCreated, stats.total + closedTotal)
      assert.strictEqual(stats.total, stats.idle + stats.active)
      assert.strictEqual(stats.state, "healthy")
      assert.isTrue(Option.isNone(stats.lastError))
      assert.strictEqual(stats.reconnectAttempts, 0)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 3, maxQueries: 4 })))
  )
})

describe("health through outages", () => {
  const proxied = (options: Db.DbOptions) =>
    dbLayer(server, { url: Redacted.make(proxy.url), reconnect: fastReconnect, ...options })

  it.live("unhealthy when no connection can be made, naming host:port and the error; healthy once back", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* Db.health).status, "healthy")
      proxy.refuse()
      proxy.resetAll()
      yield* statusIs("unhealthy")
      const health = yield* Db.health
      const reason = reasonOf(health)
      assert.include(reason, `cannot connect to 127.0.0.1:${proxy.port}`)
      const lastError = Option.getOrThrow(health.statistics.lastError)
      assert.include(reason, lastError)
      assert.notInclude(reason, server.password)
      assert.notInclude(lastError, server.password)
      assert.strictEqual(health.statistics.state, "unhealthy")
      assert.strictEqual(health.statistics.total, 0)
      proxy.restore()
      yield* statusIs("healthy")
      const back = yield* Db.health
      assert.isTrue(Option.isNone(back.reason))
      assert.isAtLeast(back.statistics.reconnectAttempts, 1)
      assert.isAtLeast(back.statistics.connectionsClosed.broken, 1)
      const sql = yield* SqlClient.SqlClient
      assert.deepStrictEqual(yield* sql`SELECT 1::int AS one`, [{ one: 1 }])
    }).pipe(Effect.provide(proxied({ minSize: 1, maxSize: 2 })), Effect.ensuring(Effect.sync(() => proxy.restore())))
  )

  it.live("degraded while reconnecting as long as some connections still serve; healthy once back", () =>
    Effect.gen(function* () {
      const holder = yield* hold
      proxy.refuse()
      // a second caller makes the pool open a connection, which the proxy refuses
      const sql = yield* SqlClient.SqlClient
      const waiter = yield* Effect.forkChild(sql<{ one: number }>`SELECT 1::int AS one`)
      yield* statusIs("degraded")
      const health = yield* Db.health
      const reason = reasonOf(health)
      assert.include(reason, `reconnecting to 127.0.0.1:${proxy.port}`)
      assert.include(reason, "1 connections still serve")
      assert.include(reason, Option.getOrThrow(health.statistics.lastError))
      assert.strictEqual(health.statistics.state, "degraded")
      proxy.restore()
      assert.deepStrictEqual(yield* Fiber.join(waiter), [{ one: 1 }])
      yield* holder.release
      yield* statusIs("healthy")
      assert.strictEqual((yield* Db.statistics).total, 2)
    }).pipe(
      Effect.provide(proxied({ minSize: 1, maxSize: 2, acquireTimeout: "10 seconds" })),
      Effect.ensuring(Effect.sync(() => proxy.restore()))
    )
  )

  it.live("a stopped server makes the pool unhealthy and the probe sees it unreachable; restart heals", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* Db.health).status, "healthy")
      const stoppedAt = Date.now()
      yield* Effect.promise(() => server.stop())
      yield* statusIs("unhealthy")
      assert.include(reasonOf(yield* Db.health), `cannot connect to ${server.host}:${server.port}`)
      // not the last probe's stale "reachable": the pool itself just failed to connect
      assert.isFalse((yield* Db.health).database.reachable)
      const health = yield* eventually("the reason names the refused connection", Db.health, (h) =>
        reasonOf(h).includes("ECONNREFUSED")
      )
      assert.include(reasonOf(health), Option.getOrThrow(health.statistics.lastError))
      assert.notInclude(reasonOf(health), server.password)
      // the background probe runs every 5 seconds
      yield* eventually(
        "the probe saw the database down",
        Db.health,
        (h) => (Option.getOrUndefined(h.database.probedAt)?.getTime() ?? 0) > stoppedAt && !h.database.reachable,
        8_000
      )
      assert.strictEqual((yield* Db.health).status, "unhealthy")
      yield* Effect.promise(() => server.start())
      yield* statusIs("healthy")
      assert.isTrue(Option.isNone((yield* Db.health).reason))
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 2, reconnect: fastReconnect })))
  )
})
