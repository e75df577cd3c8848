/**
 * The pool's configuration: the same fields and environment variables as the Effect 3 edition (`DATABASE_URL`
 * or the libpq `PG*` variables, `DB_POOL_*`), plus the Effect 4 edition's multiplexing. Validated at layer build;
 * every invalid field is reported at once with the name it was given, the value (never a password) and the fix.
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
 * The reconnection schedule: `Schedule.exponential(initialDelay, factor)` capped at `maxDelay`.
 *
 * @example
 * ```ts
 * import type { PoolConfig } from "@effect-pg-pool/effect4"
 *
 * const steps = (r: PoolConfig.ReconnectConfig) =>
 *   `${r.initialAttempts} attempts at start, ×${r.factor} up to ${r.maxDelay}`
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
  /** Attempts an eager start makes before it fails. Default 5, `DB_POOL_RECONNECT_INITIAL_ATTEMPTS`, ≥ 1. */
  readonly initialAttempts: number
  /** Randomise each delay. Default false, `DB_POOL_RECONNECT_JITTER`. */
  readonly jitter: boolean
}

/**
 * A validated configuration.
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const program = Effect.map(PoolConfig.make({ url: "postgres://app@db/app" }), (c) => `${c.host}:${c.port}`)
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
  /**
   * The read-only pool (read replicas), when `replicas` is on or `replicaHosts` given: a second pool named
   * `<name>-replicas` with its own hosts (default the primary's), target (default `prefer-standby`: standbys, the
   * primary when none is up) and sizes (default the primary's); every other setting is the primary's. `Db.readOnly`
   * and the `Db.ReadOnlyClient` use it; `SqlClient` and `PgClient` stay on the primary. `DB_POOL_REPLICA*`.
   */
  readonly replicas:
    | {
        readonly name: string
        readonly hosts: ReadonlyArray<{ readonly host: string; readonly port: number }>
        readonly targetSessionAttrs: "prefer-standby" | "standby" | "read-only" | "any"
        readonly minSize: number
        readonly maxSize: number
      }
    | undefined
  /** Default: the user name, `PGDATABASE`. */
  readonly database: string
  /** Default `"postgres"`, `PGUSER`. */
  readonly user: string
  /** `PGPASSWORD`; `undefined` when none is given. */
  readonly password: Redacted.Redacted<string> | undefined
  /** TLS options, or false for none (from `ssl` or the URL's `sslmode`). */
  readonly ssl: false | NodeTls.ConnectionOptions
  readonly sslmode: "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
  /** Connections kept open when idle. Default 2, `DB_POOL_MIN_SIZE`, integer ≥ 0, ≤ maxSize. */
  readonly minSize: number
  /** Most connections open at once. Default 10, `DB_POOL_MAX_SIZE`, integer from 1 to 10 000. */
  readonly maxSize: number
  /** How long a caller waits for a connection. Default 30 s, `DB_POOL_ACQUIRE_TIMEOUT`, > 0. */
  readonly acquireTimeout: Duration.Duration
  /** Bound on one connection attempt. Default 5 s, `DB_POOL_CONNECT_TIMEOUT`, > 0. */
  readonly connectTimeout: Duration.Duration
  /** No validation round trip for a connection used more recently. Default 1 s, `DB_POOL_VALIDATE_AFTER_IDLE`. */
  readonly validateAfterIdle: Duration.Duration
  /** Bound on the validation round trip. Default 2 s, `DB_POOL_VALIDATION_TIMEOUT`, > 0. */
  readonly validationTimeout: Duration.Duration
  /** A connection is replaced after this long (minus up to 5 % jitter). Default 1 h, `DB_POOL_MAX_LIFETIME`. */
  readonly maxLifetime: Duration.Duration
  /** An idle connection above `minSize` is closed after this long. Default 60 s, `DB_POOL_MAX_IDLE_TIME`. */
  readonly maxIdleTime: Duration.Duration
  /** A connection is replaced after this many queries. Default 50 000, `DB_POOL_MAX_QUERIES`. */
  readonly maxQueries: number
  /**
   * The Effect 3 edition's name for multiplexing: k ≥ 2 is `multiplex: true` with `multiplexConcurrency: k` (at
   * most 128 here); 0 or 1 is off. Default 0, `DB_POOL_PIPELINE`.
   */
  readonly pipeline: number
  /** A connection held longer is logged as a suspected leak; 0 disables. Default 30 s. */
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
  /** `auto`: reset session state only when a statement may have set some; `always`. `DB_POOL_RESET`. */
  readonly reset: "auto" | "always"
  /** Retry schedule for failed connections. `DB_POOL_RECONNECT_*`. */
  readonly reconnect: ReconnectConfig
  /** `eager` fails startup when the database is unreachable; `lazy` starts degraded. Default eager, `DB_POOL_INIT`. */
  readonly init: "eager" | "lazy"
  /**
   * What sits between the pool and the server: `none`, or PgBouncer's `pool_mode` — `session` (everything works as
   * direct) or `transaction` (a server connection per transaction: `prepare` off unless set, LISTEN and session-level
   * `SET` refused; see the README's "Behind PgBouncer"). Default none, `DB_POOL_POOLER`.
   */
  readonly pooler: "none" | "session" | "transaction"
  /** How the configuration named `pooler` (`pooler`, `DB_POOL_POOLER`): the refusals name it. */
  readonly poolerSetting: string
  /** Server-side `statement_timeout` set on each connection. Default none, `DB_POOL_STATEMENT_TIMEOUT`. */
  readonly statementTimeout: Duration.Duration | undefined
  /** `application_name` of every connection. Default `"effect-pg-pool"`, `DB_POOL_APPLICATION_NAME`. */
  readonly applicationName: string
  /** JSON-lines log file for the pool's own events, and nothing of them reaches the console. Default none, `DB_POOL_LOG_FILE`. */
  readonly logFile: string | undefined
  /**
   * The lowest level of the pool's own events (`Debug` adds every connection opened and closed); also the
   * program's with `PoolLogger.layerFromEnv`. Default: the program's (Effect's is `Info`), `DB_POOL_LOG_LEVEL`.
   */
  readonly logLevel: LogLevel.LogLevel | undefined
  /**
   * Autocommit statements share sessions, pipelined (`PgClient.layer`'s `multiplex`). Default false,
   * `DB_POOL_MULTIPLEX`.
   */
  readonly multiplex: boolean
  /** Statements one session carries at once when multiplexing. Default 32, `DB_POOL_MULTIPLEX_CONCURRENCY`. */
  readonly multiplexConcurrency: number
  /**
   * How the configuration named each setting, so that messages name what the user wrote: the option
   * (`maxSize`, or `maxConnections` where that alias was used), the `Config` key (`PG_MAX`), or the
   * environment variable (`DB_POOL_MAX_SIZE`).
   */
  readonly settingNames: SettingNames
}

