/**
 * The pool's settings, parsed and validated once for every edition: the defaults, the one table of settings and
 * their environment variables, the value rules (durations, sizes, booleans, modes), libpq's connection URL with
 * several hosts, `target_session_attrs` and `load_balance_hosts`, the one redaction of passwords, and the
 * resolution of an options object or an environment record into settings — or into every issue at once, each
 * naming the setting as the user wrote it, the value (never a password), what is allowed and what to do.
 * Durations come out in milliseconds; an edition maps them to its own types (Effect's `Duration`) and passes its
 * own value types in through `Runtime`.
 *
 * @since 0.1.0
 */
import * as defaultsInternal from "./internal/settings/defaults.js"
import * as env from "./internal/settings/env.js"
import * as hosts from "./internal/settings/hosts.js"
import * as redact from "./internal/settings/redact.js"
import * as environment from "./internal/settings/environment.js"
import type * as model from "./internal/settings/model.js"
import * as internal from "./internal/settings/resolve.js"
import * as tlsInternal from "./internal/settings/tls.js"
import * as values from "./internal/settings/values.js"

/**
 * A resolved configuration: every default filled in, durations in milliseconds, `hosts` the hosts to try in order
 * (`host`/`port` the first), `tls` what the edition's TLS resolver made of the TLS settings.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const result = Settings.resolve({ url: "postgres://app:secret@db1:5432,db2:5433/app?target_session_attrs=read-write" })
 * if (result.ok) {
 *   const { hosts, targetSessionAttrs, acquireTimeout } = result.settings
 *   // [{ host: "db1", port: 5432 }, { host: "db2", port: 5433 }], "read-write", 30000
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Settings<T = TlsParams> = model.Settings<T>

/**
 * The read-only pool of the read replicas (`replicas`, `replicaHosts`, `replicaTargetSessionAttrs`,
 * `replicaMinSize`, `replicaMaxSize`; `DB_POOL_REPLICA*`): a second pool named `<name>-replicas` on the primary's
 * hosts (or `replicaHosts`) with target `prefer-standby` (a standby if one is up, else the primary) and the
 * primary's sizes unless given; every other setting is the primary's.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const result = Settings.fromEnv({ DATABASE_URL: "postgres://app@db1,db2/app", DB_POOL_REPLICAS: "true" })
 * const replicas: Settings.Replicas | undefined = result.ok ? result.settings.replicas : undefined
 * // { name: "default-replicas", hosts: [db1:5432, db2:5432], targetSessionAttrs: "prefer-standby", minSize: 2, maxSize: 10 }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Replicas = model.Replicas

/**
 * The reconnect schedule: `initialDelay`, multiplied by `factor` after each failure up to `maxDelay` (milliseconds).
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * const delayAfter = (reconnect: Settings.Reconnect, failures: number): number =>
 *   Math.min(reconnect.initialDelay * reconnect.factor ** (failures - 1), reconnect.maxDelay)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Reconnect = model.Reconnect

/**
 * What sits between the pool and the server (`pooler`, `DB_POOL_POOLER`): `none`, or PgBouncer's `pool_mode` —
 * `session` (everything works as direct) or `transaction` (no session state survives a statement outside a
 * transaction: the editions refuse LISTEN and session-level `SET`, and discard nothing on release).
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const result = Settings.resolve({ url: "postgres://app@pgbouncer:6432/app", pooler: "transaction" })
 * const pooler: Settings.Pooler | undefined = result.ok ? result.settings.pooler : undefined
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Pooler = model.Pooler

/**
 * What `resolve` accepts, typed loosely (values from the environment are strings; JavaScript passes anything):
 * every setting by its option name, `reconnect` nested, and `PgClient.layer`'s aliases (`username`,
 * `maxConnections`, `minConnections`, `idleTimeout`, `connectionTTL`). `host` takes a list (`"db1,db2"` or an array)
 * and `port` one port for every host or one per host.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const input: Settings.Input = { host: ["db1", "db2"], port: [5432, 5433], user: "app", maxSize: "20" }
 * const result = Settings.resolve(input)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Input = model.Input

/**
 * How `resolve` names settings (`source`, `written`), reads the edition's own values (`runtime`), resolves TLS
 * (`tls`) and which variables fill in what the URL leaves unset (`env`).
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * // a setting given through a Config key is named by that key in messages
 * const result = Settings.resolve({ url: "postgres://db/app", maxSize: "lots" }, { written: { maxSize: "PG_MAX" } })
 * // result.ok === false; result.issues[0].message starts with "PG_MAX (lots) must be"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Options<T> = model.Options<T>

/**
 * The settings, or every issue found.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const describe = (result: Settings.Result<Settings.TlsParams>): string =>
 *   result.ok ? `${result.settings.host}:${result.settings.port}` : result.issues.map((i) => i.message).join("\n")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Result<T> = model.Result<T>

/**
 * One invalid setting: the field, its environment variable, the name the user wrote for it, the value as shown
 * (redacted), and the message (what is wrong, what is allowed, what to do).
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const result = Settings.fromEnv({ DATABASE_URL: "postgres://db/app", DB_POOL_MAX_SIZE: "0" })
 * const issues: ReadonlyArray<Settings.Issue> = result.ok ? [] : result.issues
 * // [{ field: "maxSize", env: "DB_POOL_MAX_SIZE", setting: "DB_POOL_MAX_SIZE", value: "0", message: "…" }]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Issue = model.Issue

/**
 * A setting by its option name; the reconnect schedule's as `reconnect.initialDelay` and so on.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * const advise = (settings: Settings.Settings, setting: Settings.Setting) =>
 *   `consider raising ${settings.settingNames[setting]}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Setting = env.Setting

/**
 * One host to try and its port. A host starting with `/` is a Unix socket directory (see `isSocket`).
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const target = (host: Settings.Host): string =>
 *   Settings.isSocket(host.host) ? `${host.host}/.s.PGSQL.${host.port}` : `${host.host}:${host.port}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Host = hosts.Host

/**
 * libpq's `target_session_attrs`: which session a connection must reach to count as opened. `any` (the default)
 * takes the first host that accepts; `read-write` one where `SHOW transaction_read_only` is off; `read-only` one
 * where it is on; `primary` one not in recovery (`pg_is_in_recovery()`); `standby` one in recovery;
 * `prefer-standby` a standby, else any host on a second pass.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * // whether a session must accept writes to count as opened
const wantsPrimary = (attrs: Settings.TargetSessionAttrs): boolean => attrs === "read-write" || attrs === "primary"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TargetSessionAttrs = hosts.TargetSessionAttrs

/**
 * libpq's `load_balance_hosts`: `disable` tries the hosts in the order given, `random` shuffles them for each
 * connection.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * // whether each connection tries the hosts in a random order
const shuffled = (mode: Settings.LoadBalanceHosts): boolean => mode === "random"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type LoadBalanceHosts = hosts.LoadBalanceHosts

/**
 * The libpq sslmode values.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * // whether the first attempt is encrypted
const encrypted = (mode: Settings.SslMode): boolean => mode !== "disable" && mode !== "allow"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type SslMode = model.SslMode

/**
 * A log level, as Effect names them.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const level: Settings.LogLevel | undefined = Settings.parseLogLevel("warn")
// "Warning"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type LogLevel = values.LogLevel

/**
 * How an edition's own value types reach the parser: a runtime duration's milliseconds (Effect's `Duration`), a
 * runtime secret's text (`Redacted`), and how messages show such values.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * class Secret { constructor(readonly value: string) {} }
 * const runtime: Settings.Runtime = {
 *   secret: (raw) => (raw instanceof Secret ? raw.value : undefined),
 *   show: (raw) => (raw instanceof Secret ? "<redacted>" : undefined)
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Runtime = values.Runtime

/**
 * What a TLS resolver is given: the `ssl` option from code, the URL's TLS parameters, and the `PGSSL*` variables.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * const rootCert = (input: Settings.TlsInput): string | undefined =>
 *   input.url?.params.get("sslrootcert") ?? input.env.get("PGSSLROOTCERT")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TlsInput = model.TlsInput

/**
 * What a TLS resolver returns: the mode, the edition's TLS material and the parameters of the normalised URL.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * // no TLS at all: the normalised URL says sslmode=disable
const plain: Settings.TlsResolved<false> = { sslmode: "disable", tls: false, params: [["sslmode", "disable"]] }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TlsResolved<T> = model.TlsResolved<T>

/**
 * Reports one invalid setting — field, environment variable, the value as shown (redacted), message — and lets
 * resolution go on to find the others.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * const issues: Array<string> = []
 * const report: Settings.Report = (field, env, value, message) => issues.push(`${field} (${env}): ${message}`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Report = model.Report

/**
 * An edition's TLS resolution (reading certificate files, decrypting keys), called where resolution reaches TLS
 * so that its issues come in order with the others.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const noTls: Settings.TlsResolver<false> = (input, report) => {
 *   if (input.option !== undefined) report("ssl", "ssl", "<tls options>", "ssl is not supported here")
 *   return { sslmode: "disable", tls: false, params: [["sslmode", "disable"]] }
 * }
 * const result = Settings.resolve({ url: "postgres://db/app" }, { tls: noTls })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TlsResolver<T> = model.TlsResolver<T>

/**
 * The TLS settings as given, `sslmode` checked: what `resolve` returns in `tls` without a resolver of the edition.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const result = Settings.resolve({ url: "postgres://db/app?sslmode=require&sslrootcert=/etc/ca.pem" })
 * const params: Settings.TlsParams["params"] = result.ok ? result.settings.tls.params : []
 * // [["sslmode", "require"], ["sslrootcert", "/etc/ca.pem"]]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TlsParams = model.TlsParams

/**
 * The names the user wrote for settings given under another name than their option's, keyed by option.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * // messages then say "PG_MAX (0) must be …" instead of "maxSize (0) must be …"
const written: Settings.WrittenNames = { maxSize: "PG_MAX", "reconnect.maxDelay": "PG_RETRY_MAX" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type WrittenNames = model.WrittenNames

/**
 * One row of the settings table: option name, environment variable, what it is.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * // one line per variable, for a deployment's documentation
const docs = Settings.table.map((entry: Settings.Entry) => `${entry.env}: ${entry.doc}`).join("\n")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Entry = env.Entry

/**
 * A `DB_POOL_*` variable that is not a setting, and the setting it was probably meant as.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const typos: ReadonlyArray<Settings.UnknownVariable> = Settings.unknownVariables(["DB_POOL_MAXSIZE"])
 * // [{ name: "DB_POOL_MAXSIZE", closest: "DB_POOL_MAX_SIZE" }]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type UnknownVariable = env.UnknownVariable

/**
 * Resolves an options object: every default filled in, or every issue found. Settings are named by option in
 * messages unless `options.source` is `env` or `options.written` names them otherwise.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const result = Settings.resolve({ url: "postgres://app:secret@db/app", minSize: 20, maxSize: 10 })
 * // { ok: false, issues: [{ field: "minSize", message: "minSize (20) must be ≤ maxSize (10): lower minSize or raise maxSize", … }] }
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve: <T = TlsParams>(input: Input, options?: Options<T>) => Result<T> = internal.resolve

/**
 * Resolves an environment record (`process.env`, or what a `ConfigProvider` read): `DATABASE_URL`, or libpq's
 * `PGHOST` (a comma list for several hosts), `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE` when it is not set;
 * `PGSSL*`, `PGTARGETSESSIONATTRS` and `PGLOADBALANCEHOSTS` filling in what the URL leaves unset; the `DB_POOL_*`
 * settings. Empty values count as unset; messages name the variables.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const result = Settings.fromEnv({ PGHOST: "db1,db2", PGPORT: "5432", PGTARGETSESSIONATTRS: "read-write" })
 * // result.settings.hosts: [{ host: "db1", port: 5432 }, { host: "db2", port: 5432 }]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEnv: <T = TlsParams>(
  record: Readonly<Record<string, string | undefined>>,
  options?: Omit<Options<T>, "source" | "env">
) => Result<T> = environment.fromEnv

/**
 * The options an environment record gives, unresolved (what `fromEnv` resolves).
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const input = Settings.inputFromEnv({ DATABASE_URL: "postgres://db/app", PGHOST: "ignored" })
 * // { url: "postgres://db/app", host: undefined, … }: the PG* variables fill in only without DATABASE_URL
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const inputFromEnv: (record: Readonly<Record<string, string | undefined>>) => Input = environment.inputFromEnv

/**
 * The log file and level an environment record gives (`DB_POOL_LOG_FILE`, `DB_POOL_LOG_LEVEL`), validated as
 * `fromEnv` validates them, and the URL and password a log must never show.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const logging = Settings.loggingFromEnv({ DB_POOL_LOG_FILE: "/var/log/pool.jsonl", DB_POOL_LOG_LEVEL: "debug" })
 * // { ok: true, logFile: "/var/log/pool.jsonl", logLevel: "Debug", url: undefined, password: undefined }
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const loggingFromEnv = environment.loggingFromEnv

/**
 * The TLS resolution used without one of the edition's: `sslmode` checked, the other parameters passed through.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const result = Settings.resolve({ url: "postgres://db/app?sslmode=verify-full" }, { tls: Settings.passTls })
 * // result.settings.sslmode === "verify-full"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const passTls: TlsResolver<TlsParams> = tlsInternal.passTls

/**
 * The defaults resolution fills in, durations in milliseconds; `database` defaults to the user name, `password`
 * and `url` have none.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const half = Settings.defaults.maxSize / 2 // 5
 * const lifetime = Settings.defaults.maxLifetime // 3600000
 * ```
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaults = defaultsInternal.defaults

/**
 * The one table of settings: option name, environment variable, what it is.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const variable = Settings.table.find((entry) => entry.setting === "maxSize")?.env
// "DB_POOL_MAX_SIZE"
 * ```
 *
 * @since 0.1.0
 * @category env
 */
