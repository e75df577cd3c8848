/**
 * The pool's OpenTelemetry-style metrics follow what happens: pending requests, timeouts, wait / create / use
 * times in seconds, closes by reason, the state gauge agreeing with health (the Effect 3 edition's
 * test/Metrics.test.ts). Metrics are process-global: every pool has its own name, so its series are its own.
 */
import { Db, PoolError } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Logger, Metric, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"
import { eventually, hold, waitingIs } from "./utils/waits.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

const POOL = "db.client.connection.pool.name"
let counter = 0
const uniquePoolName = (prefix: string) => `metrics4-${prefix}-${process.pid}-${++counter}`

/** The state of metric `id` for pool `pool` (plus `extra` attributes), or undefined when never updated. */
const stateOf = (id: string, pool: string, extra: Record<string, string> = {}) =>
  Effect.map(Metric.snapshot, (all) => {
    const found = all.filter((m) => {
      const attributes = (m.attributes ?? {}) as Record<string, unknown>
      return m.id === id && attributes[POOL] === pool && Object.entries(extra).every(([k, v]) => attributes[k] === v)
    })
    if (found.length > 1) throw new Error(`${found.length} series of ${id} match ${pool} ${JSON.stringify(extra)}`)
    return found[0]?.state as unknown as Record<string, number> | undefined
  })
const gauge = (id: string, pool: string, extra?: Record<string, string>) =>
  Effect.map(stateOf(id, pool, extra), (s) => Number(s?.value ?? Number.NaN))
const count = (id: string, pool: string, extra?: Record<string, string>) =>
  Effect.map(stateOf(id, pool, extra), (s) => Number(s?.count ?? 0))
const histogram = (id: string, pool: string) =>
  Effect.map(stateOf(id, pool), (s) => ({
    count: Number(s?.count ?? 0),
    sum: Number(s?.sum ?? 0),
    min: Number(s?.min ?? 0),
    max: Number(s?.max ?? 0)
  }))

