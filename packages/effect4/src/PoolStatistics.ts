/**
 * A point-in-time snapshot of a pool: sizes, waiting callers, acquisition latency, churn and state.
 * Reading it costs no I/O; it is assembled from counters the pool keeps anyway.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/**
 * `healthy`: connections can be made and the pool is at or above `minSize`.
 * `degraded`: reconnecting, below `minSize`, or saturated — still serving.
 * `unhealthy`: no connection can be made, or the pool is closed.
 *
 * @example
 * ```ts
 * import { PoolStatistics } from "@effect-pg-pool/effect4"
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
export const PoolState = Schema.Literals(["healthy", "degraded", "unhealthy"])

/**
 * The pool's state: `healthy`, `degraded` or `unhealthy`.
 *
 * @example
 * ```ts
 * import type { PoolStatistics } from "@effect-pg-pool/effect4"
 *
 * const ready = (state: PoolStatistics.PoolState) =>
 *   state !== "unhealthy"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type PoolState = typeof PoolState.Type

/**
 * Connections closed since start, by reason.
 *
 * @example
 * ```ts
 * import type { PoolStatistics } from "@effect-pg-pool/effect4"
 *
 * const unplanned = (c: PoolStatistics.ClosedByReason) =>
 *   c.broken + c.validation + c.reset + c.cancel
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
  /** Retired by a refresh (the engine's `RefreshRequested`): opened before it. */
  refreshed: Schema.Number,
  /** Evicted because its server no longer serves the pool's target (a promotion, a demotion, a fallback ended). */
  roleChanged: Schema.Number
}) {}

/**
 * Why a connection was closed.
 *
 * @example
 * ```ts
 * import type { PoolStatistics } from "@effect-pg-pool/effect4"
 *
 * const reasons: ReadonlyArray<PoolStatistics.CloseReason> = [
 *   "lifetime", "idle", "broken"
 * ]
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
 * import { Db } from "@effect-pg-pool/effect4"
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
  role: Schema.Literals(["primary", "standby", "read-only", "unknown"]),
  up: Schema.Boolean,
  sessions: Schema.Number,
  /** Failures in a row. */
  failures: Schema.Number,
  lastError: Schema.OptionFromUndefinedOr(Schema.String)
}) {}

/**
 * The snapshot `Db.statistics` returns.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const line = Effect.map(Db.statistics, (s) => `${s.active}/${s.maxSize} busy, ${s.waiting} waiting, ${s.state}`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class PoolStatistics extends Schema.Class<PoolStatistics>("@effect-pg-pool/PoolStatistics")({
  /** The pool's name, as used in metric attributes and logs. */
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
  upSince: Schema.DateFromMillis,
  /** Per host, for a multi-host pool (several hosts, or a `targetSessionAttrs`); empty otherwise. */
  hosts: Schema.Array(HostStatistics).pipe(Schema.withConstructorDefault(Effect.succeed([])))
}) {}

/**
 * The snapshot as plain JSON-ready data (the last error as a string or absent, the start as milliseconds).
 *
 * @example
 * ```ts
 * import { Db, PoolStatistics } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const json = Effect.map(Db.statistics, (s) => JSON.stringify(PoolStatistics.encode(s)))
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
