/**
 * A server (or a middlebox) that answers with a message no protocol has: the session that read it is out of step
 * with the server, so it must cost that session, never the next caller (issue 10, item 14; the Effect 3
 * edition's test/Protocol.test.ts).
 */
import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { startServer, type TestServer } from "./utils/server.js"
import { startWireProxy, type WireProxy } from "./utils/wireProxy.js"

let server: TestServer
let proxy: WireProxy
// once armed with a message type, the type byte of the next such message the server sends becomes one no message has
const state = { armed: undefined as number | undefined, corrupted: 0 }
beforeAll(async () => {
  server = await startServer()
  proxy = await startWireProxy(server, {
    fromServer: (message) => {
      if (message[0] === state.armed) {
        message[0] = 0x21
        state.armed = undefined
        state.corrupted++
      }
      return message
    }
  })
})
afterAll(async () => {
  await proxy?.close()
  await server?.close()
})

const pool = () =>
  Db.layer({ url: Redacted.make(proxy.url), minSize: 1, maxSize: 1, acquireTimeout: "5 seconds" }).pipe(
    Layer.provide(Logger.layer([]))
  )

describe("protocol errors", () => {
  for (const [what, type] of [
    ["DataRow", 0x44],
    ["ReadyForQuery", 0x5a]
  ] as const) {
    it.live(`a corrupt ${what} costs that connection, and the next caller gets a working one`, () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const pidOf = Db.withConnection((sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)
        const [{ pid: before }] = yield* pidOf
        state.corrupted = 0
        state.armed = type
        // bounded: a client that waits forever on the desynchronised session would hang here
        const failed = yield* Effect.flip(sql`SELECT 1 AS n`.pipe(Effect.timeout("3 seconds")))
        assert.strictEqual(state.corrupted, 1)
        assert.strictEqual(failed._tag, "SqlError", String(failed))
        const next = yield* sql<{ n: number }>`SELECT 2::int AS n`.pipe(Effect.timeout("3 seconds"))
        assert.deepStrictEqual(next, [{ n: 2 }])
        const [{ pid: after }] = yield* pidOf
        assert.notStrictEqual(after, before, "the corrupted connection was replaced")
        const stats = yield* Db.statistics
        assert.strictEqual(stats.connectionsClosed.broken, 1)
      }).pipe(Effect.provide(pool()))
    )
  }
})
