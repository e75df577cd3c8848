/**
 * The pool's configuration: options (and the environment) validated into a `PoolConfig`, every problem reported at
 * once with the name the user wrote and what to do. A stand-in until the engine's pure `Settings` module lands;
 * the rules and messages follow the Effect 3 edition's.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { ConnectionOptions } from "node:tls"
import type { PoolConfig, PoolConfigInput } from "../PoolConfig.js"
import { type ConfigIssue, PoolConfigError } from "../PoolError.js"

/** The environment variable of each setting. @internal */
export const ENV = {
  name: "DB_POOL_NAME",
  url: "DATABASE_URL",
  host: "PGHOST",
  port: "PGPORT",
  database: "PGDATABASE",
  user: "PGUSER",
  password: "PGPASSWORD",
  minSize: "DB_POOL_MIN_SIZE",
  maxSize: "DB_POOL_MAX_SIZE",
  acquireTimeout: "DB_POOL_ACQUIRE_TIMEOUT",
  connectTimeout: "DB_POOL_CONNECT_TIMEOUT",
  validateAfterIdle: "DB_POOL_VALIDATE_AFTER_IDLE",
  validationTimeout: "DB_POOL_VALIDATION_TIMEOUT",
  maxLifetime: "DB_POOL_MAX_LIFETIME",
  maxIdleTime: "DB_POOL_MAX_IDLE_TIME",
  maxQueries: "DB_POOL_MAX_QUERIES",
  leakDetectionThreshold: "DB_POOL_LEAK_DETECTION_THRESHOLD",
  shutdownTimeout: "DB_POOL_SHUTDOWN_TIMEOUT",
  keepAlive: "DB_POOL_KEEPALIVE",
  reset: "DB_POOL_RESET",
  init: "DB_POOL_INIT",
  statementTimeout: "DB_POOL_STATEMENT_TIMEOUT",
  applicationName: "DB_POOL_APPLICATION_NAME",
  logFile: "DB_POOL_LOG_FILE",
  multiplex: "DB_POOL_MULTIPLEX",
  multiplexConcurrency: "DB_POOL_MULTIPLEX_CONCURRENCY",
  "reconnect.initialDelay": "DB_POOL_RECONNECT_INITIAL_DELAY",
  "reconnect.factor": "DB_POOL_RECONNECT_FACTOR",
  "reconnect.maxDelay": "DB_POOL_RECONNECT_MAX_DELAY",
  "reconnect.initialAttempts": "DB_POOL_RECONNECT_INITIAL_ATTEMPTS",
  "reconnect.jitter": "DB_POOL_RECONNECT_JITTER"
} as const

