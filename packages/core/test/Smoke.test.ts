import { Reactivity } from "@effect/experimental"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeDb } from "./utils.js"

it.layer(PgTestServer.layer, { timeout: 60_000 })("smoke", (it) => {
  it.scoped("runs a query", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 2 })
      const rows = yield* db.sql<{ n: number }>`SELECT ${1}::int AS n`
      assert.deepStrictEqual(rows, [{ n: 1 }])
      const rows2 = yield* db.withConnection((sql) => sql<{ n: number }>`SELECT 2::int AS n`)
      assert.deepStrictEqual(rows2, [{ n: 2 }])
      const stats = yield* db.statistics
      assert.strictEqual(stats.total, 2)
    }).pipe(Effect.provide(Reactivity.layer))
  )
})
