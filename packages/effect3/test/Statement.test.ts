import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import type { Db } from "../src/Db.js"
import { makeDb } from "./utils.js"

// maxSize 1: the statement after the refused one runs on the very same connection, which the pid confirms
const pid = (db: Db.Service) =>
  Effect.map(
    db.withConnection((sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`),
    (r) => r[0]!.pid
  )

it.layer(PgTestServer.layer, { timeout: 60_000 })("statements the protocol cannot carry", (it) => {
  it.scoped("more than 65535 parameters fail typed before sending, and the connection survives", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1 })
      const before = yield* pid(db)
      const ids = Array.from({ length: 70_000 }, (_, i) => i)
      for (const run of [
        db.sql<{ n: number }>`SELECT count(*)::int AS n FROM generate_series(1, 10) g WHERE g IN ${db.sql.in(ids)}`,
        db.withConnection((sql) => sql`SELECT 1 WHERE 1 IN ${sql.in(ids)}`.raw),
        db.withConnection((sql) => sql`SELECT 1 WHERE 1 IN ${sql.in(ids)}`.values)
      ]) {
        const error = yield* Effect.flip(run)
        assert.strictEqual(error._tag, "SqlError")
        assert.include(error.message, "70000 parameters")
        assert.include(error.message, "65535")
        assert.include(error.message, "ANY(")
      }
      // the same list as one array parameter is fine
      const rows = yield* db.sql<{ n: number }>`
        SELECT count(*)::int AS n FROM generate_series(1, 10) g WHERE g = ANY(${ids}::int[])`
      assert.deepStrictEqual(rows, [{ n: 10 }])
      assert.strictEqual(yield* pid(db), before, "the same physical connection")
      assert.strictEqual((yield* db.statistics).connectionsCreated, 1)
    })
  )

  it.scoped("a NUL character in the SQL text fails typed before sending, and the connection survives", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1 })
      const before = yield* pid(db)
      const error = yield* Effect.flip(db.sql.unsafe("SELECT 'a\u0000b' AS t"))
      assert.strictEqual(error._tag, "SqlError")
      assert.include(error.message, "NUL")
      assert.include(error.message, "character 10")
      const streamed = yield* Effect.flip(db.sql.unsafe("SELECT 1 -- \u0000").stream.pipe(Stream.runCollect))
      assert.include(streamed.message, "NUL")
      assert.strictEqual(yield* pid(db), before, "the same physical connection")
      assert.strictEqual((yield* db.statistics).connectionsCreated, 1)
    })
  )

  it.scoped("COPY as a stream fails typed instead of crashing the process, and the connection survives", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1 })
      const before = yield* pid(db)
      for (const text of ["COPY (SELECT 1) TO STDOUT", "/* c */ copy (SELECT 1) TO STDOUT"]) {
        const error = yield* Effect.flip(Stream.runCollect(db.sql.unsafe(text).stream))
        assert.strictEqual(error._tag, "SqlError")
        assert.include(error.message, "COPY cannot run as a stream")
      }
      assert.strictEqual(yield* pid(db), before)
    })
  )
})
