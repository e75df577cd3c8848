/**
 * Behind PgBouncer in transaction mode (a server connection per transaction; PgBouncer here has 2 for the pool's
 * 10): what works — statements with parameters (`prepare` is off unless asked for: a statement named on one server
 * connection would be executed on another), transactions, streams, cancellation — and what `pooler: "transaction"`
 * must refuse because it would silently misbehave: LISTEN (the server connection that LISTENs goes back to
 * PgBouncer's pool and its notifications are lost) and session-level SET (it stays on a server connection that other
 * clients get next). The reset on release runs no session statement on PgBouncer's server connections.
 */
import { Db, PoolConfig } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option, Redacted, Stream } from "effect"
import { Reactivity } from "effect/reactivity"
import { afterAll, beforeAll } from "vitest"
import {
  type Bouncer,
  cancelFiveTimes,
  connect,
  eventually,
  makeBounced,
  queryOn,
  startBouncer
} from "./utils/pgbouncer.js"
import { uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
let bouncer: Bouncer
beforeAll(async () => {
  server = await startServer()
  bouncer = await startBouncer(server, "transaction", { poolSize: 2 })
})
afterAll(async () => {
  await bouncer?.close()
  await server?.close()
})

const POOL = { pooler: "transaction", minSize: 2, maxSize: 10 } as const

const failureOf = <A, E>(exit: Exit.Exit<A, E>) => Option.getOrUndefined(Exit.findErrorOption(exit))

/** A refusal is a typed SqlError that names the setting that asks for it and the way out. */
const assertRefusal = (error: unknown, statement: RegExp) => {
  assert.strictEqual((error as { _tag?: string })?._tag, "SqlError", String(error))
  const message = String((error as { message?: string }).message)
  assert.match(message, statement)
  assert.match(message, /transaction/)
  assert.match(message, /pooler=/)
}

describe("behind PgBouncer in transaction mode", () => {
  it.live("statements with parameters need no named prepared statement: 100 callers, 2 server connections", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, { applicationName: uniqueAppName("tx-params"), ...POOL })
      // three texts, each run five times by every caller, in a transaction (where a statement named on another
      // server connection cannot be parsed again: the transaction is aborted) and outside one
      const caller = (i: number) =>
        Effect.forEach([0, 1, 2, 3, 4], (round) =>
          (round % 2 === 0 ? db.sql.withTransaction : <A, E, R>(effect: Effect.Effect<A, E, R>) => effect)(
            Effect.all([
              db.sql<{ n: number }>`SELECT ${i}::int AS n, pg_sleep(0.001)`,
              db.sql<{ n: number }>`SELECT ${i}::int AS n`,
              db.sql<{ n: number }>`SELECT ${i}::int + ${0}::int AS n`
            ])
          )
        )
      const exits = yield* Effect.all(
        Array.from({ length: 100 }, (_, i) => Effect.exit(caller(i))),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(
        exits.map((exit) =>
          Exit.isSuccess(exit)
            ? exit.value.flat().every(([row]) => row!.n === exit.value[0]![0][0]!.n)
            : String(failureOf(exit)?.message)
        ),
        Array.from({ length: 100 }, () => true)
      )
    }).pipe(Effect.scoped)
  )

  it.live("a statement run outside a transaction runs again inside one on another server connection", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, {
        applicationName: uniqueAppName("tx-named"),
        pooler: "transaction",
        minSize: 1,
        maxSize: 1
      })
      const select = (n: number) => db.sql<{ n: number }>`SELECT ${n}::int AS n`
      yield* select(1)
      // another client's open transaction holds the server connection that ran it (PgBouncer lends the most
      // recently used one first), so the pool's transaction runs on the other
      const other = yield* connect(bouncer.url)
      yield* other.query("BEGIN", [], false)
      yield* other.query("SELECT 1", [], false)
      const rows = yield* db.sql.withTransaction(select(2))
      yield* other.query("COMMIT", [], false)
      assert.strictEqual(rows[0]!.n, 2)
    }).pipe(Effect.scoped)
  )

  it.live("multiplexed autocommit statements pipeline through PgBouncer: 100 callers on one session", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, {
        applicationName: uniqueAppName("tx-multiplex"),
        pooler: "transaction",
        minSize: 1,
        maxSize: 1,
        multiplex: true
      })
      const exits = yield* Effect.all(
        Array.from({ length: 100 }, (_, i) => Effect.exit(db.sql<{ n: number }>`SELECT ${i}::int AS n`)),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(
        exits.map((exit) => (Exit.isSuccess(exit) ? exit.value[0]!.n : String(failureOf(exit)?.message))),
        Array.from({ length: 100 }, (_, i) => i)
      )
      assert.strictEqual((yield* db.statistics).connectionsCreated, 1)
    }).pipe(Effect.scoped)
  )

  it.live("streams outside a transaction keep their server connection to the end: 6 on 2", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, { applicationName: uniqueAppName("tx-stream"), ...POOL })
      const sizes = yield* Effect.all(
        Array.from({ length: 6 }, () => Stream.runCount(db.sql`SELECT generate_series(1, 5000) AS n`.stream)),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(sizes, [5000, 5000, 5000, 5000, 5000, 5000])
    }).pipe(Effect.scoped)
  )

  it.live("a transaction runs on one server connection and commits or rolls back as a whole", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, { applicationName: uniqueAppName("tx-atomic"), ...POOL })
      yield* db.sql`CREATE TABLE IF NOT EXISTS bounced_tx (caller int)`
      const samePid = yield* Effect.all(
        Array.from({ length: 20 }, (_, caller) =>
          db.sql
            .withTransaction(
              Effect.gen(function* () {
                const [a] = yield* db.sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
                yield* db.sql`INSERT INTO bounced_tx VALUES (${caller})`
                yield* db.sql`SELECT pg_sleep(0.005)`
                const [b] = yield* db.sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
                if (caller % 2 === 1) return yield* Effect.fail("roll back")
                return a!.pid === b!.pid
              })
            )
            .pipe(Effect.catch(() => Effect.succeed(true)))
        ),
        { concurrency: "unbounded" }
      )
      assert.isTrue(samePid.every(Boolean))
      const rows = yield* db.sql<{ caller: number }>`SELECT caller FROM bounced_tx ORDER BY caller`
      assert.deepStrictEqual(
        rows.map((r) => r.caller),
        Array.from({ length: 10 }, (_, i) => 2 * i)
      )
    }).pipe(Effect.scoped)
  )

  it.live("interrupted statements are cancelled on the server through PgBouncer, their connection kept", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, {
        applicationName: uniqueAppName("tx-cancel"),
        pooler: "transaction",
        minSize: 1,
        maxSize: 1
      })
      yield* cancelFiveTimes(db, server)
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsClosed.cancel + stats.connectionsClosed.reset, 0)
      assert.isTrue(yield* Effect.promise(() => bouncer.isRunning()), "PgBouncer survived the cancels")
    }).pipe(Effect.scoped)
  )

  it.live("LISTEN is refused with a typed error that says to LISTEN on a direct connection", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, { applicationName: uniqueAppName("tx-listen"), ...POOL })
      // without the refusal the listener waits forever: its notifications go to PgBouncer's idle server connection
      const bounded = <A, E>(effect: Effect.Effect<A, E>) =>
        effect.pipe(Effect.timeoutOrElse({ duration: 5_000, orElse: () => Effect.fail("no answer") }), Effect.exit)
      const pooled = yield* bounded(Effect.scoped(db.sql.listen("bounced_tx_events")))
      assertRefusal(failureOf(pooled), /LISTEN/)
      assert.match(String(failureOf(pooled)?.toString()), /direct/)
      const held = yield* bounded(db.withConnection((sql) => Effect.scoped(sql.listen("bounced_tx_events"))))
      assertRefusal(failureOf(held), /LISTEN/)
      const statement = yield* bounded(db.sql`LISTEN bounced_tx_events`)
      assertRefusal(failureOf(statement), /LISTEN/)
    }).pipe(Effect.scoped)
  )

  it.live("session-level SET is refused, nothing leaks to other clients; SET LOCAL in a transaction works", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, { applicationName: uniqueAppName("tx-set"), ...POOL })
      const exit = yield* Effect.exit(db.sql`SET statement_timeout = 1234`)
      assertRefusal(failureOf(exit), /SET LOCAL/)
      const held = yield* Effect.exit(db.withConnection((sql) => sql`RESET ALL`))
      assertRefusal(failureOf(held), /RESET/)
      const other = yield* connect(bouncer.url)
      const seen = yield* Effect.forEach(Array.from({ length: 4 }), () =>
        Effect.map(
          other.query("SELECT current_setting('statement_timeout') AS t", [], false),
          (result) => result.rows[0]!.t
        )
      )
      assert.deepStrictEqual(seen, ["0", "0", "0", "0"])
      const local = yield* db.sql.withTransaction(
        Effect.andThen(
          db.sql`SET LOCAL statement_timeout = 1234`,
          db.sql<{ t: string }>`SELECT current_setting('statement_timeout') AS t`
        )
      )
      assert.strictEqual(local[0]!.t, "1234ms")
    }).pipe(Effect.scoped)
  )

  it.live("an onConnect hook that sets session state fails the start with the refusal, not a silent SET", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        makeBounced(bouncer, {
          ...POOL,
          reconnect: { initialDelay: "100 millis", initialAttempts: 1 },
          onConnect: (sql) => sql`SET search_path = public`
        }).pipe(Effect.scoped)
      )
      const error = failureOf(exit as Exit.Exit<unknown, unknown>)
      assert.strictEqual((error as { _tag?: string })?._tag, "DatabaseUnreachable", String(exit))
      assert.match(String((error as { lastCause?: string }).lastCause), /SET would change.*pooler=transaction/)
    })
  )

  it.live("the reset on release runs no session statement on PgBouncer's server connections", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, {
        applicationName: uniqueAppName("tx-reset"),
        pooler: "transaction",
        minSize: 1,
        maxSize: 1
      })
      // an idle backend's `query` is the last statement it ran: none may be the reset's
      const resetsSeen = Effect.gen(function* () {
        yield* eventually(
          "the released session is idle again",
          Effect.map(db.statistics, (s) => s.total === 1 && s.idle === 1)
        )
        const last = yield* queryOn<{ query: string }>(
          server.url,
          "SELECT query FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return last.map((row) => row.query).filter((query) => /^(RESET|DISCARD|UNLISTEN|CLOSE ALL|SET)/.test(query))
      })
      // a statement that may leave session state (a temp table) marks the checkout for the reset on release
      yield* db.withConnection((sql) => sql`CREATE TEMP TABLE IF NOT EXISTS bounced_temp (n int)`)
      assert.deepStrictEqual(yield* resetsSeen, [])
      // an interrupted statement too
      yield* Effect.exit(db.sql`SELECT pg_sleep(0.5)`.pipe(Effect.timeout("50 millis")))
      assert.deepStrictEqual(yield* resetsSeen, [])
      const rows = yield* db.sql<{ n: number }>`SELECT 1 AS n`
      assert.strictEqual(rows[0]!.n, 1)
      assert.strictEqual((yield* db.statistics).connectionsClosed.reset, 0)
    }).pipe(Effect.scoped)
  )
})