export const table: ReadonlyArray<Entry> = env.table

/**
 * Each setting's environment variable.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const hint = `set ${Settings.envOf["reconnect.maxDelay"]}`
// "set DB_POOL_RECONNECT_MAX_DELAY"
 * ```
 *
 * @since 0.1.0
 * @category env
 */
export const envOf: { readonly [K in Setting]: string } = env.envOf

/**
 * Each setting's option name: how a configuration written in code names its settings.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const names = Settings.optionNames
 * const same = names.maxSize === "maxSize" // true
 * ```
 *
 * @since 0.1.0
 * @category env
 */
export const optionNames: { readonly [K in Setting]: string } = env.optionNames

/**
 * Every environment variable the settings are read from, supported or reported as unsupported.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const fromProcess = (env: Record<string, string | undefined>) =>
 *   Object.fromEntries(Settings.envNames.map((name) => [name, env[name]]))
 * ```
 *
 * @since 0.1.0
 * @category env
 */
export const envNames: ReadonlyArray<string> = env.envNames

/**
 * The TLS parameters' variables (`sslmode` → `PGSSLMODE`, …).
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const variable = Settings.tlsEnv.sslrootcert
// "PGSSLROOTCERT"
 * ```
 *
 * @since 0.1.0
 * @category env
 */
