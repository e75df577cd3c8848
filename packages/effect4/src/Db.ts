/**
 * The database service: one pool, a `withConnection` for session work, statistics and health — and the same pool
 * as `effect/sql`'s `SqlClient` and @effect/sql-pg 4's `PgClient`, so the layer is a drop-in for
 * `PgClient.layer`: it accepts that layer's options.
 *
 * @since 0.1.0
 */
import { Settings } from "@effect-pg-pool/engine"
import type * as PgTypes from "@effect/sql-pg/PgTypes"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import { AuthenticationError, AuthorizationError, ConnectionError, SqlError, UnknownError } from "effect/sql/SqlError"
import type { ConnectionOptions } from "node:tls"
import { HealthStatus, ReplicaHealth } from "./Health.js"
import * as Client from "./internal/client.js"
import * as InternalConfig from "./internal/config.js"
import * as Metrics from "./internal/metrics.js"
import * as InternalPool from "./internal/pool.js"
import type * as Driver from "./internal/session.js"
import type * as PoolConfig from "./PoolConfig.js"
import type { AcquireTimeout, ConnectionRejected, DatabaseUnreachable, PoolClosed } from "./PoolError.js"
import { PoolConfigError } from "./PoolError.js"
import * as PoolLogging from "./internal/logger.js"
import type { PoolStatistics } from "./PoolStatistics.js"

/**
 * What the `Db` service holds.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
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
 * @category models
 */
