/**
 * The fault suite through PgBouncer, in session and in transaction mode: the server crashes behind PgBouncer, its
 * server connections are terminated, PgBouncer itself is killed and restarted, and 30 % of the calls are
 * interrupted. Every call succeeded or failed with a typed error within its bound (only what was in flight at the
 * fault fails), nothing leaked (this process holds exactly the pool's connections to PgBouncer, the server runs no
 * statement of ours), nothing hung, nothing crashed, and the pool recovered. Then PgBouncer's own refusals: its
 * connection limit is an outage to wait out, an unknown database a rejection that no retry can fix.
 */
import { Db, PoolError } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Logger, Option, Redacted, Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import { afterAll, beforeAll } from "vitest"
import {
  assertQuiescentBehind,
  assertServes,
  type Bouncer,
  connect,
  eventually,
  failedCount,
  makeBounced,
  queryOn,
  realSleep,
  report,
  runningStatements,
  seededRandom,
  startBouncer,
  startLoad
} from "./utils/pgbouncer.js"
import { uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
const bouncers: Partial<Record<"session" | "transaction", Bouncer>> = {}
beforeAll(async () => {
  server = await startServer()
  bouncers.session = await startBouncer(server, "session")
  bouncers.transaction = await startBouncer(server, "transaction")
})
afterAll(async () => {
  await bouncers.session?.close()
  await bouncers.transaction?.close()
  await server?.close()
})

const select = (db: Db.Service) => db.sql`SELECT pg_sleep(0.001)`

/** No statement left running on the server (a lost cancel would leave one). */
const noStatementRunning = eventually(
  "the server runs no statement of the pool",
  Effect.map(
    Effect.suspend(() => runningStatements(server)),
    (n) => n === 0
  ),
  20_000
)

const recoveryAfter = (okTimes: ReadonlyArray<number>, upAt: number) => {
  const firstOk = okTimes.find((t) => t >= upAt)
  return firstOk === undefined ? Number.POSITIVE_INFINITY : firstOk - upAt
}

for (const poolMode of ["session", "transaction"] as const) {
  describe(`fault suite through PgBouncer in ${poolMode} mode (100 callers, maxSize 10)`, () => {
    const pool = (label: string) => ({
      applicationName: uniqueAppName(`bouncer-${poolMode}-${label}`),
      pooler: poolMode,
      minSize: 10,
      maxSize: 10,
      acquireTimeout: "20 seconds"
    })

    it.live(
      "the server crashes behind PgBouncer for 3 s: only in-flight calls fail, then it serves",
      () =>
        Effect.gen(function* () {
          const bouncer = bouncers[poolMode]!
          const db = yield* makeBounced(bouncer, pool("crash"))
          const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 40_000, call: select })
          yield* realSleep(1000)
          yield* Effect.promise(() => server.stop({ mode: "immediate" }))
          yield* realSleep(3000)
          yield* Effect.promise(() => server.start())
          const upAt = Date.now()
          yield* realSleep(2500)
          const totals = yield* stop
          const recoveryMillis = recoveryAfter(totals.okTimes, upAt)
          yield* report(`PgBouncer ${poolMode}: server crashed 3 s`, totals, { recoveryMillis })
          assert.strictEqual(totals.hung, 0)
          // what was in flight: at most one statement per connection, and one sent before the close arrived
          assert.isAtMost(failedCount(totals), 20, JSON.stringify(totals.failed))
          for (const tag of Object.keys(totals.failed)) assert.match(tag, /^SqlError/)
          // PgBouncer retries its server login every second (server_login_retry = 1)
          assert.isAtMost(recoveryMillis, 2500)
          yield* assertQuiescentBehind(db, bouncer)
          yield* noStatementRunning
          yield* assertServes(db)
        }).pipe(Effect.scoped),
      120_000
    )

    it.live(
      "pg_terminate_backend of every server connection under load",
      () =>
        Effect.gen(function* () {
          const bouncer = bouncers[poolMode]!
          const db = yield* makeBounced(bouncer, pool("terminate"))
          const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 30_000, call: select })
          yield* realSleep(500)
          for (let i = 0; i < 3; i++) {
            // PgBouncer's server connections: every client backend but the referee's
            yield* queryOn(
              server.url,
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            yield* realSleep(700)
          }
          const totals = yield* stop
          yield* report(`PgBouncer ${poolMode}: pg_terminate_backend ×3`, totals)
          assert.strictEqual(totals.hung, 0)
          assert.isAtMost(failedCount(totals), 60, JSON.stringify(totals.failed))
          for (const tag of Object.keys(totals.failed)) assert.match(tag, /^SqlError/)
          assert.isAbove(totals.ok, 100)
          yield* assertQuiescentBehind(db, bouncer)
          yield* noStatementRunning
          yield* assertServes(db)
        }).pipe(Effect.scoped),
      120_000
    )

    it.live(
      "PgBouncer killed for 2 s and restarted: only in-flight calls fail, the pool reconnects",
      () =>
        Effect.gen(function* () {
          const bouncer = bouncers[poolMode]!
          const db = yield* makeBounced(bouncer, pool("kill"))
          const stop = yield* startLoad(db, { callers: 100, callBoundMillis: 40_000, call: select })
          yield* realSleep(1000)
          yield* Effect.promise(() => bouncer.kill())
          yield* realSleep(2000)
          const attemptsWhileDown = (yield* db.statistics).reconnectAttempts
          yield* Effect.promise(() => bouncer.start())
          const upAt = Date.now()
          yield* realSleep(2000)
          const totals = yield* stop
          const recoveryMillis = recoveryAfter(totals.okTimes, upAt)
          yield* report(`PgBouncer ${poolMode}: PgBouncer killed 2 s`, totals, { recoveryMillis, attemptsWhileDown })
          assert.strictEqual(totals.hung, 0)
          assert.isAtMost(failedCount(totals), 20, JSON.stringify(totals.failed))
          for (const tag of Object.keys(totals.failed)) assert.match(tag, /^SqlError/)
          assert.isAtMost(recoveryMillis, 1500)
          yield* assertQuiescentBehind(db, bouncer)
          yield* noStatementRunning
          yield* assertServes(db)
        }).pipe(Effect.scoped),
      120_000
    )

    it.live(
      "interruption storm: random timeouts on 30 % of calls are cancelled through PgBouncer, leak nothing",
      () => {
        const seed = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000)
        return Effect.gen(function* () {
          const bouncer = bouncers[poolMode]!
          const db = yield* makeBounced(bouncer, pool("storm"))
          const stop = yield* startLoad(db, {
            callers: 100,
            callBoundMillis: 30_000,
            interruptFraction: 0.3,
            random: seededRandom(seed),
            call: (db, caller) =>
              caller % 2 === 0
                ? db.sql`SELECT pg_sleep(0.005)`
                : db.withConnection((sql) => sql.withTransaction(sql`SELECT pg_sleep(0.003)`))
          })
          yield* realSleep(4000)
          const totals = yield* stop
          const stats = yield* db.statistics
          yield* report(`PgBouncer ${poolMode}: interruption storm (TEST_SEED=${seed})`, totals, {
            closed: stats.connectionsClosed
          })
          assert.strictEqual(totals.hung, 0)
          assert.strictEqual(failedCount(totals), 0, JSON.stringify(totals.failed))
          assert.isAbove(totals.interrupted, 0.15 * (totals.ok + totals.interrupted))
          yield* assertQuiescentBehind(db, bouncer)
          yield* noStatementRunning
          yield* assertServes(db)
        }).pipe(Effect.scoped)
      },
      120_000
    )
  })
}

