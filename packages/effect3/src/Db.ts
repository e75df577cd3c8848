/**
 * The database service: one pool, a `withConnection` for session work, statistics and health — and the
 * same pool as @effect/sql's `SqlClient` and @effect/sql-pg's `PgClient`, so the layer is a drop-in for
 * `PgClient.layer`.
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as Pg from "pg"
import type { HealthStatus } from "./Health.js"
import * as Client from "./internal/client.js"
import * as InternalConfig from "./internal/config.js"
import * as Listener from "./internal/listener.js"
import * as Logging from "./internal/logger.js"
import * as Metrics from "./internal/metrics.js"
import * as InternalPool from "./internal/pool.js"
import * as Replicas from "./internal/replicas.js"
import type * as PoolConfig from "./PoolConfig.js"
import {
  type AcquireTimeout,
  type ConnectionRejected,
  type DatabaseUnreachable,
  type PoolClosed,
  PoolConfigError
} from "./PoolError.js"
import type { PoolStatistics } from "./PoolStatistics.js"

/**
 * The pool service. Most code uses the accessors below (`withConnection`, `statistics`, `health`) or `SqlClient`;
 * take the tag itself to reach several of its members at once.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const report = Effect.gen(function* () {
 *   const db = yield* Db.Db
 *   const stats = yield* db.statistics
 *   yield* Effect.log(`pool ${db.config.name}: ${stats.active} of ${db.config.maxSize} connections busy`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class Db extends Context.Tag("@effect-pg-pool/Db")<Db, Db.Service>() {}

/**
 * The read-only client: a `PgClient` whose statements run on the read replicas' pool (`PoolConfig.replicas`:
 * standbys, or the primary while none is up), or on the primary pool when no replicas are configured — so code
 * written against it runs unchanged either way. Every `Db` layer provides it beside `SqlClient` / `PgClient`, which
 * stay the primary. Replication lags: a read here may not see a write just committed on the primary; read your own
 * writes through `SqlClient`.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * // a report that may run on a standby
 * const topCustomers = Effect.flatMap(Db.ReadOnlyClient, (sql) =>
 *   sql<{ id: number; total: number }>`SELECT id, total FROM customer_totals ORDER BY total DESC LIMIT 10`
 * )
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export class ReadOnlyClient extends Context.Tag("@effect-pg-pool/Db/ReadOnlyClient")<
  ReadOnlyClient,
  PgClient.PgClient
>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace Db {
  /**
   * What the `Db` tag holds.
   *
   * @example
   * ```ts
   * import { Db } from "@effect-pg-pool/effect3"
   * import { Effect } from "effect"
   *
   * const countUsers = (db: Db.Db.Service) =>
   *   Effect.map(db.sql<{ n: number }>`SELECT count(*)::int AS n FROM users`, (rows) => rows[0]!.n)
   *
   * const program = Effect.flatMap(Db.Db, countUsers)
   * ```
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /**
     * Runs `f` on one physical connection, held for the whole callback and returned (reset if needed) on
     * success, failure, defect and interruption alike. `sql` is a full `PgClient` bound to that connection:
     * tagged templates, `withTransaction`, `executeValues`, streams. Behind PgBouncer in transaction mode
     * (`pooler: "transaction"`) the connection is PgBouncer's, not a server session: it guarantees one
     * transaction's worth — the statements of one `sql.withTransaction` share a backend, statements outside one
     * may each run on another — and statements that exist to change the session are refused.
     */
    readonly withConnection: <A, E, R>(
      f: (sql: PgClient.PgClient) => Effect.Effect<A, E, R>
    ) => Effect.Effect<A, E | AcquireTimeout | PoolClosed, R>
    /** A snapshot of the pool's figures; no I/O. */
    readonly statistics: Effect.Effect<PoolStatistics>
    /** The pool's health from its state and a background probe; never waits for a connection. */
    readonly health: Effect.Effect<HealthStatus>
    /**
     * Retires every connection open now, without failing a caller: idle ones close at once, busy ones when they
     * are released, and new ones open as needed (with the password provider's current answer). For after a
     * credential rotation or a DNS failover. Returns at once.
     */
    readonly refresh: Effect.Effect<void>
    /** The pooled client, also provided as `SqlClient` and `PgClient`. */
    readonly sql: PgClient.PgClient
    /** The validated configuration (the password stays `Redacted`; `undefined` when given as a provider). */
    readonly config: PoolConfig.PoolConfig
    /**
     * `withConnection` on the read replicas' pool (standbys; the primary while none is up, with
     * `prefer-standby`), or on this pool when no replicas are configured. The replicas' sessions default to
     * read-only transactions (`default_transaction_read_only`), so a write fails ("cannot execute … in a read-only
     * transaction") on the fallback primary as on a standby — except behind PgBouncer in transaction mode.
     */
    readonly readOnly: <A, E, R>(
      f: (sql: PgClient.PgClient) => Effect.Effect<A, E, R>
    ) => Effect.Effect<A, E | AcquireTimeout | PoolClosed, R>
    /** The read-only client (`ReadOnlyClient`): the replicas' pooled client, or `sql` without replicas. */
    readonly readOnlySql: PgClient.PgClient
    /** The read replicas' own pool, when configured: its client, statistics, health and configuration. */
    readonly replicas: Option.Option<Db.Replicas>
  }

  /**
   * The read replicas' pool (`PoolConfig.replicas`): a second pool, named `<name>-replicas` in its statistics,
   * metrics and logs, with its own hosts table (`statistics.hosts`: which standby serves, which is down).
   *
   * @example
   * ```ts
   * import { Db } from "@effect-pg-pool/effect3"
   * import { Effect, Option } from "effect"
   *
   * // how many reads went to the replicas' pool, and where its connections are
   * const replicaLoad = Effect.flatMap(Db.Db, (db) =>
   *   Option.match(db.replicas, {
   *     onNone: () => Effect.succeed("no replicas"),
   *     onSome: (replicas) =>
   *       Effect.map(replicas.statistics, (s) => `${s.acquisitions} reads, hosts ${s.hosts.map((h) => h.role)}`)
   *   })
   * )
   * ```
   *
   * @since 0.2.0
   * @category models
   */
  export interface Replicas {
    readonly withConnection: Service["withConnection"]
    readonly sql: PgClient.PgClient
    readonly statistics: Effect.Effect<PoolStatistics>
    readonly health: Effect.Effect<HealthStatus>
    /** The read-only pool's configuration: the primary's, with the replicas' name, hosts, target and sizes. */
    readonly config: PoolConfig.PoolConfig
  }
}

