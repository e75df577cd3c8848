/**
 * A TCP proxy between a client (the pool under test) and PostgreSQL that injects network faults on demand:
 * reset every connection, black-hole traffic, refuse new connections, add latency.
 *
 * Semantics, chosen to match what TCP does on a real network:
 *
 * - `blackhole`: sockets stay open and nothing is forwarded, in either direction, for existing and new connections
 *   alike (new ones are accepted, as the kernel would complete the handshake, then hang). Data sent meanwhile is
 *   held, not dropped, and delivered in order on `restore` — what TCP retransmission does after a short partition.
 *   Simulate a partition that outlasts TCP's patience with `blackhole` then `resetAll`. A side that closes its socket
 *   during a black hole closes the other side at once (so the server sees a pool's abandoned sessions go).
 * - `refuse`: each new connection is accepted and reset at once (the client sees `ECONNRESET` right after
 *   connecting); established connections keep working.
 * - `latency(ms)`: every chunk waits `ms` before being forwarded, in both directions, order preserved — a query
 *   round trip grows by at least `2 × ms`.
 * - `resetAll`: every open connection gets a TCP reset on both sides now; the mode is unchanged.
 * - `restore`: back to pass-through; held data is flushed in order.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Core from "./core/FaultProxy.js"
import { PgTestServer } from "./PgTestServer.js"

/**
 * The running proxy.
 *
 * @example
 * ```ts
 * import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
 * import { layer } from "@effect/vitest"
 * import { Effect, Layer } from "effect"
 *
 * const Env = FaultProxy.layer.pipe(Layer.provideMerge(PgTestServer.layer))
 *
 * layer(Env, { timeout: "30 seconds", excludeTestServices: true })("outages", (it) => {
 *   it.effect("fails in-flight queries when the network resets", () =>
 *     Effect.gen(function* () {
 *       const proxy = yield* FaultProxy.FaultProxy // connect the pool to proxy.url, then:
 *       yield* proxy.resetAll
 *     })
 *   )
 * })
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class FaultProxy extends Context.Tag("@effect-pg-pool/testkit/FaultProxy")<FaultProxy, FaultProxy.Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace FaultProxy {
  /**
   * What the `FaultProxy` tag holds.
   *
   * @example
   * ```ts
   * import { FaultProxy } from "@effect-pg-pool/testkit"
   * import { Effect } from "effect"
   *
   * // a partition that outlasts TCP's patience, then recovery
   * const partition = (proxy: FaultProxy.FaultProxy.Service) =>
   *   Effect.gen(function* () {
   *     yield* proxy.blackhole
   *     yield* Effect.sleep("5 seconds")
   *     yield* proxy.resetAll
   *     yield* proxy.restore
   *   })
   * ```
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly host: string
    readonly port: number
    /** The target's URL (credentials, database, parameters) pointing at the proxy instead. */
    readonly url: Redacted.Redacted<string>
    readonly mode: Effect.Effect<Mode>
    /** Resets every open connection, both sides, now. */
    readonly resetAll: Effect.Effect<void>
    /** Forwards nothing until `restore`; data is held, not dropped. */
    readonly blackhole: Effect.Effect<void>
    /** Resets every new connection right after accepting it; existing ones keep working. */
    readonly refuse: Effect.Effect<void>
    /** Delays every chunk by `millis` in each direction (order preserved). */
    readonly latency: (millis: number) => Effect.Effect<void>
    /** Back to pass-through; flushes held data in order. */
    readonly restore: Effect.Effect<void>
    /** Client connections currently open through the proxy. */
    readonly openConnections: Effect.Effect<number>
  }
}

/**
 * What the proxy does to traffic now; see the module's notes for each mode.
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = Data.TaggedEnum<{
  Pass: {}
  Blackhole: {}
  Refuse: {}
  Latency: { readonly millis: number }
}>

/**
 * Constructors and matchers for {@link Mode}: `Mode.Latency({ millis: 200 })`, `Mode.$is("Blackhole")(mode)`.
 *
 * @example
 * ```ts
 * import { FaultProxy } from "@effect-pg-pool/testkit"
 * import { Effect } from "effect"
 *
 * const describe = FaultProxy.Mode.$match({
 *   Pass: () => "pass-through",
 *   Blackhole: () => "black hole",
 *   Refuse: () => "refusing new connections",
 *   Latency: ({ millis }) => `+${millis} ms each way`
 * })
 * const current = Effect.flatMap(FaultProxy.FaultProxy, (proxy) => Effect.map(proxy.mode, describe))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const Mode = Data.taggedEnum<Mode>()

/**
 * Where the proxy forwards to; `url`, when given, is rewritten into the proxy's own `url`.
 *
 * @example
 * ```ts
 * import { FaultProxy } from "@effect-pg-pool/testkit"
 * import { Layer } from "effect"
 *
 * // a proxy in front of a server the tests did not start
 * const target: FaultProxy.Target = { host: "db.test", port: 5432, url: "postgres://app:secret@db.test:5432/app" }
 * const ProxyLive = Layer.scoped(FaultProxy.FaultProxy, FaultProxy.make(target))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Target {
  readonly host: string
  readonly port: number
  readonly url?: Redacted.Redacted<string> | string | undefined
}

const toMode = (state: Core.Mode): Mode => {
  switch (state._tag) {
    case "Pass":
      return Mode.Pass()
    case "Blackhole":
      return Mode.Blackhole()
    case "Refuse":
      return Mode.Refuse()
    case "Latency":
      return Mode.Latency({ millis: state.millis })
  }
}

/**
 * A proxy on a free port of 127.0.0.1 in front of `target`, closed with all its connections when the scope closes.
 *
 * @example
 * ```ts
 * import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const server = yield* PgTestServer.makeEmbedded()
 *   const proxy = yield* FaultProxy.make({ host: server.host, port: server.port, url: server.url })
 *   yield* proxy.latency(50) // a query round trip now takes at least 100 ms
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (target: Target): Effect.Effect<FaultProxy.Service, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      // Binding port 0 on the loopback interface has no failure mode worth a typed error.
      Effect.promise(() =>
        Core.start({
          host: target.host,
          port: target.port,
          url:
            target.url === undefined
              ? undefined
              : Redacted.isRedacted(target.url)
                ? Redacted.value(target.url)
                : target.url
        })
      ),
      (proxy) => Effect.promise(() => proxy.close())
    ),
    (proxy) =>
      FaultProxy.of({
        host: proxy.host,
        port: proxy.port,
        url: Redacted.make(proxy.url),
        mode: Effect.sync(() => toMode(proxy.mode())),
        resetAll: Effect.sync(proxy.resetAll),
        blackhole: Effect.sync(proxy.blackhole),
        refuse: Effect.sync(proxy.refuse),
        latency: (millis) => Effect.sync(() => proxy.latency(millis)),
        restore: Effect.sync(proxy.restore),
        openConnections: Effect.sync(proxy.openConnections)
      })
  )

/**
 * A proxy in front of the {@link PgTestServer}; its `url` carries the server's credentials.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect, Layer } from "effect"
 *
 * // the pool under test connects through the proxy
 * const DbLive = Layer.unwrapEffect(Effect.map(FaultProxy.FaultProxy, (proxy) => Db.layer({ url: proxy.url })))
 * const Env = DbLive.pipe(Layer.provideMerge(FaultProxy.layer), Layer.provideMerge(PgTestServer.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<FaultProxy, never, PgTestServer> = Layer.scoped(
  FaultProxy,
  Effect.flatMap(PgTestServer, (server) => make({ host: server.host, port: server.port, url: server.url }))
)
