/**
 * Behind PgBouncer in session mode the pool works as direct: queries, named prepared statements, transactions, one
 * backend per `withConnection` with its session state, the reset on release, LISTEN/NOTIFY, and an interrupted
 * statement cancelled on the server (PgBouncer forwards the CancelRequest).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { afterAll, beforeAll } from "vitest"
import { type Bouncer, cancelFiveTimes, makeBounced, startBouncer } from "./utils/pgbouncer.js"
import { uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
let bouncer: Bouncer
beforeAll(async () => {
  server = await startServer()
  bouncer = await startBouncer(server, "session")
})
afterAll(async () => {
  await bouncer?.close()
  await server?.close()
})

describe("behind PgBouncer in session mode", () => {
  it.live("queries with parameters and transactions commit and roll back", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, {
        applicationName: uniqueAppName("session-tx"),
        pooler: "session",
        minSize: 1,
        maxSize: 4
      })
      const rows = yield* db.sql<{ n: number }>`SELECT ${41}::int + 1 AS n`
      assert.strictEqual(rows[0]!.n, 42)
      yield* db.sql`CREATE TABLE IF NOT EXISTS bounced_session (n int)`
      yield* db.sql.withTransaction(db.sql`INSERT INTO bounced_session VALUES (1)`)
      yield* db.sql
        .withTransaction(Effect.andThen(db.sql`INSERT INTO bounced_session VALUES (2)`, Effect.fail("abort")))
        .pipe(Effect.ignore)
      const stored = yield* db.sql<{ n: number }>`SELECT n FROM bounced_session ORDER BY n`
      assert.deepStrictEqual(
        stored.map((r) => r.n),
        [1]
      )
    }).pipe(Effect.scoped)
  )

  it.live("statements stay named (prepared once per session): the server sees them as prepared", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, {
        applicationName: uniqueAppName("session-prepared"),
        pooler: "session",
        minSize: 1,
        maxSize: 1
      })
      const prepared = yield* db.withConnection((sql) =>
        Effect.gen(function* () {
          yield* sql`SELECT ${1}::int AS n`
          yield* sql`SELECT ${2}::int AS n`
          return yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_prepared_statements
            WHERE statement = 'SELECT $1::int AS n'`
        })
      )
      assert.strictEqual(prepared[0]!.n, 1)
    }).pipe(Effect.scoped)
  )

  it.live("withConnection keeps one backend and its session state; the next holder gets it reset", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, {
        applicationName: uniqueAppName("session-reset"),
        pooler: "session",
        minSize: 1,
        maxSize: 1
      })
      const seen = yield* db.withConnection((sql) =>
        Effect.gen(function* () {
          const [a] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
          yield* sql`SET statement_timeout = 1234`
          yield* sql`CREATE TEMP TABLE bounced_temp (n int)`
          const [b] = yield* sql<{ pid: number; timeout: string }>`
            SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS timeout`
          return { samePid: a!.pid === b!.pid, timeout: b!.timeout }
        })
      )
      assert.deepStrictEqual(seen, { samePid: true, timeout: "1234ms" })
      const [next] = yield* db.sql<{ timeout: string; temp: boolean }>`
        SELECT current_setting('statement_timeout') AS timeout,
          to_regclass('pg_temp.bounced_temp') IS NOT NULL AS temp`
      assert.deepStrictEqual(next, { timeout: "0", temp: false })
    }).pipe(Effect.scoped)
  )

  it.live("LISTEN/NOTIFY delivers through PgBouncer", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, {
        applicationName: uniqueAppName("session-listen"),
        pooler: "session",
        minSize: 1,
        maxSize: 2
      })
      const queue = yield* db.sql.listen("bounced_events")
      yield* db.sql.notify("bounced_events", "hello")
      const notification = yield* Queue.take(queue).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(notification.payload, "hello")
      const held = yield* db.withConnection((sql) =>
        Effect.scoped(
          Effect.gen(function* () {
            const own = yield* sql.listen("bounced_held")
            yield* db.sql.notify("bounced_held", "again")
            return yield* Queue.take(own).pipe(Effect.timeout("5 seconds"))
          })
        )
      )
      assert.strictEqual(held.payload, "again")
    }).pipe(Effect.scoped)
  )

  it.live("interrupted statements are cancelled on the server and their connection serves the next caller", () =>
    Effect.gen(function* () {
      const db = yield* makeBounced(bouncer, {
        applicationName: uniqueAppName("session-cancel"),
        pooler: "session",
        minSize: 1,
        maxSize: 1
      })
      yield* cancelFiveTimes(db, server)
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsClosed.cancel + stats.connectionsClosed.broken, 0)
    }).pipe(Effect.scoped)
  )
})
