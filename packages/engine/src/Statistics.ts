/**
 * The figures a pool keeps about itself, and the percentiles of its acquisition times. Reading them costs no I/O.
 *
 * @since 0.1.0
 */
import type { PoolState } from "./Assessment.js"

/**
 * Why a session was closed.
 *
 * @example
 * ```ts
 * import type { Statistics } from "@effect-pg-pool/engine"
 *
 * const unplanned = (reason: Statistics.CloseReason) =>
 *   reason === "broken" || reason === "validation" || reason === "reset" || reason === "cancel"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type CloseReason =
  | "lifetime"
  | "idle"
  | "maxQueries"
  | "broken"
  | "validation"
  | "reset"
  | "cancel"
  | "shutdown"
  /** Retired by a refresh (`RefreshRequested`): opened before it. */
  | "refreshed"
  /**
   * Evicted (`SessionEvicted`) because its server no longer serves the pool's target: a promotion or a demotion,
   * or a `prefer-standby` pool leaving its fallback primary once a standby is up.
   */
  | "roleChanged"

/**
 * A point-in-time snapshot of a pool (the edition adds its name and wall-clock start).
 *
 * @example
 * ```ts
 * import type { Statistics } from "@effect-pg-pool/engine"
 *
 * const line = (s: Statistics.Snapshot) =>
 *   `${s.active}/${s.total} busy, ${s.waiting} waiting, p99 ${s.acquisitionTimeP99Ms.toFixed(2)} ms, ${s.state}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly total: number
  readonly idle: number
  readonly active: number
  /** Sessions being opened. */
  readonly pending: number
  /** Acquisitions waiting in the queue. */
  readonly waiting: number
  readonly minSize: number
  readonly maxSize: number
  readonly peakActive: number
  readonly peakWaiting: number
  readonly acquisitions: number
  readonly acquisitionTimeAvgMs: number
  readonly acquisitionTimeP95Ms: number
  readonly acquisitionTimeP99Ms: number
  readonly acquireTimeouts: number
  readonly connectionsCreated: number
  readonly connectionsClosed: Readonly<Record<CloseReason, number>>
  readonly reconnectAttempts: number
  readonly leaksSuspected: number
  readonly state: PoolState
  readonly lastError: string | undefined
}

/**
 * Closed sessions by reason, all zero.
 *
 * @example
 * ```ts
 * import { Statistics } from "@effect-pg-pool/engine"
 *
 * const closed = Statistics.noneClosed()
 * closed.lifetime++
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const noneClosed = (): Record<CloseReason, number> => ({
  lifetime: 0,
  idle: 0,
  maxQueries: 0,
  broken: 0,
  validation: 0,
  reset: 0,
  cancel: 0,
  shutdown: 0,
  refreshed: 0,
  roleChanged: 0
})

/**
 * The names of the pool's metrics in every edition (the OpenTelemetry database-client connection conventions), so
 * that a dashboard built on one edition reads the other.
 *
 * @example
 * ```ts
 * import { Statistics } from "@effect-pg-pool/engine"
 *
 * // an edition's gauge of waiting callers, and a dashboard query on it
 * const waiting = Statistics.metricNames.pendingRequests // "db.client.connection.pending_requests"
 * const query = `max(${waiting.replaceAll(".", "_")})`
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metricNames = {
  count: "db.client.connection.count",
  max: "db.client.connection.max",
  idleMax: "db.client.connection.idle.max",
  idleMin: "db.client.connection.idle.min",
  pendingRequests: "db.client.connection.pending_requests",
  timeouts: "db.client.connection.timeouts",
  createTime: "db.client.connection.create_time",
  waitTime: "db.client.connection.wait_time",
  useTime: "db.client.connection.use_time",
  closed: "db.client.connection.closed",
  reconnects: "db.client.connection.reconnect_attempts",
  leaks: "db.client.connection.leaks",
  state: "db.client.connection.pool.state"
} as const

/**
 * The attribute (tag) naming the pool on every metric.
 *
 * @example
 * ```ts
 * import { Statistics } from "@effect-pg-pool/engine"
 *
 * // every metric of the pool named "orders" carries this attribute
 * const attributes = { [Statistics.poolNameAttribute]: "orders" }
 * const name = attributes["db.client.connection.pool.name"] // "orders"
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const poolNameAttribute = "db.client.connection.pool.name"

/**
 * The buckets of the time histograms (create, wait, use), in seconds: from 10 µs (an idle hand-out) to a minute
 * (a saturated pool).
 *
 * @example
 * ```ts
 * import { Statistics } from "@effect-pg-pool/engine"
 *
 * // the bucket a 3 ms acquisition falls in
 * const seconds = 0.003
 * const bucket = Statistics.secondsBuckets.find((upper) => seconds <= upper) // 0.005
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const secondsBuckets: ReadonlyArray<number> = [
  0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
  60
]

/**
 * The last `size` acquisition times, for p95 and p99: a ring buffer, sorted only when read after new samples.
 *
 * @example
 * ```ts
 * import { Statistics } from "@effect-pg-pool/engine"
 *
 * const window = new Statistics.LatencyWindow(1024)
 * for (let ms = 1; ms <= 100; ms++) window.record(ms)
 * window.percentiles() // [96, 100]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class LatencyWindow {
  private readonly samples: Float64Array
  private count = 0
  private sortedAt = 0
  private cached: readonly [number, number] = [0, 0]

  constructor(readonly size: number) {
    this.samples = new Float64Array(size)
  }

  record(millis: number): void {
    this.samples[this.count++ % this.size] = millis
  }

  /** p95 and p99 of the samples kept (the sample at index ⌊p·n⌋ of the sorted ones); zeros before the first. */
  percentiles(): readonly [number, number] {
    if (this.count === this.sortedAt) return this.cached
    const n = Math.min(this.count, this.size)
    const sorted = this.samples.slice(0, n).sort()
    const at = (p: number) => sorted[Math.min(n - 1, Math.floor(p * n))]!
    this.cached = [at(0.95), at(0.99)]
    this.sortedAt = this.count
    return this.cached
  }
}