export const tlsEnv = env.tlsEnv

/**
 * The TLS parameters a URL may carry (libpq's, and node-postgres's `ssl`).
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * // sslmode, sslrootcert, … and node-postgres's ssl=true
const isTls = (param: string): boolean => Settings.tlsUrlParams.has(param)
 * ```
 *
 * @since 0.1.0
 * @category env
 */
export const tlsUrlParams: ReadonlySet<string> = env.tlsUrlParams

/**
 * libpq TLS settings no Node driver honours, each with its variable (if any) and the fix a message gives.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const fix = Settings.tlsUnsupported.find(([param]) => param === "sslcrldir")?.[2]
// "Node cannot read a CRL directory: concatenate the CRLs into one file for sslcrl"
 * ```
 *
 * @since 0.1.0
 * @category env
 */
export const tlsUnsupported: ReadonlyArray<readonly [param: string, env: string | undefined, fix: string]> =
  env.tlsUnsupported

/**
 * The `DB_POOL_*` names among `names` that are not settings (typos), sorted, each with its likeliest meaning.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const typos = Settings.unknownVariables(["DB_POOL_MAXSIZE", "DB_POOL_MAX_SIZE", "HOME"])
 * // [{ name: "DB_POOL_MAXSIZE", closest: "DB_POOL_MAX_SIZE" }]
 * ```
 *
 * @since 0.1.0
 * @category env
 */