export interface Service {
  /**
   * Runs `f` on one physical connection, held for the whole callback and returned (reset if needed) on success,
   * failure, defect and interruption alike. `sql` is a full `PgClient` bound to that connection.
   */
  readonly withConnection: <A, E, R>(
    f: (sql: PgClient.PgClient) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | AcquireTimeout | PoolClosed, R>
  /** A snapshot of the pool's figures; no I/O. */
  readonly statistics: Effect.Effect<PoolStatistics>
  /** The pool's health from its state and a background probe; never waits for a connection. */
  readonly health: Effect.Effect<HealthStatus>
  /**
   * Retires every connection open now, without failing a caller: idle ones close at once, busy ones when they are
   * released, and new ones open as needed (with the password Effect's current answer). For after a credential
   * rotation or a DNS failover. Returns at once.
   */
  readonly refresh: Effect.Effect<void>
  /** The pooled client, also provided as `SqlClient` and `PgClient`. */
  readonly sql: PgClient.PgClient
  /** The validated configuration (the password stays `Redacted`). */
  readonly config: PoolConfig.PoolConfig
  /**
   * `withConnection` on the read replicas' pool (standbys; the primary while none is up, with `prefer-standby`), or
   * on this pool when no replicas are configured. The replicas' sessions default to read-only transactions
   * (`default_transaction_read_only`), so a write fails ("cannot execute … in a read-only transaction") on the
   * fallback primary as on a standby.
   */
  readonly readOnly: <A, E, R>(
    f: (sql: PgClient.PgClient) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | AcquireTimeout | PoolClosed, R>
  /** The read-only client (`ReadOnlyClient`): the replicas' pooled client, or `sql` without replicas. */
  readonly readOnlySql: PgClient.PgClient
  /** The read replicas' own pool, when configured: its client, statistics, health and configuration. */
  readonly replicas: Option.Option<Replicas>
}

/**
 * The read-only pool of a `Db` (read replicas): a second pool named `<name>-replicas` on its own hosts and target,
 * with its own statistics, health and refresh.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect, Option } from "effect"
 *
 * const readers = Effect.map(Db.Db, (db) =>
 *   Option.map(db.replicas, (replicas) => replicas.config.name) // "default-replicas"
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Replicas {
  readonly sql: PgClient.PgClient
  readonly withConnection: Service["withConnection"]
  readonly statistics: Effect.Effect<PoolStatistics>
  readonly health: Effect.Effect<HealthStatus>
  /** The read-only pool's configuration: the primary's with its own name, hosts, target and sizes. */
  readonly config: PoolConfig.PoolConfig
}

/**
 * The pool service.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const busy = Effect.flatMap(Db.Db, (db) => Effect.map(db.statistics, (s) => s.active))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class Db extends Context.Service<Db, Service>()("@effect-pg-pool/Db") {}

/**
 * The read-only client: a `PgClient` whose statements run on the read replicas' pool (`PoolConfig.replicas`:
 * standbys, or the primary while none is up), or on the primary pool when no replicas are configured — so code
 * written against it runs unchanged either way. Every `Db` layer provides it beside `SqlClient` / `PgClient`, which
 * stay the primary. Replication lags: a read here may not see a write just committed on the primary; read your own
 * writes through `SqlClient`.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * // a report that may run on a standby
 * const report = Effect.flatMap(Db.ReadOnlyClient, (sql) => sql`SELECT count(*) AS n FROM orders`)
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class ReadOnlyClient extends Context.Service<ReadOnlyClient, PgClient.PgClient>()(
  "@effect-pg-pool/Db/ReadOnlyClient"
) {}

/**
 * What `layer` and `make` accept: the pool configuration, and every option of @effect/sql-pg 4's
 * `PgClient.layer` under its own name, so existing options carry over unchanged.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Redacted, String as Str } from "effect"
 *
 * const options: Db.DbOptions = {
 *   url: Redacted.make("postgres://app:secret@localhost:5432/app"),
 *   maxConnections: 20, // PgClient.layer's name for maxSize
 *   transformResultNames: Str.snakeToCamel
 * }
 * const DbLive = Db.layer(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DbOptions extends Omit<PoolConfig.PoolConfigInput, "password" | "ssl" | "keepAlive"> {
  /**
   * Runs on every new connection before its first use, and again after a session-state reset (which clears what
   * it set), e.g. `SET search_path`. A failing hook fails that connection, not the pool.
   */
  readonly onConnect?: ((sql: PgClient.PgClient) => Effect.Effect<unknown, unknown>) | undefined
  /** A static password, or (as `PgClient.layer` takes it) an Effect evaluated for each connection attempt. */
  readonly password?: Redacted.Redacted<string> | string | Effect.Effect<Redacted.Redacted> | undefined
  readonly ssl?: boolean | ConnectionOptions | undefined
  /** `true` / `false`, or `PgClient.layer`'s idle time before TCP keepalive probes start. */
  readonly keepAlive?: boolean | Duration.Input | undefined
  /** `PgClient.layer` name for `user`. */
  readonly username?: string | undefined
  /** A Unix socket path, used verbatim. */
  readonly path?: string | undefined
  readonly startupParameters?: Readonly<Record<string, string>> | undefined
  readonly startupOptions?: string | undefined
  readonly types?: PgTypes.Registry | undefined
  readonly prepare?: boolean | undefined
  readonly preparedStatementCacheSize?: number | undefined
  readonly maxMessageSize?: number | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  /** `PgClient.layer` name for `maxSize`; without a minimum the pool keeps none open when idle, as it does. */
  readonly maxConnections?: number | undefined
  /** `PgClient.layer` name for `minSize`. */
  readonly minConnections?: number | undefined
  /** `PgClient.layer` name for `maxIdleTime`. */
  readonly idleTimeout?: Duration.Input | undefined
  /** `PgClient.layer` name for `maxLifetime`. */
  readonly connectionTTL?: Duration.Input | undefined
}

/**
 * The pool's settings among `PgClient.layer`'s options (its names for them included: the engine's `Settings`
 * folds `maxConnections` into `maxSize` and reports two names that disagree); the others shape the client.
 */
const toInput = (options: DbOptions): InternalConfig.RawInput => {
  const raw: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(options)) {
    if (InternalConfig.settingKeys.has(key)) raw[key] = value
  }
  // a password Effect is evaluated for each connection attempt, by the driver; keepAlive may be PgClient.layer's
  // idle time before the first probe
  if (Effect.isEffect(raw.password)) delete raw.password
  if (raw.keepAlive !== undefined && typeof raw.keepAlive !== "boolean") raw.keepAlive = true
  return raw as InternalConfig.RawInput
}

