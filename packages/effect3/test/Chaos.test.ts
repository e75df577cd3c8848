import { Reactivity } from "@effect/experimental"
import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Db from "../src/Db.js"
import {
  assertQuiescent,
  assertServes,
  leakedAfter,
  realSleep,
  report,
  seededRandom,
  startLoad,
  testSeed
} from "./faults.js"
import { adminClient, adminQuery, uniqueAppName } from "./utils.js"

const Env = FaultProxy.layer.pipe(Layer.provideMerge(PgTestServer.layer))

const soakMillis = Number(process.env.CHAOS_SOAK_MILLIS ?? 60_000)

layer(Env, { timeout: soakMillis + 120_000, excludeTestServices: true })("chaos soak", (it) => {
  it.scoped(
    `random faults and interruptions under 120 callers for ${soakMillis / 1000} s leave nothing behind`,
    () =>
      Effect.gen(function* () {
        const server = yield* PgTestServer.PgTestServer
        const proxy = yield* FaultProxy.FaultProxy
        const applicationName = uniqueAppName("chaos")
        const db = yield* Db.make({
          url: proxy.url,
          applicationName,
          minSize: 10,
          maxSize: 10,
          acquireTimeout: "5 seconds",
          connectTimeout: "1 second",
          validationTimeout: "500 millis",
          queryTimeout: "2 seconds",
          cancelTimeout: "1 second",
          reconnect: { initialDelay: "200 millis", maxDelay: "1 second" }
        }).pipe(Effect.provide(Reactivity.layer))
        const seed = testSeed("chaos soak")
        const random = seededRandom(seed, 1)
        const stop = yield* startLoad(db, {
          random: seededRandom(seed, 2),
          callers: 120,
          // acquireTimeout + queryTimeout + cancelTimeout, with slack for a loaded machine
          callBoundMillis: 15_000,
          interruptFraction: 0.2,
          call: (db, caller) =>
            caller % 3 === 0
              ? db.withConnection((sql) => sql.withTransaction(sql`SELECT pg_sleep(0.002)`))
              : db.sql`SELECT pg_sleep(0.001)`
        })
        const faults: Record<string, number> = {}
        const recoveries: Array<{ fault: string; clearedAt: number }> = []
        // a fresh referee connection each time: the server-down fault kills any that was open
        const terminateAll = Effect.scoped(
          Effect.flatMap(adminClient, (admin) =>
            adminQuery(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [
              applicationName
            ])
          )
        )
        const inject: Record<string, Effect.Effect<void, unknown, PgTestServer.PgTestServer>> = {
          resetAll: proxy.resetAll,
          terminate: Effect.asVoid(terminateAll),
          blackhole: Effect.zipRight(proxy.blackhole, Effect.zipRight(realSleep(1500), proxy.restore)),
          refuse: Effect.zipRight(proxy.refuse, Effect.zipRight(realSleep(2000), proxy.restore)),
          latency: Effect.zipRight(proxy.latency(100), Effect.zipRight(realSleep(2000), proxy.restore)),
          serverDown: Effect.zipRight(
            server.stop({ mode: "immediate" }),
            Effect.zipRight(realSleep(2000), server.start)
          )
        }
        const kinds = Object.keys(inject)
        const deadline = Date.now() + soakMillis
        while (Date.now() < deadline - 5_000) {
          yield* realSleep(1500 + random() * 2500)
          const fault = kinds[Math.floor(random() * kinds.length)]!
          faults[fault] = (faults[fault] ?? 0) + 1
          yield* inject[fault]!
          recoveries.push({ fault, clearedAt: Date.now() })
        }
        yield* realSleep(Math.max(0, deadline - Date.now()))
        const totals = yield* stop
        // every caller has returned: what is still checked out after cancelTimeout and a validation (a reset) is lost
        const leaked = yield* leakedAfter(db, 3_000)
        // recovery: from each fault's end to the first successful call after it
        let worstRecoveryMillis = 0
        for (const { clearedAt } of recoveries) {
          const firstOk = totals.okTimes.find((t) => t >= clearedAt)
          worstRecoveryMillis = Math.max(worstRecoveryMillis, firstOk === undefined ? Infinity : firstOk - clearedAt)
        }
        const stats = yield* db.statistics
        yield* report("chaos soak", totals, {
          calls: totals.ok + totals.interrupted + Object.values(totals.failed).reduce((a, b) => a + b, 0),
          faults,
          sequence: recoveries.map((r) => r.fault).join(","),
          leaked,
          worstRecoveryMillis,
          connectionsCreated: stats.connectionsCreated,
          closed: stats.connectionsClosed
        })
        assert.strictEqual(totals.hung, 0)
        assert.strictEqual(leaked, 0, "connections still checked out after every caller returned")
        for (const tag of Object.keys(totals.failed)) assert.match(tag, /^(SqlError|AcquireTimeout)/)
        assert.isAbove(totals.ok, 1000)
        // the longest outage path: backoff capped at 1 s, a connect timeout of 1 s, and a loaded machine
        assert.isBelow(worstRecoveryMillis, 5_000)
        yield* proxy.restore
        const admin = yield* adminClient
        yield* assertQuiescent(db, admin, applicationName)
        yield* assertServes(db)
      }),
    soakMillis + 90_000
  )
})
