/**
 * The pool's configuration: what it is, where it comes from (code or environment), and how it is validated.
 *
 * Every invalid field is reported at once in one `PoolConfigError`, each issue naming the setting as the user wrote
 * it — the option in code (`maxSize`, or `maxConnections` where that alias was used), the `Config` key with
 * `Db.layerConfig` (`PG_MAX`), the environment variable with `fromEnv` (`DB_POOL_MAX_SIZE`) — the offending
 * value (a URL shown with its password replaced by `***`, a password never) and what to do.
 *
 * Bounds: sizes are integers written in decimal digits, `maxSize` at most 10 000; every duration is 0 (where
 * allowed) or from 1 ms to 2^31−1 ms (about 24.8 days, the longest a timer can wait and the largest timeout
 * PostgreSQL accepts).
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as LogLevel from "effect/LogLevel"
import type * as Redacted from "effect/Redacted"
import type * as NodeTls from "node:tls"
import * as internal from "./internal/config.js"
import type { PoolConfigError } from "./PoolError.js"

/**
 * How the pool retries failed connections: `initialDelay`, then multiplied by `factor` after each failure up to
 * `maxDelay` (1 s, 2 s, 4 s, 8 s, 16 s, 16 s, … by default).
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect3"
 * import { Duration } from "effect"
 *
 * // the wait before the next attempt after `failures` failed ones, without jitter
 * const delayAfter = (reconnect: PoolConfig.ReconnectConfig, failures: number): Duration.Duration =>
 *   Duration.min(Duration.times(reconnect.initialDelay, reconnect.factor ** (failures - 1)), reconnect.maxDelay)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ReconnectConfig {
  /** Delay before the first retry. Default 1 s, `DB_POOL_RECONNECT_INITIAL_DELAY`, > 0. */
  readonly initialDelay: Duration.Duration
  /** Growth of the delay after each failure. Default 2, `DB_POOL_RECONNECT_FACTOR`, > 1. */
  readonly factor: number
  /** Cap on the delay. Default 16 s, `DB_POOL_RECONNECT_MAX_DELAY`, ≥ `initialDelay`. */
  readonly maxDelay: Duration.Duration
  /** Attempts an eager start makes before it fails. Default 5, `DB_POOL_RECONNECT_INITIAL_ATTEMPTS`, integer ≥ 1. */
  readonly initialAttempts: number
  /** Randomise each delay so that many clients do not retry in step. Default false, `DB_POOL_RECONNECT_JITTER`. */
  readonly jitter: boolean
}

