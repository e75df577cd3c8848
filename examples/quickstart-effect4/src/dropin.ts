import { Db } from "@effect-pg-pool/effect4"
import { PgClient } from "@effect/sql-pg"
import { Effect, type Redacted } from "effect"
import { SqlClient } from "effect/sql"

// written for @effect/sql-pg 4: nothing in it knows which layer provides SqlClient
export const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS todos (id serial PRIMARY KEY, title text NOT NULL, done boolean NOT NULL)`
  yield* sql`TRUNCATE todos RESTART IDENTITY`
  yield* sql`INSERT INTO todos ${sql.insert([
    { title: "write", done: false },
    { title: "test", done: false }
  ])}`
  // a transaction that fails half way leaves nothing behind
  const failed = yield* sql.withTransaction(Effect.andThen(sql`UPDATE todos SET done = true`, sql`SELECT 1 / 0`)).pipe(
    Effect.flip,
    Effect.map((error) => error.reason._tag)
  )
  const todos = yield* sql<{ title: string; done: boolean }>`SELECT title, done FROM todos ORDER BY id`
  return { failed, todos }
})

// before
export const SqlLive = (url: Redacted.Redacted) => PgClient.layer({ url, maxConnections: 10 })
// after: the same options, the same services (SqlClient, PgClient), plus Db
export const DbLive = (url: Redacted.Redacted) => Db.layer({ url, maxConnections: 10 })
