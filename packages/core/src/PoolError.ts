/**
 * The pool's one error family. Every message says what happened, with the figures, and what to do next.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Predicate from "effect/Predicate"
import type { PoolStatistics } from "./PoolStatistics.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@effect-pg-pool/PoolError")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * @since 0.1.0
 * @category refinements
 */
export const isPoolError = (u: unknown): u is PoolError => Predicate.hasProperty(u, TypeId)

/**
 * One invalid configuration field.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigIssue {
  /** The `PoolConfig` field, e.g. `minSize`. */
  readonly field: string
  /** The environment variable that sets it, e.g. `DB_POOL_MIN_SIZE`. */
  readonly env: string
  /** What was given, already redacted where it could hold a secret. */
  readonly value: string
  /** What is wrong and how to fix it. */
  readonly message: string
}

/**
 * Every invalid configuration field, reported at once.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolConfigError extends Data.TaggedError("PoolConfigError")<{
  readonly issues: ReadonlyArray<ConfigIssue>
}> {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  override get message(): string {
    const n = this.issues.length
    return (
      `Invalid database pool configuration (${n} problem${n === 1 ? "" : "s"}):\n` +
      this.issues.map((issue) => `  - ${issue.message}`).join("\n")
    )
  }
}

/**
 * The database could not be reached while the pool was being built (eager initialisation).
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseUnreachable extends Data.TaggedError("DatabaseUnreachable")<{
  readonly host: string
  readonly port: number
  readonly database: string
  readonly attempts: number
  readonly elapsedMillis: number
  /** The last attempt's error, with any password removed. */
  readonly lastCause: string
  readonly cause?: unknown
}> {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  override get message(): string {
    return (
      `Could not connect to PostgreSQL at ${this.host}:${this.port}/${this.database} after ${this.attempts} ` +
      `attempt${this.attempts === 1 ? "" : "s"} over ${(this.elapsedMillis / 1000).toFixed(1)} s; last error: ` +
      `${this.lastCause}. Check that the server is running and reachable and that DATABASE_URL is right, ` +
      `or set DB_POOL_INIT=lazy to start without it and connect in the background.`
    )
  }
}

/**
 * No connection became free within `acquireTimeout`.
 *
 * @since 0.1.0
 * @category errors
 */
export class AcquireTimeout extends Data.TaggedError("AcquireTimeout")<{
  readonly waitedMillis: number
  readonly statistics: PoolStatistics
}> {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  override get message(): string {
    const s = this.statistics
    // a saturated pool reports itself degraded, but its connections are fine: they were all busy
    const cause =
      s.active >= s.maxSize
        ? `all ${s.active} of ${s.maxSize} connections stayed busy (${s.waiting} callers waiting). ` +
          `Raise DB_POOL_MAX_SIZE, shorten transactions, or raise DB_POOL_ACQUIRE_TIMEOUT.`
        : `the pool is ${s.state}${s.lastError._tag === "Some" ? ` (last error: ${s.lastError.value})` : ""}; ` +
          `${s.total} of ${s.maxSize} connections open, ${s.waiting} callers waiting. Check the database.`
    return `Timed out after ${this.waitedMillis} ms waiting for a database connection: ${cause}`
  }
}

/**
 * The pool is shutting down or closed; no new work is accepted.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolClosed extends Data.TaggedError("PoolClosed")<{
  readonly poolName: string
}> {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  override get message(): string {
    return (
      `The database pool "${this.poolName}" is shutting down or closed and accepts no new work. ` +
      `Acquire connections only while the layer that provides it is alive.`
    )
  }
}

/**
 * @since 0.1.0
 * @category errors
 */
export type PoolError = PoolConfigError | DatabaseUnreachable | AcquireTimeout | PoolClosed
