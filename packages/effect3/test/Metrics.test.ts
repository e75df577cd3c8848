import { Reactivity } from "@effect/experimental"
import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
import { assert, it, layer } from "@effect/vitest"
import {
  Cause,
  Effect,
  Exit,
  FiberRef,
  Fiber,
  HashMap,
  HashSet,
  Layer,
  Logger,
  Metric,
  MetricState,
  Option,
  Scope,
  TestClock
} from "effect"
import * as Db from "../src/Db.js"
import { AcquireTimeout, PoolClosed } from "../src/PoolError.js"
import {
  adminClient,
  adminQuery,
  backendPids,
  eventually,
  hold,
  makePool,
  probed,
  realSleep,
  uniqueAppName,
  waitingIs
} from "./utils.js"

const POOL_TAG = "db.client.connection.pool.name"

let poolCounter = 0
/** Metrics are process-global: every pool gets its own name so its series are its own. */
const uniquePoolName = (prefix: string) => `metrics-${prefix}-${process.pid}-${++poolCounter}`

const hasTag = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>, key: string, value: string) =>
  tags.some((tag) => tag.key === key && tag.value === value)

/** The state of metric `name` for pool `pool` (plus `tags`), from the registry; none when never updated. */
const metricState = (name: string, pool: string, tags: Record<string, string> = {}) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const found = pairs.filter(
      (pair) =>
        pair.metricKey.name === name &&
        hasTag(pair.metricKey.tags, POOL_TAG, pool) &&
        Object.entries(tags).every(([key, value]) => hasTag(pair.metricKey.tags, key, value))
    )
    if (found.length > 1) throw new Error(`${found.length} series of ${name} match ${pool} ${JSON.stringify(tags)}`)
    return Option.fromNullable(found[0]?.metricState)
  })

const gauge = (name: string, pool: string, tags: Record<string, string> = {}) =>
  Effect.map(metricState(name, pool, tags), (state) => {
    const s = Option.getOrThrowWith(state, () => new Error(`no gauge ${name} for ${pool}`))
    if (!MetricState.isGaugeState(s)) throw new Error(`${name} is not a gauge`)
    return Number(s.value)
  })

const counter = (name: string, pool: string, tags: Record<string, string> = {}) =>
  Effect.map(metricState(name, pool, tags), (state) => {
    if (Option.isNone(state)) return 0
    if (!MetricState.isCounterState(state.value)) throw new Error(`${name} is not a counter`)
    return Number(state.value.count)
  })

const histogram = (name: string, pool: string) =>
  Effect.map(metricState(name, pool), (state) => {
    if (Option.isNone(state)) return { count: 0, sum: 0, min: 0, max: 0 }
    if (!MetricState.isHistogramState(state.value)) throw new Error(`${name} is not a histogram`)
    const { count, max, min, sum } = state.value
    return { count, sum, min, max }
  })

const connectionCount = (pool: string) =>
  Effect.all({
    idle: gauge("db.client.connection.count", pool, { "db.client.connection.state": "idle" }),
    used: gauge("db.client.connection.count", pool, { "db.client.connection.state": "used" })
  })

interface LogEntry {
  readonly level: string
  readonly event: unknown
  readonly annotations: HashMap.HashMap<string, unknown>
}

/** Runs `effect` (a pool constructor) with a logger that records what the pool's fibers log. */
const capturingLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const entries: Array<LogEntry> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      entries.push({ level: logLevel.label, event: Array.isArray(message) ? message[0] : message, annotations })
    })
    const value = yield* Effect.locallyWith(effect, FiberRef.currentLoggers, HashSet.add(logger))
    return { value, entries }
  })

