/**
 * The pool's health: its state from the engine's one assessment, a human reason when it is not healthy, the
 * database's reachability from a background probe, and the statistics. Reading it never waits for a connection.
 *
 * @since 0.1.0
 */
import { Assessment } from "@effect-pg-pool/engine"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { encode as encodeStatistics, PoolState, PoolStatistics } from "./PoolStatistics.js"

/**
 * A waiting caller older than this marks the pool as saturated (degraded).
 *
 * @example
 * ```ts
 * import { Health } from "@effect-pg-pool/effect4"
 *
 * const saturated = (oldestWaiterMillis: number) => oldestWaiterMillis > Health.saturationThresholdMillis
 * saturated(1_500) // true
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const saturationThresholdMillis: number = Assessment.saturationThresholdMillis

/**
 * What the background probe last saw of the database.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect, Option } from "effect"
 *
 * const latency = Effect.map(Db.health, (h) => Option.getOrUndefined(h.database.latencyMs))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class DatabaseReachability extends Schema.Class<DatabaseReachability>("@effect-pg-pool/DatabaseReachability")({
  reachable: Schema.Boolean,
  /** Round trip of the last probe, in milliseconds. */
  latencyMs: Schema.OptionFromUndefinedOr(Schema.Number),
  probedAt: Schema.OptionFromUndefinedOr(Schema.DateFromMillis)
}) {}

/**
 * The read-only pool's health (read replicas, `PoolConfig.replicas`): its own state, reason and statistics.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect, Option } from "effect"
 *
 * const readsOk = Effect.map(Db.health, (h) => Option.match(h.replicas, { onNone: () => true, onSome: (r) => r.status !== "unhealthy" }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class ReplicaHealth extends Schema.Class<ReplicaHealth>("@effect-pg-pool/ReplicaHealth")({
  status: PoolState,
  reason: Schema.OptionFromUndefinedOr(Schema.String),
  statistics: PoolStatistics
}) {}

/**
 * What `Db.health` returns.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect, Option } from "effect"
 *
 * const readiness = Effect.map(Db.health, (h) => ({ ready: h.status !== "unhealthy", why: Option.getOrUndefined(h.reason) }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class HealthStatus extends Schema.Class<HealthStatus>("@effect-pg-pool/HealthStatus")({
  status: PoolState,
  /** Why the pool is not healthy, for a human. */
  reason: Schema.OptionFromUndefinedOr(Schema.String),
  checkedAt: Schema.DateFromMillis,
  database: DatabaseReachability,
  statistics: PoolStatistics,
  /**
   * The read-only pool's, when there is one. The overall `status` is the primary's, degraded when the primary is
   * healthy but the replicas are not.
   */
  replicas: Schema.OptionFromUndefinedOr(ReplicaHealth).pipe(
    Schema.withConstructorDefault(Effect.succeed(Option.none()))
  )
}) {}

/**
 * The health as plain JSON-ready data, for an HTTP endpoint.
 *
 * @example
 * ```ts
 * import { Db, Health } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const body = Effect.map(Db.health, (h) => JSON.stringify(Health.encode(h)))
 * ```
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (health: HealthStatus): typeof HealthStatus.Encoded => ({
  status: health.status,
  reason: Option.getOrUndefined(health.reason),
  checkedAt: health.checkedAt.getTime(),
  database: {
    reachable: health.database.reachable,
    latencyMs: Option.getOrUndefined(health.database.latencyMs),
    probedAt: Option.match(health.database.probedAt, { onNone: () => undefined, onSome: (date) => date.getTime() })
  },
  statistics: encodeStatistics(health.statistics),
  replicas: Option.match(health.replicas, {
    onNone: () => undefined,
    onSome: (replicas) => ({
      status: replicas.status,
      reason: Option.getOrUndefined(replicas.reason),
      statistics: encodeStatistics(replicas.statistics)
    })
  })
})
