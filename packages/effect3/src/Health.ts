/**
 * The pool's health, answered from pool state plus a background probe: asking never waits on a saturated
 * pool and never opens a connection.
 *
 * Rules, first match wins:
 * - `unhealthy`: the pool is closed or shutting down; or it cannot open connections and has none left.
 * - `degraded`: it is reconnecting after a failure (some connections still serve); it has not connected
 *   yet (lazy start); it holds fewer than `minSize` connections; or it is saturated — the oldest waiting
 *   caller has waited longer than {@link saturationThresholdMillis}; or, itself healthy, its read replicas'
 *   pool (`replicas`) is not.
 * - `healthy`: otherwise.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import { Assessment } from "@effect-pg-pool/engine"
import * as Schema from "effect/Schema"
import { encode as encodeStatistics, PoolState, PoolStatistics } from "./PoolStatistics.js"

/**
 * A caller waiting longer than this for a connection marks the pool as saturated (degraded).
 *
 * @example
 * ```ts
 * import { Db, Health } from "@effect-pg-pool/effect3"
 * import { Effect, TestClock } from "effect"
 *
 * // in a test where every connection is held and a caller waits for one
 * const saturated = Effect.gen(function* () {
 *   yield* TestClock.adjust(Health.saturationThresholdMillis + 1)
 *   return (yield* Db.health).status // "degraded"
 * })
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const saturationThresholdMillis: number = Assessment.saturationThresholdMillis

/**
 * What the last background probe saw of the database.
 *
 * @example
 * ```ts
 * import { Db, Health } from "@effect-pg-pool/effect3"
 * import { Effect, Option } from "effect"
 *
 * const describe = (database: Health.DatabaseReachability): string =>
 *   database.reachable
 *     ? Option.match(database.latencyMs, { onNone: () => "up", onSome: (ms) => `up, probe took ${ms} ms` })
 *     : "unreachable"
 *
 * const database = Effect.map(Db.health, (health) => describe(health.database))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class DatabaseReachability extends Schema.Class<DatabaseReachability>("@effect-pg-pool/DatabaseReachability")({
  reachable: Schema.Boolean,
  /** Round trip of the last probe, in milliseconds. */
  latencyMs: Schema.OptionFromUndefinedOr(Schema.Number),
  probedAt: Schema.OptionFromUndefinedOr(Schema.DateFromNumber)
}) {}

/**
 * The read replicas' part of `Db.health` (their own pool, with `Db.readOnly`): its status and why, what its last
 * probe saw, and its statistics (named `<name>-replicas`, with their hosts).
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect, Option } from "effect"
 *
 * // reads served from the primary because no standby is up
 * const readsOnPrimary = Effect.map(Db.health, (health) =>
 *   Option.match(health.replicas, {
 *     onNone: () => false,
 *     onSome: (replicas) => replicas.statistics.hosts.every((h) => h.role !== "standby" || h.sessions === 0)
 *   })
 * )
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export class ReplicaHealth extends Schema.Class<ReplicaHealth>("@effect-pg-pool/ReplicaHealth")({
  status: PoolState,
  reason: Schema.OptionFromUndefinedOr(Schema.String),
  database: DatabaseReachability,
  statistics: PoolStatistics
}) {}

/**
 * What `Db.health` answers: the status and why, when it was checked, what the last probe saw of the database, and
 * the pool's statistics. With read replicas configured, `replicas` holds theirs, and a healthy primary whose
 * replicas are not healthy is `degraded` (reads may be failing or served by the primary), with the replicas'
 * reason.
 *
 * @example
 * ```ts
 * import { Db, Health } from "@effect-pg-pool/effect3"
 * import { Effect, Schema } from "effect"
 *
 * // its JSON form: options become undefined, dates epoch milliseconds (Health.encode is the fast path)
 * const healthJson = Effect.map(Db.health, Schema.encodeSync(Health.HealthStatus))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class HealthStatus extends Schema.Class<HealthStatus>("@effect-pg-pool/HealthStatus")({
  status: PoolState,
  /** Why the pool is not healthy, for a human. */
  reason: Schema.OptionFromUndefinedOr(Schema.String),
  checkedAt: Schema.DateFromNumber,
  database: DatabaseReachability,
  statistics: PoolStatistics,
  /** The read replicas' health, when configured (`PoolConfig.replicas`). */
  replicas: Schema.optionalWith(Schema.OptionFromUndefinedOr(ReplicaHealth), { default: () => Option.none() })
}) {}

const encodeDatabase = (database: DatabaseReachability): typeof DatabaseReachability.Encoded => ({
  reachable: database.reachable,
  latencyMs: Option.getOrUndefined(database.latencyMs),
  probedAt: Option.match(database.probedAt, { onNone: () => undefined, onSome: (date) => date.getTime() })
})

/**
 * The JSON form of a `HealthStatus`: exactly what `Schema.encodeSync(HealthStatus)` gives (tested to agree), written
 * out by hand because load balancers poll `/health` many times a second and the generic encoder costs about ten
 * times more than the health check itself.
 *
 * @example
 * ```ts
 * import { Db, Health } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const healthJson = Effect.map(Db.health, (health) => JSON.stringify(Health.encode(health)))
 * ```
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (health: HealthStatus): typeof HealthStatus.Encoded => ({
  status: health.status,
  reason: Option.getOrUndefined(health.reason),
  checkedAt: health.checkedAt.getTime(),
  database: encodeDatabase(health.database),
  statistics: encodeStatistics(health.statistics),
  replicas: Option.match(health.replicas, {
    onNone: () => undefined,
    onSome: (replicas) => ({
      status: replicas.status,
      reason: Option.getOrUndefined(replicas.reason),
      database: encodeDatabase(replicas.database),
      statistics: encodeStatistics(replicas.statistics)
    })
  })
})
