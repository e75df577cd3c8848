/**
 * A primary and a streaming standby from the embedded binaries, for Effect 3 tests: the layer over the core's
 * `PrimaryStandby` (see the testkit's README). The standby is a base copy of the primary's data directory (taken
 * with the primary cleanly stopped) with `standby.signal` and `primary_conninfo`, streaming over a replication
 * role and slot; `promote` runs `pg_ctl promote`; `waitForReplay` waits until the standby has replayed up to the
 * primary's current LSN.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Core from "./core/PrimaryStandby.js"
import * as Adapter from "./internal/adapter.js"
import * as internalError from "./internal/error.js"
import type { EmbeddedOptions, PgTestServer, PgTestServerError } from "./PgTestServer.js"

/**
 * The running pair.
 *
 * @example
 * ```ts
 * import { PrimaryStandby } from "@effect-pg-pool/testkit"
 * import { layer } from "@effect/vitest"
 * import { Effect } from "effect"
 *
 * layer(PrimaryStandby.layer(), { timeout: "60 seconds", excludeTestServices: true })("failover", (it) => {
 *   it.effect("the standby takes over", () =>
 *     Effect.flatMap(PrimaryStandby.PrimaryStandby, (pair) => Effect.zipRight(pair.primary.kill, pair.promote))
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export class PrimaryStandby extends Context.Tag("@effect-pg-pool/testkit/PrimaryStandby")<
  PrimaryStandby,
  PrimaryStandby.Service
>() {}

/**
 * @since 0.2.0
 * @category models
 */
export declare namespace PrimaryStandby {
  /**
   * One node: a `PgTestServer.Service` that can also be killed (`SIGKILL` to the postmaster and every backend).
   *
   * @example
   * ```ts
   * import { PrimaryStandby } from "@effect-pg-pool/testkit"
   * import { Effect } from "effect"
   *
   * // a power cut on one node, then its restart (crash recovery)
   * const crash = (node: PrimaryStandby.PrimaryStandby.Node) => Effect.zipRight(node.kill, node.start)
   * ```
   *
   * @since 0.2.0
   * @category models
   */
  export interface Node extends PgTestServer.Service {
    readonly kill: Effect.Effect<void, PgTestServerError>
  }

  /**
   * What the `PrimaryStandby` tag holds.
   *
   * @example
   * ```ts
   * import { PrimaryStandby } from "@effect-pg-pool/testkit"
   * import { Effect } from "effect"
   *
   * // both URLs, for a multi-host pool
   * const hosts = Effect.map(PrimaryStandby.PrimaryStandby, (pair) => [pair.primary.port, pair.standby.port])
   * ```
   *
   * @since 0.2.0
   * @category models
   */
  export interface Service {
    /** The node started as the primary (after `promote`, the old primary). */
    readonly primary: Node
    /** The node started as the standby (after `promote`, the new primary). */
    readonly standby: Node
    /** The replication role the standby connects as. */
    readonly replicationUser: string
    /** Succeeds once the standby has replayed up to the primary's current LSN. Default timeout 10 seconds. */
    readonly waitForReplay: (options?: {
      readonly timeout?: Duration.DurationInput | undefined
    }) => Effect.Effect<void, PgTestServerError>
    /** `pg_ctl promote` on the standby; succeeds once it accepts writes. */
    readonly promote: Effect.Effect<void, PgTestServerError>
  }
}

/**
 * Options of the pair: the primary's embedded options, and the standby's (its `maxConnections` defaults to the
 * primary's, as a hot standby may not have fewer).
 *
 * @example
 * ```ts
 * import { PrimaryStandby } from "@effect-pg-pool/testkit"
 *
 * const options: PrimaryStandby.Options = {
 *   primary: { maxConnections: 50, settings: { log_min_duration_statement: 0 } },
 *   standby: { settings: { log_min_duration_statement: 0 } }
 * }
 * const PairLive = PrimaryStandby.layer(options)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly primary?: EmbeddedOptions | undefined
  readonly standby?: Pick<EmbeddedOptions, "port" | "maxConnections" | "settings" | "startTimeout"> | undefined
}

const toMillis = (input: Duration.DurationInput | undefined) =>
  input === undefined ? undefined : Adapter.embeddedOptions({ startTimeout: input })?.startTimeoutMillis

/**
 * Starts the pair, stopped and deleted when the scope closes.
 *
 * @example
 * ```ts
 * import { PrimaryStandby } from "@effect-pg-pool/testkit"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const pair = yield* PrimaryStandby.make()
 *   yield* pair.waitForReplay()
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<PrimaryStandby.Service, PgTestServerError, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          Core.start({
            primary: Adapter.embeddedOptions(options.primary),
            standby: Adapter.embeddedOptions(options.standby)
          }),
        catch: internalError.fromCore("embedded")
      }),
      (pair) => Effect.promise(() => pair.close())
    ),
    (pair) => {
      const node = (server: Core.PrimaryStandby["primary"]): PrimaryStandby.Node => ({
        ...Adapter.fromCore(server),
        kill: Effect.uninterruptible(
          Effect.tryPromise({ try: () => server.kill(), catch: internalError.fromCore("embedded", "StopFailed") })
        )
      })
      return {
        primary: node(pair.primary),
        standby: node(pair.standby),
        replicationUser: pair.replicationUser,
        waitForReplay: (opts) =>
          Effect.tryPromise({
            try: () => pair.waitForReplay({ timeoutMillis: toMillis(opts?.timeout) }),
            catch: internalError.fromCore("embedded")
          }),
        promote: Effect.tryPromise({ try: () => pair.promote(), catch: internalError.fromCore("embedded") })
      }
    }
  )

/**
 * The pair as a layer: build it once per test file.
 *
 * @example
 * ```ts
 * import { PrimaryStandby } from "@effect-pg-pool/testkit"
 * import { Effect, Layer } from "effect"
 *
 * // a layer that needs both nodes' ports
 * const Ports = Layer.effectDiscard(Effect.map(PrimaryStandby.PrimaryStandby, (pair) => pair.standby.port))
 * const Env = Ports.pipe(Layer.provideMerge(PrimaryStandby.layer()))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<PrimaryStandby, PgTestServerError> =>
  Layer.scoped(PrimaryStandby, make(options))
