/**
 * Statements the protocol cannot carry — more than 65 535 parameters, a NUL in the text, COPY as a stream — fail
 * typed and leave the session working, instead of costing it or the process (issue 10, item 19; the Effect 3
 * edition's test/Statement.test.ts).
 */
import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { dbLayer } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

// maxSize 1: the statement after the refused one runs on the very same connection, which the pid confirms
const pid = Effect.map(
  Db.withConnection((sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`),
  (rows) => rows[0]!.pid
)
const one = () => dbLayer(server, { minSize: 1, maxSize: 1 })

describe("statements the protocol cannot carry", () => {
  it.live("more than 65535 parameters fail typed, and the connection survives", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const before = yield* pid
      const ids = Array.from({ length: 70_000 }, (_, i) => i)
      for (const run of [
        sql<{ n: number }>`SELECT count(*)::int AS n FROM generate_series(1, 10) g WHERE g IN ${sql.in(ids)}`,
        Db.withConnection((sql) => sql`SELECT 1 WHERE 1 IN ${sql.in(ids)}`.raw),
        Db.withConnection((sql) => sql`SELECT 1 WHERE 1 IN ${sql.in(ids)}`.values)
      ]) {
        const error = yield* Effect.flip(run.pipe(Effect.timeout("10 seconds")))
        assert.strictEqual(error._tag, "SqlError", String(error))
        assert.include(error.message, "70000 parameters")
        assert.include(error.message, "65535")
        assert.include(error.message, "ANY(")
      }
      // the same list as one array parameter is fine
      const rows = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM generate_series(1, 10) g WHERE g = ANY(${ids}::int[])`
      assert.deepStrictEqual(rows, [{ n: 10 }])
      assert.strictEqual(yield* pid, before, "the same physical connection")
      assert.strictEqual((yield* Db.statistics).connectionsCreated, 1)
    }).pipe(Effect.provide(one()))
  )

  it.live("a NUL character in the SQL text fails typed, and the connection survives", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const before = yield* pid
      const error = yield* Effect.flip(sql.unsafe("SELECT 'a\u0000b' AS t").pipe(Effect.timeout("10 seconds")))
      assert.strictEqual(error._tag, "SqlError", String(error))
      assert.include(error.message, "NUL")
      assert.include(error.message, "character 10")
      const streamed = yield* Effect.flip(
        sql.unsafe("SELECT 1 -- \u0000").stream.pipe(Stream.runCollect, Effect.timeout("10 seconds"))
      )
      assert.strictEqual(streamed._tag, "SqlError", String(streamed))
      assert.include(streamed.message, "NUL")
      assert.strictEqual(yield* pid, before, "the same physical connection")
      assert.strictEqual((yield* Db.statistics).connectionsCreated, 1)
    }).pipe(Effect.provide(one()))
  )

  it.live("COPY as a stream fails typed instead of crashing the process, and the connection survives", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const before = yield* pid
      for (const text of ["COPY (SELECT 1) TO STDOUT", "/* c */ copy (SELECT 1) TO STDOUT"]) {
        const error = yield* Effect.flip(Stream.runCollect(sql.unsafe(text).stream).pipe(Effect.timeout("10 seconds")))
        assert.strictEqual(error._tag, "SqlError", String(error))
        assert.include(error.message, "COPY cannot run as a stream")
      }
      assert.strictEqual(yield* pid, before)
    }).pipe(Effect.provide(one()))
  )
})
