/**
 * The pool's typed errors: one tagged family, each with a message that states what happened, the figures, and
 * what to do next. The same names, fields and messages as the Effect 3 edition.
 *
 * @since 0.1.0
 */
import { Messages } from "@effect-pg-pool/engine"
import * as Data from "effect/Data"
import * as Predicate from "effect/Predicate"
import type { PoolStatistics } from "./PoolStatistics.js"

/**
 * Marks every error of the family.
 *
 * @example
 * ```ts
 * import { PoolError } from "@effect-pg-pool/effect4"
 *
 * const mine = (u: unknown) =>
 *   typeof u === "object" && u !== null && PoolError.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: unique symbol = Symbol.for("@effect-pg-pool/PoolError")

/**
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = typeof TypeId

/**
 * Whether a value is one of the pool's errors.
 *
 * @example
 * ```ts
 * import { PoolError } from "@effect-pg-pool/effect4"
 *
 * const error = new PoolError.PoolClosed({ poolName: "default" })
 * PoolError.isPoolError(error) // true
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isPoolError = (u: unknown): u is PoolError => Predicate.hasProperty(u, TypeId)

/**
 * One problem of a configuration.
 *
 * @example
 * ```ts
 * import type { PoolError } from "@effect-pg-pool/effect4"
 *
 * const line = (issue: PoolError.ConfigIssue) =>
 *   `${issue.env}: ${issue.message}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigIssue {
  /** The `PoolConfig` field, e.g. `minSize`. */
  readonly field: string
  /** The environment variable that sets it, e.g. `DB_POOL_MIN_SIZE`. */
  readonly env: string
  /** The name the configuration gave it, which the message uses (the option or the environment variable). */
  readonly setting: string
  /** What was given, already redacted where it could hold a secret. */
  readonly value: string
  /** What is wrong and how to fix it. */
  readonly message: string
}

/**
 * The configuration is invalid: every problem at once, each naming the setting as written.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const DbLive = Db.layer({ url: "postgres://localhost/app", minSize: 5, maxSize: 2 })
 * const program = Effect.provide(Db.statistics, DbLive)
 * // fails with PoolConfigError: minSize (5) must be ≤ maxSize (2): lower minSize or raise maxSize
 * ```
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
    return Messages.poolConfigError(this.issues)
  }
}

/**
 * An eager start could not reach the database within its attempts.
 *
 * @example
 * ```ts
 * import { PoolError } from "@effect-pg-pool/effect4"
 *
 * const error = new PoolError.DatabaseUnreachable({
 *   host: "db", port: 5432, database: "app", attempts: 5, elapsedMillis: 31_000, lastCause: "connect ECONNREFUSED"
 * })
 * error.message // Could not connect to PostgreSQL at db:5432/app after 5 attempts over 31.0 s; …
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseUnreachable extends Data.TaggedError("DatabaseUnreachable")<
  Messages.DatabaseUnreachableFields & {
    readonly cause?: unknown
  }
> {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  override get message(): string {
    return Messages.databaseUnreachable(this)
  }
}

/**
 * The server refused the login for a reason retrying cannot fix (a configuration error).
 *
 * @example
 * ```ts
 * import { PoolError } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const explain = (error: PoolError.ConnectionRejected) => Effect.logError(`${error.code}: ${error.remedy}`)
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionRejected extends Data.TaggedError("ConnectionRejected")<Messages.ConnectionRejectedFields> {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  override get message(): string {
    return Messages.connectionRejected(this)
  }
}

/**
 * No connection freed up within `acquireTimeout`; carries the figures at that instant.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const rows = Db.withConnection((sql) => sql`SELECT 1`).pipe(
 *   Effect.catchTag("AcquireTimeout", (error) => Effect.as(Effect.logWarning(error.message), []))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class AcquireTimeout extends Data.TaggedError("AcquireTimeout")<{
  readonly waitedMillis: number
  readonly statistics: PoolStatistics
  /** How the configuration named the settings the remedy mentions; the environment variables when absent. */
  readonly settingNames?: { readonly maxSize: string; readonly acquireTimeout: string } | undefined
}> {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  override get message(): string {
    return Messages.acquireTimeout(this)
  }
}

/**
 * The pool is shutting down or closed.
 *
 * @example
 * ```ts
 * import { PoolError } from "@effect-pg-pool/effect4"
 *
 * const closed = new PoolError.PoolClosed({ poolName: "default" })
 * closed.message // The database pool "default" is shutting down …
 * ```
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
    return Messages.poolClosed(this.poolName)
  }
}

/**
 * Any of the pool's errors.
 *
 * @example
 * ```ts
 * import type { PoolError } from "@effect-pg-pool/effect4"
 *
 * const retryable = (error: PoolError.PoolError) =>
 *   error._tag === "AcquireTimeout" || error._tag === "DatabaseUnreachable"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type PoolError = PoolConfigError | DatabaseUnreachable | ConnectionRejected | AcquireTimeout | PoolClosed