/**
 * A validated pool configuration, every default filled in.
 *
 * The connection fields (`host`, `port`, `database`, `user`, `password`, `ssl`) are the ones to connect with.
 * `url` is the same connection as a normalised `postgres://` URL for other tools, its `sslmode` and
 * `application_name` rewritten to match `ssl` and `applicationName`; do not hand it to node-postgres as
 * `connectionString`, which reads `sslmode=require` as full certificate verification.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Duration, Effect } from "effect"
 *
 * // the settings in force, defaults filled in; url and password stay Redacted
 * const logSettings = Effect.flatMap(Db.Db, ({ config }) =>
 *   Effect.log(
 *     `pool ${config.name}: ${config.host}:${config.port}/${config.database}, ${config.minSize}..${config.maxSize} ` +
 *       `connections, acquire timeout ${Duration.format(config.acquireTimeout)}`
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolConfig {
  /** Pool name for logs and metrics. Default `"default"`, `DB_POOL_NAME`. */
  readonly name: string
  /** The normalised connection URL, password included. `DATABASE_URL`. */
  readonly url: Redacted.Redacted<string>
  /** Host name, IP address or Unix socket directory: the first of `hosts`. Default `"localhost"`, `PGHOST`. */
  readonly host: string
  /** The first host's port. Default 5432, `PGPORT`. */
  readonly port: number
  /**
   * Every host to try, in order, each with its port (libpq's multi-host: `postgres://h1:5432,h2:5433/db`, `host`
   * and `port` lists, `PGHOST=h1,h2`); a host starting with `/` is a Unix socket directory. Each connection tries
   * them as libpq does (`connectTimeout` applying per host) until one gives a session that matches
   * `targetSessionAttrs`; a host that failed is tried after the others while it backs off, and sessions on a host
   * whose role changes (a promotion, a demotion) are evicted.
   */
  readonly hosts: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /**
   * libpq's `target_session_attrs`: which session a connection must reach — `any`, `read-write`, `read-only`,
   * `primary`, `standby` or `prefer-standby`. Default `"any"`, the URL's `target_session_attrs` or
   * `PGTARGETSESSIONATTRS`. Checked on each new session as libpq does (its ParameterStatus, else
   * `SHOW transaction_read_only` / `pg_is_in_recovery()`).
   */
  readonly targetSessionAttrs: "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"
  /**
   * libpq's `load_balance_hosts`: `disable` tries the hosts in order, `random` in a random order per connection.
   * Default `"disable"`, the URL's `load_balance_hosts` or `PGLOADBALANCEHOSTS`.
   */
  readonly loadBalanceHosts: "disable" | "random"
  /** Default: the user name, `PGDATABASE`. */
  readonly database: string
  /** Default `"postgres"`, `PGUSER`. */
  readonly user: string
  /** `PGPASSWORD`; `undefined` when none is given. */
  readonly password: Redacted.Redacted<string> | undefined
  /**
   * What an encrypted connection attempt gets, as Node's `tls.ConnectionOptions` (`false` only with
   * `sslmode: "disable"`): the `ssl` option as given, or what the `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
   * `sslpassword`, `sslcrl`, `ssl_min_protocol_version` and `ssl_max_protocol_version` parameters (URL, or the
   * `PGSSL*` variables) make of it, files read at configuration time. The private key is decrypted and not
   * enumerable (out of JSON and logs); the passphrase is not kept. Default `false`.
   */
  readonly ssl: false | NodeTls.ConnectionOptions
  /**
   * How TLS is negotiated, as libpq does it: `disable` never; `allow` plain text, encrypted if the server refuses
   * that; `prefer` encrypted, plain text if the server declines TLS (or refuses the encrypted session); `require`
   * encrypted, no certificate check — unless `sslrootcert` is given, which makes it `verify-ca`; `verify-ca` the
   * certificate's chain (against `sslrootcert`, which it needs); `verify-full` its chain and host name, against
   * `sslrootcert` or else Node's bundled CAs (as `sslrootcert=system`). Unlike libpq the default is `disable` (as
   * in node-postgres), and nothing is read from `~/.postgresql`. For an `ssl` option given in code: `require` when
   * `rejectUnauthorized` is false, else `verify-full`, with no fallback. Default `"disable"`, the URL's `sslmode`
   * or `PGSSLMODE`.
   */
  readonly sslmode: "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
  /**
   * Connections kept open even when idle. Default 2, capped at `maxSize` (0 when the maximum is given as
   * `PgClient.layer`'s `maxConnections`, as that layer does), `DB_POOL_MIN_SIZE`, integer ≥ 0 and ≤ `maxSize`.
   */
  readonly minSize: number
  /** Most connections open at once. Default 10, `DB_POOL_MAX_SIZE`, integer from 1 to 10 000. */
  readonly maxSize: number
  /** How long a caller waits for a connection. Default 30 s, `DB_POOL_ACQUIRE_TIMEOUT`, > 0. */
  readonly acquireTimeout: Duration.Duration
  /** Bound on one connection attempt, to one host (as libpq's connect_timeout). Default 5 s, `DB_POOL_CONNECT_TIMEOUT`, > 0. */
  readonly connectTimeout: Duration.Duration
  /**
   * A connection used more recently than this is handed out without a validation round trip (0 validates on every
   * acquisition). Default 1 s, `DB_POOL_VALIDATE_AFTER_IDLE`, ≥ 0.
   */
  readonly validateAfterIdle: Duration.Duration
  /** Bound on the validation round trip. Default 2 s, `DB_POOL_VALIDATION_TIMEOUT`, > 0. */
  readonly validationTimeout: Duration.Duration
  /** A connection is replaced after this long (minus up to 5 % jitter). Default 1 h, `DB_POOL_MAX_LIFETIME`, > 0. */
  readonly maxLifetime: Duration.Duration
  /** An idle connection above `minSize` is closed after this long. Default 60 s, `DB_POOL_MAX_IDLE_TIME`, > 0. */
  readonly maxIdleTime: Duration.Duration
  /** A connection is replaced after this many queries. Default 50 000, `DB_POOL_MAX_QUERIES`, integer ≥ 1. */
  readonly maxQueries: number
  /**
   * Statement slots per connection: with k ≥ 2, an autocommit statement of the pooled `SqlClient` that cannot
   * leave session state (one SELECT / INSERT / UPDATE / DELETE / WITH…) is pipelined on the least-loaded
   * connection, up to k at once; transactions, `withConnection`, streams and anything else still take a whole
   * connection. Default 0 (off), `DB_POOL_PIPELINE`, integer from 0 to 1000.
   */
  readonly pipeline: number
  /**
   * A connection held longer than this is reported as a suspected leak; 0 disables the check.
   * Default 30 s, `DB_POOL_LEAK_DETECTION_THRESHOLD`, ≥ 0.
   */
  readonly leakDetectionThreshold: Duration.Duration
  /** How long shutdown waits for checked-out connections. Default 30 s, `DB_POOL_SHUTDOWN_TIMEOUT`, ≥ 0. */
  readonly shutdownTimeout: Duration.Duration
  /**
   * How long an interrupted query may take to stop before its connection is discarded.
   * Default 5 s, `DB_POOL_CANCEL_TIMEOUT`, > 0.
   */
  readonly cancelTimeout: Duration.Duration
  /** Client-side bound per query; on expiry the query is cancelled. Default none, `DB_POOL_QUERY_TIMEOUT`, > 0. */
  readonly queryTimeout: Duration.Duration | undefined
  /** TCP keepalive on connections. Default true, `DB_POOL_KEEPALIVE`. */
  readonly keepAlive: boolean
  /**
   * What a returned connection gets before the next caller. `auto`: a ROLLBACK if a transaction is open, and
   * `DISCARD ALL` (+ `onConnect`) only after a statement that may leave session state (`SET`, temp tables,
   * `LISTEN`, advisory locks, `set_config`…, recognised by its text). `always`: `DISCARD ALL` on every return —
   * one more round trip per checkout, for code whose functions change session state behind a plain `SELECT`.
   * Default auto, `DB_POOL_RESET`.
   */
  readonly reset: "auto" | "always"
  /** Retry schedule for failed connections. `DB_POOL_RECONNECT_*`. */
  readonly reconnect: ReconnectConfig
  /** `eager` fails startup when the database is unreachable; `lazy` starts degraded. Default eager, `DB_POOL_INIT`. */
  readonly init: "eager" | "lazy"
  /**
   * What sits between the pool and the server: `none`, or PgBouncer's `pool_mode` — `session` (everything works as
   * direct) or `transaction` (a server connection per transaction: LISTEN and session-level `SET` are refused,
   * `withConnection` guarantees one transaction's worth, see the README's "Behind PgBouncer"). Default none,
   * `DB_POOL_POOLER`.
   */
  readonly pooler: "none" | "session" | "transaction"
  /** Server-side `statement_timeout` set on each connection. Default none, `DB_POOL_STATEMENT_TIMEOUT`, > 0. */
  readonly statementTimeout: Duration.Duration | undefined
  /**
   * Shown in `pg_stat_activity`. Default `"effect-pg-pool"`, `DB_POOL_APPLICATION_NAME` or the URL's
   * `application_name`.
   */
  readonly applicationName: string
  /**
   * Path of the JSON-lines log file that receives the pool's own events, and nothing of them reaches the console.
   * Default none (the events go to the program's loggers), `DB_POOL_LOG_FILE`.
   */
  readonly logFile: string | undefined
  /**
   * The lowest level of the pool's own events (`Debug` adds every connection opened and closed); also the
   * program's with `PoolLogger.layerFromEnv`. Default: the program's (Effect's is `Info`), `DB_POOL_LOG_LEVEL`.
   */
  readonly logLevel: LogLevel.LogLevel | undefined
  /**
   * The read replicas: a second, read-only pool behind `Db.readOnly` and the `Db.ReadOnlyClient` client, or `undefined`
   * (the default: `Db.readOnly` then runs on this pool). On with `replicas: true` (`DB_POOL_REPLICAS`) or
   * `replicaHosts` (`DB_POOL_REPLICA_HOSTS`); see `ReplicasConfig`.
   */
  readonly replicas: ReplicasConfig | undefined
  /**
   * How the configuration named each setting, so that messages name what the user wrote: the option
   * (`maxSize`, or `maxConnections` where that alias was used), the `Config` key (`PG_MAX`), or the
   * environment variable (`DB_POOL_MAX_SIZE`).
   */
  readonly settingNames: SettingNames
}