describe("PgBouncer's own refusals", () => {
  // its refusal at login (08P01 "no more connections allowed (max_client_conn)") is an outage to back off from
  it.live(
    "max_client_conn reached: an eager start backs off and succeeds once PgBouncer has room again",
    () =>
      Effect.gen(function* () {
        const bouncer = yield* Effect.acquireRelease(
          Effect.promise(() => startBouncer(server, "transaction", { maxClientConn: 5 })),
          (bouncer) => Effect.promise(() => bouncer.close())
        )
        const holders = yield* Effect.forEach(Array.from({ length: 5 }), () =>
          Effect.flatMap(Scope.make(), (scope) => Effect.as(Scope.provide(connect(bouncer.url), scope), scope))
        )
        const starting = yield* Effect.forkChild(
          Effect.scoped(
            Effect.gen(function* () {
              const db = yield* makeBounced(bouncer, {
                applicationName: uniqueAppName("bouncer-max-client-conn"),
                pooler: "transaction",
                minSize: 1,
                maxSize: 10,
                reconnect: { initialDelay: "300 millis", maxDelay: "1 second" }
              })
              const rows = yield* db.sql<{ n: number }>`SELECT 1 AS n`
              return { n: rows[0]!.n, attempts: (yield* db.statistics).reconnectAttempts }
            })
          )
        )
        yield* realSleep(1200)
        yield* Scope.close(holders[0]!, Exit.void)
        const exit = yield* Effect.exit(Fiber.join(starting))
        assert.isTrue(Exit.isSuccess(exit), `the pool started: ${String(exit)}`)
        if (Exit.isSuccess(exit)) {
          assert.strictEqual(exit.value.n, 1)
          assert.isAtLeast(exit.value.attempts, 1)
        }
        yield* Effect.forEach(holders.slice(1), (scope) => Scope.close(scope, Exit.void))
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("an unknown database is a rejection: the eager start fails at once, not after the retries", () =>
    Effect.gen(function* () {
      const bouncer = bouncers.transaction!
      const url = bouncer.url.replace(/\/[^/]*$/, "/no_such_database")
      const exit = yield* Effect.exit(
        Db.make({
          url: Redacted.make(url),
          pooler: "transaction",
          reconnect: { initialDelay: "500 millis", initialAttempts: 5 }
        }).pipe(Effect.scoped, Effect.provide(Reactivity.layer), Effect.provide(Logger.layer([])))
      )
      const error = Option.getOrUndefined(Exit.findErrorOption(exit))
      assert.instanceOf(error, PoolError.ConnectionRejected, String(exit))
      assert.strictEqual((error as PoolError.ConnectionRejected).attempts, 1)
    })
  )

  it.live("a startup parameter PgBouncer does not track is a rejection whose remedy says to set it on the server", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        makeBounced(bouncers.transaction!, {
          pooler: "transaction",
          startupParameters: { search_path: "app" },
          reconnect: { initialDelay: "500 millis", initialAttempts: 5 }
        }).pipe(Effect.scoped)
      )
      const error = Option.getOrUndefined(Exit.findErrorOption(exit))
      assert.instanceOf(error, PoolError.ConnectionRejected, String(exit))
      const rejected = error as PoolError.ConnectionRejected
      assert.strictEqual(rejected.attempts, 1)
      assert.match(rejected.serverMessage, /unsupported startup parameter/)
      assert.match(rejected.remedy, /ALTER ROLE/)
    })
  )
})
