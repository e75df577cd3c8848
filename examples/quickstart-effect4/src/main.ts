import { DatabaseLive, Db } from "@effect-pg-pool/effect4"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { SqlClient } from "effect/sql"

const program = Effect.gen(function* () {
  // everything effect/sql offers, on the pool
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS greetings (id serial PRIMARY KEY, name text NOT NULL)`
  yield* sql.withTransaction(sql`INSERT INTO greetings ${sql.insert({ name: "world" })}`)
  // one physical connection for several statements (session state, temp tables, advisory locks)
  const rows = yield* Db.withConnection((sql) =>
    Effect.gen(function* () {
      yield* sql`SET statement_timeout = 1000`
      return yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM greetings`
    })
  )
  const stats = yield* Db.statistics // PoolStatistics snapshot, no I/O
  const health = yield* Db.health // HealthStatus, never waits on the pool
  yield* Console.log(`greetings: ${rows[0]!.count}, connections: ${stats.total}, health: ${health.status}`)
})

// DatabaseLive reads DATABASE_URL and the DB_POOL_* variables; runMain closes the pool on exit and on Ctrl-C
program.pipe(Effect.provide(DatabaseLive), NodeRuntime.runMain)