/**
 * A setting of the pool, by its option name; the reconnect schedule's as `reconnect.initialDelay` and so on.
 *
 * @example
 * ```ts
 * import { Db, type PoolConfig } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * // advice that names the setting as the configuration wrote it: maxSize, PG_MAX or DB_POOL_MAX_SIZE
 * const advise = (setting: PoolConfig.Setting) =>
 *   Effect.flatMap(Effect.service(Db.Db), ({ config }) => Effect.logWarning(`consider raising ${config.settingNames[setting]}`))
 * const saturated = advise("maxSize")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Setting =
  | Exclude<keyof PoolConfig, "reconnect" | "settingNames" | "hosts" | "poolerSetting" | "replicas">
  | `reconnect.${keyof ReconnectConfig}`

/**
 * The name of every setting as its configuration wrote it (see `PoolConfig.settingNames`).
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * // written in code, settings are named by option: names.maxSize is "maxSize", from the environment "DB_POOL_MAX_SIZE"
 * const names = Effect.map(
 *   PoolConfig.make({ url: "postgres://localhost/app", maxSize: 4 }),
 *   (config): PoolConfig.SettingNames => config.settingNames
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type SettingNames = { readonly [K in Setting]: string }

/**
 * What `make` (and `Db.layer`) accept: every field optional, durations as Effect's inputs, `"5s"`, `"500ms"` or
 * milliseconds.
 *
 * @example
 * ```ts
 * import type { PoolConfig } from "@effect-pg-pool/effect4"
 * import { Redacted } from "effect"
 *
 * const input: PoolConfig.PoolConfigInput = { url: Redacted.make("postgres://app:secret@db/app"), maxSize: 20 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolConfigInput {
  readonly name?: string | undefined
  /** A `postgres://` or `postgresql://` URL; `sslmode` and `application_name` count. */
  readonly url?: Redacted.Redacted<string> | string | undefined
  /** A host, or several to try in order (`["db1", "db2"]` or `"db1,db2"`, as libpq's host keyword). */
  readonly host?: string | ReadonlyArray<string> | undefined
  /** One port for every host, or one per host in the same order. */
  readonly port?: number | ReadonlyArray<number> | undefined
  readonly targetSessionAttrs?: PoolConfig["targetSessionAttrs"] | undefined
  readonly loadBalanceHosts?: PoolConfig["loadBalanceHosts"] | undefined
  /** A second, read-only pool (see `PoolConfig.replicas`). Default false, `DB_POOL_REPLICAS`. */
  readonly replicas?: boolean | undefined
  /** The read-only pool's hosts (`"r1:5432,r2:5433"` or a list); giving them turns replicas on. */
  readonly replicaHosts?: string | ReadonlyArray<string> | undefined
  readonly replicaTargetSessionAttrs?: "prefer-standby" | "standby" | "read-only" | "any" | undefined
  readonly replicaMinSize?: number | undefined
  readonly replicaMaxSize?: number | undefined
  readonly database?: string | undefined
  readonly user?: string | undefined
  readonly password?: Redacted.Redacted<string> | string | undefined
  readonly ssl?: boolean | NodeTls.ConnectionOptions | undefined
  readonly minSize?: number | undefined
  readonly maxSize?: number | undefined
  readonly acquireTimeout?: Duration.Input | string | undefined
  readonly connectTimeout?: Duration.Input | string | undefined
  readonly validateAfterIdle?: Duration.Input | string | undefined
  readonly validationTimeout?: Duration.Input | string | undefined
  readonly maxLifetime?: Duration.Input | string | undefined
  readonly maxIdleTime?: Duration.Input | string | undefined
  readonly maxQueries?: number | undefined
  /** The Effect 3 edition's name for `multiplex` + `multiplexConcurrency` (see `PoolConfig.pipeline`). */
  readonly pipeline?: number | undefined
  readonly leakDetectionThreshold?: Duration.Input | string | undefined
  readonly shutdownTimeout?: Duration.Input | string | undefined
  readonly cancelTimeout?: Duration.Input | string | undefined
  readonly queryTimeout?: Duration.Input | string | undefined
  readonly keepAlive?: boolean | undefined
  readonly reset?: "auto" | "always" | undefined
  readonly reconnect?:
    | {
        readonly initialDelay?: Duration.Input | string | undefined
        readonly factor?: number | undefined
        readonly maxDelay?: Duration.Input | string | undefined
        readonly initialAttempts?: number | undefined
        readonly jitter?: boolean | undefined
      }
    | undefined
  readonly init?: "eager" | "lazy" | undefined
  readonly pooler?: "none" | "session" | "transaction" | undefined
  readonly statementTimeout?: Duration.Input | string | undefined
  readonly applicationName?: string | undefined
  readonly logFile?: string | undefined
  /** `"Debug"`, `"Info"`, `"Warn"`, … (Effect 4's `LogLevel`); the environment's names (`debug`, `warning`, …) work too. */
  readonly logLevel?: LogLevel.LogLevel | undefined
  readonly multiplex?: boolean | undefined
  readonly multiplexConcurrency?: number | undefined
}