/**
 * The read-only pool of the read replicas. Every setting not listed here (credentials, TLS, timeouts, lifetimes,
 * `pooler`, …) is the primary's, but it always starts lazily: the layer waits for the primary alone, and replicas
 * that cannot connect leave the application serving, its health degraded and its reads waiting (`acquireTimeout`).
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * // where reads go, for a startup log line
 * const readsGoTo = Effect.map(Db.Db, ({ config }) =>
 *   config.replicas === undefined
 *     ? "reads share the primary pool"
 *     : `${config.replicas.name}: ${config.replicas.hosts.map((h) => `${h.host}:${h.port}`).join(",")} ` +
 *       `(${config.replicas.targetSessionAttrs}), up to ${config.replicas.maxSize} connections`
 * )
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ReplicasConfig {
  /** `<name>-replicas`: the read-only pool's logs, metrics (`db.client.connection.pool.name`) and statistics. */
  readonly name: string
  /** Default: the primary's hosts (`hosts`); `replicaHosts`, `DB_POOL_REPLICA_HOSTS` (`"r1:5432,r2:5432"`). */
  readonly hosts: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /**
   * Where the read-only pool connects. `prefer-standby` (the default): a standby if one is up, else the primary —
   * and back to a standby once one answers again; `standby`: standbys only (reads wait and fail while none is up);
   * `read-only`: a server in read-only mode; `any`: the first host that answers (a cloud's load-balanced reader
   * endpoint). `replicaTargetSessionAttrs`, `DB_POOL_REPLICA_TARGET_SESSION_ATTRS`.
   */
  readonly targetSessionAttrs: "prefer-standby" | "standby" | "read-only" | "any"
  /** Default: the primary's `minSize` (capped at `maxSize`); `replicaMinSize`, `DB_POOL_REPLICA_MIN_SIZE`. */
  readonly minSize: number
  /** Default: the primary's `maxSize`; `replicaMaxSize`, `DB_POOL_REPLICA_MAX_SIZE`. */
  readonly maxSize: number
}

