/**
 * PgMigrator on the layer: it needs `SqlClient` and `PgClient` from it, and the Node services for `pg_dump`.
 *
 * Left out: `schemaDirectory` (a schema dump through `pg_dump`): the suite's embedded server is PostgreSQL 17 and
 * the machine's pg_dump is 15, which refuses a newer server.
 */
import { NodeServices } from "@effect/platform-node"
import { PgMigrator } from "@effect/sql-pg"
import type * as Vitest from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type * as PgServer from "../../support/PgServer.js"
import { clientOn, type MakeLayer } from "./MakeLayer.js"

const migrations = PgMigrator.fromRecord({
  "1_create_people": Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`CREATE TABLE migrated_people (id serial PRIMARY KEY, name text NOT NULL)`
  ),
  "2_add_age": Effect.flatMap(SqlClient.SqlClient, (sql) => sql`ALTER TABLE migrated_people ADD COLUMN age int`)
})

export const suite = (it: Vitest.Vitest.MethodsNonLive<PgServer.PgServer>, makeLayer: MakeLayer) => {
  it.layer(Layer.merge(clientOn(makeLayer), NodeServices.layer), { timeout: "30 seconds" })("PgMigrator", (it) => {
    it.effect("runs pending migrations once, in order, and records them", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const first = yield* PgMigrator.run({ loader: migrations })
        assert.deepStrictEqual(first, [
          [1, "create_people"],
          [2, "add_age"]
        ])
        const again = yield* PgMigrator.run({ loader: migrations })
        assert.deepStrictEqual(again, [])
        const columns = yield* sql<{ column_name: string }>`
          SELECT column_name FROM information_schema.columns WHERE table_name = 'migrated_people' ORDER BY ordinal_position`
        assert.deepStrictEqual(
          columns.map((c) => c.column_name),
          ["id", "name", "age"]
        )
        const recorded = yield* sql<{ migration_id: number; name: string }>`
          SELECT migration_id, name FROM effect_sql_migrations ORDER BY migration_id`
        assert.deepStrictEqual(recorded, [
          { migration_id: 1, name: "create_people" },
          { migration_id: 2, name: "add_age" }
        ])
      })
    )

    it.effect("a failing migration fails typed and records nothing of its own", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const error = yield* Effect.flip(
          PgMigrator.run({
            table: "broken_migrations",
            loader: PgMigrator.fromRecord({
              "1_broken": Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE (`)
            })
          })
        )
        assert.strictEqual(error._tag, "MigrationError")
        const recorded = yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM broken_migrations`
        assert.deepStrictEqual(recorded, [{ count: 0 }])
      })
    )
  })
}
