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
  refreshed: 0
})

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