const PASSWORD_PARAM = /(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)/gi
const EMBEDDED_URL = /postgres(?:ql)?:\/\/[^\s'"<>]+/gi
const minMaskedLength = 4

/** A URL with its password masked. @internal */
export const redactUrl = (url: string): string => {
  const schemeEnd = url.indexOf("://")
  const start = schemeEnd === -1 ? 0 : schemeEnd + 3
  const at = url.lastIndexOf("@")
  const colon = url.indexOf(":", start)
  const masked = at > start && colon !== -1 && colon < at ? `${url.slice(0, colon + 1)}***${url.slice(at)}` : url
  return masked.replace(PASSWORD_PARAM, "$1***")
}

/** A text with the password, and the passwords of the URLs in it, masked. @internal */
export const redactText = (text: string, password: string | undefined): string => {
  let out = text
  if (password !== undefined && password.length >= minMaskedLength) {
    for (const form of new Set([password, encodeURIComponent(password)])) out = out.split(form).join("***")
  }
  return out.replace(EMBEDDED_URL, (url) => redactUrl(url)).replace(PASSWORD_PARAM, "$1***")
}

/** Milliseconds of a duration written as Effect's input, `"5s"` / `"500ms"` / `"2m"`, or plain milliseconds. */
export const durationMillis = (raw: unknown): number | undefined => {
  if (typeof raw === "number") return Number.isFinite(raw) ? raw : undefined
  if (typeof raw === "string") {
    const text = raw.trim()
    if (/^\d+(\.\d+)?$/.test(text)) return Number(text)
    const short = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/i.exec(text)
    if (short !== null) {
      const scale = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[short[2]!.toLowerCase() as "ms"]
      return Number(short[1]) * scale
    }
  }
  try {
    const decoded = Duration.fromInput(raw as Duration.Input)
    return decoded._tag === "Some" ? Duration.toMillis(decoded.value) : undefined
  } catch {
    return undefined
  }
}

type Source = "input" | "env"

class Issues {
  readonly list: Array<ConfigIssue> = []
  constructor(readonly source: Source) {}
  name(field: keyof typeof ENV): string {
    return this.source === "env" ? ENV[field] : field
  }
  report(field: keyof typeof ENV, value: string, problem: string): void {
    const setting = this.name(field)
    this.list.push({ field, env: ENV[field], setting, value, message: `${setting} (${value}) ${problem}` })
  }
}

const show = (raw: unknown): string =>
  typeof raw === "string" ? (raw === "" ? '""' : raw) : typeof raw === "object" ? "<object>" : String(raw)

const secret = (raw: unknown): string | undefined =>
  typeof raw === "string" ? raw : Redacted.isRedacted(raw) ? String(Redacted.value(raw)) : undefined

interface UrlParts {
  host?: string
  port?: number
  user?: string
  password?: string
  database?: string
  sslmode?: string
  applicationName?: string
  options?: string
}

const parseUrl = (text: string): UrlParts | string => {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return "is not a URL: write postgres://user:password@host:5432/database"
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    return `must start with postgres:// or postgresql://, not ${url.protocol}//`
  }
  const parts: UrlParts = {}
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s)
    } catch {
      return s
    }
  }
  if (url.hostname !== "") parts.host = decode(url.hostname.replace(/^\[(.*)\]$/, "$1"))
  if (url.port !== "") parts.port = Number(url.port)
  if (url.username !== "") parts.user = decode(url.username)
  if (url.password !== "") parts.password = decode(url.password)
  const database = decode(url.pathname.replace(/^\//, ""))
  if (database !== "") parts.database = database
  for (const [key, value] of url.searchParams) {
    if (key === "host") parts.host = value
    else if (key === "port") parts.port = Number(value)
    else if (key === "user") parts.user = value
    else if (key === "password") parts.password = value
    else if (key === "dbname") parts.database = value
    else if (key === "sslmode") parts.sslmode = value
    else if (key === "application_name") parts.applicationName = value
    else if (key === "options") parts.options = value
  }
  return parts
}

const sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const

/** The raw input: options as given, or strings read from the environment. @internal */
export type RawInput = { readonly [K in keyof PoolConfigInput]?: unknown } & {
  readonly reconnect?: { readonly [key: string]: unknown } | undefined
}

/**
 * Validates raw settings into a configuration, or every problem found.
 *
 * @internal
 */
export const resolve = (raw: RawInput, source: Source): PoolConfig | PoolConfigError => {
  const issues = new Issues(source)
  const duration = (field: keyof typeof ENV, value: unknown, fallback: number, min: "positive" | "nonNegative") => {
    if (value === undefined) return Duration.millis(fallback)
    const millis = durationMillis(value)
    if (millis === undefined || millis < 0 || (min === "positive" && millis === 0)) {
      issues.report(
        field,
        show(value),
        `must be a duration ${min === "positive" ? "> 0" : "≥ 0"}: write e.g. "5s", "500ms" or "5 seconds"`
      )
      return Duration.millis(fallback)
    }
    return Duration.millis(millis)
  }
  const integer = (field: keyof typeof ENV, value: unknown, fallback: number, min: number, max = 1_000_000_000) => {
    if (value === undefined) return fallback
    const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
      issues.report(field, show(value), `must be an integer from ${min} to ${max}`)
      return fallback
    }
    return n
  }
  const number = (field: keyof typeof ENV, value: unknown, fallback: number, greaterThan: number) => {
    if (value === undefined) return fallback
    const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value
    if (typeof n !== "number" || !Number.isFinite(n) || n <= greaterThan) {
      issues.report(field, show(value), `must be a number > ${greaterThan}`)
      return fallback
    }
    return n
  }
  const boolean = (field: keyof typeof ENV, value: unknown, fallback: boolean) => {
    if (value === undefined) return fallback
    if (typeof value === "boolean") return value
    if (typeof value === "string" && /^(true|1|yes|on)$/i.test(value.trim())) return true
    if (typeof value === "string" && /^(false|0|no|off)$/i.test(value.trim())) return false
    issues.report(field, show(value), "must be true or false")
    return fallback
  }
  const oneOf = <A extends string>(field: keyof typeof ENV, value: unknown, allowed: ReadonlyArray<A>, fallback: A) => {
    if (value === undefined) return fallback
    if (typeof value === "string" && (allowed as ReadonlyArray<string>).includes(value)) return value as A
    issues.report(field, show(value), `must be one of ${allowed.join(", ")}`)
    return fallback
  }
  const text = (field: keyof typeof ENV, value: unknown): string | undefined => {
    if (value === undefined) return undefined
    if (typeof value === "string") return value
    issues.report(field, show(value), "must be a string")
    return undefined
  }

  let url: UrlParts = {}
  if (raw.url !== undefined) {
    const urlText = secret(raw.url)
    if (urlText === undefined) issues.report("url", show(raw.url), "must be a string or a Redacted string")
    else {
      const parsed = parseUrl(urlText)
      if (typeof parsed === "string") issues.report("url", redactUrl(urlText), parsed)
      else url = parsed
    }
  }
  const host = text("host", raw.host) ?? url.host ?? "localhost"
  const port = integer("port", raw.port ?? url.port, 5432, 1, 65535)
  const user = text("user", raw.user) ?? url.user ?? "postgres"
  const database = text("database", raw.database) ?? url.database ?? user
  const passwordText = raw.password !== undefined ? secret(raw.password) : url.password
  if (raw.password !== undefined && passwordText === undefined) {
    issues.report("password", "<hidden>", "must be a string or a Redacted string")
  }
  const sslmode = oneOf("url", url.sslmode, sslModes, "disable")
  let ssl: false | ConnectionOptions = false
  if (raw.ssl === true) ssl = {}
  else if (typeof raw.ssl === "object" && raw.ssl !== null) ssl = raw.ssl as ConnectionOptions
  else if (sslmode !== "disable")
    ssl = sslmode === "verify-full" || sslmode === "verify-ca" ? {} : { rejectUnauthorized: false }
  const maxSize = integer("maxSize", raw.maxSize, 10, 1, 10_000)
  const minSize = integer("minSize", raw.minSize, Math.min(2, maxSize), 0, 10_000)
  if (minSize > maxSize) {
    const min = issues.name("minSize")
    const max = issues.name("maxSize")
    issues.list.push({
      field: "minSize",
      env: ENV.minSize,
      setting: min,
      value: String(minSize),
      message: `${min} (${minSize}) must be ≤ ${max} (${maxSize}): lower ${min} or raise ${max}`
    })
  }
  const reconnect = raw.reconnect ?? {}
  const initialDelay = duration("reconnect.initialDelay", reconnect.initialDelay, 1_000, "positive")
  const maxDelay = duration("reconnect.maxDelay", reconnect.maxDelay, 16_000, "positive")
  const name = text("name", raw.name) ?? "default"
  const config: PoolConfig = {
    name,
    url: Redacted.make(
      `postgres://${encodeURIComponent(user)}${passwordText === undefined ? "" : `:${encodeURIComponent(passwordText)}`}@` +
        `${host.includes(":") ? `[${host}]` : host.startsWith("/") ? encodeURIComponent(host) : host}:${port}/` +
        encodeURIComponent(database)
    ),
    host,
    port,
    database,
    user,
    password: passwordText === undefined ? undefined : Redacted.make(passwordText),
    ssl,
    sslmode: ssl === false ? "disable" : sslmode === "disable" ? "require" : sslmode,
    minSize,
    maxSize,
    acquireTimeout: duration("acquireTimeout", raw.acquireTimeout, 30_000, "positive"),
    connectTimeout: duration("connectTimeout", raw.connectTimeout, 5_000, "positive"),
    validateAfterIdle: duration("validateAfterIdle", raw.validateAfterIdle, 1_000, "nonNegative"),
    validationTimeout: duration("validationTimeout", raw.validationTimeout, 2_000, "positive"),
    maxLifetime: duration("maxLifetime", raw.maxLifetime, 3_600_000, "positive"),
    maxIdleTime: duration("maxIdleTime", raw.maxIdleTime, 60_000, "positive"),
    maxQueries: integer("maxQueries", raw.maxQueries, 50_000, 1),
    leakDetectionThreshold: duration("leakDetectionThreshold", raw.leakDetectionThreshold, 30_000, "nonNegative"),
    shutdownTimeout: duration("shutdownTimeout", raw.shutdownTimeout, 30_000, "nonNegative"),
    keepAlive: boolean("keepAlive", raw.keepAlive, true),
    reset: oneOf("reset", raw.reset, ["auto", "always"] as const, "auto"),
    reconnect: {
      initialDelay,
      factor: number("reconnect.factor", reconnect.factor, 2, 1),
      maxDelay,
      initialAttempts: integer("reconnect.initialAttempts", reconnect.initialAttempts, 5, 1),
      jitter: boolean("reconnect.jitter", reconnect.jitter, false)
    },
    init: oneOf("init", raw.init, ["eager", "lazy"] as const, "eager"),
    statementTimeout:
      raw.statementTimeout === undefined
        ? undefined
        : duration("statementTimeout", raw.statementTimeout, 0, "positive"),
    applicationName: text("applicationName", raw.applicationName) ?? url.applicationName ?? "effect-pg-pool",
    logFile: text("logFile", raw.logFile),
    multiplex: boolean("multiplex", raw.multiplex, false),
    multiplexConcurrency: integer("multiplexConcurrency", raw.multiplexConcurrency, 32, 1, 128)
  }
  if (Duration.toMillis(maxDelay) < Duration.toMillis(initialDelay)) {
    issues.report(
      "reconnect.maxDelay",
      `${Duration.toMillis(maxDelay)} ms`,
      `must be ≥ the initial delay (${Duration.toMillis(initialDelay)} ms): raise it or lower the initial delay`
    )
  }
  return issues.list.length > 0 ? new PoolConfigError({ issues: issues.list }) : config
}

