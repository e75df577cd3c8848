/**
 * Behind PgBouncer in transaction mode (a server connection per transaction; PgBouncer here has 2 for the pool's 10):
 * what works — statements with parameters (the pool names no prepared statement), transactions, cancellation —
 * and what `pooler: "transaction"` must refuse because it would silently misbehave: LISTEN (the server connection
 * that LISTENs goes back to PgBouncer's pool and its notifications are lost) and session-level SET (it stays on
 * a server connection that other clients get next).
 */
import { PgBouncer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Stream } from "effect"
import { bouncedClient, bouncerEnv, makeBouncedPool, sleepingStatements } from "./pgbouncer.js"
import { adminClient, eventually, failureOf, uniqueAppName } from "./utils.js"

const POOL = { pooler: "transaction", minSize: 2, maxSize: 10 } as const

/** A refusal names the setting that asks for it and the way out. */
const assertRefusal = (error: unknown, statement: RegExp) => {
  assert.strictEqual((error as { _tag?: string })?._tag, "SqlError")
  const message = String((error as { message?: string }).message)
  assert.match(message, statement)
  assert.match(message, /transaction/)
  assert.match(message, /DB_POOL_POOLER|pooler/)
}

layer(bouncerEnv("transaction", 2), { timeout: 60_000, excludeTestServices: true })(
  "behind PgBouncer in transaction mode",
  (it) => {
    it.scoped("statements with parameters need no named prepared statement: 100 callers, 2 server connections", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({ applicationName: uniqueAppName("tx-params"), ...POOL })
        const results = yield* Effect.all(
          Array.from({ length: 100 }, (_, i) =>
            Effect.either(db.sql<{ n: number }>`SELECT ${i}::int AS n, pg_sleep(0.001)`)
          ),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(
          results.map((r) => (r._tag === "Right" ? r.right[0]!.n : String(r.left))),
          Array.from({ length: 100 }, (_, i) => i)
        )
      })
    )

    it.scoped("streams (cursors) outside a transaction keep their server connection to the end: 6 on 2", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({ applicationName: uniqueAppName("tx-stream"), ...POOL })
        const sizes = yield* Effect.all(
          Array.from({ length: 6 }, () =>
            Effect.map(Stream.runCollect(db.sql`SELECT generate_series(1, 5000) AS n`.stream), Chunk.size)
          ),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(sizes, [5000, 5000, 5000, 5000, 5000, 5000])
      })
    )

    it.scoped("a transaction runs on one server connection and commits or rolls back as a whole", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({ applicationName: uniqueAppName("tx-atomic"), ...POOL })
        yield* db.sql`CREATE TABLE IF NOT EXISTS bounced_tx (caller int)`
        const pids = yield* Effect.all(
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
              .pipe(Effect.catchAll(() => Effect.succeed(true)))
          ),
          { concurrency: "unbounded" }
        )
        assert.isTrue(pids.every(Boolean))
        const rows = yield* db.sql<{ caller: number }>`SELECT caller FROM bounced_tx ORDER BY caller`
        assert.deepStrictEqual(
          rows.map((r) => r.caller),
          Array.from({ length: 10 }, (_, i) => 2 * i)
        )
      })
    )

    it.scoped("interrupted statements are cancelled on the server through PgBouncer, their connection kept", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({
          applicationName: uniqueAppName("tx-cancel"),
          pooler: "transaction",
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
          const exit = yield* Fiber.interrupt(fiber)
          assert.isTrue(Exit.isInterrupted(exit))
          assert.strictEqual(yield* sleepingStatements(admin), 0)
        }
        const stats = yield* db.statistics
        assert.strictEqual(
          stats.connectionsClosed.cancel,
          0,
          "every cancel reached the server: the connection was kept"
        )
        assert.isTrue(yield* (yield* PgBouncer.PgBouncer).isRunning, "PgBouncer survived the cancels")
      })
    )

    it.scoped("LISTEN is refused with a typed error that says to LISTEN on a direct connection", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({
          applicationName: uniqueAppName("tx-listen"),
          ...POOL
        })
        const exit = yield* db.sql.listen("bounced_tx_events").pipe(
          Stream.runDrain,
          // without the refusal the stream waits forever: its notifications go to PgBouncer's idle server connection
          Effect.timeoutFail({ duration: 5_000, onTimeout: () => new Error("listen neither failed nor delivered") }),
          Effect.exit
        )
        assertRefusal(failureOf(exit), /LISTEN/)
        assert.match(String(failureOf(exit)), /direct/)
      })
    )

    it.scoped("session-level SET is refused, nothing leaks to other clients; SET LOCAL in a transaction works", () =>
      Effect.gen(function* () {
        const db = yield* makeBouncedPool({ applicationName: uniqueAppName("tx-set"), ...POOL })
        const other = yield* bouncedClient(uniqueAppName("tx-set-other"))
        const exit = yield* Effect.exit(db.sql`SET statement_timeout = 1234`)
        assertRefusal(failureOf(exit), /SET LOCAL/)
        const leaked = yield* Effect.promise(() =>
          Promise.all(
            Array.from({ length: 4 }, () =>
              other.query("SELECT current_setting('statement_timeout') AS t").then((r) => r.rows[0].t as string)
            )
          )
        )
        assert.deepStrictEqual(leaked, ["0", "0", "0", "0"])
        const local = yield* db.sql.withTransaction(
          Effect.zipRight(
            db.sql`SET LOCAL statement_timeout = 1234`,
            db.sql<{ t: string }>`SELECT current_setting('statement_timeout') AS t`
          )
        )
        assert.strictEqual(local[0]!.t, "1234ms")
      })
    )
  }
)