const openOptions = (config: PoolConfig.PoolConfig, options: DbOptions): Driver.OpenOptions => {
  const keepAlive =
    options.keepAlive === undefined || typeof options.keepAlive === "boolean"
      ? config.keepAlive
        ? 60_000
        : undefined
      : Duration.toMillis(Duration.fromInputUnsafe(options.keepAlive))
  const startupParameters: Record<string, string> = { ...options.startupParameters }
  if (config.statementTimeout !== undefined) {
    startupParameters.statement_timeout = String(Math.round(Duration.toMillis(config.statementTimeout)))
  }
  return {
    host: config.host,
    port: config.port,
    path: options.path,
    database: config.database,
    user: config.user,
    password: Effect.isEffect(options.password) ? options.password : config.password,
    ssl: config.ssl === false ? false : config.ssl,
    sslmode: config.sslmode,
    connectTimeoutMillis: Duration.toMillis(config.connectTimeout),
    keepAliveMillis: keepAlive,
    applicationName: config.applicationName,
    startupParameters,
    startupOptions: options.startupOptions,
    types: options.types,
    multiplex: config.multiplex,
    prepare: options.prepare,
    preparedStatementCacheSize: options.preparedStatementCacheSize,
    maxMessageSize: options.maxMessageSize,
    pooler: { mode: config.pooler, setting: config.poolerSetting }
  }
}

/**
 * Builds the pool from a validated configuration in the current scope; closing the scope shuts it down
 * gracefully. With `logFile` set, the pool's own events go to that file and nowhere else.
 *
 * @example
 * ```ts
 * import { Db, PoolConfig } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 * import { Reactivity } from "effect/reactivity"
 *
 * const program = Effect.gen(function* () {
 *   const config = yield* PoolConfig.make({ url: "postgres://app:secret@localhost/app" })
 *   const db = yield* Db.makeWithConfig(config)
 *   return yield* db.statistics
 * }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWithConfig = (
  config: PoolConfig.PoolConfig,
  options: DbOptions = {}
): Effect.Effect<
  Service,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected,
  Scope.Scope | Reactivity.Reactivity
> => makeChecked(config, options, [])

/**
 * `makeWithConfig`, warning of the `DB_POOL_*` variables the environment held that are no setting (`unknown`: a
 * typo, most likely, and a setting that silently keeps its default otherwise).
 */
const makeChecked = (
  config: PoolConfig.PoolConfig,
  options: DbOptions,
  unknown: ReadonlyArray<Settings.UnknownVariable>
): Effect.Effect<
  Service,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function* () {
    const context = yield* Effect.context<never>()
    // the pool's fibers take their loggers and level from the fiber that builds it: routed here, its events reach
    // its log file (and only it) at its logLevel however the program composes its layers
    const routed = yield* PoolLogging.poolLogging(config)
    const userOnConnect = options.onConnect
    // one pool and its clients: the primary's, and the read-only pool's when replicas are configured
    // `readOnly`: the replicas' sessions default to read-only transactions (`SET default_transaction_read_only`,
    // again after each session reset; not behind a transaction pooler), so that a write through `Db.readOnly` fails
    // on the fallback primary as it does on a standby; its LISTEN goes to the primary (`listenOn`): a standby cannot LISTEN, nor would it hear a NOTIFY
    const build = (poolConfig: PoolConfig.PoolConfig, readOnly: boolean, listenOn?: InternalPool.Pool) =>
      Effect.gen(function* () {
        // not behind a transaction pooler, where a session-level SET would land on another server connection
        const defaultReadOnly = readOnly && poolConfig.pooler !== "transaction"
        const metrics = Metrics.make(poolConfig.name, poolConfig.minSize, poolConfig.maxSize, context)
        let clients: Client.Clients | undefined
        const pool = yield* routed(
          InternalPool.make({
            config: poolConfig,
            open: openOptions(poolConfig, options),
            metrics,
            onConnect:
              userOnConnect === undefined && !defaultReadOnly
                ? undefined
                : (session) =>
                    Effect.flatMap(clients!.forSession(session), (sql) =>
                      Effect.andThen(
                        defaultReadOnly ? sql.unsafe("SET default_transaction_read_only = on") : Effect.void,
                        userOnConnect === undefined ? Effect.void : Effect.asVoid(userOnConnect(sql))
                      )
                    )
          })
        )
        // `config` as PgClient.layer keeps it: the options as given
        const open = openOptions(poolConfig, options)
        let listeners = 0
        clients = yield* Client.make(pool, options, options as PgClient.PgClientConfig, {
          open: routed(
            Effect.suspend(() =>
              // where the pool's sessions go: with several hosts, on one of the target's role
              (listenOn ?? pool)
                .openDedicated(-++listeners)
                .pipe(
                  Effect.tap((session) =>
                    userOnConnect === undefined
                      ? Effect.void
                      : Effect.flatMap(clients!.forSession(session), (sql) => Effect.ignore(userOnConnect(sql)))
                  )
                )
            )
          ),
          reconnect: poolConfig.reconnect,
          pooler: open.pooler,
          log: (message, annotations) =>
            routed(Effect.logWarning(message).pipe(Effect.annotateLogs({ pool: poolConfig.name, ...annotations })))
        })
        return { pool, clients }
      })
    const { clients, pool } = yield* build(config, false)
    // where the pool's events go (its log file, if any), as the Effect 3 edition says it
    for (const variable of unknown) {
      yield* routed(
        Effect.logWarning(Settings.unknownVariableMessage(variable)).pipe(
          Effect.annotateLogs({ pool: config.name, variable: variable.name, closest: variable.closest })
        )
      )
    }
    const replicaConfig = config.replicas === undefined ? undefined : readOnlyConfig(config, config.replicas)
    const replica = replicaConfig === undefined ? undefined : yield* build(replicaConfig, true, pool)
    yield* pool.initialize
    if (replica !== undefined) yield* replica.pool.initialize
    const replicas: Option.Option<Replicas> =
      replica === undefined
        ? Option.none()
        : Option.some({
            sql: replica.clients.client,
            withConnection: replica.clients.withConnection,
            statistics: Effect.sync(() => replica.pool.statistics()),
            health: Effect.sync(() => replica.pool.health()),
            config: replica.pool.config
          })
    return {
      withConnection: clients.withConnection,
      statistics: Effect.sync(() => pool.statistics()),
      health: Effect.sync(() =>
        replica === undefined ? pool.health() : withReplicas(pool.health(), replica.pool.health())
      ),
      // a rotation or a DNS failover concerns both pools
      refresh: Effect.sync(() => {
        pool.refresh()
        replica?.pool.refresh()
      }),
      sql: clients.client,
      config,
      readOnly: replica === undefined ? clients.withConnection : replica.clients.withConnection,
      readOnlySql: replica === undefined ? clients.client : replica.clients.client,
      replicas
    }
  })

