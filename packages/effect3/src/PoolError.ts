/**
 * The pool's one error family. Every message says what happened, with the figures, and what to do next.
 *
 * @since 0.1.0
 */
import { Messages } from "@effect-pg-pool/engine"
import * as Data from "effect/Data"
import * as Predicate from "effect/Predicate"
import type { PoolStatistics } from "./PoolStatistics.js"

/**
 * The brand every error of the family carries; `isPoolError` tests for it. It is a `Symbol.for` key, so it
 * holds across two copies of the package, where `instanceof` does not.
 *
 * @example
 * ```ts
 * import { PoolError } from "@effect-pg-pool/effect3"
 * import { Predicate } from "effect"
 *
 * const isPoolError = (u: unknown): u is PoolError.PoolError => Predicate.hasProperty(u, PoolError.TypeId)
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@effect-pg-pool/PoolError")

/**
 * The type of `TypeId`.
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Whether `u` is one of the pool's errors (`PoolError`).
 *
 * @example
 * ```ts
 * import { PoolError } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * declare const handler: Effect.Effect<{ readonly status: number }, unknown>
 *
 * // the pool's errors mean "try again later"
 * const response = handler.pipe(
 *   Effect.catchAll((error) => Effect.succeed({ status: PoolError.isPoolError(error) ? 503 : 500 }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category refinements
 */
export const isPoolError = (u: unknown): u is PoolError => Predicate.hasProperty(u, TypeId)

/**
 * One invalid configuration field.
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * // one structured log line per invalid setting
 * const config = PoolConfig.fromEnv.pipe(
 *   Effect.tapErrorTag("PoolConfigError", (error) =>
 *     Effect.forEach(error.issues, (issue) =>
 *       Effect.logError(issue.message).pipe(Effect.annotateLogs({ env: issue.env, field: issue.field }))
 *     )
 *   )
 * )
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
  /**
   * The name the configuration gave it, which the message uses: the option (`minSize`, or `minConnections`
   * where that alias was used), the `Config` key (`PG_MIN`) or the environment variable.
   */
  readonly setting: string
  /** What was given, already redacted where it could hold a secret. */
  readonly value: string
  /** What is wrong and how to fix it. */
  readonly message: string
}

/**
 * Every invalid configuration field, reported at once.
 *
 * @example
 * ```ts
 * import { DatabaseLive, Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * // the message lists every invalid setting at once, each with its variable and the fix
 * const program = Db.withConnection((sql) => sql`SELECT 1`).pipe(
 *   Effect.provide(DatabaseLive),
 *   Effect.catchTag("PoolConfigError", (error) => Effect.logError(error.message))
 * )
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
 * The database could not be reached while the pool was being built (eager initialisation).
 *
 * @example
 * ```ts
 * import { DatabaseLive, Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const program = Db.withConnection((sql) => sql`SELECT 1`).pipe(
 *   Effect.provide(DatabaseLive),
 *   Effect.catchTag("DatabaseUnreachable", (error) =>
 *     Effect.logError(`no database at ${error.host}:${error.port} after ${error.attempts} attempts`)
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseUnreachable extends Data.TaggedError("DatabaseUnreachable")<Messages.DatabaseUnreachableFields> {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  override get message(): string {
    return Messages.databaseUnreachable(this)
  }
}

/**
 * The server answered and refused the pool's connection for a reason retrying cannot cure — a wrong password,
 * a missing role or database, a startup setting or TLS configuration it rejects. Eager initialisation fails
 * with it at once instead of waiting through the backoff; in lazy mode and after start the pool keeps
 * retrying (someone may fix the server) and reports the rejection in `Db.health` and the statistics.
 *
 * @example
 * ```ts
 * import { DatabaseLive, Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const program = Db.withConnection((sql) => sql`SELECT 1`).pipe(
 *   Effect.provide(DatabaseLive),
 *   Effect.catchTag("ConnectionRejected", (error) =>
 *     Effect.logError(`fix the configuration (SQLSTATE ${error.code ?? "none"}): ${error.remedy}`)
 *   )
 * )
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
 * No connection became free within `acquireTimeout`.
 *
 * It reaches you in one of two shapes. `Db.withConnection` fails with the `AcquireTimeout` itself (and
 * `PoolClosed` likewise), so `catchTag("AcquireTimeout")` works there. A statement run through `SqlClient` or
 * `PgClient` (tagged templates, `withTransaction`, `reserve`) fails with @effect/sql's `SqlError`, as every error
 * of that interface does, with the `AcquireTimeout` as its `cause`: test the cause, as below.
 *
 * @example
 * ```ts
 * import { Db, PoolError } from "@effect-pg-pool/effect3"
 * import { SqlClient } from "@effect/sql"
 * import { Effect } from "effect"
 *
 * // Db.withConnection: the AcquireTimeout itself, with the pool's figures at the time
 * const viaDb = Db.withConnection((sql) => sql`SELECT 1`).pipe(
 *   Effect.catchTag("AcquireTimeout", (error) => Effect.as(Effect.logWarning(error.message, error.statistics), []))
 * )
 * // SqlClient: a SqlError whose cause is the AcquireTimeout
 * const viaSql = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
 *   Effect.catchIf((error) => error.cause instanceof PoolError.AcquireTimeout, () => Effect.succeed([]))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class AcquireTimeout extends Data.TaggedError("AcquireTimeout")<{
  readonly waitedMillis: number
  readonly statistics: PoolStatistics
  /**
   * How the pool's configuration named the settings the remedy mentions (`maxSize`, `PG_MAX`,
   * `DB_POOL_MAX_SIZE`…); the environment variables when absent.
   */
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
 * The pool is shutting down or closed; no new work is accepted.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * // a background job caught by shutdown stops quietly
 * const purge = Db.withConnection((sql) => sql`DELETE FROM sessions WHERE expires_at < now()`).pipe(
 *   Effect.catchTag("PoolClosed", (error) => Effect.logInfo(`pool ${error.poolName} closed, purge skipped`))
 * )
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
 * Every error of the pool.
 *
 * @example
 * ```ts
 * import { PoolError } from "@effect-pg-pool/effect3"
 * import { Match } from "effect"
 *
 * const httpStatus = (error: PoolError.PoolError): number =>
 *   Match.valueTags(error, {
 *     AcquireTimeout: () => 503,
 *     PoolClosed: () => 503,
 *     DatabaseUnreachable: () => 503,
 *     ConnectionRejected: () => 500,
 *     PoolConfigError: () => 500
 *   })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type PoolError = PoolConfigError | DatabaseUnreachable | ConnectionRejected | AcquireTimeout | PoolClosed
