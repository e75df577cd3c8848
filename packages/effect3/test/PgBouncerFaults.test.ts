/**
 * The fault suite through PgBouncer, in session and in transaction mode: the server crashes behind PgBouncer, its
 * server connections are terminated, PgBouncer itself is killed and restarted, and 30 % of the calls are
 * interrupted. The invariants of test/faults.ts hold: every call succeeded or failed with a typed error within its
 * bound (only what was in flight at the fault fails), nothing leaked (PgBouncer holds exactly the pool's idle
 * connections, the server runs no statement of ours), nothing hung, and the pool recovered.
 */
import { PgBouncer, PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import type * as Pg from "pg"
import type * as Db from "../src/Db.js"
import { assertServes, failedCount, realSleep, report, seededRandom, startLoad, testSeed } from "./faults.js"
import { assertQuiescentBehind, bouncedClient, bouncerAdmin, bouncerEnv, makeBouncedPool } from "./pgbouncer.js"
import { adminClient, adminQuery, eventually, uniqueAppName } from "./utils.js"

const select = (db: Db.Db.Service) => db.sql`SELECT pg_sleep(0.001)`

/** `select`, counting failures by their SQLSTATE and message: the report says what the callers saw. */
const selectCounting = (messages: Record<string, number>) => (db: Db.Db.Service) =>
  Effect.tapError(select(db), (error) =>
    Effect.sync(() => {
      const cause = error.cause as { code?: string; message?: string } | undefined
      const key = `${cause?.code ?? "-"} ${cause?.message ?? error.message}`
      messages[key] = (messages[key] ?? 0) + 1
    })
  )

/** No statement left running on the server (a lost cancel would leave one), apart from the referee's own. */
const noStatementRunning = (admin: Pg.Client) =>
  eventually(
    "the server runs no statement of the pool",
    Effect.map(
      adminQuery<{ n: number }>(
        admin,
        "SELECT count(*)::int AS n FROM pg_stat_activity " +
          "WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()"
      ),
      (rows) => rows[0]!.n === 0
    ),
    20_000
  )

for (const poolMode of ["session", "transaction"] as const) {
  layer(bouncerEnv(poolMode), { timeout: 120_000, excludeTestServices: true })(
    `fault suite through PgBouncer in ${poolMode} mode (100 callers, maxSize 10)`,
    (it) => {
      it.scoped("the server crashes behind PgBouncer for 3 s: only in-flight calls fail, then it serves", () =>
        Effect.gen(function* () {
          const server = yield* PgTestServer.PgTestServer
          const applicationName = uniqueAppName(`bouncer-${poolMode}-crash`)
          const db = yield* makeBouncedPool({ applicationName, pooler: poolMode, minSize: 10, maxSize: 10 })
          const messages: Record<string, number> = {}
          const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 40_000, call: selectCounting(messages) })
          yield* realSleep(1000)
          yield* server.stop({ mode: "immediate" })
          yield* realSleep(3000)
          yield* server.start
          const upAt = Date.now()
          yield* realSleep(2500)
          const totals = yield* stop
          const firstOk = totals.okTimes.find((t) => t >= upAt)
          const recoveryMillis = firstOk === undefined ? Infinity : firstOk - upAt
          yield* report(`PgBouncer ${poolMode}: server crashed 3 s`, totals, { recoveryMillis, messages })
          assert.strictEqual(totals.hung, 0)
          // what was in flight: at most one statement per connection, and one sent before the close arrived
          assert.isAtMost(failedCount(totals), 20)
          for (const tag of Object.keys(totals.failed)) assert.match(tag, /^SqlError/)
          // PgBouncer retries its server login every second (server_login_retry = 1)
          assert.isAtMost(recoveryMillis, 2500)
          const admin = yield* bouncerAdmin
          yield* assertQuiescentBehind(db, admin, applicationName)
          yield* noStatementRunning(yield* adminClient)
          yield* assertServes(db)
        })
      )

      it.scoped("pg_terminate_backend of every server connection under load", () =>
        Effect.gen(function* () {
          const applicationName = uniqueAppName(`bouncer-${poolMode}-terminate`)
          const db = yield* makeBouncedPool({ applicationName, pooler: poolMode, minSize: 10, maxSize: 10 })
          const admin = yield* adminClient
          const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 30_000, call: select })
          yield* realSleep(500)
          for (let i = 0; i < 3; i++) {
            // PgBouncer's server connections: every client backend but the referee's
            yield* adminQuery(
              admin,
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            yield* realSleep(700)
          }
          const totals = yield* stop
          yield* report(`PgBouncer ${poolMode}: pg_terminate_backend ×3`, totals)
          assert.strictEqual(totals.hung, 0)
          assert.isAtMost(failedCount(totals), 60)
          for (const tag of Object.keys(totals.failed)) assert.match(tag, /^SqlError/)
          assert.isAbove(totals.ok, 100)
          yield* assertQuiescentBehind(db, yield* bouncerAdmin, applicationName)
          yield* noStatementRunning(admin)
          yield* assertServes(db)
        })
      )

      it.scoped("PgBouncer killed for 2 s and restarted: only in-flight calls fail, the pool reconnects", () =>
        Effect.gen(function* () {
          const bouncer = yield* PgBouncer.PgBouncer
          const applicationName = uniqueAppName(`bouncer-${poolMode}-kill`)
          const db = yield* makeBouncedPool({ applicationName, pooler: poolMode, minSize: 10, maxSize: 10 })
          const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 40_000, call: select })
          yield* realSleep(1000)
          yield* bouncer.kill
          yield* realSleep(2000)
          const attemptsWhileDown = (yield* db.statistics).reconnectAttempts
          yield* bouncer.start
          const upAt = Date.now()
          yield* realSleep(2000)
          const totals = yield* stop
          const firstOk = totals.okTimes.find((t) => t >= upAt)
          const recoveryMillis = firstOk === undefined ? Infinity : firstOk - upAt
          yield* report(`PgBouncer ${poolMode}: PgBouncer killed 2 s`, totals, { recoveryMillis, attemptsWhileDown })
          assert.strictEqual(totals.hung, 0)
          assert.isAtMost(failedCount(totals), 20)
          for (const tag of Object.keys(totals.failed)) assert.match(tag, /^SqlError/)
          assert.isAtMost(recoveryMillis, 1000)
          yield* assertQuiescentBehind(db, yield* bouncerAdmin, applicationName)
          yield* noStatementRunning(yield* adminClient)
          yield* assertServes(db)
        })
      )

      it.scoped(
        "interruption storm: random timeouts on 30 % of calls are cancelled through PgBouncer, leak nothing",
        () =>
          Effect.gen(function* () {
            const applicationName = uniqueAppName(`bouncer-${poolMode}-storm`)
            const db = yield* makeBouncedPool({ applicationName, pooler: poolMode, minSize: 10, maxSize: 10 })
            const stop = yield* startLoad(db, {
              callers: 100,
              callBoundMillis: 30_000,
              interruptFraction: 0.3,
              random: seededRandom(testSeed(`PgBouncer ${poolMode} interruption storm`)),
              call: (db, caller) =>
                caller % 2 === 0
                  ? db.sql`SELECT pg_sleep(0.005)`
                  : db.withConnection((sql) => sql.withTransaction(sql`SELECT pg_sleep(0.003)`))
            })
            yield* realSleep(4000)
            const totals = yield* stop
            const stats = yield* db.statistics
            yield* report(`PgBouncer ${poolMode}: interruption storm`, totals, { closed: stats.connectionsClosed })
            assert.strictEqual(totals.hung, 0)
            assert.strictEqual(failedCount(totals), 0)
            assert.isAbove(totals.interrupted, 0.15 * (totals.ok + totals.interrupted))
            yield* assertQuiescentBehind(db, yield* bouncerAdmin, applicationName)
            yield* noStatementRunning(yield* adminClient)
            yield* assertServes(db)
          })
      )
    }
  )
}

