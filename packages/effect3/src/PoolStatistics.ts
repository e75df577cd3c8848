/**
 * A point-in-time snapshot of a pool: sizes, waiting callers, acquisition latency, churn and state.
 * Reading it costs no I/O; it is assembled from counters the pool keeps anyway.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/**
 * `healthy`: connections can be made and the pool is at or above `minSize`.
 * `degraded`: reconnecting, below `minSize`, or saturated — still serving.
 * `unhealthy`: no connection can be made, or the pool is closed.
 *
 * @example
 * ```ts
 * import { PoolStatistics } from "@effect-pg-pool/effect3"
 * import { Schema } from "effect"
 *
 * // the state as a field of your own API's schema
 * class Readiness extends Schema.Class<Readiness>("Readiness")({
 *   pool: PoolStatistics.PoolState,
 *   ready: Schema.Boolean
 * }) {}
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const PoolState = Schema.Literal("healthy", "degraded", "unhealthy")

/**
 * The pool's state: `healthy`, `degraded` or `unhealthy`.
 *
 * @since 0.1.0
 * @category models
 */
export type PoolState = typeof PoolState.Type

/**
 * Why connections were closed, counted since the pool started.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * // connections found dead (broken sockets, failed validations) rather than recycled on purpose
 * const lost = Effect.map(Db.statistics, ({ connectionsClosed: closed }) => closed.broken + closed.validation)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class ClosedByReason extends Schema.Class<ClosedByReason>("@effect-pg-pool/ClosedByReason")({
  lifetime: Schema.Number,
  idle: Schema.Number,
  maxQueries: Schema.Number,
  broken: Schema.Number,
  validation: Schema.Number,
  reset: Schema.Number,
  cancel: Schema.Number,
  shutdown: Schema.Number,
  /** Retired by `Db.refresh`: opened before it. */
  refreshed: Schema.Number,
  /**
   * Evicted because its server no longer serves the pool's target: a promotion or a demotion (a read-write pool's
   * session on a demoted primary, a standby pool's on a promoted standby), or a `prefer-standby` pool (the read
   * replicas) leaving its fallback primary once a standby is up.
   */
  roleChanged: Schema.Number
}) {}

/**
 * The reason a connection left the pool.
 *
 * @example
 * ```ts
 * import { Db, PoolStatistics } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const closedBy = (reason: PoolStatistics.CloseReason) =>
 *   Effect.map(Db.statistics, (stats) => stats.connectionsClosed[reason])
 *
 * const recycled = closedBy("lifetime")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type CloseReason = keyof typeof ClosedByReason.fields

/**
 * One host of a multi-host pool (several hosts, or a `targetSessionAttrs`): its role as last seen, whether it is up
 * (no failure since its last success, not waiting out a backoff), the pool's sessions on it, its failures in a row
 * and the last one (any password removed).
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * // where the sessions are, e.g. for a failover dashboard
 * const placement = Effect.map(Db.statistics, ({ hosts }) =>
 *   hosts.map((h) => `${h.host}:${h.port} ${h.role} ${h.up ? "up" : "down"}, ${h.sessions} sessions`)
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class HostStatistics extends Schema.Class<HostStatistics>("@effect-pg-pool/HostStatistics")({
  host: Schema.String,
  port: Schema.Number,
  /** `primary`, `standby`, `read-only` (read-only by default, not known to be in recovery) or `unknown`. */
  role: Schema.Literal("primary", "standby", "read-only", "unknown"),
  up: Schema.Boolean,
  sessions: Schema.Number,
  /** Failures in a row. */
  failures: Schema.Number,
  lastError: Schema.OptionFromUndefinedOr(Schema.String)
}) {}

/**
 * What `Db.statistics` answers: sizes, waiting callers, acquisition latency, churn and state, read from memory.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const stats = yield* Db.statistics
 *   yield* Effect.log(`${stats.active}/${stats.total} busy, ${stats.waiting} waiting`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class PoolStatistics extends Schema.Class<PoolStatistics>("@effect-pg-pool/PoolStatistics")({
  /** The pool's name, as used in metric tags and logs. */
  poolName: Schema.String,
  /** Open connections: idle + active. */
  total: Schema.Number,
  idle: Schema.Number,
  active: Schema.Number,
  /** Connections being opened right now. */
  pending: Schema.Number,
  /** Callers queued for a connection. */
  waiting: Schema.Number,
  minSize: Schema.Number,
  maxSize: Schema.Number,
  peakActive: Schema.Number,
  peakWaiting: Schema.Number,
  /** Successful acquisitions since start. */
  acquisitions: Schema.Number,
  acquisitionTimeAvgMs: Schema.Number,
  acquisitionTimeP95Ms: Schema.Number,
  acquisitionTimeP99Ms: Schema.Number,
  acquireTimeouts: Schema.Number,
  connectionsCreated: Schema.Number,
  connectionsClosed: ClosedByReason,
  reconnectAttempts: Schema.Number,
  leaksSuspected: Schema.Number,
  state: PoolState,
  /** The last connection-level error, with any password removed. */
  lastError: Schema.OptionFromUndefinedOr(Schema.String),
  upSince: Schema.DateFromNumber,
  /** Per host, for a multi-host pool (several hosts, or a `targetSessionAttrs`); empty otherwise. */
  hosts: Schema.optionalWith(Schema.Array(HostStatistics), { default: () => [] })
}) {}

/**
 * The JSON form of a `PoolStatistics`: exactly what `Schema.encodeSync(PoolStatistics)` gives (tested to agree),
 * written out by hand because a `/stats` or `/health` endpoint answers many times a second and the generic
 * encoder costs about ten times more.
 *
 * @example
 * ```ts
 * import { Db, PoolStatistics } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const statsJson = Effect.map(Db.statistics, (stats) => JSON.stringify(PoolStatistics.encode(stats)))
 * ```
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (statistics: PoolStatistics): typeof PoolStatistics.Encoded => ({
  poolName: statistics.poolName,
  total: statistics.total,
  idle: statistics.idle,
  active: statistics.active,
  pending: statistics.pending,
  waiting: statistics.waiting,
  minSize: statistics.minSize,
  maxSize: statistics.maxSize,
  peakActive: statistics.peakActive,
  peakWaiting: statistics.peakWaiting,
  acquisitions: statistics.acquisitions,
  acquisitionTimeAvgMs: statistics.acquisitionTimeAvgMs,
  acquisitionTimeP95Ms: statistics.acquisitionTimeP95Ms,
  acquisitionTimeP99Ms: statistics.acquisitionTimeP99Ms,
  acquireTimeouts: statistics.acquireTimeouts,
  connectionsCreated: statistics.connectionsCreated,
  connectionsClosed: { ...statistics.connectionsClosed },
  reconnectAttempts: statistics.reconnectAttempts,
  leaksSuspected: statistics.leaksSuspected,
  state: statistics.state,
  lastError: Option.getOrUndefined(statistics.lastError),
  upSince: statistics.upSince.getTime(),
  hosts: statistics.hosts.map((host) => ({
    host: host.host,
    port: host.port,
    role: host.role,
    up: host.up,
    sessions: host.sessions,
    failures: host.failures,
    lastError: Option.getOrUndefined(host.lastError)
  }))
})