it.layer(PgTestServer.layer, { timeout: 60_000 })("metrics", (it) => {
  it.scoped("publishes max, idle.max and idle.min from the configuration, per pool name", () =>
    Effect.gen(function* () {
      const small = uniquePoolName("small")
      const large = uniquePoolName("large")
      yield* makePool({ name: small, minSize: 1, maxSize: 3 })
      yield* makePool({ name: large, minSize: 2, maxSize: 7 })
      assert.deepStrictEqual(
        yield* Effect.all([
          gauge("db.client.connection.max", small),
          gauge("db.client.connection.idle.max", small),
          gauge("db.client.connection.idle.min", small)
        ]),
        [3, 3, 1]
      )
      assert.deepStrictEqual(
        yield* Effect.all([
          gauge("db.client.connection.max", large),
          gauge("db.client.connection.idle.max", large),
          gauge("db.client.connection.idle.min", large)
        ]),
        [7, 7, 2]
      )
    })
  )

  it.scoped("counts idle and used connections as they are checked out and returned", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("count")
      const db = yield* makePool({ name, minSize: 2, maxSize: 3 })
      const agrees = Effect.gen(function* () {
        const stats = yield* db.statistics
        const metric = yield* connectionCount(name)
        assert.deepStrictEqual(metric, { idle: stats.idle, used: stats.active })
        return metric
      })
      assert.deepStrictEqual(yield* agrees, { idle: 2, used: 0 })
      const a = yield* hold(db)
      assert.deepStrictEqual(yield* agrees, { idle: 1, used: 1 })
      const b = yield* hold(db)
      assert.deepStrictEqual(yield* agrees, { idle: 0, used: 2 })
      // the third is opened on demand and handed straight to its caller
      const c = yield* hold(db)
      assert.deepStrictEqual(yield* agrees, { idle: 0, used: 3 })
      yield* a.release
      assert.deepStrictEqual(yield* agrees, { idle: 1, used: 2 })
      yield* b.release
      yield* c.release
      assert.deepStrictEqual(yield* agrees, { idle: 3, used: 0 })
    })
  )

  it.scoped("pending_requests rises with queued callers and falls as they are served or give up", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("pending")
      const db = yield* makePool({ name, minSize: 1, maxSize: 1 })
      const pending = gauge("db.client.connection.pending_requests", name)
      assert.strictEqual(yield* pending, 0)
      const holder = yield* hold(db)
      const waiters: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
      for (let i = 1; i <= 3; i++) {
        waiters.push(yield* Effect.fork(db.withConnection(() => Effect.void)))
        yield* waitingIs(db, i)
        assert.strictEqual(yield* pending, i)
      }
      yield* Fiber.interrupt(waiters[1]!)
      assert.strictEqual(yield* pending, 2)
      yield* holder.release
      yield* Fiber.join(waiters[0]!)
      yield* Fiber.join(waiters[2]!)
      assert.strictEqual(yield* pending, 0)
    })
  )

  it.scoped("timeouts counts AcquireTimeout, and wait_time records the timed-out wait as well", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("timeouts")
      const db = yield* makePool({ name, minSize: 1, maxSize: 1, acquireTimeout: "2 seconds" })
      const holder = yield* hold(db)
      assert.strictEqual(yield* counter("db.client.connection.timeouts", name), 0)
      assert.strictEqual((yield* histogram("db.client.connection.wait_time", name)).count, 1)
      const waiter = yield* Effect.fork(db.withConnection(() => Effect.void))
      yield* waitingIs(db, 1)
      assert.strictEqual(yield* gauge("db.client.connection.pending_requests", name), 1)
      yield* TestClock.adjust("2 seconds")
      const exit = yield* Fiber.await(waiter)
      assert.instanceOf(Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined, AcquireTimeout)
      assert.strictEqual(yield* counter("db.client.connection.timeouts", name), 1)
      assert.strictEqual((yield* histogram("db.client.connection.wait_time", name)).count, 2)
      assert.strictEqual(yield* gauge("db.client.connection.pending_requests", name), 0)
      const stats = yield* db.statistics
      assert.strictEqual(stats.acquireTimeouts, 1)
      assert.strictEqual(stats.acquisitions, 1)
      yield* holder.release
    })
  )

  it.scoped("wait_time records each successful acquisition, a queued one with the time it waited", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("wait")
      const db = yield* makePool({ name, minSize: 1, maxSize: 1 })
      for (let i = 0; i < 5; i++) yield* db.withConnection(() => Effect.void)
      const quick = yield* histogram("db.client.connection.wait_time", name)
      assert.strictEqual(quick.count, 5)
      assert.isBelow(quick.max, 0.1)
      const holder = yield* hold(db)
      const waiter = yield* Effect.fork(db.withConnection(() => Effect.void))
      yield* waitingIs(db, 1)
      // acquisition time is measured on the monotonic clock, so the wait has to be real
      yield* realSleep(150)
      yield* holder.release
      yield* Fiber.join(waiter)
      const after = yield* histogram("db.client.connection.wait_time", name)
      assert.strictEqual(after.count, 7)
      // seconds, per the OpenTelemetry conventions
      assert.isAtLeast(after.max, 0.14)
      assert.isBelow(after.max, 5)
      const stats = yield* db.statistics
      assert.strictEqual(stats.acquisitions, 7)
      // the statistics and the histogram see the same acquisitions
      assert.approximately(stats.acquisitionTimeAvgMs, (after.sum / after.count) * 1000, 1e-6)
    })
  )

  it.scoped("create_time counts every connection opened", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("create")
      const db = yield* makePool({ name, minSize: 2, maxSize: 4 })
      const initial = yield* histogram("db.client.connection.create_time", name)
      assert.strictEqual(initial.count, 2)
      // seconds: opening a local connection takes milliseconds
      assert.isAbove(initial.min, 0)
      assert.isBelow(initial.max, 5)
      const holders = [yield* hold(db), yield* hold(db), yield* hold(db), yield* hold(db)]
      const grown = yield* histogram("db.client.connection.create_time", name)
      assert.strictEqual(grown.count, 4)
      assert.strictEqual((yield* db.statistics).connectionsCreated, 4)
      yield* Effect.forEach(holders, (h) => h.release, { discard: true })
    })
  )

  it.scoped("use_time records how long a connection was held", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("use")
      const db = yield* makePool({ name, minSize: 1, maxSize: 1 })
      const before = yield* histogram("db.client.connection.use_time", name)
      // held time is measured on the monotonic clock, so the hold has to be real
      yield* db.withConnection(() => realSleep(200))
      const use = yield* histogram("db.client.connection.use_time", name)
      assert.strictEqual(use.count, before.count + 1)
      assert.isAtLeast(use.sum - before.sum, 0.19)
      assert.isBelow(use.sum - before.sum, 5)
      yield* db.withConnection((sql) => sql`SELECT 1`)
      assert.strictEqual((yield* histogram("db.client.connection.use_time", name)).count, before.count + 2)
    })
  )

  it.scoped("use_time counts the callers' checkouts only, not the background health probe", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("use-probe")
      const db = yield* makePool({ name, minSize: 1, maxSize: 1 })
      for (let i = 0; i < 3; i++) yield* db.withConnection((sql) => sql`SELECT 1`)
      assert.strictEqual((yield* histogram("db.client.connection.use_time", name)).count, 3)
      // the probe round-trips on the idle connection every 5 seconds
      const before = Option.getOrUndefined((yield* db.health).database.probedAt)?.getTime()
      yield* TestClock.adjust("5 seconds")
      yield* eventually(
        "the health probe ran on the idle connection",
        Effect.map(
          db.health,
          (h) =>
            Option.getOrUndefined(h.database.probedAt)?.getTime() !== before &&
            h.database.reachable &&
            h.statistics.idle === 1
        )
      )
      const stats = yield* db.statistics
      assert.strictEqual(stats.acquisitions, 3)
      assert.strictEqual((yield* histogram("db.client.connection.use_time", name)).count, 3)
    })
  )

  it.scoped("closed counts closes by reason: maxQueries", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("closed-max")
      const db = yield* makePool({ name, minSize: 0, maxSize: 1, maxQueries: 2 })
      assert.strictEqual(yield* counter("db.client.connection.closed", name, { reason: "maxQueries" }), 0)
      for (let i = 0; i < 5; i++) yield* db.sql`SELECT 1`
      // five queries on connections good for two each: at least the first two connections are recycled
      const stats = yield* db.statistics
      assert.isAtLeast(stats.connectionsClosed.maxQueries, 2)
      assert.strictEqual(
        yield* counter("db.client.connection.closed", name, { reason: "maxQueries" }),
        stats.connectionsClosed.maxQueries
      )
      assert.strictEqual(yield* counter("db.client.connection.closed", name, { reason: "broken" }), 0)
      assert.deepStrictEqual(yield* connectionCount(name), { idle: stats.idle, used: 0 })
    })
  )

  it.scoped("closed counts backends terminated by the server as broken, and the count follows the refill", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("closed-broken")
      const applicationName = uniqueAppName("metrics-broken")
      const db = yield* makePool({ name, applicationName, minSize: 2, maxSize: 2 })
      const admin = yield* adminClient
      assert.strictEqual((yield* backendPids(admin, applicationName)).length, 2)
      yield* adminQuery(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [
        applicationName
      ])
      yield* eventually(
        "two closes for reason broken",
        Effect.map(counter("db.client.connection.closed", name, { reason: "broken" }), (n) => n === 2)
      )
      assert.strictEqual((yield* db.statistics).connectionsClosed.broken, 2)
      yield* eventually(
        "the pool is back at minSize",
        Effect.map(db.statistics, (s) => s.idle === 2)
      )
      assert.deepStrictEqual(yield* connectionCount(name), { idle: 2, used: 0 })
      assert.strictEqual((yield* histogram("db.client.connection.create_time", name)).count, 4)
    })
  )

  it.scoped("leaks: a connection held past leakDetectionThreshold is counted and warned about once per checkout", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("leaks")
      const { entries, value: db } = yield* capturingLogs(
        makePool({ name, minSize: 1, maxSize: 1, leakDetectionThreshold: "2 seconds" })
      )
      const leakWarnings = () =>
        entries.filter((e) => e.event === "connection held longer than the leak detection threshold")
      const leaks = Effect.all([
        counter("db.client.connection.leaks", name),
        Effect.map(db.statistics, (s) => s.leaksSuspected)
      ])
      const first = yield* hold(db)
      yield* TestClock.adjust("1999 millis")
      assert.deepStrictEqual(yield* leaks, [0, 0])
      // held connections are checked once a second: reported within a period past the threshold
      yield* TestClock.adjust("1001 millis")
      yield* eventually(
        "one leak counted",
        Effect.map(leaks, ([metric, stats]) => metric === 1 && stats === 1)
      )
      yield* eventually(
        "the leak warning is logged",
        Effect.sync(() => leakWarnings().length === 1)
      )
      const warning = leakWarnings()[0]!
      assert.strictEqual(warning.level, "WARN")
      assert.strictEqual(Option.getOrUndefined(HashMap.get(warning.annotations, "thresholdMillis")), 2000)
      // held much longer: still one suspected leak for this checkout
      yield* TestClock.adjust("10 seconds")
      yield* realSleep(50)
      assert.deepStrictEqual(yield* leaks, [1, 1])
      assert.strictEqual(leakWarnings().length, 1)
      yield* first.release
      // a new checkout held too long is a new suspect
      const second = yield* hold(db)
      yield* TestClock.adjust("3 seconds")
      yield* eventually(
        "a second leak counted",
        Effect.map(leaks, ([metric, stats]) => metric === 2 && stats === 2)
      )
      yield* eventually(
        "a second warning is logged",
        Effect.sync(() => leakWarnings().length === 2)
      )
      yield* second.release
    })
  )

  it.scoped("a returned leak is reported returned once, not again by every health probe", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("leak-returned")
      const { entries, value: db } = yield* capturingLogs(
        makePool({ name, minSize: 1, maxSize: 1, leakDetectionThreshold: "2 seconds" })
      )
      const returned = () => entries.filter((e) => e.event === "connection suspected of leaking was returned")
      const holder = yield* hold(db)
      yield* TestClock.adjust("2 seconds")
      yield* eventually(
        "the leak is counted",
        Effect.map(db.statistics, (s) => s.leaksSuspected === 1)
      )
      yield* holder.release
      yield* eventually(
        "the return is logged",
        Effect.sync(() => returned().length === 1)
      )
      // two probe rounds on the idle connection
      for (let i = 0; i < 2; i++) {
        const before = Option.getOrUndefined((yield* db.health).database.probedAt)?.getTime()
        yield* TestClock.adjust("5 seconds")
        yield* eventually(
          "the probe ran",
          Effect.map(db.health, (h) => Option.getOrUndefined(h.database.probedAt)?.getTime() !== before)
        )
        yield* eventually(
          "the probe returned the connection",
          Effect.map(db.statistics, (s) => s.idle === 1)
        )
      }
      yield* realSleep(50)
      assert.strictEqual(returned().length, 1)
      assert.strictEqual((yield* db.statistics).leaksSuspected, 1)
    })
  )

  it.scoped("wait_time also records waiters failed by shutdown", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("wait-closed")
      const scope = yield* Scope.make()
      const db = yield* makePool({ name, minSize: 1, maxSize: 1, shutdownTimeout: "1 second" }).pipe(
        Scope.extend(scope)
      )
      const holder = yield* hold(db)
      const waiters = yield* Effect.forEach([1, 2], () => Effect.fork(db.withConnection(() => Effect.void)))
      yield* waitingIs(db, 2)
      assert.strictEqual((yield* histogram("db.client.connection.wait_time", name)).count, 1)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      for (const waiter of waiters) {
        const exit = yield* Fiber.await(waiter)
        assert.instanceOf(Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined, PoolClosed)
      }
      assert.strictEqual(yield* gauge("db.client.connection.pending_requests", name), 0)
      // the holder's acquisition and both failed ones
      assert.strictEqual((yield* histogram("db.client.connection.wait_time", name)).count, 3)
      assert.strictEqual(yield* counter("db.client.connection.timeouts", name), 0)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      yield* Fiber.interrupt(holder.fiber)
    })
  )

  it.scoped("after shutdown the pool reports no connections and counts the closes as shutdown", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("shutdown")
      const scope = yield* Scope.make()
      yield* makePool({ name, minSize: 3, maxSize: 3 }).pipe(Scope.extend(scope))
      assert.deepStrictEqual(yield* connectionCount(name), { idle: 3, used: 0 })
      assert.strictEqual(yield* gauge("db.client.connection.pool.state", name), 0)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* connectionCount(name), { idle: 0, used: 0 })
      assert.strictEqual(yield* counter("db.client.connection.closed", name, { reason: "shutdown" }), 3)
      assert.strictEqual(yield* gauge("db.client.connection.pool.state", name), 2)
    })
  )

  it.scoped("the state gauge reads the same assessment as health: a saturated pool is degraded on both", () =>
    Effect.gen(function* () {
      const name = uniquePoolName("saturated-gauge")
      const db = yield* makePool({ name, minSize: 1, maxSize: 1 })
      const state = gauge("db.client.connection.pool.state", name)
      const holder = yield* hold(db)
      const waiter = yield* Effect.fork(db.withConnection(() => Effect.void))
      yield* waitingIs(db, 1)
      assert.strictEqual(yield* state, 0)
      // the oldest caller has waited more than a second at the next housekeeping tick
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* db.health).status, "degraded")
      yield* eventually(
        "the gauge says degraded",
        Effect.map(state, (s) => s === 1)
      )
      yield* holder.release
      yield* Fiber.join(waiter)
      assert.strictEqual((yield* db.health).status, "healthy")
      yield* TestClock.adjust("1 second")
      yield* eventually(
        "the gauge says healthy again",
        Effect.map(state, (s) => s === 0)
      )
    })
  )
})