// PgBouncer's own connection limit: its refusal at login (08P01 "no more connections allowed (max_client_conn)") is
// an outage to back off from, not a configuration error.
layer(
  PgBouncer.layer({ poolMode: "transaction", maxClientConn: 5, settings: { server_login_retry: 1 } }).pipe(
    Layer.provideMerge(PgTestServer.layer)
  ),
  { timeout: 60_000, excludeTestServices: true }
)("PgBouncer's max_client_conn reached", (it) => {
  it.scoped("an eager start backs off and succeeds once PgBouncer has room again", () =>
    Effect.gen(function* () {
      const holders = yield* Effect.forEach(Array.from({ length: 5 }), () =>
        Effect.flatMap(Scope.make(), (scope) =>
          Effect.map(Scope.extend(bouncedClient(uniqueAppName("holder")), scope), () => scope)
        )
      )
      const applicationName = uniqueAppName("bouncer-max-client-conn")
      const starting = yield* Effect.fork(
        makeBouncedPool({ applicationName, minSize: 1, maxSize: 10, reconnect: { initialDelay: "500 millis" } })
      )
      yield* realSleep(1200)
      yield* Scope.close(holders[0]!, Exit.void)
      const exit = yield* Fiber.join(starting).pipe(Effect.exit)
      assert.isTrue(Exit.isSuccess(exit), `the pool started: ${Exit.isFailure(exit) ? String(exit.cause) : ""}`)
      if (Exit.isSuccess(exit)) {
        const db = exit.value
        assert.isAtLeast((yield* db.statistics).reconnectAttempts, 1)
        const rows = yield* db.sql<{ n: number }>`SELECT 1 AS n`
        assert.strictEqual(rows[0]!.n, 1)
      }
      yield* Effect.forEach(holders.slice(1), (scope) => Scope.close(scope, Exit.void))
    })
  )
})
