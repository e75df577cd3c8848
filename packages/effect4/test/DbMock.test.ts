import { Db, DbMock } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, String as Str } from "effect"
import { SqlClient } from "effect/sql"

describe("DbMock", () => {
  it.effect("answers statements from the script and records them, with the real client's helpers", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{
        id: number
        fullName: string
      }>`SELECT id, full_name FROM users WHERE ${sql.in("id", [1])}`
      assert.deepStrictEqual(rows, [{ id: 1, fullName: "Ann" }])
      const queries = yield* DbMock.queries
      assert.deepStrictEqual(queries, [
        { sql: `SELECT id, full_name FROM users WHERE "id" IN ($1)`, params: [1], kind: "execute", connection: 0 }
      ])
    }).pipe(
      Effect.provide(
        DbMock.layer({
          responses: [DbMock.respond(/FROM users/, [{ id: 1, full_name: "Ann" }])],
          transformResultNames: Str.snakeToCamel
        })
      )
    )
  )

  it.effect(
    "scripted failures are classified SqlErrors; unmatched statements fail; transactions run on one connection",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* DbMock.script(
          DbMock.fail(/INSERT/, DbMock.sqlError("duplicate key", { code: "23505", constraint: "users_email_key" }))
        )
        const error = yield* Effect.flip(sql.withTransaction(sql`INSERT INTO users VALUES (1)`))
        assert.strictEqual(error._tag, "SqlError")
        assert.strictEqual((error as any).reason._tag, "UniqueViolation")
        const unmatched = yield* Effect.exit(sql`SELECT 42`)
        assert.isTrue(Exit.isFailure(unmatched))
        const kinds = (yield* DbMock.queries).map((q) => `${q.connection}:${q.sql}`)
        assert.deepStrictEqual(kinds, ["1:BEGIN", "1:INSERT INTO users VALUES (1)", "1:ROLLBACK", "0:SELECT 42"])
        yield* DbMock.setHealth("degraded", "reconnecting")
        const health = yield* Db.health
        assert.strictEqual(health.status, "degraded")
      }).pipe(Effect.provide(DbMock.layer()))
  )
})