/** The read-only pool's configuration: the primary's, with the replicas' name, hosts, target and sizes. */
const readOnlyConfig = (
  config: PoolConfig.PoolConfig,
  replicas: NonNullable<PoolConfig.PoolConfig["replicas"]>
): PoolConfig.PoolConfig => ({
  ...config,
  name: replicas.name,
  host: replicas.hosts[0]!.host,
  port: replicas.hosts[0]!.port,
  hosts: replicas.hosts,
  targetSessionAttrs: replicas.targetSessionAttrs,
  minSize: replicas.minSize,
  maxSize: replicas.maxSize,
  replicas: undefined
})

/** The primary's health with the read-only pool's: degraded when the primary is healthy but the replicas are not. */
const withReplicas = (primary: HealthStatus, replicas: HealthStatus): HealthStatus => {
  const degraded = primary.status === "healthy" && replicas.status !== "healthy"
  return new HealthStatus(
    {
      status: degraded ? "degraded" : primary.status,
      reason: degraded
        ? Option.some(
            `the read-only pool is ${replicas.status}` +
              Option.match(replicas.reason, { onNone: () => "", onSome: (reason) => `: ${reason}` })
          )
        : primary.reason,
      checkedAt: primary.checkedAt,
      database: primary.database,
      statistics: primary.statistics,
      replicas: Option.some(
        new ReplicaHealth(
          { status: replicas.status, reason: replicas.reason, statistics: replicas.statistics },
          { disableChecks: true }
        )
      )
    },
    { disableChecks: true }
  )
}

