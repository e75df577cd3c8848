/**
 * The pool's configuration: the same fields and environment variables as the Effect 3 edition (`DATABASE_URL`
 * or the libpq `PG*` variables, `DB_POOL_*`), plus the Effect 4 edition's multiplexing. Validated at layer build;
 * every invalid field is reported at once with the name it was given, the value (never a password) and the fix.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
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
  /** Host name, IP address or Unix socket directory. Default `"localhost"`, `PGHOST`. */
  readonly host: string
  /** Default 5432, `PGPORT`. */
  readonly port: number
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
  /** A connection held longer is logged as a suspected leak; 0 disables. Default 30 s. */
  readonly leakDetectionThreshold: Duration.Duration
  /** How long shutdown waits for checked-out connections. Default 30 s, `DB_POOL_SHUTDOWN_TIMEOUT`, ≥ 0. */
  readonly shutdownTimeout: Duration.Duration
  /** TCP keepalive on connections. Default true, `DB_POOL_KEEPALIVE`. */
  readonly keepAlive: boolean
  /** `auto`: reset session state only when a statement may have set some; `always`. `DB_POOL_RESET`. */
  readonly reset: "auto" | "always"
  /** Retry schedule for failed connections. `DB_POOL_RECONNECT_*`. */
  readonly reconnect: ReconnectConfig
  /** `eager` fails startup when the database is unreachable; `lazy` starts degraded. Default eager. */
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
  /** JSON-lines log file for the pool's own events. Default none, `DB_POOL_LOG_FILE`. */
  readonly logFile: string | undefined
  /**
   * Autocommit statements share sessions, pipelined (`PgClient.layer`'s `multiplex`). Default false,
   * `DB_POOL_MULTIPLEX`.
   */
  readonly multiplex: boolean
  /** Statements one session carries at once when multiplexing. Default 32, `DB_POOL_MULTIPLEX_CONCURRENCY`. */
  readonly multiplexConcurrency: number
}

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
  readonly host?: string | undefined
  readonly port?: number | undefined
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
  readonly leakDetectionThreshold?: Duration.Input | string | undefined
  readonly shutdownTimeout?: Duration.Input | string | undefined
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
 * Reads and validates the configuration from the environment; messages name the variables.
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