const Env = FaultProxy.layer.pipe(Layer.provideMerge(PgTestServer.layer))

/** One connection behind the fault proxy, validated after 100 ms idle, within 300 ms: for silent-connection tests. */
const validatingPoolBehindProxy = (prefix: string) =>
  Effect.gen(function* () {
    const proxy = yield* FaultProxy.FaultProxy
    const name = uniquePoolName(prefix)
    const db = yield* Db.make({
      url: proxy.url,
      name,
      minSize: 1,
      maxSize: 1,
      validateAfterIdle: "100 millis",
      validationTimeout: "300 millis"
    }).pipe(Effect.provide(Reactivity.layer), Effect.tap(probed))
    return { proxy, name, db }
  })

layer(Env, { timeout: 60_000, excludeTestServices: true })("metrics, real time", (it) => {
  it.scoped("the connection count agrees with the statistics while the health probe holds a connection", () =>
    Effect.gen(function* () {
      const proxy = yield* FaultProxy.FaultProxy
      const name = uniquePoolName("probe-count")
      const db = yield* Db.make({ url: proxy.url, name, minSize: 1, maxSize: 1 }).pipe(
        Effect.provide(Reactivity.layer),
        Effect.tap(probed)
      )
      yield* Effect.ensuring(
        Effect.gen(function* () {
          // a slow network stretches the next probe's round trip (every 5 s) to 600 ms
          yield* proxy.latency(300)
          yield* eventually(
            "the probe holds the connection",
            Effect.map(db.statistics, (s) => s.active === 1),
            8_000
          )
          const metric = yield* connectionCount(name)
          const stats = yield* db.statistics
          assert.strictEqual(stats.active, 1, "the probe ended before the figures were read")
          assert.deepStrictEqual(metric, { idle: stats.idle, used: stats.active })
        }),
        proxy.restore
      )
    })
  )

  it.scoped("closed counts a silent idle connection as failing validation within validationTimeout", () =>
    Effect.gen(function* () {
      const { proxy, name, db } = yield* validatingPoolBehindProxy("validation-timeout")
      yield* Effect.ensuring(
        Effect.gen(function* () {
          yield* db.sql`SELECT 1`
          yield* proxy.blackhole
          yield* realSleep(150)
          const query = yield* Effect.fork(db.sql`SELECT 1`)
          const startedAt = Date.now()
          // 300 ms of validation, plus slack for a loaded machine
          yield* eventually(
            "the validation close is counted",
            Effect.map(counter("db.client.connection.closed", name, { reason: "validation" }), (n) => n === 1),
            3_000
          )
          assert.isAtLeast(Date.now() - startedAt, 250)
          assert.strictEqual((yield* db.statistics).connectionsClosed.validation, 1)
          yield* proxy.restore
          yield* Fiber.join(query)
        }),
        proxy.restore
      )
    })
  )

  it.scoped("an acquisition whose idle connection fails validation is counted once, with its whole wait", () =>
    Effect.gen(function* () {
      const { proxy, name, db } = yield* validatingPoolBehindProxy("validation")
      yield* Effect.ensuring(
        Effect.gen(function* () {
          yield* db.sql`SELECT 1`
          assert.strictEqual((yield* db.statistics).acquisitions, 1)
          // the idle connection goes silent; the next acquisition validates it, gives up on it and waits for a new one
          yield* proxy.blackhole
          yield* realSleep(150)
          const query = yield* Effect.fork(db.sql<{ one: number }>`SELECT 1::int AS one`)
          yield* eventually(
            "the silent connection failed validation",
            Effect.map(db.statistics, (s) => s.connectionsClosed.validation === 1)
          )
          yield* realSleep(100)
          yield* proxy.restore
          assert.deepStrictEqual(yield* Fiber.join(query), [{ one: 1 }])
        }),
        proxy.restore
      )
      const stats = yield* db.statistics
      assert.strictEqual(stats.acquisitions, 2)
      const wait = yield* histogram("db.client.connection.wait_time", name)
      assert.strictEqual(wait.count, 2)
      // the second acquisition took the validation timeout and a reconnect: that is what it waited
      assert.isAtLeast(wait.max, 0.3)
      assert.isAtLeast(stats.acquisitionTimeP99Ms, 300)
      assert.strictEqual((yield* histogram("db.client.connection.use_time", name)).count, 2)
    })
  )

  it.scoped("counts reconnect attempts while the server is down; the state gauge follows the outage", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const name = uniquePoolName("reconnect")
      const db = yield* makePool({
        name,
        minSize: 1,
        maxSize: 2,
        reconnect: { initialDelay: "50 millis", maxDelay: "100 millis" }
      })
      const state = gauge("db.client.connection.pool.state", name)
      const attempts = counter("db.client.connection.reconnect_attempts", name)
      assert.strictEqual(yield* state, 0)
      assert.strictEqual(yield* attempts, 0)
      yield* Effect.ensuring(
        Effect.gen(function* () {
          yield* server.stop()
          yield* eventually(
            "a few reconnect attempts",
            Effect.map(attempts, (n) => n >= 3)
          )
          assert.strictEqual(yield* state, 2)
          assert.isAtLeast(yield* counter("db.client.connection.closed", name, { reason: "broken" }), 1)
          assert.deepStrictEqual(yield* connectionCount(name), { idle: 0, used: 0 })
          // the statistics read the same counter
          const [metric, stats] = yield* Effect.all([attempts, db.statistics])
          assert.strictEqual(stats.reconnectAttempts, metric)
          yield* server.start
        }),
        Effect.flatMap(server.isRunning, (running) => (running ? Effect.void : Effect.orDie(server.start)))
      )
      yield* eventually(
        "healthy again",
        Effect.map(state, (s) => s === 0)
      )
      yield* eventually(
        "the connection is back",
        Effect.map(connectionCount(name), (c) => c.idle === 1)
      )
      const settled = yield* attempts
      yield* realSleep(300)
      assert.strictEqual(yield* attempts, settled, "no attempts once recovered")
      assert.strictEqual((yield* db.statistics).reconnectAttempts, settled)
    })
  )
})
