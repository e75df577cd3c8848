/**
 * A proxy to the test server that sees the PostgreSQL wire protocol one message at a time, so a test can corrupt,
 * swallow or answer a message — what a broken server, a confused middlebox or a hot standby would do — where the
 * testkit's FaultProxy only works on whole TCP streams.
 */
import { PgTestServer } from "@effect-pg-pool/testkit"
import { Effect, Redacted } from "effect"
import * as Net from "node:net"

export interface WireHooks {
  /** A message from the server (type byte first): return it, changed or not, or `undefined` to drop it. */
  readonly fromServer?: (message: Buffer) => Buffer | undefined
  /** A typed message from the client: return what to forward, or `undefined` to drop it; `reply` answers it. */
  readonly fromClient?: (message: Buffer, reply: (bytes: Buffer) => void) => Buffer | undefined
}

/** Splits a byte stream into messages: an optional untyped first one (the startup packet), then typed ones. */
const framer = (untypedFirst: boolean, onMessage: (message: Buffer) => void) => {
  let pending: Buffer = Buffer.alloc(0)
  let untyped = untypedFirst
  return (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    for (;;) {
      const header = untyped ? 0 : 1
      if (pending.length < header + 4) return
      const size = header + pending.readInt32BE(header)
      if (pending.length < size) return
      const message = pending.subarray(0, size)
      pending = pending.subarray(size)
      untyped = false
      onMessage(message)
    }
  }
}

/** Starts the proxy in the caller's scope; its `url` is the test server's with the proxy's address. */
export const wireProxy = (hooks: WireHooks) =>
  Effect.gen(function* () {
    const server = yield* PgTestServer.PgTestServer
    const sockets = new Set<Net.Socket>()
    const proxy = Net.createServer((client) => {
      const upstream = Net.connect({ host: server.host, port: server.port })
      sockets.add(client).add(upstream)
      const close = () => {
        client.destroy()
        upstream.destroy()
        sockets.delete(client)
        sockets.delete(upstream)
      }
      client.on("error", close).on("close", close)
      upstream.on("error", close).on("close", close)
      let startup = true
      client.on(
        "data",
        framer(true, (message) => {
          if (startup) {
            startup = false
            upstream.write(message)
            return
          }
          const forwarded = hooks.fromClient ? hooks.fromClient(message, (bytes) => client.write(bytes)) : message
          if (forwarded !== undefined) upstream.write(forwarded)
        })
      )
      upstream.on(
        "data",
        framer(false, (message) => {
          const forwarded = hooks.fromServer ? hooks.fromServer(message) : message
          if (forwarded !== undefined) client.write(forwarded)
        })
      )
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
    const url = new URL(Redacted.value(server.url))
    url.hostname = "127.0.0.1"
    url.port = String((proxy.address() as Net.AddressInfo).port)
    return { url: Redacted.make(url.toString()), openSockets: () => sockets.size / 2 }
  })

/** The text of a simple Query message ('Q'), or `undefined` for any other message. */
export const queryText = (message: Buffer): string | undefined =>
  message[0] === 0x51 ? message.subarray(5, message.length - 1).toString("utf8") : undefined

/** An ErrorResponse followed by ReadyForQuery (idle), as the server answers a statement it refuses. */
export const errorResponse = (sqlstate: string, text: string): Buffer => {
  const fields = Buffer.concat(
    [
      ["S", "ERROR"],
      ["V", "ERROR"],
      ["C", sqlstate],
      ["M", text]
    ].map(([key, value]) => Buffer.from(`${key}${value}\0`, "utf8"))
  )
  const error = Buffer.alloc(1 + 4 + fields.length + 1)
  error.write("E", 0)
  error.writeInt32BE(4 + fields.length + 1, 1)
  fields.copy(error, 5)
  const ready = Buffer.from([0x5a, 0, 0, 0, 5, 0x49])
  return Buffer.concat([error, ready])
}
