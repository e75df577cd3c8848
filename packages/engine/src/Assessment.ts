/**
 * The one assessment of a pool's state: health, statistics, the state gauge and the transition logs all read it,
 * so a saturated pool cannot be "degraded" in one and "healthy" in another.
 *
 * Rules, first match wins:
 * - `unhealthy`: the pool is closed or shutting down; or it cannot open sessions and has none left.
 * - `degraded`: it is reconnecting after a failure (some sessions still serve); it has not connected yet (lazy
 *   start); it holds fewer than `minSize` sessions; or it is saturated — the oldest waiting acquisition has waited
 *   longer than {@link saturationThresholdMillis}.
 * - `healthy`: otherwise.
 *
 * A rejected login (a configuration error) is worded as one, not as an outage.
 *
 * @since 0.1.0
 */

/**
 * A waiting acquisition older than this marks the pool as saturated (degraded).
 *
 * @example
 * ```ts
 * import { Assessment } from "@effect-pg-pool/engine"
 *
 * const saturated = (oldestWaiterMillis: number) => oldestWaiterMillis > Assessment.saturationThresholdMillis
 * saturated(1_500) // true
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const saturationThresholdMillis = 1_000

/**
 * The state of a pool, as health, statistics, the gauge and the logs report it.
 *
 * @example
 * ```ts
 * import type { Assessment } from "@effect-pg-pool/engine"
 *
 * const gauge = (state: Assessment.PoolState): number =>
 *   state === "healthy" ? 2 : state === "degraded" ? 1 : 0
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type PoolState = "healthy" | "degraded" | "unhealthy"

/**
 * What the assessment reads: the pool's own state, nothing measured on the network.
 *
 * @example
 * ```ts
 * import { Assessment } from "@effect-pg-pool/engine"
 *
 * const facts: Assessment.Facts = {
 *   target: "db:5432", closing: false, reconnecting: false, lastFailure: undefined, everConnected: true,
 *   total: 2, busy: 2, minSize: 2, maxSize: 2, waiting: 3, oldestWaiterMillis: 1_200
 * }
 * Assessment.assess(facts).status // "degraded": saturated
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Facts {
  /** Where the pool connects, for the reasons (`host:port`). */
  readonly target: string
  readonly closing: boolean
  readonly reconnecting: boolean
  /** The last failure to open a session, redacted. */
  readonly lastFailure: { readonly kind: string; readonly message: string } | undefined
  readonly everConnected: boolean
  /** Open sessions (not those still opening). */
  readonly total: number
  /** Sessions in use: held, running statements, being validated or reset. */
  readonly busy: number
  readonly minSize: number
  readonly maxSize: number
  readonly waiting: number
  readonly oldestWaiterMillis: number
}

/**
 * A state and, when it is not healthy, why — for a human.
 *
 * @example
 * ```ts
 * import { Assessment } from "@effect-pg-pool/engine"
 *
 * const line = (assessment: Assessment.Assessment) =>
 *   assessment.reason === undefined ? assessment.status : `${assessment.status}: ${assessment.reason}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Assessment {
  readonly status: PoolState
  readonly reason: string | undefined
}

const healthy: Assessment = { status: "healthy", reason: undefined }

/**
 * Applies the rules of this module to the facts, first match wins.
 *
 * @example
 * ```ts
 * import { Assessment } from "@effect-pg-pool/engine"
 *
 * const facts: Assessment.Facts = {
 *   target: "db:5432", closing: true, reconnecting: false, lastFailure: undefined, everConnected: true,
 *   total: 0, busy: 0, minSize: 2, maxSize: 10, waiting: 0, oldestWaiterMillis: 0
 * }
 * Assessment.assess(facts) // { status: "unhealthy", reason: "the pool is shut down or shutting down" }
 * ```
 *
 * @since 0.1.0
 * @category assessment
 */
export const assess = (facts: Facts): Assessment => {
  const { target, total } = facts
  if (facts.closing) return { status: "unhealthy", reason: "the pool is shut down or shutting down" }
  const error = facts.lastFailure?.message ?? "unknown error"
  if (facts.reconnecting && facts.lastFailure?.kind === "rejected") {
    return {
      status: total === 0 ? "unhealthy" : "degraded",
      reason:
        `${target}: the server rejected the login (a configuration error, not an outage): ${error}; retrying with ` +
        `backoff until the configuration is fixed${total === 0 ? "" : ` (${total} connections still serve)`}`
    }
  }
  if (facts.reconnecting && total === 0) {
    return { status: "unhealthy", reason: `cannot connect to ${target}: ${error}; retrying with backoff` }
  }
  if (facts.reconnecting) {
    return {
      status: "degraded",
      reason: `reconnecting to ${target} after: ${error}; ${total} connections still serve`
    }
  }
  if (!facts.everConnected) return { status: "degraded", reason: `connecting to ${target}` }
  if (total < facts.minSize) {
    return { status: "degraded", reason: `${total} of the minimum ${facts.minSize} connections open` }
  }
  if (facts.oldestWaiterMillis > saturationThresholdMillis) {
    return {
      status: "degraded",
      reason:
        `saturated: ${facts.waiting} callers waiting, the oldest for ${Math.round(facts.oldestWaiterMillis)} ms; ` +
        `all ${facts.busy} of ${facts.maxSize} connections busy`
    }
  }
  return healthy
}