/**
 * What `layer` and `make` accept: the pool configuration, @effect/sql-pg's client options, and the names
 * `PgClient.layer` uses for the same settings, so existing options carry over unchanged. Giving both names of one
 * setting (`maxConnections` and `maxSize`) with different values is a `PoolConfigError`; messages name the
 * setting as it was written.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Redacted, String as Str } from "effect"
 *
 * const options: Db.DbOptions = {
 *   url: Redacted.make("postgres://app:secret@localhost:5432/app"),
 *   maxConnections: 20, // PgClient.layer's name for maxSize
 *   transformResultNames: Str.snakeToCamel,
 *   onConnect: (sql) => sql`SET search_path TO app, public`
 * }
 * const DbLive = Db.layer(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DbOptions extends Omit<PoolConfig.PoolConfigInput, "password"> {
  /**
   * The password: a static one, or an Effect evaluated for each new connection — a password provider, e.g. for a
   * short-lived IAM authentication token (`Effect.map(fetchToken, Redacted.make)`). A provider that fails (or takes
   * longer than connectTimeout) fails that connection attempt with an error saying the provider failed, retried
   * with backoff; its value is never logged. After rotating a password, `Db.refresh` replaces the open connections.
   */
  readonly password?: Redacted.Redacted<string> | string | Effect.Effect<Redacted.Redacted<string>, unknown> | undefined
  /** Runs on every new connection before first use (and again after a session reset), e.g. `SET search_path`. */
  readonly onConnect?: ((sql: PgClient.PgClient) => Effect.Effect<unknown, unknown>) | undefined
  readonly types?: Pg.CustomTypesConfig | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  /** `PgClient.layer` name for `user`. */
  readonly username?: string | undefined
  /**
   * `PgClient.layer` name for `maxSize`. Without a minimum, the pool then keeps none open when idle (`minSize` 0),
   * as `PgClient.layer` does.
   */
  readonly maxConnections?: number | undefined
  /** `PgClient.layer` name for `minSize`. */
  readonly minConnections?: number | undefined
  /** `PgClient.layer` name for `maxIdleTime`. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** `PgClient.layer` name for `maxLifetime`. */
  readonly connectionTTL?: Duration.DurationInput | undefined
}