/**
 * A setting of the pool, by its option name; the reconnect schedule's as `reconnect.initialDelay` and so on.
 *
 * @example
 * ```ts
 * import { Db, PoolConfig } from "@effect-pg-pool/effect3"
 * import { Effect } from "effect"
 *
 * // advice that names the setting as the configuration wrote it: maxSize, PG_MAX or DB_POOL_MAX_SIZE
 * const advise = (setting: PoolConfig.Setting) =>
 *   Effect.flatMap(Db.Db, ({ config }) => Effect.logWarning(`consider raising ${config.settingNames[setting]}`))
 * const saturated = advise("maxSize")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Setting =
  | Exclude<keyof PoolConfig, "reconnect" | "settingNames" | "hosts">
  | `reconnect.${keyof ReconnectConfig}`
  | "replicaHosts"
  | "replicaTargetSessionAttrs"
  | "replicaMinSize"
  | "replicaMaxSize"

/**
 * The name of every setting as its configuration wrote it (see `PoolConfig.settingNames`).
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect3"
 * import { Effect, Redacted } from "effect"
 *
 * // written in code, settings are named by option: names.maxSize is "maxSize", from the environment "DB_POOL_MAX_SIZE"
 * const names = Effect.map(
 *   PoolConfig.make({ url: Redacted.make("postgres://localhost/app"), maxSize: 4 }),
 *   (config): PoolConfig.SettingNames => config.settingNames
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type SettingNames = { readonly [K in Setting]: string }

/**
 * What `make` accepts: every field is optional except a connection, given as `url` or as
 * `host`/`port`/`user`/`password`/`database` (explicit fields win over the URL's parts, and `ssl` and
 * `applicationName` over its `sslmode` and `application_name`).
 *
 * Durations take Effect's `DurationInput` (`Duration.seconds(5)`, `"5 seconds"`, a number of milliseconds) and the
 * common short forms `"250"` (milliseconds), `"500ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"1h"`, `"1m 30s"`, from 1 ms to
 * 2^31−1 ms.
 *
 * @example
 * ```ts
 * import { Db, PoolConfig } from "@effect-pg-pool/effect3"
 * import { Redacted } from "effect"
 *
 * // shared by the app's pools; each adds its name and size
 * const shared: PoolConfig.PoolConfigInput = {
 *   url: Redacted.make("postgres://app:secret@db.internal:5432/app?sslmode=require"),
 *   acquireTimeout: "5s",
 *   maxLifetime: "30m"
 * }
 * const ReportsDb = Db.layer({ ...shared, name: "reports", maxSize: 4 })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolConfigInput {
  readonly name?: string | undefined
  /** A `postgres://` or `postgresql://` URL; `sslmode`, `application_name` and libpq's keyword parameters count. */
  readonly url?: Redacted.Redacted<string> | string | undefined
  /** A host, or several to try in order (`["db1", "db2"]` or `"db1,db2"`, as libpq's host keyword). */
  readonly host?: string | ReadonlyArray<string> | undefined
  /** One port for every host, or one per host in the same order. */
  readonly port?: number | ReadonlyArray<number> | undefined
  readonly targetSessionAttrs?: PoolConfig["targetSessionAttrs"] | undefined
  readonly loadBalanceHosts?: PoolConfig["loadBalanceHosts"] | undefined
  readonly database?: string | undefined
  readonly user?: string | undefined
  readonly password?: Redacted.Redacted<string> | string | undefined
  /**
   * TLS as `PgClient.layer` takes it: `true` verifies the server certificate against Node's CAs; Node's
   * `tls.ConnectionOptions` (`ca`, `cert`, `key`, `rejectUnauthorized: false`, …) as given. Wins over the URL's
   * `sslmode` and the other TLS parameters, which are the libpq way to say the same (see `PoolConfig.sslmode`).
   */
  readonly ssl?: boolean | NodeTls.ConnectionOptions | undefined
  readonly minSize?: number | undefined
  readonly maxSize?: number | undefined
  readonly acquireTimeout?: Duration.DurationInput | string | undefined
  readonly connectTimeout?: Duration.DurationInput | string | undefined
  readonly validateAfterIdle?: Duration.DurationInput | string | undefined
  readonly validationTimeout?: Duration.DurationInput | string | undefined
  readonly maxLifetime?: Duration.DurationInput | string | undefined
  readonly maxIdleTime?: Duration.DurationInput | string | undefined
  readonly maxQueries?: number | undefined
  readonly pipeline?: number | undefined
  readonly leakDetectionThreshold?: Duration.DurationInput | string | undefined
  readonly shutdownTimeout?: Duration.DurationInput | string | undefined
  readonly cancelTimeout?: Duration.DurationInput | string | undefined
  readonly queryTimeout?: Duration.DurationInput | string | undefined
  readonly keepAlive?: boolean | undefined
  readonly reset?: "auto" | "always" | undefined
  readonly reconnect?:
    | {
        readonly initialDelay?: Duration.DurationInput | string | undefined
        readonly factor?: number | undefined
        readonly maxDelay?: Duration.DurationInput | string | undefined
        readonly initialAttempts?: number | undefined
        readonly jitter?: boolean | undefined
      }
    | undefined
  readonly init?: "eager" | "lazy" | undefined
  readonly pooler?: "none" | "session" | "transaction" | undefined
  readonly statementTimeout?: Duration.DurationInput | string | undefined
  readonly applicationName?: string | undefined
  readonly logFile?: string | undefined
  /** `"Debug"`, `"Info"`, … or a `LogLevel`; the environment's names (`debug`, `warning`, …) work too. */
  readonly logLevel?: LogLevel.LogLevel | LogLevel.Literal | undefined
  /** A second, read-only pool for `Db.readOnly` (see `PoolConfig.replicas`). Default false. */
  readonly replicas?: boolean | undefined
  /** The read-only pool's hosts, each `host:port` (`["r1:5432", "r2:5432"]` or `"r1:5432,r2:5432"`); turns replicas on. */
  readonly replicaHosts?: string | ReadonlyArray<string> | undefined
  readonly replicaTargetSessionAttrs?: ReplicasConfig["targetSessionAttrs"] | undefined
  readonly replicaMinSize?: number | undefined
  readonly replicaMaxSize?: number | undefined
}

