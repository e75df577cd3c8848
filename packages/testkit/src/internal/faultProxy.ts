/**
 * The TCP machinery of the fault proxy. Each accepted client socket is paired with a fresh upstream socket; each
 * direction is a FIFO of chunks (and the end-of-stream) released to the other side as the current mode allows.
 *
 * @internal
 */
import * as Net from "node:net"

/** @internal */
export type State =
  | { readonly _tag: "Pass" }
  | { readonly _tag: "Blackhole" }
  | { readonly _tag: "Refuse" }
  | { readonly _tag: "Latency"; readonly millis: number }

const END = Symbol("end")

interface Item {
  readonly at: number
  readonly data: Buffer | typeof END
}

/** One direction of a connection: from `source` to `sink`. */
class Lane {
  private readonly queue: Array<Item> = []
  private timer: ReturnType<typeof setTimeout> | undefined = undefined
  private lastAt = 0

  constructor(
    private readonly proxy: ProxyServer,
    private readonly source: Net.Socket,
    private readonly sink: Net.Socket
  ) {
    source.on("data", (chunk: Buffer) => this.push(chunk))
    source.on("end", () => this.push(END))
  }

  private push(data: Buffer | typeof END): void {
    const state = this.proxy.state
    const delay = state._tag === "Latency" ? state.millis : 0
    // Never earlier than the chunk before it: a latency change must not reorder the stream.
    const at = Math.max(Date.now() + delay, this.lastAt)
    this.lastAt = at
    this.queue.push({ at, data })
    this.pump()
  }

  pump(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    const state = this.proxy.state
    if (state._tag === "Blackhole") return
    const honourDelay = state._tag === "Latency"
    while (this.queue.length > 0) {
      const head = this.queue[0]!
      const wait = head.at - Date.now()
      if (honourDelay && wait > 0) {
        this.timer = setTimeout(() => this.pump(), wait)
        return
      }
      this.queue.shift()
      if (this.sink.destroyed) continue
      if (head.data === END) {
        this.sink.end()
      } else if (!this.sink.write(head.data)) {
        // Backpressure: stop reading until the other side drains.
        this.source.pause()
        this.sink.once("drain", () => this.source.resume())
      }
    }
  }

  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.queue.length = 0
  }
}

class Pair {
  private readonly lanes: ReadonlyArray<Lane>
  private closed = false

  constructor(
    private readonly proxy: ProxyServer,
    readonly client: Net.Socket,
    readonly upstream: Net.Socket
  ) {
    this.lanes = [new Lane(proxy, client, upstream), new Lane(proxy, upstream, client)]
    const onClose = (hadError: boolean) => this.close(hadError)
    client.on("close", onClose)
    upstream.on("close", onClose)
  }

  pump(): void {
    for (const lane of this.lanes) lane.pump()
  }

  /** Closes both sides; an error on one side (a reset) is passed on as a reset. */
  close(reset: boolean): void {
    if (this.closed) return
    this.closed = true
    this.proxy.pairs.delete(this)
    for (const lane of this.lanes) lane.dispose()
    for (const socket of [this.client, this.upstream]) {
      if (socket.destroyed) continue
      if (reset) socket.resetAndDestroy()
      else socket.destroy()
    }
  }
}

const noop = () => undefined

/** @internal */
export class ProxyServer {
  state: State = { _tag: "Pass" }
  readonly pairs = new Set<Pair>()
  private readonly server: Net.Server

  constructor(readonly target: { readonly host: string; readonly port: number }) {
    // Half-open sockets let an end-of-stream travel through the lanes in order, behind the data before it.
    this.server = Net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => this.accept(client))
    this.server.on("error", noop)
  }

  listen(host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject)
      this.server.listen({ host, port: 0 }, () => {
        this.server.off("error", reject)
        resolve((this.server.address() as Net.AddressInfo).port)
      })
    })
  }

  private accept(client: Net.Socket): void {
    // Socket errors are expected here (that is the point of the proxy) and must never crash the process.
    client.on("error", noop)
    if (this.state._tag === "Refuse") {
      client.resetAndDestroy()
      return
    }
    const upstream = Net.connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true })
    upstream.on("error", noop)
    this.pairs.add(new Pair(this, client, upstream))
  }

  setState(state: State): void {
    this.state = state
    for (const pair of this.pairs) pair.pump()
  }

  resetAll(): void {
    for (const pair of [...this.pairs]) pair.close(true)
  }

  close(): Promise<void> {
    this.resetAll()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}