/**
 * Validates `options` and builds the pool in the current scope.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect, Redacted } from "effect"
 * import { Reactivity } from "effect/reactivity"
 *
 * const program = Effect.gen(function* () {
 *   const db = yield* Db.make({ url: Redacted.make("postgres://app:secret@localhost/app"), maxSize: 4 })
 *   return yield* db.withConnection((sql) => sql`SELECT pg_backend_pid() AS pid`)
 * }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: DbOptions
): Effect.Effect<
  Service,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected,
  Scope.Scope | Reactivity.Reactivity
> => makeWritten(options, {})

// `written`: the Config keys of `layerConfig`'s options, which messages name instead of the options
const makeWritten = (
  options: DbOptions,
  written: InternalConfig.WrittenNames
): Effect.Effect<
  Service,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected,
  Scope.Scope | Reactivity.Reactivity
> =>
  "stream" in options && (options as { stream?: unknown }).stream !== undefined
    ? Effect.fail(streamNotSupported)
    : Effect.flatMap(
        Effect.suspend(() => {
          const result = InternalConfig.resolve(toInput(options), "input", written)
          return result instanceof PoolConfigError ? Effect.fail(result) : Effect.succeed(result)
        }),
        (config) => makeWithConfig(config, options)
      )

// `PgClient.layer`'s `stream` option would compile here, so it must not be ignored
const streamNotSupported = new PoolConfigError({
  issues: [
    {
      field: "stream",
      setting: "stream",
      env: "stream",
      value: "<function>",
      message:
        "stream (PgClient.layer's custom socket) is not supported: the pool opens, watches and cancels through its " +
        "own sockets to host and port (or path); remove it, or keep PgClient.layer for this database"
    }
  ]
})

const toContext = (db: Service) =>
  Context.make(Db, db).pipe(
    Context.add(PgClient.PgClient, db.sql),
    Context.add(SqlClient.SqlClient, db.sql),
    Context.add(ReadOnlyClient, db.readOnlySql)
  )

/**
 * The pool as a layer providing `Db`, `SqlClient` and `PgClient`: swap it in for `PgClient.layer(options)`.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
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
> => Layer.effectContext(Effect.map(make(options), toContext)).pipe(Layer.provide(Reactivity.layer))

/**
 * Like `layer`, with the options read through `Config` (e.g. `Config.redacted("DATABASE_URL")`).
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Config } from "effect"
 *
 * const DbLive = Db.layerConfig({
 *   url: Config.Redacted("APP_DATABASE_URL"),
 *   maxSize: Config.Int("APP_DB_MAX_SIZE").pipe(Config.withDefault(10))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<DbOptions>
): Layer.Layer<
  Db | SqlClient.SqlClient | PgClient.PgClient | ReadOnlyClient,
  Config.ConfigError | PoolConfigError | DatabaseUnreachable | ConnectionRejected
> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const { options, written } = yield* InternalConfig.readConfig(config)
      return toContext(yield* makeWritten(options, written))
    })
  ).pipe(Layer.provide(Reactivity.layer))

/** A failed start as PgClient.layer's `SqlError`, classified as its own would be; the pool's error is the cause. */
const toSqlError = (error: PoolConfigError | DatabaseUnreachable | ConnectionRejected): SqlError => {
  const props = { cause: error, message: error.message, operation: "connect" }
  return new SqlError({
    reason:
      error._tag === "DatabaseUnreachable"
        ? new ConnectionError(props)
        : error._tag === "ConnectionRejected" && error.code?.startsWith("28")
          ? new AuthenticationError(props)
          : error._tag === "ConnectionRejected" && error.code === "42501"
            ? new AuthorizationError(props)
            : new UnknownError(props)
  })
}

