/**
 * PgBouncer (the machine's `pgbouncer` binary, Debian's package) in front of the {@link PgTestServer}, for Effect 3
 * tests: the layer over the core's `PgBouncer` (see the testkit's README). Transaction or session pool mode, a
 * free port, real SCRAM authentication with the server's own secret; stopped and reaped like the servers. No
 * binary: the layer fails with `BackendUnavailable` saying how to install it (a suite never silently skips).
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Core from "./core/PgBouncer.js"
import * as internalError from "./internal/error.js"
import { PgTestServer, type PgTestServerError } from "./PgTestServer.js"

/**
 * The running PgBouncer.
 *
 * @example
 * ```ts
 * import { PgBouncer, PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect, Layer } from "effect"
 *
 * const Env = PgBouncer.layer({ poolMode: "transaction" }).pipe(Layer.provideMerge(PgTestServer.layerEmbedded()))
 * // connect the pool under test to bouncer.url
 * const url = Effect.map(PgBouncer.PgBouncer, (bouncer) => bouncer.url)
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export class PgBouncer extends Context.Tag("@effect-pg-pool/testkit/PgBouncer")<PgBouncer, PgBouncer.Service>() {}

/**
 * @since 0.2.0
 * @category models
 */
export declare namespace PgBouncer {
  /**
   * What the `PgBouncer` tag holds.
   *
   * @example
   * ```ts
   * import { PgBouncer } from "@effect-pg-pool/testkit"
   * import { Effect } from "effect"
   *
   * // the pooler goes away and comes back on the same port
   * const blip = (bouncer: PgBouncer.PgBouncer.Service) => Effect.zipRight(bouncer.stop, bouncer.start)
   * ```
   *
   * @since 0.2.0
   * @category models
   */
  export interface Service {
    /** The server's user, password and database, through PgBouncer. */
    readonly url: Redacted.Redacted<string>
    readonly host: string
    readonly port: number
    readonly poolMode: PoolMode
    /** PgBouncer's version, e.g. `1.18.0`. */
    readonly version: string
    /** Immediate shutdown (`SIGTERM`): every client and server connection closed. */
    readonly stop: Effect.Effect<void>
    /** `SIGKILL`. */
    readonly kill: Effect.Effect<void>
    /** Back on the same port; succeeds once a session through it opens. */
    readonly start: Effect.Effect<void, PgTestServerError>
    readonly isRunning: Effect.Effect<boolean>
  }
}

/**
 * `transaction` (a server connection per transaction) or `session` (one for the client's whole session).
 *
 * @example
 * ```ts
 * import { PgBouncer } from "@effect-pg-pool/testkit"
 *
 * const modes: ReadonlyArray<PgBouncer.PoolMode> = ["transaction", "session"]
 * const layers = modes.map((poolMode) => PgBouncer.layer({ poolMode }))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type PoolMode = Core.PoolMode

/**
 * Options of the layer.
 *
 * @example
 * ```ts
 * import { PgBouncer } from "@effect-pg-pool/testkit"
 *
 * // two server connections for every client: waiting in PgBouncer's queue shows at once
 * const options: PgBouncer.Options = { poolMode: "transaction", poolSize: 2, settings: { query_wait_timeout: 5 } }
 * const BouncerLive = PgBouncer.layer(options)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Options = Core.Options

/**
 * PgBouncer in front of any server, closed with the scope.
 *
 * @example
 * ```ts
 * import { PgBouncer, PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const server = yield* PgTestServer.makeEmbedded()
 *   const target = { ...server, password: Redacted.value(server.password) }
 *   const bouncer = yield* PgBouncer.make(target, { poolMode: "session" })
 *   yield* Effect.log(`PgBouncer ${bouncer.version} on port ${bouncer.port}`)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  target: Core.Target,
  options?: Options
): Effect.Effect<PgBouncer.Service, PgTestServerError, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.tryPromise({ try: () => Core.start(target, options), catch: internalError.fromCore("embedded") }),
      (bouncer) => Effect.promise(() => bouncer.close())
    ),
    (bouncer) => ({
      url: Redacted.make(bouncer.url),
      host: bouncer.host,
      port: bouncer.port,
      poolMode: bouncer.poolMode,
      version: bouncer.version,
      stop: Effect.uninterruptible(Effect.promise(() => bouncer.stop())),
      kill: Effect.uninterruptible(Effect.promise(() => bouncer.kill())),
      start: Effect.tryPromise({ try: () => bouncer.start(), catch: internalError.fromCore("embedded") }),
      isRunning: Effect.promise(() => bouncer.isRunning())
    })
  )

/**
 * PgBouncer in front of the {@link PgTestServer}; its `url` carries the server's credentials.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { PgBouncer, PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect, Layer } from "effect"
 *
 * // the pool under test behind PgBouncer in session mode
 * const DbLive = Layer.unwrapEffect(Effect.map(PgBouncer.PgBouncer, (bouncer) => Db.layer({ url: bouncer.url })))
 * const Env = DbLive.pipe(Layer.provideMerge(PgBouncer.layer({ poolMode: "session" })), Layer.provideMerge(PgTestServer.layer))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<PgBouncer, PgTestServerError, PgTestServer> =>
  Layer.scoped(
    PgBouncer,
    Effect.flatMap(PgTestServer, (server) =>
      make(
        {
          host: server.host,
          port: server.port,
          user: server.user,
          password: Redacted.value(server.password),
          database: server.database
        },
        options
      )
    )
  )
