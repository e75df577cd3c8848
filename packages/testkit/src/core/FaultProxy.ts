/**
 * A TCP proxy between a client (the pool under test) and PostgreSQL that injects network faults on demand, as
 * plain Promises with no runtime. Semantics, chosen to match what TCP does on a real network:
 *
 * - `blackhole()`: sockets stay open and nothing is forwarded, in either direction, for existing and new
 *   connections alike (new ones are accepted, then hang). Data is held, not dropped, and delivered in order on
 *   `restore()` — what TCP retransmission does after a short partition; follow with `resetAll()` for a partition
 *   that outlasts TCP. A side that closes its socket meanwhile closes the other side at once.
 * - `refuse()`: each new connection is accepted and reset at once (`ECONNRESET`); established ones keep working.
 * - `latency(ms)`: every chunk waits `ms` in each direction, order preserved: a round trip grows by ≥ 2 × `ms`.
 * - `resetAll()`: a TCP reset on both sides of every open connection now; the mode is unchanged.
 * - `restore()`: back to pass-through; held data is flushed in order.
 *
 * Socket errors never reach the process.
 *
 * @since 0.2.0
 */
import * as Internal from "../internal/faultProxy.js"

/**
 * What the proxy does to traffic now.
 *
 * @since 0.2.0
 * @category models
 */
export type Mode = Internal.State

/**
 * Where the proxy forwards to; `url`, when given, is rewritten into the proxy's own `url` (credentials, database
 * and parameters kept, host and port the proxy's).
 *
 * @since 0.2.0
 * @category models
 */
export interface Target {
  readonly host: string
  readonly port: number
  readonly url?: string | undefined
}

/**
 * A running proxy.
 *
 * @since 0.2.0
 * @category models
 */
export interface FaultProxy {
  readonly host: string
  readonly port: number
  /** The target's URL pointing at the proxy (`postgres://127.0.0.1:port/` when the target has none). */
  readonly url: string
  readonly mode: () => Mode
  /** Resets every open connection, both sides, now. */
  readonly resetAll: () => void
  /** Forwards nothing until `restore`; data is held, not dropped. */
  readonly blackhole: () => void
  /** Resets every new connection right after accepting it; existing ones keep working. */
  readonly refuse: () => void
  /** Delays every chunk by `millis` in each direction (order preserved); ≤ 0 or not finite means 0. */
  readonly latency: (millis: number) => void
  /** Back to pass-through; flushes held data in order. */
  readonly restore: () => void
  /** Client connections currently open through the proxy. */
  readonly openConnections: () => number
  /** Resets every connection and stops listening. */
  readonly close: () => Promise<void>
}

const HOST = "127.0.0.1"

/** @internal */
export const rewrite = (target: Target, port: number): string => {
  if (target.url === undefined) return `postgres://${HOST}:${port}/`
  const url = new URL(target.url)
  url.hostname = HOST
  url.port = String(port)
  return url.href
}

/**
 * A proxy on a free port of 127.0.0.1 in front of `target`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const start = async (target: Target): Promise<FaultProxy> => {
  const proxy = new Internal.ProxyServer(target)
  const port = await proxy.listen(HOST)
  let closed: Promise<void> | undefined
  return {
    host: HOST,
    port,
    url: rewrite(target, port),
    mode: () => proxy.state,
    resetAll: () => proxy.resetAll(),
    blackhole: () => proxy.setState({ _tag: "Blackhole" }),
    refuse: () => proxy.setState({ _tag: "Refuse" }),
    latency: (millis) =>
      proxy.setState({ _tag: "Latency", millis: Number.isFinite(millis) && millis > 0 ? millis : 0 }),
    restore: () => proxy.setState({ _tag: "Pass" }),
    openConnections: () => proxy.pairs.size,
    close: () => (closed ??= proxy.close())
  }
}