export const unknownVariables: (names: Iterable<string>) => ReadonlyArray<UnknownVariable> = env.unknownVariables

/**
 * The message for a `DB_POOL_*` variable that is not a setting.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * Settings.unknownVariableMessage({ name: "DB_POOL_MAXSIZE", closest: "DB_POOL_MAX_SIZE" })
 * // "DB_POOL_MAXSIZE is not a setting of the pool and is ignored: did you mean DB_POOL_MAX_SIZE?"
 * ```
 *
 * @since 0.1.0
 * @category env
 */
export const unknownVariableMessage: (unknown: UnknownVariable) => string = env.unknownVariableMessage

/**
 * Replaces the password in a PostgreSQL URL (or keyword connection string) by `***`. Everything up to the last
 * `@` counts as user info, so a password holding unencoded `@`, `/`, `?` or `#` is still masked; `password=` and
 * `sslpassword=` parameters are masked too.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * Settings.redactUrl("postgres://app:s3cret@db:5432/app") // "postgres://app:***@db:5432/app"
 * Settings.redactUrl("host=db password=s3cret dbname=app") // "host=db password=*** dbname=app"
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const redactUrl: (url: string) => string = redact.redactUrl

/**
 * Removes a password from free text: every occurrence (plain or percent-encoded) of one of at least
 * `minMaskedLength` characters becomes `***`, and every `postgres://` URL and `password=` parameter is masked
 * whatever the password's length.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * Settings.redactText("auth failed for s3cret-pw at postgres://app:s3cret-pw@db/app", "s3cret-pw")
 * // "auth failed for *** at postgres://app:***@db/app"
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const redactText: (text: string, password: string | undefined) => string = redact.redactText

/**
 * The shortest password masked wherever it occurs (4): a shorter one would garble every line ("p" is in every
 * path) and tell a reader the password; it is still masked in URLs and `password=` parameters.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * // whether free text is searched for this password (URLs and password= are masked anyway)
const masked = (password: string): boolean => password.length >= Settings.minMaskedLength
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const minMaskedLength: number = redact.minMaskedLength

/**
 * A redactor for log lines: every given secret, every URL's password, every `password=`; strings holding none are
 * returned untouched at the cost of a few `includes`.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const redact = Settings.makeRedactor(["s3cret-pw"])
 * redact("login with s3cret-pw failed") // "login with *** failed"
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const makeRedactor: (secrets: ReadonlyArray<string>) => (text: string) => string = redact.makeRedactor

/**
 * The passwords a `postgres://` URL carries (its user info's and its `password=` parameter's), decoded.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * const passwords = Settings.passwordsInUrl("postgres://app:p%40ss@db/app?password=other")
// ["p@ss", "other"]
 * ```
 *
 * @since 0.1.0
 * @category redaction
 */
