/**
 * The shapes of resolution: what goes in (options, an environment's options, the edition's hooks), what comes out
 * (settings or issues), and what a TLS resolver is given and returns.
 *
 * @internal
 */
import type { Setting } from "./env.js"
import type { Host, LoadBalanceHosts, TargetSessionAttrs } from "./hosts.js"
import type { LogLevel, Runtime } from "./values.js"

/** One invalid setting. @internal */
export interface Issue {
  /** The configuration field, e.g. `minSize`. */
  readonly field: string
  /** The environment variable that sets it, e.g. `DB_POOL_MIN_SIZE`. */
  readonly env: string
  /** The name the configuration gave it, which the message uses: option, `Config` key or variable. */
  readonly setting: string
  /** What was given, already redacted where it could hold a secret. */
  readonly value: string
  /** What is wrong and how to fix it. */
  readonly message: string
}

/** The libpq sslmode values. @internal */
export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"

/** What a TLS resolver is given. @internal */
export interface TlsInput {
  /** The `ssl` option given in code; wins over every parameter. */
  readonly option: unknown
  /** The URL's TLS parameters, and the URL as messages show it (password masked). */
  readonly url:
    | {
        readonly params: ReadonlyMap<string, string>
        readonly shown: string
        /** How the user named the URL: `url` in code, a `Config` key, or `DATABASE_URL`. */
        readonly name: string
      }
    | undefined
  /** The `PGSSL*` variables set, by name; each fills in what the URL does not set. */
  readonly env: ReadonlyMap<string, string>
}

/** What a TLS resolver returns: the mode, the edition's TLS material, and the parameters of the normalised URL. @internal */
export interface TlsResolved<T> {
  readonly sslmode: SslMode
  readonly tls: T
  readonly params: ReadonlyArray<readonly [string, string]>
}

/** Reports one invalid setting: field, variable, shown value, message. @internal */
export type Report = (field: string, env: string, value: string, message: string) => void

/** Turns TLS settings into what the edition's driver needs (files read, keys decrypted), reporting problems. @internal */
export type TlsResolver<T> = (input: TlsInput, report: Report) => TlsResolved<T>

/** The reconnect schedule's settings; delays in milliseconds. @internal */
export interface Reconnect {
  readonly initialDelay: number
  readonly factor: number
  readonly maxDelay: number
  readonly initialAttempts: number
  readonly jitter: boolean
}

/** A resolved configuration: every default filled in, durations in milliseconds. @internal */
export interface Settings<T> {
  readonly name: string
  /** The normalised connection URL, password included: every host with its port, every parameter encoded. */
  readonly url: string
  /** The hosts to try, in order (libpq's multi-host), each with its port; at least one. */
  readonly hosts: ReadonlyArray<Host>
  /** The first host: the only one for a single-host configuration. */
  readonly host: string
  /** The first host's port. */
  readonly port: number
  readonly targetSessionAttrs: TargetSessionAttrs
  readonly loadBalanceHosts: LoadBalanceHosts
  readonly database: string
  readonly user: string
  readonly password: string | undefined
  readonly sslmode: SslMode
  /** What the TLS resolver made of the TLS settings. */
  readonly tls: T
  readonly minSize: number
  readonly maxSize: number
  readonly acquireTimeout: number
  /** Bound on one connection attempt, to one host (libpq's connect_timeout applies per host too). */
  readonly connectTimeout: number
  readonly validateAfterIdle: number
  readonly validationTimeout: number
  readonly maxLifetime: number
  readonly maxIdleTime: number
  readonly maxQueries: number
  /** Statement slots per connection for autocommit statements (pipelining); 0 = off. */
  readonly pipeline: number
  readonly leakDetectionThreshold: number
  readonly shutdownTimeout: number
  readonly cancelTimeout: number
  readonly queryTimeout: number | undefined
  readonly keepAlive: boolean
  readonly reset: "auto" | "always"
  readonly reconnect: Reconnect
  readonly init: "eager" | "lazy"
  /**
   * What sits between the pool and the server: `none`, or PgBouncer (or a pooler like it) in `session` mode (a server
   * connection per client connection: everything works as direct) or in `transaction` mode (a server connection per
   * transaction: no session state survives a statement outside a transaction, so LISTEN and session-level SET are
   * refused and the reset on release discards nothing).
   */
  readonly pooler: Pooler
  readonly statementTimeout: number | undefined
  readonly applicationName: string
  readonly logFile: string | undefined
  readonly logLevel: LogLevel | undefined
  /**
   * The read-only pool (read replicas), when `replicas` is on or `replicaHosts` given: a second pool named
   * `<name>-replicas` with its own hosts, target and sizes; every other setting is the primary's.
   */
  readonly replicas: Replicas | undefined
  /** How the configuration named each setting: option, `Config` key or environment variable. */
  readonly settingNames: { readonly [K in Setting]: string }
}

/** Where the target of a read-only pool may point. @internal */
export type ReplicaTarget = Extract<TargetSessionAttrs, "prefer-standby" | "standby" | "read-only" | "any">

/** The read-only pool's own settings. @internal */
export interface Replicas {
  /** `<name>-replicas`: its logs, metrics and statistics. */
  readonly name: string
  readonly hosts: ReadonlyArray<Host>
  readonly targetSessionAttrs: ReplicaTarget
  readonly minSize: number
  readonly maxSize: number
}

/** What sits between the pool and the server: none, or a PgBouncer in session or transaction mode. @internal */
export type Pooler = "none" | "session" | "transaction"

/** `PgClient.layer`'s names for settings of ours, accepted so that its options carry over unchanged. */
/** @internal */
export const ALIASES = [
  ["user", "username"],
  ["maxSize", "maxConnections"],
  ["minSize", "minConnections"],
  ["maxIdleTime", "idleTimeout"],
  ["maxLifetime", "connectionTTL"]
] as const

type Option = Exclude<Setting, `reconnect.${string}`>

/** Everything resolution accepts, typed loosely: values from the environment are strings, JavaScript passes anything. @internal */
export type Input = { readonly [K in Option]?: unknown } & {
  readonly reconnect?: { readonly [K in keyof Reconnect]?: unknown } | undefined
} & { readonly [K in (typeof ALIASES)[number][1]]?: unknown }

/** The names the user wrote for settings given under another name than their option's (a `Config` key). @internal */
export type WrittenNames = { readonly [option: string]: string | undefined }

/** @internal */
export interface Options<T> {
  /** How settings are named in messages: by option (`input`, the default) or by environment variable (`env`). */
  readonly source?: "input" | "env" | undefined
  /** Settings given under another name, e.g. a `Config` key, keyed by option. */
  readonly written?: WrittenNames | undefined
  /** How the edition's own values (durations, secrets) are read. */
  readonly runtime?: Runtime | undefined
  /** The edition's TLS resolution; without one, `passTls`. */
  readonly tls?: TlsResolver<T> | undefined
  /**
   * Environment variables that fill in what the options and the URL leave unset, as libpq does: `PGSSL*`,
   * `PGTARGETSESSIONATTRS`, `PGLOADBALANCEHOSTS`. Empty values count as unset.
   */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

/** The outcome: the settings, or every issue. @internal */
export type Result<T> =
  | { readonly ok: true; readonly settings: Settings<T> }
  | { readonly ok: false; readonly issues: ReadonlyArray<Issue> }

/** The TLS settings as given, unresolved: what a resolver-less resolution returns. @internal */
export interface TlsParams {
  readonly option: unknown
  readonly params: ReadonlyArray<readonly [string, string]>
}