describe("the pooler setting", () => {
  it.effect("is kept with the name it was given, from code or from the environment", () =>
    Effect.gen(function* () {
      const config = yield* PoolConfig.make({ url: "postgres://app@pgbouncer:6432/app", pooler: "transaction" })
      assert.deepStrictEqual([config.pooler, config.poolerSetting], ["transaction", "pooler"])
      const saved = { ...process.env }
      process.env.DATABASE_URL = "postgres://app@pgbouncer:6432/app"
      process.env.DB_POOL_POOLER = "session"
      const fromEnv = yield* Effect.exit(PoolConfig.fromEnv)
      process.env = saved
      assert.isTrue(Exit.isSuccess(fromEnv), String(fromEnv))
      if (Exit.isSuccess(fromEnv)) {
        assert.deepStrictEqual([fromEnv.value.pooler, fromEnv.value.poolerSetting], ["session", "DB_POOL_POOLER"])
      }
      assert.strictEqual((yield* PoolConfig.make({ url: "postgres://app@db/app" })).pooler, "none")
    })
  )

  it.effect("refuses what a transaction pooler cannot honour: reset always, a statement timeout at startup", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Db.make({
          url: Redacted.make("postgres://app@pgbouncer:6432/app"),
          pooler: "transaction",
          reset: "always",
          statementTimeout: "5 seconds"
        }).pipe(Effect.scoped)
      )
      const message = String(failureOf(exit as Exit.Exit<unknown, unknown>))
      assert.match(message, /reset.*cannot be honoured with pooler \(transaction\)/)
      assert.match(message, /statementTimeout.*cannot be sent through PgBouncer/)
    }).pipe(Effect.provide(Reactivity.layer))
  )
})