export const passwordsInUrl: (url: string) => Array<string> = redact.passwordsInUrl

/**
 * Reads a log level's name in any case (`warn` and `warning` both), `undefined` for anything else.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * Settings.parseLogLevel("DEBUG") // "Debug"
 * Settings.parseLogLevel("loud") // undefined
 * ```
 *
 * @since 0.1.0
 * @category parsers
 */
export const parseLogLevel: (text: string) => LogLevel | undefined = values.parseLogLevel

/**
 * Signed milliseconds of a duration as the settings take it: a number of milliseconds, a bigint of nanoseconds,
 * an `[seconds, nanos]` pair, a text (`"250"`, `"1.5s"`, `"1m 30s"`, `"5 seconds"`), or a runtime value.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * Settings.durationMillis("1m 30s") // 90000
 * Settings.durationMillis("soon") // undefined
 * ```
 *
 * @since 0.1.0
 * @category parsers
 */
export const durationMillis = (raw: unknown, runtime: Runtime = {}): number | undefined =>
  values.durationMillis(raw, runtime)

/**
 * Milliseconds as Effect's `Duration.format` prints them, so that a value copied from a message reads back.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * Settings.formatMillis(90_000) // "1m 30s"
 * Settings.formatMillis(1_500) // "1s 500ms"
 * ```
 *
 * @since 0.1.0
 * @category parsers
 */