describe("metrics", () => {
  const timeouts = uniquePoolName("timeouts")
  it.live("timeouts counts AcquireTimeout; wait_time and pending_requests follow the timed-out wait", () =>
    Effect.gen(function* () {
      const holder = yield* hold
      assert.strictEqual(yield* count("db.client.connection.timeouts", timeouts), 0)
      assert.strictEqual((yield* histogram("db.client.connection.wait_time", timeouts)).count, 1)
      const waiter = yield* Effect.forkChild(Db.withConnection(() => Effect.void))
      yield* waitingIs(1)
      // the count gauges are sampled once a second
      yield* eventually(
        "pending_requests is 1",
        gauge("db.client.connection.pending_requests", timeouts),
        (n) => n === 1
      )
      const exit = yield* Fiber.await(waiter)
      assert.instanceOf(
        Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : 0,
        PoolError.AcquireTimeout
      )
      assert.strictEqual(yield* count("db.client.connection.timeouts", timeouts), 1)
      assert.strictEqual((yield* histogram("db.client.connection.wait_time", timeouts)).count, 2)
      yield* eventually(
        "pending_requests is 0",
        gauge("db.client.connection.pending_requests", timeouts),
        (n) => n === 0
      )
      const stats = yield* Db.statistics
      assert.deepStrictEqual([stats.acquireTimeouts, stats.acquisitions], [1, 1])
      yield* holder.release
    }).pipe(Effect.provide(dbLayer(server, { name: timeouts, minSize: 1, maxSize: 1, acquireTimeout: "2500 millis" })))
  )

  const wait = uniquePoolName("wait")
  it.live("wait_time records each acquisition in seconds, a queued one with the time it waited", () =>
    Effect.gen(function* () {
      for (let i = 0; i < 5; i++) yield* Db.withConnection(() => Effect.void)
      const quick = yield* histogram("db.client.connection.wait_time", wait)
      assert.strictEqual(quick.count, 5)
      assert.isBelow(quick.max, 0.1)
      const holder = yield* hold
      const waiter = yield* Effect.forkChild(Db.withConnection(() => Effect.void))
      yield* waitingIs(1)
      yield* Effect.sleep("150 millis")
      yield* holder.release
      yield* Fiber.join(waiter)
      const after = yield* histogram("db.client.connection.wait_time", wait)
      assert.strictEqual(after.count, 7)
      assert.isAtLeast(after.max, 0.14)
      assert.isBelow(after.max, 5)
      assert.strictEqual((yield* Db.statistics).acquisitions, 7)
    }).pipe(Effect.provide(dbLayer(server, { name: wait, minSize: 1, maxSize: 1 })))
  )

  const create = uniquePoolName("create")
  it.live("create_time counts every connection opened", () =>
    Effect.gen(function* () {
      const initial = yield* histogram("db.client.connection.create_time", create)
      assert.strictEqual(initial.count, 2)
      assert.isAbove(initial.min, 0)
      assert.isBelow(initial.max, 5)
      const holders = [yield* hold, yield* hold, yield* hold, yield* hold]
      assert.strictEqual((yield* histogram("db.client.connection.create_time", create)).count, 4)
      assert.strictEqual((yield* Db.statistics).connectionsCreated, 4)
      yield* Effect.forEach(holders, (h) => h.release, { discard: true })
    }).pipe(Effect.provide(dbLayer(server, { name: create, minSize: 2, maxSize: 4 })))
  )

  const use = uniquePoolName("use")
  it.live("use_time records how long a connection was held, callers' checkouts only (not the health probe)", () =>
    Effect.gen(function* () {
      yield* Db.withConnection(() => Effect.sleep("200 millis"))
      const held = yield* histogram("db.client.connection.use_time", use)
      assert.strictEqual(held.count, 1)
      assert.isAtLeast(held.sum, 0.19)
      assert.isBelow(held.sum, 5)
      // the probe round-trips on the idle connection every 5 seconds
      yield* eventually("the health probe ran", Db.health, (h) => Option.isSome(h.database.latencyMs), 8_000)
      yield* eventually("its session is back", Db.statistics, (s) => s.idle === 1)
      assert.strictEqual((yield* histogram("db.client.connection.use_time", use)).count, 1)
      assert.strictEqual((yield* Db.statistics).acquisitions, 1)
    }).pipe(Effect.provide(dbLayer(server, { name: use, minSize: 1, maxSize: 1 })))
  )

  const maxQueries = uniquePoolName("closed-max")
  it.live("closed counts closes by reason: maxQueries", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      for (let i = 0; i < 5; i++) yield* sql`SELECT 1`
      const stats = yield* eventually("recycled", Db.statistics, (s) => s.connectionsClosed.maxQueries >= 2)
      assert.strictEqual(
        yield* count("db.client.connection.closed", maxQueries, { reason: "maxQueries" }),
        stats.connectionsClosed.maxQueries
      )
      assert.strictEqual(yield* count("db.client.connection.closed", maxQueries, { reason: "broken" }), 0)
    }).pipe(Effect.provide(dbLayer(server, { name: maxQueries, minSize: 0, maxSize: 1, maxQueries: 2 })))
  )

  const broken = uniquePoolName("closed-broken")
  it.live("closed counts backends terminated by the server as broken, and the count gauges follow the refill", () => {
    const applicationName = uniqueAppName("metrics-broken")
    return Effect.gen(function* () {
      yield* Effect.provide(
        Db.withConnection(
          (sql) =>
            sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${applicationName}`
        ),
        Db.layer({ url: Redacted.make(server.url), minSize: 0, maxSize: 1 }).pipe(Layer.provide(Logger.layer([])))
      )
      yield* eventually(
        "two closes for reason broken",
        count("db.client.connection.closed", broken, { reason: "broken" }),
        (n) => n === 2
      )
      assert.strictEqual((yield* Db.statistics).connectionsClosed.broken, 2)
      yield* eventually("back at minSize", Db.statistics, (s) => s.idle === 2)
      // the connection-count gauges are refreshed once a second
      yield* eventually(
        "the idle gauge follows",
        gauge("db.client.connection.count", broken, { "db.client.connection.state": "idle" }),
        (n) => n === 2
      )
      assert.strictEqual((yield* histogram("db.client.connection.create_time", broken)).count, 4)
    }).pipe(Effect.provide(dbLayer(server, { name: broken, applicationName, minSize: 2, maxSize: 2 })))
  })

  const saturated = uniquePoolName("state")
  it.live("the state gauge reads the same assessment as health: a saturated pool is degraded on both", () =>
    Effect.gen(function* () {
      const holder = yield* hold
      const waiter = yield* Effect.forkChild(Db.withConnection(() => Effect.void))
      yield* waitingIs(1)
      yield* Effect.sleep("1100 millis")
      assert.strictEqual((yield* Db.health).status, "degraded")
      // 0 healthy, 1 degraded, 2 unhealthy
      yield* eventually("the gauge says degraded", gauge("db.client.connection.pool.state", saturated), (n) => n === 1)
      yield* holder.release
      yield* Fiber.join(waiter)
      yield* eventually("and healthy again", gauge("db.client.connection.pool.state", saturated), (n) => n === 0)
    }).pipe(Effect.provide(dbLayer(server, { name: saturated, minSize: 1, maxSize: 1, acquireTimeout: "10 seconds" })))
  )
})