// The options that are not settings of the pool's configuration: the client's, and the hook.
const clientOptions = new Set([
  "onConnect",
  "spanAttributes",
  "transformJson",
  "transformQueryNames",
  "transformResultNames",
  "types"
])

const toConfigInput = (options: DbOptions): InternalConfig.RawInput =>
  Object.fromEntries(Object.entries(options).filter(([key]) => !clientOptions.has(key)))

/**
 * Builds the pool from a validated configuration in the current scope; closing the scope shuts it down
 * gracefully. With `logFile` set, the pool's own events go to that file and nowhere else (it fails with
 * `PoolConfigError` when the file cannot be opened).
 *
 * @example
 * ```ts
 * import { Db, PoolConfig } from "@effect-pg-pool/effect3"
 * import { Reactivity } from "@effect/experimental"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const config = yield* PoolConfig.make({ url: Redacted.make("postgres://app:secret@localhost/app") })
 *   const db = yield* Db.makeWithConfig(config, { onConnect: (sql) => sql`SET TIME ZONE 'UTC'` })
 *   return yield* db.statistics
 * }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWithConfig = (
  config: PoolConfig.PoolConfig,
  options: Omit<DbOptions, keyof PoolConfig.PoolConfigInput> = {}
): Effect.Effect<
  Db.Service,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected,
  Scope.Scope | Reactivity.Reactivity
> => build(config, options, [])

const build = (
  config: PoolConfig.PoolConfig,
  options: Omit<DbOptions, keyof PoolConfig.PoolConfigInput>,
  unknownVariables: ReadonlyArray<InternalConfig.UnknownVariable>,
  passwordProvider?: Effect.Effect<Redacted.Redacted<string>, unknown> | undefined
): Effect.Effect<
  Db.Service,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function* () {
    let clients: Client.Clients | undefined
    const userOnConnect = options.onConnect
    // The pool's fibers take their loggers from the fiber that builds it: routed here, its events reach its log
    // file (and only it) however the program composes its layers.
    const poolLogging = yield* Logging.poolLogging(config)
    // `readOnly`: the replicas' sessions default to read-only transactions (`SET default_transaction_read_only`,
    // again after each DISCARD ALL), so that a write through `Db.readOnly` fails on the fallback primary as it does
    // on a standby; not behind a transaction pooler, where a session-level SET would land on another server session
    const makePool = (poolConfig: PoolConfig.PoolConfig, pinned: () => Client.Clients, readOnly: boolean) => {
      const defaultReadOnly = readOnly && poolConfig.pooler !== "transaction"
      return poolLogging(
        InternalPool.make({
          config: poolConfig,
          types: options.types,
          metrics: Metrics.make(poolConfig.name, poolConfig.minSize, poolConfig.maxSize),
          passwordProvider,
          onConnect:
            userOnConnect === undefined && !defaultReadOnly
              ? undefined
              : (conn) =>
                  Effect.suspend(() => {
                    const sql = pinned().pinned(conn)
                    return Effect.asVoid(
                      Effect.zipRight(
                        defaultReadOnly ? sql.unsafe("SET default_transaction_read_only = on") : Effect.void,
                        userOnConnect?.(sql) ?? Effect.void
                      )
                    )
                  })
        })
      )
    }
    const pool = yield* makePool(config, () => clients!, false)
    for (const variable of unknownVariables) {
      pool.log("Warning", InternalConfig.unknownVariableMessage(variable), {
        variable: variable.name,
        closest: variable.closest
      })
    }
    const listener = Listener.make({
      connectOptions: pool.connectOptions,
      reconnect: config.reconnect,
      fork: pool.fork,
      log: (level, message, annotations) => pool.log(level, message, annotations)
    })
    clients = yield* Client.make(pool, config, listener, options)
    // the callback is called in the guarded region's own step (an `Effect.suspend` would cost a fiber step per
    // checkout); one that throws instead of returning an effect throws again inside the region, a defect there, so
    // its connection is returned like on any other failure
    const withConnectionOf =
      (target: InternalPool.Pool, { pinned }: Client.Clients): Db.Service["withConnection"] =>
      (f) =>
        target.withSession((conn) => {
          try {
            return f(pinned(conn))
          } catch (thrown) {
            return Effect.suspend(() => {
              throw thrown
            })
          }
        })
    const withConnection = withConnectionOf(pool, clients)
    // the read replicas: a second pool, built and started after the primary; LISTEN stays on the primary's listener
    let replicas: { readonly pool: InternalPool.Pool; readonly service: Db.Replicas } | undefined
    if (config.replicas !== undefined) {
      const readConfig = Replicas.replicaConfig(config, config.replicas)
      let readClients: Client.Clients | undefined
      const readPool = yield* makePool(readConfig, () => readClients!, true)
      readClients = yield* Client.make(readPool, readConfig, listener, options)
      replicas = {
        pool: readPool,
        service: {
          withConnection: withConnectionOf(readPool, readClients),
          sql: readClients.client,
          statistics: Effect.sync(() => readPool.statistics()),
          health: Effect.sync(() => readPool.health()),
          config: readConfig
        }
      }
    }
    yield* pool.initialize()
    if (replicas !== undefined) yield* replicas.pool.initialize()
    const read = replicas
    return {
      withConnection,
      statistics: Effect.sync(() => pool.statistics()),
      health: Effect.sync(() =>
        read === undefined ? pool.health() : Replicas.withReplicas(pool.health(), read.pool.health())
      ),
      refresh: Effect.sync(() => {
        pool.refresh()
        read?.pool.refresh()
      }),
      sql: clients.client,
      config,
      readOnly: read?.service.withConnection ?? withConnection,
      readOnlySql: read?.service.sql ?? clients.client,
      replicas: Option.fromNullable(read?.service)
    }
  })

/**
 * Validates `options` and builds the pool in the current scope.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Reactivity } from "@effect/experimental"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const db = yield* Db.make({ url: Redacted.make("postgres://app:secret@localhost/app"), maxSize: 4 })
 *   return yield* db.withConnection((sql) => sql`SELECT pg_backend_pid() AS pid`)
 * }).pipe(Effect.scoped, Effect.provide(Reactivity.layer)) // the pool shuts down with the scope
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: DbOptions
): Effect.Effect<
  Db.Service,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected,
  Scope.Scope | Reactivity.Reactivity
> => ("stream" in options && options.stream !== undefined ? Effect.fail(streamNotSupported) : makeNamed(options, {}))

/** `written` holds the `Config` keys `layerConfig` read options under, for messages to name them. */
const makeNamed = (options: DbOptions, written: InternalConfig.WrittenNames) => {
  // a password provider is the driver's to evaluate, per connection: the configuration then holds no password
  const provider = Effect.isEffect(options.password) ? options.password : undefined
  const all = toConfigInput(options)
  const { password: _provider, ...rest } = all
  const input = provider === undefined ? all : rest
  return Effect.flatMap(InternalConfig.fromOptions(input, written), (config) => build(config, options, [], provider))
}