/**
 * Validates an input; fails with every problem at once.
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const config = PoolConfig.make({ url: "postgres://app@localhost/app", minSize: 0, maxSize: 4 })
 * const sizes = Effect.map(config, (c) => `${c.minSize}..${c.maxSize}`)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (input: PoolConfigInput) => Effect.Effect<PoolConfig, PoolConfigError> = internal.make

/**
 * Reads the configuration through Effect's `Config` (so any `ConfigProvider` works; the default reads
 * `process.env`) and validates it; messages name the variables.
 *
 * The connection comes from `DATABASE_URL`; when it is not set, from libpq's `PGHOST`, `PGPORT`, `PGUSER`,
 * `PGPASSWORD` and `PGDATABASE`. TLS follows libpq's rule: the `PGSSL*` variables fill in what the URL's parameters
 * do not set. Everything else comes from the `DB_POOL_*` variables listed on `PoolConfig`. A variable set to an
 * empty string counts as not set.
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const maxSize = Effect.map(PoolConfig.fromEnv, (c) => c.maxSize) // DB_POOL_MAX_SIZE, default 10
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
 * import { Db, PoolConfig } from "@effect-pg-pool/effect4"
 * import { Duration } from "effect"
 *
 * // a batch job's pool: half the default size, connections kept twice as long
 * const BatchDb = Db.layer({
 *   url: "postgres://batch:secret@db.internal/app",
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
 * A URL with its password masked.
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect4"
 *
 * const shown = PoolConfig.redactUrl("postgres://app:secret@db/app")
 * shown // "postgres://app:***@db/app"
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const redactUrl: (url: string) => string = internal.redactUrl

/**
 * A text with a password, and the passwords of the URLs in it, masked.
 *
 * @example
 * ```ts
 * import { PoolConfig } from "@effect-pg-pool/effect4"
 *
 * const line = PoolConfig.redactText("auth failed for hunter22", "hunter22")
 * line // "auth failed for ***"
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const redactText: (text: string, password: string | undefined) => string = internal.redactText