export const formatMillis: (millis: number) => string = values.formatMillis

/**
 * Whether a host is a Unix socket directory (it starts with `/`, or `@` for Linux's abstract namespace), as libpq
 * decides it.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * Settings.isSocket("/var/run/postgresql") // true
 * Settings.isSocket("db.internal") // false
 * ```
 *
 * @since 0.1.0
 * @category parsers
 */
export const isSocket: (host: string) => boolean = hosts.isSocket

/**
 * A failure of the edition's file or crypto access: its error code (`ENOENT`, `EACCES`,
 * `ERR_OSSL_BAD_DECRYPT`, …), which picks the message, and its own message.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * const missing: Settings.TlsFailure = { code: "ENOENT", message: "no such file or directory" }
 * // reported as "… sslrootcert (/etc/ca.pem) cannot be read: the file does not exist; …"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TlsFailure = tlsInternal.TlsFailure

/**
 * The edition's access to files and TLS material (on Node: `fs.readFileSync`, `crypto.X509Certificate`,
 * `crypto.createPrivateKey`, `tls.createSecureContext`), which `makeTlsResolver` needs and the engine cannot do.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * const inMemory = (files: Record<string, string>): Settings.TlsFiles => ({
 *   read: (path) => (path in files ? { text: files[path]! } : { code: "ENOENT", message: "not found" }),
 *   checkCertificate: () => undefined,
 *   decryptKey: (pem) => ({ pem }),
 *   checkContext: () => undefined
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TlsFiles = tlsInternal.TlsFiles

/**
 * What `makeTlsResolver` makes of the TLS settings: Node's `tls.ConnectionOptions` (`false` with `disable`; the
 * private key not enumerable) and which settings produced them, for messages at connect time.
 *
 * @example
 * ```ts
 * import type { Settings } from "@effect-pg-pool/engine"
 *
 * const explain = (material: Settings.TlsMaterial, problem: string): string =>
 *   `TLS: ${problem} (${material.description})`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TlsMaterial = tlsInternal.TlsMaterial

/**
 * libpq's TLS settings resolved for a Node driver, the same for every edition: `sslmode` (node-postgres's `ssl=true`
 * and `no-verify` too), `sslrootcert` (`system` included: verify-full only), `sslcert` + `sslkey` (+
 * `sslpassword`, the key decrypted once), `sslcrl`, `sslsni`, `ssl_min/max_protocol_version`, or the `ssl` option
 * in code (checked, returned as given); every problem reported with the parameter and the path.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * declare const files: Settings.TlsFiles // the edition's: fs and crypto
 * const tls = Settings.makeTlsResolver(files)
 * const result = Settings.resolve({ url: "postgres://db/app?sslmode=verify-full&sslrootcert=/etc/ca.pem" }, { tls })
 * // result.settings.tls.options: { rejectUnauthorized: true, ca: ["-----BEGIN CERTIFICATE-----…"] }
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTlsResolver: (files: TlsFiles) => TlsResolver<TlsMaterial> = tlsInternal.makeTlsResolver

/**
 * The description of TLS options given in code (`TlsMaterial.description`), so that connect-time messages name
 * the fix in those terms.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-pg-pool/engine"
 *
 * // a fix for options given in code names the ssl option, not sslrootcert
const byOption = (material: Settings.TlsMaterial): boolean => material.description === Settings.tlsOption
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const tlsOption: string = tlsInternal.OPTION