/**
 * Validates a configuration given in code and fills in the defaults.
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect3"
 * import { Redacted } from "effect"
 *
 * const config = PoolConfig.make({
 *   url: Redacted.make("postgres://app:secret@db.internal:5432/app?sslmode=verify-full"),
 *   maxSize: 20,
 *   acquireTimeout: "5s",
 *   reconnect: { maxDelay: "30 seconds" }
 * })
 * // Effect<PoolConfig, PoolConfigError>
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (input: PoolConfigInput) => Effect.Effect<PoolConfig, PoolConfigError> = internal.make

/**
 * Reads the configuration through Effect's `Config` (so any `ConfigProvider` works) and validates it.
 *
 * The connection comes from `DATABASE_URL`; when it is not set, from libpq's `PGHOST`, `PGPORT`, `PGUSER`,
 * `PGPASSWORD` and `PGDATABASE` (which are ignored when `DATABASE_URL` is set). TLS follows libpq's rule with or
 * without `DATABASE_URL`: `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGSSLCRL`, `PGSSLSNI`,
 * `PGSSLMINPROTOCOLVERSION` and `PGSSLMAXPROTOCOLVERSION` fill in what the URL's parameters do not set. Everything
 * else comes from the `DB_POOL_*` variables listed on `PoolConfig`. A variable set to an empty string counts as not
 * set. A `DB_POOL_*` variable that is not a setting (a typo such as `DB_POOL_MAXSIZE`) is listed, with the setting
 * it was probably meant as, among the issues of an invalid configuration; `DatabaseLive` also logs it as a warning
 * when it starts.
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect3"
 * import { ConfigProvider, Effect } from "effect"
 *
 * // from process.env
 * const config = PoolConfig.fromEnv
 *
 * // from any other source, e.g. in a test
 * const provider = ConfigProvider.fromMap(
 *   new Map([
 *     ["DATABASE_URL", "postgres://app:secret@localhost:5432/app"],
 *     ["DB_POOL_MAX_SIZE", "20"]
 *   ])
 * )
 * const fixed = PoolConfig.fromEnv.pipe(Effect.withConfigProvider(provider))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEnv: Effect.Effect<PoolConfig, PoolConfigError> = internal.fromEnv

/**
 * The defaults `make` and `fromEnv` fill in. `database` defaults to the user name; `url` and `password` have none.
 *
 * @example
 * ```ts
 * import { Db, PoolConfig } from "@effect-pg-pool/effect3"
 * import { Duration, Redacted } from "effect"
 *
 * // a batch job's pool: half the default size, connections kept twice as long
 * const BatchDb = Db.layer({
 *   url: Redacted.make("postgres://batch:secret@db.internal/app"),
 *   maxSize: PoolConfig.defaults.maxSize / 2,
 *   maxLifetime: Duration.times(PoolConfig.defaults.maxLifetime, 2)
 * })
 * ```
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaults: Omit<PoolConfig, "url" | "database" | "password"> = internal.defaults

/**
 * Replaces the password in a PostgreSQL URL (or keyword connection string) by `***`, for logs and messages.
 *
 * Everything up to the last `@` counts as user info, so a password holding unencoded `@`, `/`, `?` or `#` is still
 * masked; `password=` and `sslpassword=` parameters are masked too. A URL that is not one is returned unchanged
 * unless it holds one of those patterns.
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect3"
 *
 * PoolConfig.redactUrl("postgres://app:s3cret@db:5432/app") // "postgres://app:***@db:5432/app"
 * PoolConfig.redactUrl("host=db password=s3cret dbname=app") // "host=db password=*** dbname=app"
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const redactUrl: (url: string) => string = internal.redactUrl

/**
 * Removes a password from arbitrary text, such as a driver's error message: every occurrence of the password (plain
 * or percent-encoded) becomes `***`, and any `postgres://` URL in the text is passed through `redactUrl`.
 *
 * @example
 * ```ts
 * import { Db, PoolConfig } from "@effect-pg-pool/effect3"
 * import { Effect, Redacted } from "effect"
 *
 * // a driver error of your own connection code, logged without the pool's password
 * const logSafely = (error: Error) =>
 *   Effect.flatMap(Db.Db, ({ config }) => {
 *     const password = config.password === undefined ? undefined : Redacted.value(config.password)
 *     return Effect.logError(PoolConfig.redactText(error.message, password))
 *   })
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const redactText: (text: string, password: string | undefined) => string = internal.redactText
