/**
 * A proxy to the test server that sees the PostgreSQL wire protocol one message at a time, so a test can corrupt,
 * swallow or answer a message — what a broken server or a confused middlebox would do — where the testkit's
 * FaultProxy works on whole TCP streams. Runtime-free (Promises), as the Effect 3 edition's test/wireProxy.ts
 * without its Effect 3 layer.
 */
import * as Net from "node:net"
import type { TestServer } from "./server.js"

export interface WireHooks {
  /** A message from the server (type byte first): return it, changed or not, or `undefined` to drop it. */
  readonly fromServer?: (message: Buffer) => Buffer | undefined
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

export interface WireProxy {
  /** The test server's URL with the proxy's address. */
  readonly url: string
  readonly close: () => Promise<void>
}

export const startWireProxy = (server: TestServer, hooks: WireHooks): Promise<WireProxy> => {
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
    client.on("data", (chunk) => upstream.write(chunk))
    upstream.on(
      "data",
      framer(false, (message) => {
        const forwarded = hooks.fromServer ? hooks.fromServer(message) : message
        if (forwarded !== undefined) client.write(forwarded)
      })
    )
  })
  return new Promise((resolve) => {
    proxy.listen(0, "127.0.0.1", () => {
      const url = new URL(server.url)
      url.hostname = "127.0.0.1"
      url.port = String((proxy.address() as Net.AddressInfo).port)
      resolve({
        url: url.toString(),
        close: () =>
          new Promise((done) => {
            for (const socket of sockets) socket.destroy()
            proxy.close(() => done())
          })
      })
    })
  })
}