/** @internal */
export const make = (input: PoolConfigInput): Effect.Effect<PoolConfig, PoolConfigError> =>
  Effect.suspend(() => {
    const result = resolve(input as RawInput, "input")
    return result instanceof PoolConfigError ? Effect.fail(result) : Effect.succeed(result)
  })

/** Reads the settings from `env` (`DATABASE_URL`, the libpq `PG*` variables, `DB_POOL_*`). @internal */
export const fromEnvRecord = (env: Readonly<Record<string, string | undefined>>): PoolConfig | PoolConfigError => {
  const read = (name: string) => {
    const value = env[name]
    return value === undefined || value === "" ? undefined : value
  }
  const raw: Record<string, unknown> = {}
  const reconnect: Record<string, unknown> = {}
  for (const [field, name] of Object.entries(ENV)) {
    const value = read(name)
    if (value === undefined) continue
    if (field.startsWith("reconnect.")) reconnect[field.slice("reconnect.".length)] = value
    else raw[field] = value
  }
  if (raw.url !== undefined) raw.url = Redacted.make(raw.url as string)
  if (raw.password !== undefined) raw.password = Redacted.make(raw.password as string)
  return resolve({ ...raw, reconnect }, "env")
}

/** @internal */
export const fromEnv: Effect.Effect<PoolConfig, PoolConfigError> = Effect.suspend(() => {
  const result = fromEnvRecord(process.env)
  return result instanceof PoolConfigError ? Effect.fail(result) : Effect.succeed(result)
})
