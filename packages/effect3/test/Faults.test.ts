import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { Reactivity } from "@effect/experimental"
import * as Db from "../src/Db.js"
import {
  assertQuiescent,
  assertServes,
  failedCount,
  realSleep,
  report,
  seededRandom,
  startLoad,
  testSeed
} from "./faults.js"
import { adminClient, adminQuery, eventually, uniqueAppName } from "./utils.js"

const Env = FaultProxy.layer.pipe(Layer.provideMerge(PgTestServer.layer))

/** A pool through the fault proxy (or straight to the server), built in the test's scope. */
const makePool = (options: Omit<Db.DbOptions, "url"> & { readonly direct?: boolean }) =>
  Effect.gen(function* () {
    const server = yield* PgTestServer.PgTestServer
    const proxy = yield* FaultProxy.FaultProxy
    const { direct, ...rest } = options
    return yield* Db.make({ url: direct ? server.url : proxy.url, pipeline: faultPipeline, ...rest }).pipe(
      Effect.provide(Reactivity.layer)
    )
  })

/** `TEST_PIPELINE=16` runs the whole suite with pipelined statements (the `pipeline` option). */
const faultPipeline = Number(process.env.TEST_PIPELINE ?? 0)
/** What a fault may fail per connection: what runs on it — one statement, or its pipeline's slots. */
const inFlightPerConnection = Math.max(1, faultPipeline)

const select = (db: Db.Db.Service) => db.sql`SELECT pg_sleep(0.001)`