// `PgClient.layer`'s `stream` option compiles here (a `PgClientConfig` is a `DbOptions`), so it must not be ignored.
const streamNotSupported = new PoolConfigError({
  issues: [
    {
      field: "stream",
      setting: "stream",
      env: "stream",
      value: "<function>",
      message:
        "stream (PgClient.layer's custom socket) is not supported: the pool opens, probes and cancels through its " +
        "own TCP connections to host and port; remove it, or keep PgClient.layer for this database"
    }
  ]
})

const toContext = (db: Db.Service) =>
  Context.make(Db, db).pipe(
    Context.add(PgClient.PgClient, db.sql),
    Context.add(SqlClient.SqlClient, db.sql),
    Context.add(ReadOnlyClient, db.readOnlySql)
  )

/**
 * The pool as a layer providing `Db`, `SqlClient` and `PgClient`: swap it in for `PgClient.layer(options)`. Its
 * start fails with the precise `PoolConfigError` or `DatabaseUnreachable`; code annotated with `PgClient.layer`'s
 * `SqlError` takes `layerPgClient`, the same layer with that error type.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect, Redacted } from "effect"
 *
 * const DbLive = Db.layer({ url: Redacted.make("postgres://app:secret@localhost/app"), maxSize: 20 })
 * const program = Db.withConnection((sql) => sql`SELECT 1 AS one`)
 * Effect.runPromise(Effect.provide(program, DbLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: DbOptions
): Layer.Layer<
  Db | SqlClient.SqlClient | PgClient.PgClient | ReadOnlyClient,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected
> => Layer.scopedContext(Effect.map(make(options), toContext)).pipe(Layer.provide(Reactivity.layer))

/**
 * Like `layer`, with the options read through `Config` (e.g. `Config.redacted("DATABASE_URL")`).
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Config } from "effect"
 *
 * const DbLive = Db.layerConfig({
 *   url: Config.redacted("APP_DATABASE_URL"),
 *   maxSize: Config.integer("APP_DB_MAX_SIZE").pipe(Config.withDefault(10))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<DbOptions>
): Layer.Layer<
  Db | SqlClient.SqlClient | PgClient.PgClient | ReadOnlyClient,
  ConfigError.ConfigError | PoolConfigError | DatabaseUnreachable | ConnectionRejected
> =>
  Layer.scopedContext(
    Effect.map(
      Effect.flatMap(Config.unwrap(config), (options) => makeNamed(options, InternalConfig.configKeys(config))),
      toContext
    )
  ).pipe(Layer.provide(Reactivity.layer))

const toSqlError = (error: PoolConfigError | DatabaseUnreachable | ConnectionRejected): SqlError =>
  new SqlError({ cause: error, message: error.message })

/**
 * `layer` with `PgClient.layer`'s error type: a failed start is a `SqlError` (from @effect/sql) whose `cause` is
 * the `PoolConfigError`, `DatabaseUnreachable` or `ConnectionRejected`, so code annotated for @effect/sql-pg — a
 * `Layer<SqlClient | PgClient, SqlError>`, a `catchTag("SqlError")` around start-up — compiles unchanged. New code
 * gets the precise errors from `layer`.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import type { SqlClient, SqlError } from "@effect/sql"
 * import type { PgClient } from "@effect/sql-pg"
 * import { type Layer, Redacted } from "effect"
 *
 * // was: PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) })
 * export const SqlLive: Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, SqlError.SqlError> =
 *   Db.layerPgClient({ url: Redacted.make(process.env.DATABASE_URL!) })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPgClient = (
  options: DbOptions
): Layer.Layer<Db | SqlClient.SqlClient | PgClient.PgClient | ReadOnlyClient, SqlError> =>
  Layer.mapError(layer(options), toSqlError)

/**
 * `layerConfig` with `PgClient.layerConfig`'s error type: `ConfigError` for the `Config` values, and a `SqlError`
 * whose `cause` is the `PoolConfigError`, `DatabaseUnreachable` or `ConnectionRejected` for the rest.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import type { SqlClient, SqlError } from "@effect/sql"
 * import type { PgClient } from "@effect/sql-pg"
 * import { Config, type ConfigError, type Layer } from "effect"
 *
 * // was: PgClient.layerConfig({ url: Config.redacted("DATABASE_URL") })
 * type SqlLayer = Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, ConfigError.ConfigError | SqlError.SqlError>
 * export const SqlLive: SqlLayer = Db.layerPgClientConfig({ url: Config.redacted("DATABASE_URL") })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPgClientConfig = (
  config: Config.Config.Wrap<DbOptions>
): Layer.Layer<Db | SqlClient.SqlClient | PgClient.PgClient | ReadOnlyClient, ConfigError.ConfigError | SqlError> =>
  Layer.mapError(layerConfig(config), (error) =>
    error._tag === "PoolConfigError" || error._tag === "DatabaseUnreachable" || error._tag === "ConnectionRejected"
      ? toSqlError(error)
      : error
  )

/**
 * The pool configured from the environment (`DATABASE_URL` or the libpq `PG*` variables, and the
 * `DB_POOL_*` settings), with extra client options such as name transforms.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { String as Str } from "effect"
 *
 * // DATABASE_URL and DB_POOL_* from the environment, plus the options no variable sets
 * const DbLive = Db.layerFromEnv({
 *   transformQueryNames: Str.camelToSnake,
 *   transformResultNames: Str.snakeToCamel
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromEnv = (
  options: Omit<DbOptions, keyof PoolConfig.PoolConfigInput> = {}
): Layer.Layer<
  Db | SqlClient.SqlClient | PgClient.PgClient | ReadOnlyClient,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected
> =>
  Layer.scopedContext(
    Effect.map(
      Effect.flatMap(InternalConfig.fromEnvChecked, ({ config, unknown }) => build(config, options, unknown)),
      toContext
    )
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * The pool configured from the environment: `Effect.provide(DatabaseLive)`.
 *
 * @example
 * ```ts
 * import { DatabaseLive, Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const rows = yield* Db.withConnection((sql) => sql`SELECT now() AS now`)
 *   const stats = yield* Db.statistics
 *   return { rows, stats }
 * })
 * Effect.runPromise(Effect.provide(program, DatabaseLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const DatabaseLive: Layer.Layer<
  Db | SqlClient.SqlClient | PgClient.PgClient | ReadOnlyClient,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected
> = layerFromEnv()

/**
 * Runs `f` on one connection of the pool in context.
 *
 * Behind PgBouncer in transaction mode it guarantees one transaction's worth: only the statements of one
 * `sql.withTransaction` are sure to share a server session.
 *
 * When no connection frees up within `acquireTimeout` it fails with the `AcquireTimeout` itself (and with
 * `PoolClosed` during shutdown), not with a `SqlError`: catch it by its tag. Statements run through `SqlClient`
 * instead wrap the same error in a `SqlError` (see `AcquireTimeout`).
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const rows = Db.withConnection((sql) =>
 *   Effect.gen(function* () {
 *     yield* sql`SET statement_timeout = 1000`
 *     return yield* sql`SELECT ${1}::int AS n`
 *   })
 * ).pipe(Effect.catchTag("AcquireTimeout", (error) => Effect.as(Effect.logWarning(error.message), [])))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const withConnection = <A, E, R>(
  f: (sql: PgClient.PgClient) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | AcquireTimeout | PoolClosed, R | Db> => Effect.flatMap(Db, (db) => db.withConnection(f))

/**
 * A snapshot of the figures of the pool in context; no I/O.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect, Schedule } from "effect"
 *
 * // the pool's load in the logs every 10 seconds, in the background
 * const monitor = Db.statistics.pipe(
 *   Effect.flatMap((s) => Effect.log(`${s.active}/${s.maxSize} busy, ${s.waiting} waiting`)),
 *   Effect.repeat(Schedule.spaced("10 seconds")),
 *   Effect.forkScoped
 * )
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const statistics: Effect.Effect<PoolStatistics, never, Db> = Effect.flatMap(Db, (db) => db.statistics)

/**
 * The health of the pool in context, from its state and a background probe; never waits for a connection.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect, Option } from "effect"
 *
 * // a readiness check: a degraded pool still serves
 * const readiness = Effect.map(Db.health, (health) => ({
 *   ready: health.status !== "unhealthy",
 *   reason: Option.getOrUndefined(health.reason)
 * }))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const health: Effect.Effect<HealthStatus, never, Db> = Effect.flatMap(Db, (db) => db.health)

/**
 * Retires every connection of the pool in context, gracefully: idle ones close at once, busy ones when released
 * (never under their holder), and replacements open with the current credentials — no caller fails, waiting callers
 * keep their place. Run it after rotating the database password (with a password provider that returns the new
 * one) or after a DNS failover, so that no connection to the old credentials or the old address stays. The log says
 * "pool refreshed" with the counts; `statistics.connectionsClosed.refreshed` counts the connections it retired.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect, Redacted, Ref } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const current = yield* Ref.make(Redacted.make("old-secret"))
 *   const db = yield* Db.make({ host: "localhost", user: "app", password: Ref.get(current) })
 *   // ... ALTER ROLE app PASSWORD 'new-secret' ran elsewhere
 *   yield* Ref.set(current, Redacted.make("new-secret"))
 *   yield* Db.refresh.pipe(Effect.provideService(Db.Db, db))
 * })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const refresh: Effect.Effect<void, never, Db> = Effect.flatMap(Db, (db) => db.refresh)

/**
 * Runs `f` on one connection of the read replicas' pool of the pool in context — a standby, or the primary while
 * none is up (`prefer-standby`) — or of the primary pool when no replicas are configured. Like `withConnection`:
 * the same guarantees, `AcquireTimeout` after the replicas' `acquireTimeout`. Replication lags: a read here may not
 * see a write just committed on the primary.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * const report = Db.readOnly((sql) =>
 *   Effect.gen(function* () {
 *     const [where] = yield* sql<{ standby: boolean }>`SELECT pg_is_in_recovery() AS standby`
 *     const rows = yield* sql`SELECT count(*)::int AS n FROM orders`
 *     return { onStandby: where!.standby, rows }
 *   })
 * )
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const readOnly = <A, E, R>(
  f: (sql: PgClient.PgClient) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | AcquireTimeout | PoolClosed, R | Db> => Effect.flatMap(Db, (db) => db.readOnly(f))

/**
 * The read replicas' statistics of the pool in context (named `<name>-replicas`, with their hosts), or none when no
 * replicas are configured; no I/O.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect, Option } from "effect"
 *
 * // reads served by the primary: the replicas' sessions on a host that is not a standby
 * const onFallback = Effect.map(Db.replicaStatistics, (stats) =>
 *   Option.match(stats, {
 *     onNone: () => 0,
 *     onSome: (s) => s.hosts.filter((h) => h.role === "primary").reduce((n, h) => n + h.sessions, 0)
 *   })
 * )
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const replicaStatistics: Effect.Effect<Option.Option<PoolStatistics>, never, Db> = Effect.flatMap(Db, (db) =>
  Option.match(db.replicas, {
    onNone: () => Effect.succeed(Option.none()),
    onSome: (replicas) => Effect.map(replicas.statistics, Option.some)
  })
)
