/**
 * `PgClient.layer`'s options, each seen from the server: connection fields instead of a URL, a password given as an
 * Effect, applicationName, startupParameters and startupOptions, maxConnections, prepare and
 * preparedStatementCacheSize, and multiplex.
 *
 * Left out: spanAttributes (tracing, not seen by the server), keepAlive (TCP probes after idle time), ssl (the
 * suite's server has no certificate), idleTimeout, connectionTTL and minConnections (time-driven pool policy:
 * the pool's own suites cover them).
 */
import type * as Vitest from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Effect, Layer, Ref } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import * as PgServer from "../../support/PgServer.js"
import type { MakeLayer } from "./MakeLayer.js"

const onServer = (makeLayer: MakeLayer, f: (server: PgServer.Info) => Parameters<MakeLayer>[0]) =>
  Layer.unwrap(Effect.map(PgServer.PgServer, (server) => makeLayer(f(server))))

const distinct = <A>(values: ReadonlyArray<A>) => new Set(values).size

export const suite = (it: Vitest.Vitest.MethodsNonLive<PgServer.PgServer>, makeLayer: MakeLayer) => {
  it.layer(
    onServer(makeLayer, (server) => ({
      host: server.host,
      port: server.port,
      username: server.username,
      database: server.database,
      password: Effect.succeed(server.password),
      applicationName: "dropin-suite",
      startupParameters: { statement_timeout: "4321" },
      startupOptions: "-c lock_timeout=1234"
    })),
    { timeout: "30 seconds" }
  )("PgClient connection options", (it) => {
    it.effect("host, port, username, database and a password Effect connect", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ user: string; db: string }>`SELECT current_user AS user, current_database() AS db`
        const server = yield* PgServer.PgServer
        assert.deepStrictEqual(row, { user: server.username, db: server.database })
      })
    )

    it.effect("applicationName, startupParameters and startupOptions reach the session", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql`
          SELECT current_setting('application_name') AS app, current_setting('statement_timeout') AS st,
            current_setting('lock_timeout') AS lt`
        assert.deepStrictEqual(row, { app: "dropin-suite", st: "4321ms", lt: "1234ms" })
      })
    )
  })

  it.effect("a password Effect is evaluated for each connection", () =>
    Effect.gen(function* () {
      const server = yield* PgServer.PgServer
      const evaluations = yield* Ref.make(0)
      const password = Effect.as(
        Ref.update(evaluations, (n) => n + 1),
        server.password
      )
      const layer = makeLayer({
        host: server.host,
        port: server.port,
        username: server.username,
        database: server.database,
        password,
        maxConnections: 3
      })
      yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* Effect.all(
          [1, 2, 3].map(() => sql`SELECT pg_sleep(0.2)`),
          { concurrency: "unbounded" }
        )
      }).pipe(Effect.provide(layer))
      assert.strictEqual(yield* Ref.get(evaluations), 3)
    }).pipe(TestClock.withLive)
  )

  it.layer(
    onServer(makeLayer, (server) => ({ url: server.url, maxConnections: 2 })),
    { timeout: "30 seconds" }
  )("PgClient maxConnections", (it) => {
    it.effect("never opens more sessions than maxConnections", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const results = yield* Effect.all(
          Array.from({ length: 6 }, () => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid, pg_sleep(0.1)`),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(distinct(results.map(([row]) => row.pid)), 2)
      }).pipe(TestClock.withLive)
    )
  })

  it.layer(
    onServer(makeLayer, (server) => ({ url: server.url, prepare: false })),
    { timeout: "30 seconds" }
  )("PgClient prepare: false", (it) => {
    it.effect("no statement stays prepared on the session", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const conn = yield* sql.reserve
        yield* conn.execute("SELECT $1::int AS x", [1], undefined)
        yield* conn.execute("SELECT $1::int AS x", [2], undefined)
        const prepared = yield* conn.executeValues("SELECT count(*)::int FROM pg_prepared_statements", [])
        assert.deepStrictEqual(prepared, [[0]])
      })
    )
  })

  it.layer(
    onServer(makeLayer, (server) => ({ url: server.url, preparedStatementCacheSize: 2 })),
    { timeout: "30 seconds" }
  )("PgClient preparedStatementCacheSize", (it) => {
    it.effect("a session keeps at most that many statements prepared, and reuses them", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const conn = yield* sql.reserve
        for (const n of [1, 2, 3, 4, 5]) yield* conn.execute(`SELECT ${n} AS a`, [], undefined)
        const prepared = yield* conn.executeValues(
          "SELECT statement FROM pg_prepared_statements ORDER BY statement",
          []
        )
        // The 5th and the catalog query itself; evicted statements are closed with the next statement.
        assert.deepStrictEqual(prepared, [
          ["SELECT 5 AS a"],
          ["SELECT statement FROM pg_prepared_statements ORDER BY statement"]
        ])
      })
    )
  })

  it.layer(
    onServer(makeLayer, (server) => ({ url: server.url, multiplex: true, maxConnections: 2, multiplexConcurrency: 8 })),
    { timeout: "30 seconds" }
  )("PgClient multiplex", (it) => {
    it.effect("concurrent statements each get their own result", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const results = yield* Effect.all(
          Array.from({ length: 50 }, (_, i) => sql<{ n: number }>`SELECT ${i}::int AS n`),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(
          results.map(([row]) => row.n),
          Array.from({ length: 50 }, (_, i) => i)
        )
      })
    )

    it.effect("transactions stay exclusive while other statements run", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE mux_tx (n int)`
        const [, others] = yield* Effect.all(
          [
            Effect.ignore(
              sql.withTransaction(
                Effect.gen(function* () {
                  yield* sql`INSERT INTO mux_tx VALUES (1)`
                  yield* sql`SELECT pg_sleep(0.1)`
                  return yield* Effect.fail("roll back")
                })
              )
            ),
            Effect.all(
              Array.from({ length: 20 }, () => sql<{ count: number }>`SELECT count(*)::int AS count FROM mux_tx`),
              { concurrency: "unbounded" }
            )
          ],
          { concurrency: "unbounded" }
        )
        // Outside the transaction its uncommitted row is never seen, and after the rollback it is gone.
        for (const [row] of others) assert.strictEqual(row.count, 0)
        assert.deepStrictEqual(yield* sql`SELECT count(*)::int AS count FROM mux_tx`, [{ count: 0 }])
      }).pipe(TestClock.withLive)
    )
  })
}