/**
 * `layer` with `PgClient.layer`'s error type: a failed start is a `SqlError` (`ConnectionError` for an unreachable
 * database, `AuthenticationError` for a refused login, as @effect/sql-pg classifies them) whose reason's `cause` is
 * the `PoolConfigError`, `DatabaseUnreachable` or `ConnectionRejected`, so code written for @effect/sql-pg runs
 * unchanged.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import type { PgClient } from "@effect/sql-pg"
 * import { type Layer, Redacted } from "effect"
 * import type { SqlClient, SqlError } from "effect/sql"
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
  Layer.effectContext(Effect.map(Effect.mapError(make(options), toSqlError), toContext)).pipe(
    Layer.provide(Reactivity.layer)
  )

/**
 * `layerConfig` with `PgClient.layerConfig`'s error type: the options read through `Config` (a `ConfigError` when
 * one is missing or malformed), a failed start a `SqlError` whose reason's `cause` is the pool's typed error, as
 * `layerPgClient` does — the drop-in for @effect/sql-pg 4's `PgClient.layerConfig`.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Config } from "effect"
 *
 * // was: PgClient.layerConfig({ url: Config.Redacted("DATABASE_URL") })
 * export const SqlLive = Db.layerPgClientConfig({ url: Config.Redacted("DATABASE_URL"), maxConnections: Config.succeed(10) })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPgClientConfig = (
  config: Config.Wrap<DbOptions>
): Layer.Layer<Db | SqlClient.SqlClient | PgClient.PgClient | ReadOnlyClient, Config.ConfigError | SqlError> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const { options, written } = yield* InternalConfig.readConfig(config)
      return toContext(yield* Effect.mapError(makeWritten(options, written), toSqlError))
    })
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * The pool configured from the environment (`DATABASE_URL` or the libpq `PG*` variables, and the `DB_POOL_*`
 * settings), with the options no variable sets (name transforms, types…).
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { String as Str } from "effect"
 *
 * const DbLive = Db.layerFromEnv({ transformResultNames: Str.snakeToCamel })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromEnv = (
  options: DbOptions = {}
): Layer.Layer<
  Db | SqlClient.SqlClient | PgClient.PgClient | ReadOnlyClient,
  PoolConfigError | DatabaseUnreachable | ConnectionRejected
> =>
  Layer.effectContext(
    Effect.map(
      Effect.flatMap(InternalConfig.fromEnvChecked, ({ config, unknown }) => makeChecked(config, options, unknown)),
      toContext
    )
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * The pool configured from the environment: `Effect.provide(DatabaseLive)`.
 *
 * @example
 * ```ts
 * import { DatabaseLive, Db } from "@effect-pg-pool/effect4"
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
 * Runs `f` on one connection of the pool in context; fails with `AcquireTimeout` (or `PoolClosed` during
 * shutdown) when none frees up within `acquireTimeout`.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
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
): Effect.Effect<A, E | AcquireTimeout | PoolClosed, R | Db> =>
  Effect.flatMap(Effect.service(Db), (db) => db.withConnection(f))

/**
 * A snapshot of the figures of the pool in context; no I/O.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const line = Effect.map(Db.statistics, (s) => `${s.active}/${s.maxSize} busy, ${s.waiting} waiting`)
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const statistics: Effect.Effect<PoolStatistics, never, Db> = Effect.flatMap(
  Effect.service(Db),
  (db) => db.statistics
)

/**
 * The health of the pool in context, from its state and a background probe; never waits for a connection.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const ready = Effect.map(Db.health, (health) => health.status !== "unhealthy")
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const health: Effect.Effect<HealthStatus, never, Db> = Effect.flatMap(Effect.service(Db), (db) => db.health)

/**
 * Retires every connection of the pool in context, gracefully: idle ones close at once, busy ones when released
 * (never under their holder), and replacements open with the current credentials — no caller fails, waiting callers
 * keep their place. Run it after rotating the database password (with a password Effect that returns the new one)
 * or after a DNS failover, so that no connection to the old credentials or the old address stays. The log says
 * "pool refreshed" with the counts; `statistics.connectionsClosed.refreshed` counts the connections it retired.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect, Redacted, Ref } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const current = yield* Ref.make(Redacted.make("old-secret"))
 *   // ... ALTER ROLE app PASSWORD 'new-secret' ran elsewhere
 *   yield* Ref.set(current, Redacted.make("new-secret"))
 *   yield* Db.refresh
 * })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const refresh: Effect.Effect<void, never, Db> = Effect.flatMap(Effect.service(Db), (db) => db.refresh)

/**
 * Runs `f` on one connection of the read-only pool in context (read replicas: a standby when one is up); without
 * replicas, on the primary pool, so the code runs unchanged.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * // a standby answers when one is up; writes fail there (default_transaction_read_only)
 * const totals = Db.readOnly((sql) => sql<{ n: string }>`SELECT count(*) AS n FROM orders`)
 * export const report = Effect.map(totals, ([row]) => `orders: ${row?.n}`)
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const readOnly = <A, E, R>(
  f: (sql: PgClient.PgClient) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | AcquireTimeout | PoolClosed, R | Db> =>
  Effect.flatMap(Effect.service(Db), (db) => db.readOnly(f))

/**
 * The read-only pool's statistics, when `PoolConfig.replicas` configures one.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect4"
 * import { Effect, Option } from "effect"
 *
 * const readers = Effect.map(Db.replicaStatistics, Option.map((s) => `${s.active}/${s.total} busy`))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const replicaStatistics: Effect.Effect<Option.Option<PoolStatistics>, never, Db> = Effect.flatMap(
  Effect.service(Db),
  (db) =>
    Option.match(db.replicas, {
      onNone: () => Effect.succeed(Option.none()),
      onSome: (replicas) => Effect.map(replicas.statistics, Option.some)
    })
)
