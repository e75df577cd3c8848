import { Reactivity } from "@effect/experimental"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Db from "../src/Db.js"
import { wireProxy } from "./wireProxy.js"

/**
 * Once armed with a message type, turns the type byte of the next such message the server sends into one no
 * protocol message has: pg reports "received invalid response" and is out of step with the server from then on.
 */
const corruptingProxy = Effect.gen(function* () {
  const state = { armed: undefined as number | undefined, corrupted: 0 }
  const { url } = yield* wireProxy({
    fromServer: (message) => {
      if (message[0] === state.armed) {
        message[0] = 0x21
        state.armed = undefined
        state.corrupted++
      }
      return message
    }
  })
  return { url, state }
})

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("protocol errors", (it) => {
  // a corrupt DataRow is followed by a CommandComplete pg does not expect, which it reports as a connection error;
  // a corrupt ReadyForQuery is followed by nothing, and pg waits for it forever
  for (const [what, type] of [
    ["DataRow", 0x44],
    ["ReadyForQuery", 0x5a]
  ] as const) {
    it.scoped(`a corrupt ${what} costs that connection, and the next caller gets a working one`, () =>
      Effect.gen(function* () {
        const { state, url } = yield* corruptingProxy
        const db = yield* Db.make({ url, minSize: 1, maxSize: 1, acquireTimeout: "5 seconds" }).pipe(
          Effect.provide(Reactivity.layer)
        )
        const pidOf = db.withConnection((sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)
        const [{ pid: before }] = yield* pidOf
        state.armed = type
        const failed = yield* Effect.flip(db.sql`SELECT 1 AS n`)
        assert.strictEqual(state.corrupted, 1)
        assert.strictEqual(failed._tag, "SqlError")
        assert.include(failed.message, "received invalid response")
        // bounded: on a desynchronised connection this waits until the bound fails it
        const next = yield* db.sql<{ n: number }>`SELECT 2::int AS n`.pipe(Effect.timeout("3 seconds"))
        assert.deepStrictEqual(next, [{ n: 2 }])
        const [{ pid: after }] = yield* pidOf
        assert.notStrictEqual(after, before, "the corrupted connection was replaced")
        const stats = yield* db.statistics
        assert.strictEqual(stats.connectionsClosed.broken, 1)
      })
    )
  }
})
