/**
 * The pool's OpenTelemetry-style metrics follow what happens: pending requests, timeouts, wait / create / use
 * times in seconds, closes by reason, the state gauge agreeing with health (the Effect 3 edition's
 * test/Metrics.test.ts). Metrics are process-global: every pool has its own name, so its series are its own.
 */
import { Db, PoolError } from "@effect-pg-pool/effect4"
import { FaultProxy } from "@effect-pg-pool/testkit/core"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Logger, Metric, Option, Redacted, References, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"
import { eventually, failureOf, hold, waitingIs } from "./utils/waits.js"

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

/** A logger that keeps the level, message and annotations of what the pool logs. */
const capture = () => {
  const lines: Array<{ level: string; message: string; annotations: Record<string, unknown> }> = []
  const logger = Logger.make(({ fiber, logLevel, message }) => {
    const messages = Array.isArray(message) ? message : [message]
    lines.push({
      level: String(logLevel),
      message: String(messages[0]),
      annotations: { ...fiber.getRef(References.CurrentLogAnnotations) }
    })
  })
  return { lines, layer: Logger.layer([logger]) }
}

/** The pool built in a scope of its own, to close while the test goes on. */
const scopedPool = (options: Db.DbOptions) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(dbLayer(server, options), scope)
    return { scope, context, db: Context.get(context, Db.Db) }
  })

const connectionCount = (pool: string) =>
  Effect.all({
    idle: gauge("db.client.connection.count", pool, { "db.client.connection.state": "idle" }),
    used: gauge("db.client.connection.count", pool, { "db.client.connection.state": "used" })
  })

