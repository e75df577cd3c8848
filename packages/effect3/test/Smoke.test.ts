import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import * as Db from "../src/Db.js"

// The README's recipe: a pool on the test server in one line, its info logs kept out of the test output.
const Env = PgTestServer.layerWith((server) =>
  Db.layer({ url: server.url, minSize: 2 }).pipe(Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)))
)

layer(Env, { timeout: 60_000, excludeTestServices: true })("smoke", (it) => {
  it.effect("runs a query", () =>
    Effect.gen(function* () {
      const db = yield* Db.Db
      const rows = yield* db.sql<{ n: number }>`SELECT ${1}::int AS n`
      assert.deepStrictEqual(rows, [{ n: 1 }])
      const rows2 = yield* db.withConnection((sql) => sql<{ n: number }>`SELECT 2::int AS n`)
      assert.deepStrictEqual(rows2, [{ n: 2 }])
      const stats = yield* db.statistics
      assert.strictEqual(stats.total, 2)
    })
  )
})
