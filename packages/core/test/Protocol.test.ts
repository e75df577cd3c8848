import { Reactivity } from "@effect/experimental"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as Net from "node:net"
import * as Db from "../src/Db.js"

/**
 * A proxy to the test server that, once armed with a message type, turns the type byte of the next such message
 * the server sends into one no protocol message has: pg reports "received invalid response" and is out of step
 * with the server from then on.
 */
const corruptingProxy = Effect.gen(function* () {
  const server = yield* PgTestServer.PgTestServer
  const state = { armed: undefined as number | undefined, corrupted: 0 }
  const sockets = new Set<Net.Socket>()
  const proxy = Net.createServer((client) => {
    const upstream = Net.connect({ host: server.host, port: server.port })
    sockets.add(client).add(upstream)
    const close = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on("error", close).on("close", close)
    upstream.on("error", close).on("close", close)
    client.pipe(upstream)
    // server → client, one message (type byte + int32 length) at a time
    let pending = Buffer.alloc(0)
    upstream.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      let offset = 0
      while (pending.length - offset >= 5) {
        const length = pending.readInt32BE(offset + 1)
        if (pending.length - offset < 1 + length) break
        if (pending[offset] === state.armed) {
          pending[offset] = 0x21
          state.armed = undefined
          state.corrupted++
        }
        offset += 1 + length
      }
      if (offset > 0) {
        client.write(pending.subarray(0, offset))
        pending = pending.subarray(offset)
      }
    })
  })
  yield* Effect.acquireRelease(
    Effect.async<void>((resume) => {
      proxy.listen(0, "127.0.0.1", () => resume(Effect.void))
    }),
    () =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        proxy.close(() => resume(Effect.void))
      })
  )
  const port = (proxy.address() as Net.AddressInfo).port
  const url = new URL(Redacted.value(server.url))
  url.hostname = "127.0.0.1"
  url.port = String(port)
  return { url: Redacted.make(url.toString()), state }
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