describe("metrics: leaks, shutdown, validation", () => {
  const leakMessage = "connection held longer than the leak detection threshold"

  const leaks = uniquePoolName("leaks")
  const leakLogs = capture()
  it.live("leaks: a connection held past leakDetectionThreshold is counted and warned about once per checkout", () =>
    Effect.gen(function* () {
      const warnings = () => leakLogs.lines.filter((l) => l.message === leakMessage)
      const counted = Effect.all([
        count("db.client.connection.leaks", leaks),
        Effect.map(Db.statistics, (s) => s.leaksSuspected)
      ])
      const first = yield* hold
      yield* Effect.sleep("600 millis")
      assert.deepStrictEqual(yield* counted, [0, 0])
      // held connections are checked once a second: reported within a period past the threshold
      yield* eventually("one leak counted", counted, ([metric, stats]) => metric === 1 && stats === 1, 3_000)
      yield* eventually("the leak warning is logged", Effect.sync(warnings), (w) => w.length === 1)
      const warning = warnings()[0]!
      assert.strictEqual(warning.level, "Warn")
      assert.strictEqual(warning.annotations.thresholdMillis, 1000)
      // held much longer: still one suspected leak for this checkout
      yield* Effect.sleep("2500 millis")
      assert.deepStrictEqual(yield* counted, [1, 1])
      assert.strictEqual(warnings().length, 1)
      yield* first.release
      // a new checkout held too long is a new suspect
      const second = yield* hold
      yield* eventually("a second leak counted", counted, ([metric, stats]) => metric === 2 && stats === 2, 3_000)
      yield* eventually("a second warning is logged", Effect.sync(warnings), (w) => w.length === 2)
      yield* second.release
    }).pipe(
      Effect.provide(
        Db.layer({
          url: Redacted.make(server.url),
          name: leaks,
          minSize: 1,
          maxSize: 1,
          leakDetectionThreshold: "1 second"
        }).pipe(Layer.provide(leakLogs.layer))
      )
    )
  )

  const returned = uniquePoolName("leak-returned")
  const returnedLogs = capture()
  it.live("a returned leak is reported returned once, not again by every health probe", () =>
    Effect.gen(function* () {
      const returns = () =>
        returnedLogs.lines.filter((l) => l.message === "connection suspected of leaking was returned")
      const holder = yield* hold
      yield* eventually("the leak is counted", Db.statistics, (s) => s.leaksSuspected === 1, 3_000)
      yield* holder.release
      yield* eventually("the return is logged", Effect.sync(returns), (r) => r.length === 1)
      // two probe rounds on the idle connection (one every 5 seconds)
      for (let i = 0; i < 2; i++) {
        const before = Option.getOrUndefined((yield* Db.health).database.probedAt)?.getTime()
        yield* eventually(
          "the probe ran",
          Db.health,
          (h) => Option.getOrUndefined(h.database.probedAt)?.getTime() !== before,
          8_000
        )
        yield* eventually("the probe returned the connection", Db.statistics, (s) => s.idle === 1)
      }
      yield* Effect.sleep("50 millis")
      assert.strictEqual(returns().length, 1)
      assert.strictEqual((yield* Db.statistics).leaksSuspected, 1)
    }).pipe(
      Effect.provide(
        Db.layer({
          url: Redacted.make(server.url),
          name: returned,
          minSize: 1,
          maxSize: 1,
          leakDetectionThreshold: "1 second"
        }).pipe(Layer.provide(returnedLogs.layer))
      )
    )
  )

  it.live("wait_time also records waiters failed by shutdown", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("wait-closed")
      const { context, db, scope } = yield* scopedPool({ name, minSize: 1, maxSize: 1, shutdownTimeout: "300 millis" })
      const holder = yield* Effect.provide(hold, context)
      const waiters = yield* Effect.forEach([1, 2], () => Effect.forkChild(db.withConnection(() => Effect.void)))
      yield* eventually("two waiting", db.statistics, (s) => s.waiting === 2)
      assert.strictEqual((yield* histogram("db.client.connection.wait_time", name)).count, 1)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      for (const waiter of waiters) {
        assert.instanceOf(failureOf(yield* Fiber.await(waiter)), PoolError.PoolClosed)
      }
      // the gauge is read when shutdown starts and when it ends
      yield* eventually("pending_requests is 0", gauge("db.client.connection.pending_requests", name), (n) => n === 0)
      // the holder's acquisition and both failed ones
      assert.strictEqual((yield* histogram("db.client.connection.wait_time", name)).count, 3)
      assert.strictEqual(yield* count("db.client.connection.timeouts", name), 0)
      yield* Fiber.join(closing).pipe(Effect.timeout("5 seconds"))
      yield* Effect.exit(holder.release)
    })
  )

  it.live("after shutdown the pool reports no connections and counts the closes as shutdown", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("shutdown")
      const { db, scope } = yield* scopedPool({ name, minSize: 3, maxSize: 3 })
      yield* eventually("three idle", db.statistics, (s) => s.idle === 3)
      yield* eventually("the gauges say three idle", connectionCount(name), (c) => c.idle === 3 && c.used === 0)
      assert.strictEqual(yield* gauge("db.client.connection.pool.state", name), 0)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* connectionCount(name), { idle: 0, used: 0 })
      assert.strictEqual(yield* count("db.client.connection.closed", name, { reason: "shutdown" }), 3)
      assert.strictEqual(yield* gauge("db.client.connection.pool.state", name), 2)
    })
  )

  /** A pool behind the fault proxy that validates a connection idle for 100 ms, giving it 300 ms to answer. */
  const validatingPool = (name: string) =>
    dbLayer(server, {
      url: Redacted.make(proxy.url),
      name,
      minSize: 1,
      maxSize: 1,
      validateAfterIdle: "100 millis",
      validationTimeout: "300 millis"
    })

  const validationTimeout = uniquePoolName("validation-timeout")
  it.live("closed counts a silent idle connection as failing validation within validationTimeout", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`SELECT 1`
      proxy.blackhole()
      yield* Effect.sleep("150 millis")
      const query = yield* Effect.forkChild(sql`SELECT 1`)
      const startedAt = Date.now()
      // 300 ms of validation, plus slack for a loaded machine
      yield* eventually(
        "the validation close is counted",
        count("db.client.connection.closed", validationTimeout, { reason: "validation" }),
        (n) => n === 1,
        3_000
      )
      assert.isAtLeast(Date.now() - startedAt, 250)
      assert.strictEqual((yield* Db.statistics).connectionsClosed.validation, 1)
      proxy.restore()
      yield* Fiber.join(query)
    }).pipe(Effect.ensuring(Effect.sync(() => proxy.restore())), Effect.provide(validatingPool(validationTimeout)))
  )

  const validation = uniquePoolName("validation")
  it.live("an acquisition whose idle connection fails validation is counted once, with its whole wait", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`SELECT 1`
      assert.strictEqual((yield* Db.statistics).acquisitions, 1)
      // the idle connection goes silent; the next acquisition validates it, gives up on it and waits for a new one
      proxy.blackhole()
      yield* Effect.sleep("150 millis")
      const query = yield* Effect.forkChild(sql<{ one: number }>`SELECT 1::int AS one`)
      yield* eventually(
        "the silent connection failed validation",
        Db.statistics,
        (s) => s.connectionsClosed.validation === 1
      )
      yield* Effect.sleep("100 millis")
      proxy.restore()
      assert.deepStrictEqual(yield* Fiber.join(query), [{ one: 1 }])
      const stats = yield* Db.statistics
      assert.strictEqual(stats.acquisitions, 2)
      const wait = yield* histogram("db.client.connection.wait_time", validation)
      assert.strictEqual(wait.count, 2)
      // the second acquisition took the validation timeout and a reconnect: that is what it waited
      assert.isAtLeast(wait.max, 0.3)
      assert.isAtLeast(stats.acquisitionTimeP99Ms, 300)
      assert.strictEqual((yield* histogram("db.client.connection.use_time", validation)).count, 2)
    }).pipe(Effect.ensuring(Effect.sync(() => proxy.restore())), Effect.provide(validatingPool(validation)))
  )
})
