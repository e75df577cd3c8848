/**
 * Behind PgBouncer in session mode the pool works as direct: queries, transactions, one backend per
 * `withConnection` with its session state, the reset on release, LISTEN/NOTIFY, and an interrupted statement
 * cancelled on the server (PgBouncer forwards the CancelRequest).
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import { bouncerEnv, makeBouncedPool, sleepingStatements } from "./pgbouncer.js"
import { adminClient, eventually, realSleep, uniqueAppName } from "./utils.js"

layer(bouncerEnv("session"), { timeout: 60_000, excludeTestServices: true })(
  "behind PgBouncer in session mode",
  (it) => {
    it.scoped("queries with parameters and transactions commit and roll back", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({
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
          .withTransaction(Effect.zipRight(db.sql`INSERT INTO bounced_session VALUES (2)`, Effect.fail("abort")))
          .pipe(Effect.ignore)
        const stored = yield* db.sql<{ n: number }>`SELECT n FROM bounced_session ORDER BY n`
        assert.deepStrictEqual(
          stored.map((r) => r.n),
          [1]
        )
      })
    )

    it.scoped("withConnection keeps one backend and its session state; the next holder gets it reset", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({
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
        SELECT current_setting('statement_timeout') AS timeout, to_regclass('pg_temp.bounced_temp') IS NOT NULL AS temp`
        assert.deepStrictEqual(next, { timeout: "0", temp: false })
      })
    )

    it.scoped("LISTEN/NOTIFY delivers through PgBouncer", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({
          applicationName: uniqueAppName("session-listen"),
          pooler: "session",
          minSize: 1,
          maxSize: 2
        })
        const received: Array<string> = []
        yield* Effect.forkScoped(
          db.sql.listen("bounced_events").pipe(
            Stream.tap((payload) => Effect.sync(() => received.push(payload))),
            Stream.runDrain
          )
        )
        yield* eventually(
          "a notification arrives",
          Effect.zipRight(
            Effect.ignore(db.sql.notify("bounced_events", "hello")),
            Effect.zipRight(
              realSleep(50),
              Effect.sync(() => received.includes("hello"))
            )
          ),
          10_000
        )
      })
    )

    it.scoped("interrupted statements are cancelled on the server and their connection serves the next caller", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({
          applicationName: uniqueAppName("session-cancel"),
          pooler: "session",
          minSize: 1,
          maxSize: 1,
          cancelTimeout: "1 second"
        })
        const admin = yield* adminClient
        // PgBouncer drops a CancelRequest whose socket it sees half-closed before it has forwarded it: a race,
        // hence five of them
        for (let i = 0; i < 5; i++) {
          const fiber = yield* Effect.fork(db.sql`SELECT pg_sleep(30)`)
          yield* eventually(
            "the statement runs on the server",
            Effect.map(sleepingStatements(admin), (n) => n === 1)
          )
          yield* Fiber.interrupt(fiber)
          assert.strictEqual(yield* sleepingStatements(admin), 0)
          const rows = yield* db.sql<{ n: number }>`SELECT 1 AS n`
          assert.strictEqual(rows[0]!.n, 1)
        }
        const stats = yield* db.statistics
        assert.strictEqual(stats.connectionsClosed.cancel + stats.connectionsClosed.broken, 0)
      })
    )
  }
)
