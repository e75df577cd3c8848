import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Queue, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { dbLayer } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

const env = () => dbLayer(server, { minSize: 1, maxSize: 3 })

describe("SqlClient and PgClient on the pool", () => {
  it.live("runs tagged templates with helpers, and transforms names", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE IF NOT EXISTS e4_people (id serial PRIMARY KEY, first_name text NOT NULL)`
      yield* sql`TRUNCATE e4_people`
      yield* sql`INSERT INTO e4_people ${sql.insert([{ first_name: "Ada" }, { first_name: "Grace" }])}`
      const rows = yield* sql<{
        first_name: string
      }>`SELECT first_name FROM e4_people WHERE ${sql.in("first_name", ["Ada"])}`
      assert.deepStrictEqual(rows, [{ first_name: "Ada" }])
      const values = yield* sql`SELECT first_name FROM e4_people ORDER BY id`.values
      assert.deepStrictEqual(values, [["Ada"], ["Grace"]])
      assert.strictEqual(sql.driver, "pg")
    }).pipe(Effect.provide(env()))
  )

  it.live("commits, rolls back on failure, and nests with savepoints", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE IF NOT EXISTS e4_tx (n int)`
      yield* sql`TRUNCATE e4_tx`
      yield* sql.withTransaction(sql`INSERT INTO e4_tx VALUES (1)`)
      const failed = yield* Effect.exit(
        sql.withTransaction(Effect.andThen(sql`INSERT INTO e4_tx VALUES (2)`, Effect.fail("boom")))
      )
      assert.isTrue(Exit.isFailure(failed))
      yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`INSERT INTO e4_tx VALUES (3)`
          yield* Effect.exit(
            sql.withTransaction(Effect.andThen(sql`INSERT INTO e4_tx VALUES (4)`, Effect.fail("inner")))
          )
        })
      )
      const rows = yield* sql<{ n: number }>`SELECT n FROM e4_tx ORDER BY n`
      assert.deepStrictEqual(
        rows.map((r) => r.n),
        [1, 3]
      )
    }).pipe(Effect.provide(env()))
  )

  it.live("a COMMIT that PostgreSQL answers with ROLLBACK fails the transaction", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const exit = yield* Effect.exit(
        sql.withTransaction(Effect.andThen(Effect.ignore(sql`SELECT 1/0`), sql`SELECT 1`.pipe(Effect.ignore)))
      )
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "COMMIT rolled back an aborted transaction")
      // the session came back clean: a new transaction works
      const rows = yield* sql.withTransaction(sql<{ one: number }>`SELECT 1 AS one`)
      assert.strictEqual(rows[0]!.one, 1)
    }).pipe(Effect.provide(env()))
  )

  it.live("reserve holds one session; its session state is reset before the next holder", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const pid = yield* Effect.scoped(
        Effect.gen(function* () {
          const conn = yield* sql.reserve
          yield* conn.executeRaw("SET application_name = 'dirty'", [])
          const rows = (yield* conn.execute("SELECT pg_backend_pid() AS pid", [], undefined)) as Array<{ pid: number }>
          return rows[0]!.pid
        })
      )
      const after = yield* Effect.scoped(
        Effect.gen(function* () {
          const conn = yield* sql.reserve
          return (yield* conn.execute(
            "SELECT pg_backend_pid() AS pid, current_setting('application_name') AS name",
            [],
            undefined
          )) as Array<{ pid: number; name: string }>
        })
      )
      // with minSize 1 and no other load the same session comes back, reset
      assert.strictEqual(after[0]!.pid, pid)
      assert.notStrictEqual(after[0]!.name, "dirty")
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1 })))
  )

  it.live("streams rows, and takes json and executeValues", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const streamed = yield* sql`SELECT generate_series(1, 5) AS n`.stream.pipe(Stream.runCollect)
      assert.deepStrictEqual(
        Array.from(streamed).map((r: any) => r.n),
        [1, 2, 3, 4, 5]
      )
      const json = yield* sql<{ doc: { a: number } }>`SELECT ${sql.json({ a: 1 })}::jsonb AS doc`
      assert.deepStrictEqual(json[0]!.doc, { a: 1 })
    }).pipe(Effect.provide(env()))
  )

  it.live("listen receives what notify sends", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const queue = yield* sql.listen("e4_channel")
      yield* sql.notify("e4_channel", "hello")
      const message = yield* Queue.take(queue)
      assert.strictEqual(message.payload, "hello")
    }).pipe(Effect.scoped, Effect.provide(env()))
  )
})
