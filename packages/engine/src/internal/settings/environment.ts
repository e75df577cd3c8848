/**
 * The environment: the options an environment record gives (libpq's variables only without `DATABASE_URL`), their
 * resolution named by variable, and the log file and level read alone for the logging layer.
 *
 * @internal
 */
import { envOf, type Setting } from "./env.js"
import { Issues, logFileOf, nonEmpty } from "./issues.js"
import type { Input, Issue, Options, Result, TlsParams } from "./model.js"
import { resolve } from "./resolve.js"
import { type LogLevel, logLevel } from "./values.js"

/**
 * The options an environment record gives: `DATABASE_URL`, or libpq's `PG*` variables when it is not set (mixing
 * both sources would hide which one won), and the `DB_POOL_*` settings. Empty values count as unset.
 *
 * @internal
 */
export const inputFromEnv = (record: Readonly<Record<string, string | undefined>>): Input => {
  const env = nonEmpty(record)
  const url = env.get(envOf.url)
  const libpq = (key: string) => (url === undefined ? env.get(key) : undefined)
  const get = (setting: Setting) => env.get(envOf[setting])
  return {
    url,
    host: libpq(envOf.host),
    port: libpq(envOf.port),
    user: libpq(envOf.user),
    password: libpq(envOf.password),
    database: libpq(envOf.database),
    name: get("name"),
    minSize: get("minSize"),
    maxSize: get("maxSize"),
    acquireTimeout: get("acquireTimeout"),
    connectTimeout: get("connectTimeout"),
    validateAfterIdle: get("validateAfterIdle"),
    validationTimeout: get("validationTimeout"),
    maxLifetime: get("maxLifetime"),
    maxIdleTime: get("maxIdleTime"),
    maxQueries: get("maxQueries"),
    pipeline: get("pipeline"),
    leakDetectionThreshold: get("leakDetectionThreshold"),
    shutdownTimeout: get("shutdownTimeout"),
    cancelTimeout: get("cancelTimeout"),
    queryTimeout: get("queryTimeout"),
    keepAlive: get("keepAlive"),
    reset: get("reset"),
    reconnect: {
      initialDelay: get("reconnect.initialDelay"),
      factor: get("reconnect.factor"),
      maxDelay: get("reconnect.maxDelay"),
      initialAttempts: get("reconnect.initialAttempts"),
      jitter: get("reconnect.jitter")
    },
    init: get("init"),
    pooler: get("pooler"),
    statementTimeout: get("statementTimeout"),
    applicationName: get("applicationName"),
    logFile: get("logFile"),
    logLevel: get("logLevel"),
    replicas: get("replicas"),
    replicaHosts: get("replicaHosts"),
    replicaTargetSessionAttrs: get("replicaTargetSessionAttrs"),
    replicaMinSize: get("replicaMinSize"),
    replicaMaxSize: get("replicaMaxSize")
  }
}

/** Resolves the settings an environment record gives, named by their variables in messages. @internal */
export const fromEnv = <T = TlsParams>(
  record: Readonly<Record<string, string | undefined>>,
  options: Omit<Options<T>, "source" | "env"> = {}
): Result<T> => resolve(inputFromEnv(record), { ...options, source: "env", env: record })

/**
 * The log file and level an environment record gives, validated as `fromEnv` validates them (the same rules and
 * messages), and the passwords a log line must never show.
 *
 * @internal
 */
export const loggingFromEnv = (
  record: Readonly<Record<string, string | undefined>>
):
  | {
      readonly ok: true
      readonly logFile: string | undefined
      readonly logLevel: LogLevel | undefined
      readonly url: string | undefined
      readonly password: string | undefined
    }
  | { readonly ok: false; readonly issues: ReadonlyArray<Issue> } => {
  const env = nonEmpty(record)
  const issues = new Issues("env", {}, {})
  const logFile = logFileOf(issues, env.get(envOf.logFile))
  const level = issues.read<LogLevel | undefined>("logLevel", env.get(envOf.logLevel), undefined, logLevel)
  if (issues.list.length > 0) return { ok: false, issues: issues.list }
  return { ok: true, logFile, logLevel: level, url: env.get(envOf.url), password: env.get(envOf.password) }
}