layer(Env, { timeout: 120_000, excludeTestServices: true })("fault suite (100 callers, maxSize 10)", (it) => {
  it.scoped("server killed for 5 s: callers wait, only in-flight calls fail, recovery within a second", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const applicationName = uniqueAppName("kill")
      const db = yield* makePool({ direct: true, applicationName, minSize: 10, maxSize: 10 })
      const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 40_000, call: select })
      yield* realSleep(1000)
      yield* server.stop({ mode: "immediate" })
      const downAt = Date.now()
      yield* realSleep(5000)
      const attemptsWhileDown = (yield* db.statistics).reconnectAttempts
      yield* server.start
      const upAt = Date.now()
      yield* realSleep(1500)
      const totals = yield* stop
      const firstOk = totals.okTimes.find((t) => t >= upAt)
      const recoveryMillis = firstOk === undefined ? Infinity : firstOk - upAt
      yield* report("server killed 5 s", totals, { recoveryMillis, attemptsWhileDown, downMillis: upAt - downAt })
      assert.strictEqual(totals.hung, 0)
      // only what was in flight at the kill: at most one query per connection
      assert.isAtMost(failedCount(totals), 10 * inFlightPerConnection)
      for (const tag of Object.keys(totals.failed)) assert.match(tag, /^SqlError/)
      assert.isAtMost(recoveryMillis, 1000)
      // backoff 1 s, 2 s (then 4 s) within a 5 s outage: at most one full attempt per step
      assert.isAtMost(attemptsWhileDown, 3)
      const admin = yield* adminClient
      yield* assertQuiescent(db, admin, applicationName)
    })
  )

  it.scoped("every socket reset mid-query: in-flight calls fail typed, the pool recovers at once", () =>
    Effect.gen(function* () {
      const proxy = yield* FaultProxy.FaultProxy
      const applicationName = uniqueAppName("reset")
      const db = yield* makePool({ applicationName, minSize: 10, maxSize: 10 })
      const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 30_000, call: select })
      yield* realSleep(500)
      for (let i = 0; i < 3; i++) {
        yield* proxy.resetAll
        yield* realSleep(700)
      }
      const totals = yield* stop
      yield* report("resetAll ×3", totals)
      assert.strictEqual(totals.hung, 0)
      assert.isAtMost(failedCount(totals), 30 * inFlightPerConnection)
      assert.isAbove(totals.ok, 100)
      for (const tag of Object.keys(totals.failed)) assert.match(tag, /^SqlError/)
      const admin = yield* adminClient
      yield* assertQuiescent(db, admin, applicationName)
      yield* assertServes(db)
    })
  )

  it.scoped("pg_terminate_backend of every backend under load", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("terminate")
      const db = yield* makePool({ applicationName, minSize: 10, maxSize: 10 })
      const admin = yield* adminClient
      const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 30_000, call: select })
      yield* realSleep(500)
      for (let i = 0; i < 3; i++) {
        yield* adminQuery(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [
          applicationName
        ])
        yield* realSleep(700)
      }
      const totals = yield* stop
      yield* report("pg_terminate_backend ×3", totals)
      assert.strictEqual(totals.hung, 0)
      // the query in flight, and at most one sent before the termination notice arrived, per connection
      assert.isAtMost(failedCount(totals), 60 * inFlightPerConnection)
      for (const tag of Object.keys(totals.failed)) assert.match(tag, /^SqlError/)
      yield* assertQuiescent(db, admin, applicationName)
      yield* assertServes(db)
    })
  )

  it.scoped("blackhole longer than acquireTimeout: nothing hangs, typed failures, recovery after restore", () =>
    Effect.gen(function* () {
      const proxy = yield* FaultProxy.FaultProxy
      const applicationName = uniqueAppName("blackhole")
      const db = yield* makePool({
        applicationName,
        minSize: 10,
        maxSize: 10,
        acquireTimeout: "2 seconds",
        connectTimeout: "1 second",
        validationTimeout: "500 millis",
        queryTimeout: "1 second",
        cancelTimeout: "500 millis",
        reconnect: { initialDelay: "500 millis", maxDelay: "1 second" }
      })
      // every call is bounded by acquireTimeout + queryTimeout + cancelTimeout, with slack
      const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 6_000, call: select })
      yield* realSleep(500)
      yield* proxy.blackhole
      yield* realSleep(4000)
      yield* proxy.restore
      const restoredAt = Date.now()
      yield* realSleep(3000)
      const totals = yield* stop
      const firstOk = totals.okTimes.find((t) => t >= restoredAt)
      yield* report("blackhole 4 s", totals, { recoveryMillis: firstOk === undefined ? null : firstOk - restoredAt })
      assert.strictEqual(totals.hung, 0)
      assert.isAbove(failedCount(totals), 0)
      for (const tag of Object.keys(totals.failed)) assert.match(tag, /^(SqlError|AcquireTimeout)/)
      assert.isDefined(firstOk)
      yield* proxy.resetAll
      const admin = yield* adminClient
      yield* assertQuiescent(db, admin, applicationName)
      yield* assertServes(db)
    })
  )

  it.scoped("new connections refused while connections are replaced: callers wait, none fails, served after", () =>
    Effect.gen(function* () {
      const proxy = yield* FaultProxy.FaultProxy
      const applicationName = uniqueAppName("refuse")
      // maxQueries retires each connection after a few hundred calls, so the pool must open new ones while
      // refused: a pool that never opens during the fault would prove nothing
      const db = yield* makePool({ applicationName, minSize: 10, maxSize: 10, maxQueries: 300 })
      const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 30_000, call: select })
      yield* realSleep(300)
      const before = yield* db.statistics
      yield* proxy.refuse
      yield* realSleep(3000)
      const during = yield* db.statistics
      yield* proxy.restore
      const restoredAt = Date.now()
      // callers are served in arrival order: once a call made now succeeds, the waiting callers were served first
      yield* eventually(
        "the pool serves again",
        Effect.map(Effect.either(select(db)), (r) => r._tag === "Right"),
        20_000
      )
      const totals = yield* stop
      const after = yield* db.statistics
      const refusedOpens = during.reconnectAttempts - before.reconnectAttempts
      yield* report("refuse 3 s", totals, {
        retiredWhileRefused: during.connectionsClosed.maxQueries - before.connectionsClosed.maxQueries,
        refusedOpens,
        createdAfterRestore: after.connectionsCreated - during.connectionsCreated
      })
      assert.isAbove(during.connectionsClosed.maxQueries, before.connectionsClosed.maxQueries)
      assert.isAbove(refusedOpens, 0, "the pool tried to open connections while they were refused")
      assert.isAbove(after.connectionsCreated, during.connectionsCreated, "and opened them once restored")
      assert.strictEqual(totals.hung, 0)
      assert.strictEqual(failedCount(totals), 0)
      assert.isTrue(totals.okTimes.some((t) => t >= restoredAt))
      const admin = yield* adminClient
      yield* assertQuiescent(db, admin, applicationName)
    })
  )

  it.scoped("200 ms latency: everything succeeds, slower", () =>
    Effect.gen(function* () {
      const proxy = yield* FaultProxy.FaultProxy
      const applicationName = uniqueAppName("latency")
      const db = yield* makePool({ applicationName, minSize: 10, maxSize: 10 })
      yield* proxy.latency(200)
      const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 30_000, call: select })
      yield* realSleep(3000)
      const totals = yield* stop
      yield* proxy.restore
      yield* report("latency 200 ms", totals)
      assert.strictEqual(totals.hung, 0)
      assert.strictEqual(failedCount(totals), 0)
      assert.isAbove(totals.ok, 0)
      const admin = yield* adminClient
      yield* assertQuiescent(db, admin, applicationName)
    })
  )

  it.scoped("interruption storm: random timeouts on 30 % of calls leak nothing", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("storm")
      const db = yield* makePool({ applicationName, minSize: 10, maxSize: 10 })
      const stop = yield* startLoad(db, {
        callers: 100,
        callBoundMillis: 30_000,
        interruptFraction: 0.3,
        random: seededRandom(testSeed("interruption storm")),
        call: (db, caller) =>
          caller % 2 === 0
            ? db.sql`SELECT pg_sleep(0.005)`
            : db.withConnection((sql) => sql.withTransaction(sql`SELECT pg_sleep(0.003)`))
      })
      yield* realSleep(4000)
      const totals = yield* stop
      const stats = yield* db.statistics
      yield* report("interruption storm", totals, { closed: stats.connectionsClosed })
      assert.strictEqual(totals.hung, 0)
      assert.strictEqual(failedCount(totals), 0)
      // about 30 % of all calls were interrupted (the machine's speed decides how many calls there were)
      assert.isAbove(totals.interrupted, 0.15 * (totals.ok + totals.interrupted))
      const admin = yield* adminClient
      yield* assertQuiescent(db, admin, applicationName)
      yield* assertServes(db)
    })
  )

  it.scoped("the database restarted during graceful shutdown: shutdown completes, nothing hangs", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const applicationName = uniqueAppName("shutdown-restart")
      const scope = yield* Scope.make()
      const db = yield* makePool({
        direct: true,
        applicationName,
        minSize: 10,
        maxSize: 10,
        shutdownTimeout: "2 seconds"
      }).pipe(Scope.extend(scope))
      const stop = yield* startLoad(db, {
        callers: 100,
        callBoundMillis: 30_000,
        call: (db) => db.sql`SELECT pg_sleep(0.5)`
      })
      yield* realSleep(700)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* server.restart
      const startedAt = Date.now()
      yield* Fiber.join(closing)
      const totals = yield* stop
      yield* report("restart during shutdown", totals, { shutdownMillis: Date.now() - startedAt })
      assert.strictEqual(totals.hung, 0)
      for (const tag of Object.keys(totals.failed)) assert.match(tag, /^(SqlError|PoolClosed)/)
      const stats = yield* db.statistics
      assert.strictEqual(stats.total, 0)
      const admin = yield* adminClient
      yield* eventually(
        "no backend left",
        Effect.map(
          adminQuery(admin, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [
            applicationName
          ]),
          (rows) => rows[0].n === 0
        )
      )
    })
  )

  it.scoped("LISTEN survives a server restart and a proxy reset", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const proxy = yield* FaultProxy.FaultProxy
      const db = yield* makePool({
        applicationName: uniqueAppName("listen"),
        minSize: 1,
        maxSize: 2,
        reconnect: { initialDelay: "200 millis", maxDelay: "400 millis" }
      })
      const received: Array<string> = []
      yield* Effect.forkScoped(
        db.sql.listen("pool_events").pipe(
          Stream.tap((payload) => Effect.sync(() => received.push(payload))),
          Stream.runDrain
        )
      )
      // notify until the LISTEN is in place, then after each fault until it is back
      const notifyUntil = (payload: string) =>
        eventually(
          `"${payload}" arrives`,
          Effect.zipRight(
            Effect.ignore(db.sql.notify("pool_events", payload)),
            Effect.zipRight(
              realSleep(50),
              Effect.sync(() => received.includes(payload))
            )
          ),
          15_000
        )
      yield* notifyUntil("before")
      yield* proxy.resetAll
      yield* notifyUntil("after reset")
      yield* server.restart
      yield* notifyUntil("after restart")
      assert.includeMembers(received, ["before", "after reset", "after restart"])
    })
  )
})
