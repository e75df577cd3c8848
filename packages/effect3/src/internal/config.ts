import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import type * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { PoolConfig, PoolConfigInput, Setting, SettingNames } from "../PoolConfig.js"
import { type ConfigIssue, PoolConfigError } from "../PoolError.js"
import * as Tls from "./tls.js"

// ---------------------------------------------------------------------------
// defaults and environment names
// ---------------------------------------------------------------------------

/** @internal */
export const defaults: Omit<PoolConfig, "url" | "database" | "password"> = {
  name: "default",
  host: "localhost",
  port: 5432,
  user: "postgres",
  ssl: false,
  sslmode: "disable",
  minSize: 2,
  maxSize: 10,
  acquireTimeout: Duration.seconds(30),
  connectTimeout: Duration.seconds(5),
  validateAfterIdle: Duration.seconds(1),
  validationTimeout: Duration.seconds(2),
  maxLifetime: Duration.seconds(3600),
  maxIdleTime: Duration.seconds(60),
  maxQueries: 50_000,
  leakDetectionThreshold: Duration.seconds(30),
  shutdownTimeout: Duration.seconds(30),
  cancelTimeout: Duration.seconds(5),
  queryTimeout: undefined,
  keepAlive: true,
  reset: "auto",
  reconnect: {
    initialDelay: Duration.seconds(1),
    factor: 2,
    maxDelay: Duration.seconds(16),
    initialAttempts: 5,
    jitter: false
  },
  init: "eager",
  statementTimeout: undefined,
  applicationName: "effect-pg-pool",
  logFile: undefined,
  logLevel: undefined,
  // read on access: the table is built from the environment names below
  get settingNames() {
    return SETTING_OPTION
  }
}

const ENV = {
  url: "DATABASE_URL",
  host: "PGHOST",
  port: "PGPORT",
  user: "PGUSER",
  password: "PGPASSWORD",
  database: "PGDATABASE",
  name: "DB_POOL_NAME",
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
  cancelTimeout: "DB_POOL_CANCEL_TIMEOUT",
  queryTimeout: "DB_POOL_QUERY_TIMEOUT",
  keepAlive: "DB_POOL_KEEPALIVE",
  reset: "DB_POOL_RESET",
  initialDelay: "DB_POOL_RECONNECT_INITIAL_DELAY",
  factor: "DB_POOL_RECONNECT_FACTOR",
  maxDelay: "DB_POOL_RECONNECT_MAX_DELAY",
  initialAttempts: "DB_POOL_RECONNECT_INITIAL_ATTEMPTS",
  jitter: "DB_POOL_RECONNECT_JITTER",
  init: "DB_POOL_INIT",
  statementTimeout: "DB_POOL_STATEMENT_TIMEOUT",
  applicationName: "DB_POOL_APPLICATION_NAME",
  logFile: "DB_POOL_LOG_FILE",
  logLevel: "DB_POOL_LOG_LEVEL"
} as const

/** Each setting's environment variable: the one table `fromEnv`, `PoolLogger.layerFromEnv` and messages share. */
const SETTING_ENV: SettingNames = {
  name: ENV.name,
  url: ENV.url,
  host: ENV.host,
  port: ENV.port,
  database: ENV.database,
  user: ENV.user,
  password: ENV.password,
  ssl: "PGSSLMODE",
  sslmode: "PGSSLMODE",
  minSize: ENV.minSize,
  maxSize: ENV.maxSize,
  acquireTimeout: ENV.acquireTimeout,
  connectTimeout: ENV.connectTimeout,
  validateAfterIdle: ENV.validateAfterIdle,
  validationTimeout: ENV.validationTimeout,
  maxLifetime: ENV.maxLifetime,
  maxIdleTime: ENV.maxIdleTime,
  maxQueries: ENV.maxQueries,
  leakDetectionThreshold: ENV.leakDetectionThreshold,
  shutdownTimeout: ENV.shutdownTimeout,
  cancelTimeout: ENV.cancelTimeout,
  queryTimeout: ENV.queryTimeout,
  keepAlive: ENV.keepAlive,
  reset: ENV.reset,
  "reconnect.initialDelay": ENV.initialDelay,
  "reconnect.factor": ENV.factor,
  "reconnect.maxDelay": ENV.maxDelay,
  "reconnect.initialAttempts": ENV.initialAttempts,
  "reconnect.jitter": ENV.jitter,
  init: ENV.init,
  statementTimeout: ENV.statementTimeout,
  applicationName: ENV.applicationName,
  logFile: ENV.logFile,
  logLevel: ENV.logLevel
}

/** A configuration written in code names its settings by their option names. */
const SETTING_OPTION = Object.fromEntries(Object.keys(SETTING_ENV).map((key) => [key, key])) as SettingNames

const EXAMPLE_URL = "postgres://user:password@localhost:5432/mydb"

// ---------------------------------------------------------------------------
// redaction
// ---------------------------------------------------------------------------

// `sslpassword` (the client key's passphrase) is a secret too, hence no word boundary before `password`.
const PASSWORD_PARAM = /(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)/gi

/** @internal */
export const redactUrl = (url: string): string => {
  const schemeEnd = url.indexOf("://")
  const start = schemeEnd === -1 ? 0 : schemeEnd + 3
  // The user info runs to the LAST "@" (as in `parseUrl`), so an unencoded "@", "/", "?" or "#" in a password is
  // still masked; a stray "@" further right only masks too much, never too little.
  const at = url.lastIndexOf("@")
  const colon = url.indexOf(":", start)
  const masked = at > start && colon !== -1 && colon < at ? url.slice(0, colon + 1) + "***" + url.slice(at) : url
  return masked.replace(PASSWORD_PARAM, "$1***")
}

const EMBEDDED_URL = /postgres(?:ql)?:\/\/[^\s'"<>]+/gi

const minMaskedLength = 4

/** @internal */
export const redactText = (text: string, password: string | undefined): string => {
  let out = text
  // A password of a few characters is found everywhere ("p" in every path): masking each occurrence would garble
  // every line and tell a reader the password. Such a password is still masked where it stands as one: in URLs
  // and `password=` parameters, below.
  if (password !== undefined && password.length >= minMaskedLength) {
    // Connection strings in driver errors carry the password percent-encoded.
    for (const form of new Set([password, encodeURIComponent(password)])) {
      out = out.split(form).join("***")
    }
  }
  return out.replace(EMBEDDED_URL, (url) => redactUrl(url)).replace(PASSWORD_PARAM, "$1***")
}

// ---------------------------------------------------------------------------
// value parsers: each returns the value or the "rule: fix" part of a message
// ---------------------------------------------------------------------------

type Parse<A> = (raw: unknown) => Either.Either<A, string>

const show = (raw: unknown): string => {
  if (typeof raw === "string") return raw === "" ? '""' : raw
  if (typeof raw === "number" || typeof raw === "boolean") return String(raw)
  if (typeof raw === "bigint") return `${raw}n`
  if (Duration.isDuration(raw)) return Duration.format(raw)
  if (Redacted.isRedacted(raw)) return "<redacted>"
  try {
    return JSON.stringify(raw) ?? String(raw)
  } catch {
    return String(raw)
  }
}

const NUMBER = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$/i

const toNumber = (raw: unknown): number | undefined => {
  if (typeof raw === "number") return raw
  if (typeof raw === "string" && NUMBER.test(raw.trim())) return Number(raw.trim())
  return undefined
}

// Decimal digits only: "1e1" or "10.0" read as 10, but nobody writes a pool size that way on purpose.
const INTEGER_TEXT = /^\s*[-+]?\d+\s*$/

const integer =
  (min: number, max: number | undefined, fix: string): Parse<number> =>
  (raw) => {
    const n = toNumber(raw)
    if (typeof raw === "string" && !INTEGER_TEXT.test(raw) && Number.isInteger(n)) {
      return Either.left(`must be written in decimal digits: ${fix}`)
    }
    return n !== undefined && Number.isSafeInteger(n) && n >= min && (max === undefined || n <= max)
      ? Either.right(n)
      : Either.left(
          max === undefined ? `must be an integer ≥ ${min}: ${fix}` : `must be an integer from ${min} to ${max}: ${fix}`
        )
  }

/**
 * The largest pool: PostgreSQL's default `max_connections` is 100 and every connection is a server process with
 * its own memory, so a bigger figure is a typo (an extra zero) rather than a plan; more clients than this belong
 * behind PgBouncer. It is also far below 262 143, the most `max_connections` PostgreSQL can be configured with.
 */
const MAX_POOL_SIZE = 10_000

const SIZE_FIX = `PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients`

const PORT_RULE = "must be an integer from 1 to 65535: PostgreSQL listens on 5432 unless configured otherwise"

const port: Parse<number> = (raw) => {
  const n = typeof raw === "string" && !INTEGER_TEXT.test(raw) ? undefined : toNumber(raw)
  return n !== undefined && Number.isInteger(n) && n >= 1 && n <= 65535 ? Either.right(n) : Either.left(PORT_RULE)
}

const factor: Parse<number> = (raw) => {
  const n = toNumber(raw)
  return n !== undefined && Number.isFinite(n) && n > 1
    ? Either.right(n)
    : Either.left("must be a number > 1: use e.g. 2 to double the delay after each failed attempt")
}

// The same words Effect's `Config.boolean` accepts, case-insensitively.
const BOOLEANS = new Map<string, boolean>([
  ["true", true],
  ["yes", true],
  ["on", true],
  ["1", true],
  ["false", false],
  ["no", false],
  ["off", false],
  ["0", false]
])

const boolean: Parse<boolean> = (raw) => {
  const b =
    typeof raw === "boolean" ? raw : typeof raw === "string" ? BOOLEANS.get(raw.trim().toLowerCase()) : undefined
  return b !== undefined ? Either.right(b) : Either.left("must be true or false (yes/no, on/off and 1/0 work too)")
}

const text =
  (fix: string): Parse<string> =>
  (raw) =>
    typeof raw === "string" ? Either.right(raw) : Either.left(`must be a string: ${fix}`)

const name: Parse<string> = (raw) =>
  typeof raw === "string" && raw.trim() !== ""
    ? Either.right(raw)
    : Either.left("must be a non-empty string: name the pool for logs and metrics, e.g. default")

/** One of two modes, in any case; the message names both and says what each does. */
const mode =
  <A extends string, B extends string>(a: A, b: B, explanation: string): Parse<A | B> =>
  (raw) => {
    const value = typeof raw === "string" ? raw.trim().toLowerCase() : undefined
    return value === a || value === b
      ? Either.right(value as A | B)
      : Either.left(`must be ${a} or ${b}: ${explanation}`)
  }

const init = mode(
  "eager",
  "lazy",
  "eager fails startup when the database is unreachable, lazy starts degraded and connects in the background"
)

const reset = mode(
  "auto",
  "always",
  "auto discards session state only after statements that may leave some, always runs DISCARD ALL on every return"
)

const UNIT_MILLIS = new Map<string, number>([
  ...["ns", "nano", "nanos"].map((u) => [u, 1e-6] as const),
  ...["us", "µs", "micro", "micros"].map((u) => [u, 1e-3] as const),
  ...["ms", "milli", "millis"].map((u) => [u, 1] as const),
  ...["s", "sec", "secs", "second", "seconds"].map((u) => [u, 1_000] as const),
  ...["m", "min", "mins", "minute", "minutes"].map((u) => [u, 60_000] as const),
  ...["h", "hr", "hrs", "hour", "hours"].map((u) => [u, 3_600_000] as const),
  ...["d", "day", "days"].map((u) => [u, 86_400_000] as const),
  ...["w", "week", "weeks"].map((u) => [u, 604_800_000] as const)
])

// Parses "250", "1.5s", "500 ms", "5 seconds", and compound forms such as "1m 30s" (what `Duration.format` prints,
// so a value copied from a log or an error message reads back). The sign applies to the whole text.
const parseDurationText = (input: string): number | undefined => {
  const trimmed = input.trim()
  const sign = trimmed.startsWith("-") ? -1 : 1
  const body = trimmed.replace(/^[-+]/, "")
  const token = /\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zµ]*)/iy
  let total = 0
  let tokens = 0
  let bare = false
  while (token.lastIndex < body.length) {
    const match = token.exec(body)
    if (match === null) return undefined
    const unit = match[2] === "" ? 1 : UNIT_MILLIS.get(match[2]!.toLowerCase())
    if (unit === undefined) return undefined
    bare ||= match[2] === ""
    total += Number(match[1]) * unit
    tokens++
  }
  return tokens === 0 || (bare && tokens > 1) ? undefined : sign * total
}

// Signed milliseconds, so that negative and infinite inputs can be reported instead of being clamped to zero the
// way `Duration.decode` does.
const durationMillis = (raw: unknown): number | undefined => {
  if (Duration.isDuration(raw)) return Duration.toMillis(raw)
  if (typeof raw === "number") return Number.isNaN(raw) ? undefined : raw
  if (typeof raw === "bigint") return Number(raw) / 1e6
  if (Array.isArray(raw) && raw.length === 2 && typeof raw[0] === "number" && typeof raw[1] === "number") {
    const millis = raw[0] * 1_000 + raw[1] / 1e6
    return Number.isNaN(millis) ? undefined : millis
  }
  if (typeof raw === "string") return parseDurationText(raw)
  return undefined
}

const NOT_A_DURATION =
  "is not a duration: use milliseconds (250), a short form (500ms, 1.5s, 2m, 1h) or Effect's form (5 seconds)"

/**
 * The longest duration a setting may have: 2^31−1 ms (about 24.8 days) is the longest delay a Node.js timer (and
 * Effect's clock) can wait — a longer `setTimeout` fires at once, a longer `Effect.sleep` never — and the largest
 * `statement_timeout` PostgreSQL accepts, so a longer one would be refused by every connection at login.
 */
const MAX_DURATION_MILLIS = 2 ** 31 - 1

const TOO_LONG = `must be at most ${MAX_DURATION_MILLIS}ms (about 24.8 days, the longest a timer can wait and the largest timeout PostgreSQL accepts)`

// Timers and PostgreSQL count whole milliseconds: a shorter non-zero duration rounds to 0, which disables
// `statement_timeout` and makes a timeout fire at once.
const TOO_SHORT = "must be at least 1ms (timers and PostgreSQL count whole milliseconds: a shorter one rounds to 0)"

const duration =
  (rule: "> 0" | "≥ 0", fix: string): Parse<Duration.Duration> =>
  (raw) => {
    const millis = durationMillis(raw)
    if (millis === undefined) return Either.left(NOT_A_DURATION)
    if (!Number.isFinite(millis)) return Either.left(`must be a finite duration: ${fix}`)
    if (rule === "> 0" ? millis <= 0 : millis < 0) return Either.left(`must be ${rule}: ${fix}`)
    if (millis > 0 && millis < 1) return Either.left(`${TOO_SHORT}${rule === "≥ 0" ? " or 0" : ""}: ${fix}`)
    if (millis > MAX_DURATION_MILLIS) return Either.left(`${TOO_LONG}: ${fix}`)
    if (Duration.isDuration(raw)) return Either.right(raw)
    return Either.right(typeof raw === "bigint" ? Duration.nanos(raw) : Duration.millis(millis))
  }

const LOG_LEVELS = new Map<string, LogLevel.LogLevel>([
  ["all", LogLevel.All],
  ["trace", LogLevel.Trace],
  ["debug", LogLevel.Debug],
  ["info", LogLevel.Info],
  ["warn", LogLevel.Warning],
  ["warning", LogLevel.Warning],
  ["error", LogLevel.Error],
  ["fatal", LogLevel.Fatal],
  ["none", LogLevel.None]
])

/** @internal */
export const parseLogLevel = (text: string): LogLevel.LogLevel | undefined => LOG_LEVELS.get(text.trim().toLowerCase())

const logLevel: Parse<LogLevel.LogLevel> = (raw) => {
  const level =
    typeof raw === "string"
      ? parseLogLevel(raw)
      : typeof raw === "object" && raw !== null && "_tag" in raw && typeof raw._tag === "string"
        ? parseLogLevel(raw._tag)
        : undefined
  return level !== undefined
    ? Either.right(level)
    : Either.left(
        "must be trace, debug, info, warning, error, fatal, all or none (any case): " +
          "the lowest level of the pool's log lines, e.g. info"
      )
}

// ---------------------------------------------------------------------------
// the connection URL
// ---------------------------------------------------------------------------

const MULTI_HOST = "lists several hosts: multi-host connections are not supported yet, give a single host"

const hostInput: Parse<string> = (raw) => {
  if (typeof raw !== "string") return Either.left("must be a string: e.g. localhost")
  return raw.includes(",") ? Either.left(MULTI_HOST) : Either.right(raw)
}

const decode = (s: string): string => {
  try {
    return decodeURIComponent(s)
  } catch {
    // A literal "%" that is not an escape (e.g. a password "50%off") is meant as itself.
    return s
  }
}

interface ParsedUrl {
  readonly host: string | undefined
  readonly port: number | undefined
  readonly user: string | undefined
  readonly password: string | undefined
  readonly database: string | undefined
  readonly applicationName: string | undefined
  /** `sslmode`, `sslrootcert`, … for internal/tls.ts. */
  readonly tls: ReadonlyMap<string, string>
}

interface UrlProblem {
  readonly field: string
  readonly problem: string
}

const MULTI_HOST_URL = `${MULTI_HOST}, e.g. postgres://user:password@db.example.com:5432/mydb`

// A parameter the pool does not act on is reported rather than ignored: the connection would silently differ from
// what the URL says. Those with an equivalent say so.
const UNSUPPORTED_PARAMS = new Map<string, string>([
  ["connect_timeout", "set connectTimeout (DB_POOL_CONNECT_TIMEOUT) instead"],
  ["keepalives", "set keepAlive (DB_POOL_KEEPALIVE) instead"],
  ["options", "run SET statements in onConnect, or set statementTimeout (DB_POOL_STATEMENT_TIMEOUT)"],
  ["fallback_application_name", "use application_name"],
  ["target_session_attrs", "multi-host connections are not supported yet"],
  ["load_balance_hosts", "multi-host connections are not supported yet"],
  ["uselibpqcompat", "remove it: sslmode already has libpq's meaning here"]
])

const unsupportedParam = (key: string): string =>
  `has the parameter ${key}, which the pool does not support: ` +
  (Tls.unsupportedParam(key) ?? UNSUPPORTED_PARAMS.get(key) ?? "remove it, it would be ignored")

// libpq's URI grammar, postgres[ql]://[user[:password]@][host][:port][/dbname][?param=value&...], parsed by hand
// rather than with `URL` so that every problem gets our message and the password never reaches one.
const parseUrl = (url: string): Either.Either<ParsedUrl, ReadonlyArray<UrlProblem>> => {
  const trimmed = url.trim()
  const scheme = /^postgres(?:ql)?:\/\//i.exec(trimmed)
  if (scheme === null) {
    return Either.left([
      { field: "url", problem: `must start with postgres:// or postgresql://: use e.g. ${EXAMPLE_URL}` }
    ])
  }
  const rest = trimmed.slice(scheme[0].length)
  // Generated passwords often hold "/", "?", "#" or "@" unencoded; taking the user info up to the last "@" reads
  // them as the user meant (an "@" in the database name or a parameter must then be written %40).
  const at = rest.lastIndexOf("@")
  const userInfo = at === -1 ? undefined : rest.slice(0, at)
  const afterUser = rest.slice(at + 1).replace(/#.*$/, "")
  const hostEnd = afterUser.search(/[/?]/)
  const hostPort = hostEnd === -1 ? afterUser : afterUser.slice(0, hostEnd)
  const pathAndQuery = hostEnd === -1 ? "" : afterUser.slice(hostEnd)
  const queryStart = pathAndQuery.indexOf("?")
  const path = queryStart === -1 ? pathAndQuery : pathAndQuery.slice(0, queryStart)
  const query = queryStart === -1 ? "" : pathAndQuery.slice(queryStart + 1)

  const problems: Array<UrlProblem> = []
  let host: string | undefined
  let portText: string | undefined
  if (hostPort.includes(",")) {
    problems.push({ field: "host", problem: MULTI_HOST_URL })
  } else if (hostPort.startsWith("[")) {
    const close = hostPort.indexOf("]")
    const after = close === -1 ? "" : hostPort.slice(close + 1)
    if (close === -1 || (after !== "" && !after.startsWith(":"))) {
      problems.push({
        field: "host",
        problem: "has an invalid host: write an IPv6 address in brackets, e.g. postgres://user:password@[::1]:5432/mydb"
      })
    } else {
      host = hostPort.slice(1, close)
      portText = after === "" ? undefined : after.slice(1)
    }
  } else {
    const colon = hostPort.indexOf(":")
    host = decode(colon === -1 ? hostPort : hostPort.slice(0, colon))
    portText = colon === -1 ? undefined : hostPort.slice(colon + 1)
  }

  let user = userInfo === undefined ? undefined : decode(userInfo.split(":", 1)[0]!)
  const colon = userInfo?.indexOf(":") ?? -1
  let password = userInfo === undefined || colon === -1 ? undefined : decode(userInfo.slice(colon + 1))
  let database = path.length > 1 ? decode(path.slice(1)) : undefined
  let applicationName: string | undefined
  const tls = new Map<string, string>()
  for (const pair of query.split("&")) {
    if (pair === "") continue
    const eq = pair.indexOf("=")
    const key = decode(eq === -1 ? pair : pair.slice(0, eq))
    const value = eq === -1 ? "" : decode(pair.slice(eq + 1))
    // libpq lets every connection keyword appear as a parameter, where it overrides the URI's own parts.
    switch (key) {
      case "host":
        host = value
        if (value.includes(",")) problems.push({ field: "host", problem: MULTI_HOST_URL })
        break
      case "port":
        portText = value
        break
      case "user":
        user = value
        break
      case "password":
        password = value
        break
      case "dbname":
        database = value
        break
      case "application_name":
        applicationName = value
        break
      default:
        if (Tls.URL_PARAMS.has(key)) tls.set(key, value)
        else problems.push({ field: "url", problem: unsupportedParam(key) })
    }
  }

  let portNumber: number | undefined
  if (portText !== undefined && portText !== "") {
    if (/^\d+$/.test(portText) && Number(portText) >= 1 && Number(portText) <= 65535) {
      portNumber = Number(portText)
    } else {
      problems.push({
        field: "port",
        problem: `has an invalid port (${portText}): use an integer from 1 to 65535, e.g. ${EXAMPLE_URL}`
      })
    }
  }
  if (problems.length > 0) return Either.left(problems)
  return Either.right({
    host: host === "" ? undefined : host,
    port: portNumber,
    user: user === "" ? undefined : user,
    password: password === "" ? undefined : password,
    database,
    applicationName,
    tls
  })
}

const buildUrl = (parts: {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string | undefined
  readonly database: string
  readonly applicationName: string
  readonly tls: ReadonlyArray<readonly [string, string]>
}): string => {
  const host = parts.host.includes(":") ? `[${parts.host}]` : encodeURIComponent(parts.host)
  const password = parts.password === undefined ? "" : `:${encodeURIComponent(parts.password)}`
  const query = [...parts.tls, ["application_name", parts.applicationName]]
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
    .join("&")
  return (
    `postgres://${encodeURIComponent(parts.user)}${password}@${host}:${parts.port}/` +
    `${encodeURIComponent(parts.database)}?${query}`
  )
}

// ---------------------------------------------------------------------------
// resolution
// ---------------------------------------------------------------------------

/**
 * Everything `make` accepts, typed loosely: values read from the environment are strings, and callers from plain
 * JavaScript can pass anything.
 *
 * @internal
 */
export type RawInput = { readonly [K in Exclude<keyof PoolConfigInput, "reconnect">]?: unknown } & {
  readonly reconnect?: { readonly [K in keyof PoolConfig["reconnect"]]?: unknown } | undefined
  /** The `PGSSL*` variables (internal/tls.ts), which fill in what the URL does not set. */
  readonly sslEnv?: ReadonlyMap<string, string> | undefined
} & { readonly [K in (typeof ALIASES)[number][1]]?: unknown }

/**
 * `PgClient.layer`'s names for settings of ours, accepted so that its options carry over unchanged. Giving both
 * names of a pair with different values is an error: which one wins would be a guess.
 */
const ALIASES = [
  ["user", "username"],
  ["maxSize", "maxConnections"],
  ["minSize", "minConnections"],
  ["maxIdleTime", "idleTimeout"],
  ["maxLifetime", "connectionTTL"]
] as const

/**
 * What the user wrote for a setting, when it is not the option's own name: a `Config` key (`PG_MAX`), keyed by
 * the option it was given for (`maxConnections`, or `reconnect.maxDelay` for a nested one).
 *
 * @internal
 */
export type WrittenNames = { readonly [option: string]: string | undefined }

class Issues {
  readonly list: Array<ConfigIssue> = []
  private readonly invalid = new Set<string>()
  readonly names: { -readonly [K in Setting]: string }

  constructor(source: "input" | "env", written: WrittenNames) {
    this.names = { ...(source === "env" ? SETTING_ENV : SETTING_OPTION) }
    for (const setting of Object.keys(this.names) as Array<Setting>) {
      const name = written[setting]
      if (name !== undefined) this.names[setting] = name
    }
  }

  /**
   * The name a message gives `setting`: what the user wrote for it, or the option or variable it stands for (a
   * field outside the table, such as a URL's part, is named as given).
   */
  nameOf(setting: string): string {
    return Object.hasOwn(this.names, setting) ? this.names[setting as Setting] : setting
  }

  report(field: string, env: string, value: string, message: string, setting: string = field): void {
    this.list.push({ field, env, setting: this.nameOf(setting), value, message })
    this.invalid.add(field)
  }

  valid(...fields: ReadonlyArray<string>): boolean {
    return fields.every((field) => !this.invalid.has(field))
  }

  // On failure the fallback stands in so resolution can go on and find the other problems; it is never returned
  // to the caller because any issue fails the whole configuration.
  read<A>(field: string, env: string, raw: unknown, fallback: A, parse: Parse<A>): A {
    if (raw === undefined) return fallback
    const result = parse(raw)
    if (Either.isRight(result)) return result.right
    const shown = show(raw)
    this.report(field, env, shown, `${this.nameOf(field)} (${shown}) ${result.left}`)
    return fallback
  }
}

// Two values mean the same when they read as the same number, duration or text: `idleTimeout: "60s"` and
// `maxIdleTime: Duration.minutes(1)` agree.
const sameValue = (a: unknown, b: unknown): boolean => {
  const millisA = durationMillis(a)
  const millisB = durationMillis(b)
  if (millisA !== undefined || millisB !== undefined) return millisA === millisB
  return show(a) === show(b)
}

/** Folds each alias into its setting, records which name was written, and reports pairs that disagree. */
const applyAliases = (raw: RawInput, written: WrittenNames, issues: Issues): RawInput => {
  const out: Record<string, unknown> = { ...raw }
  for (const [setting, alias] of ALIASES) {
    const value = raw[setting]
    const aliasValue = raw[alias]
    if (aliasValue === undefined) continue
    const aliasName = written[alias] ?? alias
    if (value === undefined) {
      out[setting] = aliasValue
      issues.names[setting] = aliasName
    } else if (!sameValue(value, aliasValue)) {
      const name = issues.nameOf(setting)
      issues.report(
        setting,
        SETTING_ENV[setting],
        `${show(aliasValue)} / ${show(value)}`,
        `${aliasName} (${show(aliasValue)}) and ${name} (${show(value)}) are two names for the same setting ` +
          `and disagree: keep one of them`
      )
    }
  }
  return out as RawInput
}

const secret = (raw: unknown): string | undefined =>
  typeof raw === "string" ? raw : Redacted.isRedacted(raw) ? String(Redacted.value(raw)) : undefined

const connection = (raw: RawInput, source: "input" | "env", issues: Issues) => {
  const urlName = issues.nameOf("url")
  let urlText: string | undefined
  if (raw.url !== undefined) {
    urlText = secret(raw.url)
    if (urlText === undefined) {
      issues.report(
        "url",
        ENV.url,
        "<not a string>",
        `${urlName} must be a string or a Redacted string: ${EXAMPLE_URL}`
      )
    }
  }
  let parsed: ParsedUrl | undefined
  const shown = urlText === undefined ? "" : redactUrl(urlText)
  if (urlText !== undefined) {
    const result = parseUrl(urlText)
    if (Either.isLeft(result)) {
      for (const { field, problem } of result.left) {
        issues.report(field, ENV.url, shown, `${urlName} (${shown}) ${problem}`, "url")
      }
    } else {
      parsed = result.right
    }
  }
  const given = [raw.host, raw.port, raw.user, raw.password, raw.database].some((v) => v !== undefined)
  if (raw.url === undefined && !given) {
    issues.report(
      "url",
      ENV.url,
      "",
      source === "env"
        ? `${ENV.url} is not set: set it to the database's URL, e.g. ${ENV.url}=${EXAMPLE_URL} ` +
            `(or set PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE)`
        : `no connection is configured: pass url, e.g. ${EXAMPLE_URL}, or host, port, user, password and database`
    )
  }

  // Explicit fields win over the URL's parts; empty strings count as not given.
  const host =
    issues.read<string | undefined>("host", ENV.host, raw.host, undefined, hostInput) || parsed?.host || defaults.host
  const portNumber =
    issues.read<number | undefined>("port", ENV.port, raw.port, undefined, port) ?? parsed?.port ?? defaults.port
  const user =
    issues.read<string | undefined>("user", ENV.user, raw.user, undefined, text("e.g. postgres")) ||
    parsed?.user ||
    defaults.user
  const database =
    issues.read<string | undefined>("database", ENV.database, raw.database, undefined, text("e.g. mydb")) ||
    parsed?.database ||
    user
  let password: string | undefined
  if (raw.password !== undefined) {
    password = secret(raw.password)
    if (password === undefined) {
      issues.report(
        "password",
        ENV.password,
        "***",
        `${issues.nameOf("password")} must be a string or a Redacted string`
      )
    }
  }
  password = password || parsed?.password || undefined
  const tls = Tls.resolve(
    { option: raw.ssl, url: parsed && { params: parsed.tls, shown, name: issues.nameOf("url") }, env: raw.sslEnv },
    (field, env, value, message) => issues.report(field, env, value, message)
  )
  const applicationName =
    issues.read<string | undefined>(
      "applicationName",
      ENV.applicationName,
      raw.applicationName,
      undefined,
      text("e.g. my-service")
    ) ??
    parsed?.applicationName ??
    defaults.applicationName
  return {
    host,
    port: portNumber,
    user,
    database,
    password,
    ssl: tls.ssl,
    sslmode: tls.sslmode,
    applicationName,
    url: buildUrl({ host, port: portNumber, user, password, database, applicationName, tls: tls.params })
  }
}

type PositiveField =
  | "acquireTimeout"
  | "connectTimeout"
  | "validationTimeout"
  | "maxLifetime"
  | "maxIdleTime"
  | "cancelTimeout"

type NonNegativeField = "validateAfterIdle" | "leakDetectionThreshold" | "shutdownTimeout"

/**
 * `written` names the settings given under another name than their option's (a `Config` key); `source` says how
 * the others are named in messages: by option in code, by environment variable from the environment.
 *
 * @internal
 */
export const resolve = (
  input: RawInput,
  source: "input" | "env",
  written: WrittenNames = {}
): Either.Either<PoolConfig, PoolConfigError> => {
  const issues = new Issues(source, written)
  const raw = applyAliases(input, written, issues)
  const n = (setting: Setting) => issues.nameOf(setting)
  const conn = connection(raw, source, issues)
  const d = defaults
  const maxSize = issues.read(
    "maxSize",
    ENV.maxSize,
    raw.maxSize,
    d.maxSize,
    integer(1, MAX_POOL_SIZE, `e.g. 10; ${SIZE_FIX}`)
  )
  // A default never conflicts with a setting the user made: the default minimum is capped at the maximum. With
  // the maximum given as `PgClient.layer`'s `maxConnections` and no minimum, the minimum is that layer's: 0.
  const defaultMinSize = input.maxSize === undefined && input.maxConnections !== undefined ? 0 : d.minSize
  const minSize = issues.read(
    "minSize",
    ENV.minSize,
    raw.minSize,
    Math.min(defaultMinSize, maxSize),
    integer(0, MAX_POOL_SIZE, "e.g. 2")
  )
  // A default taking part in a conflict is labelled as such: the user never wrote it and may not know it exists.
  const shownOr = (value: unknown, fallback: string) => (value === undefined ? `${fallback}, the default` : show(value))
  if (issues.valid("minSize", "maxSize") && minSize > maxSize) {
    issues.report(
      "minSize",
      ENV.minSize,
      show(raw.minSize),
      `${n("minSize")} (${show(raw.minSize)}) must be ≤ ${n("maxSize")} ` +
        `(${shownOr(raw.maxSize, String(d.maxSize))}): lower ${n("minSize")} or raise ${n("maxSize")}`
    )
  }
  const positive = (field: PositiveField, fallback: Duration.Duration, fix: string) =>
    issues.read(field, ENV[field], raw[field], fallback, duration("> 0", fix))
  const optionalPositive = (field: "queryTimeout" | "statementTimeout", what: string) =>
    issues.read<Duration.Duration | undefined>(
      field,
      ENV[field],
      raw[field],
      undefined,
      duration("> 0", `set ${what} such as 30s, or leave ${n(field)} unset for none`)
    )
  const nonNegative = (field: NonNegativeField, fallback: Duration.Duration, zero: string, example: string) =>
    issues.read(
      field,
      ENV[field],
      raw[field],
      fallback,
      duration("≥ 0", `use 0 ${zero}, or a duration such as ${example}`)
    )

  const reconnectRaw = raw.reconnect ?? {}
  const r = d.reconnect
  const initialDelay = issues.read(
    "reconnect.initialDelay",
    ENV.initialDelay,
    reconnectRaw.initialDelay,
    r.initialDelay,
    duration("> 0", "set the delay before the first retry, e.g. 1s")
  )
  const maxDelay = issues.read(
    "reconnect.maxDelay",
    ENV.maxDelay,
    reconnectRaw.maxDelay,
    r.maxDelay,
    duration("> 0", "set the longest delay between retries, e.g. 16s")
  )
  if (issues.valid("reconnect.initialDelay", "reconnect.maxDelay") && Duration.lessThan(maxDelay, initialDelay)) {
    const max = shownOr(reconnectRaw.maxDelay, Duration.format(r.maxDelay))
    issues.report(
      "reconnect.maxDelay",
      ENV.maxDelay,
      reconnectRaw.maxDelay === undefined ? Duration.format(r.maxDelay) : show(reconnectRaw.maxDelay),
      `${n("reconnect.maxDelay")} (${max}) must be ≥ ${n("reconnect.initialDelay")} ` +
        `(${shownOr(reconnectRaw.initialDelay, Duration.format(r.initialDelay))}): ` +
        `raise ${n("reconnect.maxDelay")} or lower ${n("reconnect.initialDelay")}`
    )
  }

  const config: PoolConfig = {
    name: issues.read("name", ENV.name, raw.name, d.name, name),
    url: Redacted.make(conn.url),
    host: conn.host,
    port: conn.port,
    database: conn.database,
    user: conn.user,
    password: conn.password === undefined ? undefined : Redacted.make(conn.password),
    ssl: conn.ssl,
    sslmode: conn.sslmode,
    minSize,
    maxSize,
    acquireTimeout: positive(
      "acquireTimeout",
      d.acquireTimeout,
      "set how long a caller may wait for a connection, e.g. 30s"
    ),
    connectTimeout: positive(
      "connectTimeout",
      d.connectTimeout,
      "set how long one connection attempt may take, e.g. 5s"
    ),
    validateAfterIdle: nonNegative("validateAfterIdle", d.validateAfterIdle, "to validate on every acquisition", "1s"),
    validationTimeout: positive(
      "validationTimeout",
      d.validationTimeout,
      "set how long the validation round trip may take, e.g. 2s"
    ),
    maxLifetime: positive(
      "maxLifetime",
      d.maxLifetime,
      "set how long a connection may live before it is replaced, e.g. 1h"
    ),
    maxIdleTime: positive(
      "maxIdleTime",
      d.maxIdleTime,
      `set how long a connection above ${n("minSize")} may stay idle before it is closed, e.g. 60s`
    ),
    maxQueries: issues.read(
      "maxQueries",
      ENV.maxQueries,
      raw.maxQueries,
      d.maxQueries,
      integer(1, undefined, "e.g. 50000")
    ),
    leakDetectionThreshold: nonNegative(
      "leakDetectionThreshold",
      d.leakDetectionThreshold,
      "to disable leak detection",
      "30s"
    ),
    shutdownTimeout: nonNegative(
      "shutdownTimeout",
      d.shutdownTimeout,
      "to stop checked-out connections at once on shutdown",
      "30s"
    ),
    cancelTimeout: positive(
      "cancelTimeout",
      d.cancelTimeout,
      "set how long an interrupted query may take to stop, e.g. 5s"
    ),
    queryTimeout: optionalPositive("queryTimeout", "a client-side limit per query"),
    keepAlive: issues.read("keepAlive", ENV.keepAlive, raw.keepAlive, d.keepAlive, boolean),
    reset: issues.read("reset", ENV.reset, raw.reset, d.reset, reset),
    reconnect: {
      initialDelay,
      factor: issues.read("reconnect.factor", ENV.factor, reconnectRaw.factor, r.factor, factor),
      maxDelay,
      initialAttempts: issues.read(
        "reconnect.initialAttempts",
        ENV.initialAttempts,
        reconnectRaw.initialAttempts,
        r.initialAttempts,
        integer(1, undefined, "set how many attempts startup makes before it fails, e.g. 5")
      ),
      jitter: issues.read("reconnect.jitter", ENV.jitter, reconnectRaw.jitter, r.jitter, boolean)
    },
    init: issues.read("init", ENV.init, raw.init, d.init, init),
    statementTimeout: optionalPositive("statementTimeout", "a server-side limit per statement"),
    applicationName: conn.applicationName,
    logFile: logFileOf(issues, raw.logFile),
    logLevel: issues.read<LogLevel.LogLevel | undefined>("logLevel", ENV.logLevel, raw.logLevel, undefined, logLevel),
    settingNames: issues.names
  }
  return issues.list.length === 0 ? Either.right(config) : Either.left(new PoolConfigError({ issues: issues.list }))
}

const logFileOf = (issues: Issues, raw: unknown): string | undefined =>
  issues.read<string | undefined>("logFile", ENV.logFile, raw, undefined, text("give a file path")) || undefined

/** @internal */
export const make = (input: PoolConfigInput): Effect.Effect<PoolConfig, PoolConfigError> =>
  Effect.suspend(() => resolve(input, "input"))

/**
 * `Db`'s options: `PgClient.layer`'s names included, `written` naming the settings given through `Config` keys.
 *
 * @internal
 */
export const fromOptions = (input: RawInput, written: WrittenNames = {}): Effect.Effect<PoolConfig, PoolConfigError> =>
  Effect.suspend(() => resolve(input, "input", written))

const ENV_NAMES = [...Object.values(ENV), ...Tls.ENV_NAMES]

const providerFailed = (error: unknown) =>
  new PoolConfigError({
    issues: [
      {
        field: "env",
        env: "",
        setting: "",
        value: "",
        message: `The configuration provider failed while reading the pool's settings: ${String(error)}`
      }
    ]
  })

const readEnv = Config.all(
  Object.fromEntries(ENV_NAMES.map((key) => [key, Config.option(Config.string(key))] as const))
).pipe(
  Effect.map((values) => {
    const env = new Map<string, string>()
    for (const [key, value] of Object.entries(values)) {
      // Deployment tools often define variables as empty; an empty value means "not set", not "invalid".
      if (Option.isSome(value) && value.value.trim() !== "") env.set(key, value.value)
    }
    return env
  }),
  Effect.mapError(providerFailed)
)

const resolveEnv = (env: ReadonlyMap<string, string>): Either.Either<PoolConfig, PoolConfigError> => {
  const url = env.get(ENV.url)
  // The libpq variables are a fallback for a missing DATABASE_URL; mixing both sources would hide which one won.
  const libpq = (key: string) => (url === undefined ? env.get(key) : undefined)
  return resolve(
    {
      url,
      host: libpq(ENV.host),
      port: libpq(ENV.port),
      user: libpq(ENV.user),
      password: libpq(ENV.password),
      database: libpq(ENV.database),
      // libpq's rule for these: the URL's parameter wins, the variable fills in, with or without DATABASE_URL
      sslEnv: env,
      name: env.get(ENV.name),
      minSize: env.get(ENV.minSize),
      maxSize: env.get(ENV.maxSize),
      acquireTimeout: env.get(ENV.acquireTimeout),
      connectTimeout: env.get(ENV.connectTimeout),
      validateAfterIdle: env.get(ENV.validateAfterIdle),
      validationTimeout: env.get(ENV.validationTimeout),
      maxLifetime: env.get(ENV.maxLifetime),
      maxIdleTime: env.get(ENV.maxIdleTime),
      maxQueries: env.get(ENV.maxQueries),
      leakDetectionThreshold: env.get(ENV.leakDetectionThreshold),
      shutdownTimeout: env.get(ENV.shutdownTimeout),
      cancelTimeout: env.get(ENV.cancelTimeout),
      queryTimeout: env.get(ENV.queryTimeout),
      keepAlive: env.get(ENV.keepAlive),
      reset: env.get(ENV.reset),
      reconnect: {
        initialDelay: env.get(ENV.initialDelay),
        factor: env.get(ENV.factor),
        maxDelay: env.get(ENV.maxDelay),
        initialAttempts: env.get(ENV.initialAttempts),
        jitter: env.get(ENV.jitter)
      },
      init: env.get(ENV.init),
      statementTimeout: env.get(ENV.statementTimeout),
      applicationName: env.get(ENV.applicationName),
      logFile: env.get(ENV.logFile),
      logLevel: env.get(ENV.logLevel)
    },
    "env"
  )
}

// ---------------------------------------------------------------------------
// unknown variables
// ---------------------------------------------------------------------------

/**
 * A `DB_POOL_*` variable the pool does not know (a typo such as `DB_POOL_MAXSIZE`), and the known one it is
 * closest to.
 *
 * @internal
 */
export interface UnknownVariable {
  readonly name: string
  readonly closest: string
}

const PREFIX = "DB_POOL_"
const KNOWN: ReadonlySet<string> = new Set(ENV_NAMES)
const KNOWN_POOL = ENV_NAMES.filter((name) => name.startsWith(PREFIX))

const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

const closestKnown = (name: string): string => {
  let best = KNOWN_POOL[0]!
  let bestDistance = Number.POSITIVE_INFINITY
  for (const known of KNOWN_POOL) {
    const distance = editDistance(name, known)
    if (distance < bestDistance) {
      best = known
      bestDistance = distance
    }
  }
  return best
}

// Bounds on the walk below, so that a provider with a huge or cyclic tree costs little.
const MAX_DEPTH = 8
const MAX_NODES = 1_000

/**
 * The `DB_POOL_*` variables the provider holds that are not settings. Providers only list the children of a path,
 * one delimiter-separated segment at a time (`_` for the environment, `.` for `fromMap`), so the walk descends
 * from the root through the paths that can still spell `DB_POOL_…`, joining segments with `_`.
 */
const unknownVariables: Effect.Effect<ReadonlyArray<UnknownVariable>> = Effect.gen(function* () {
  const provider = yield* Effect.configProviderWith((provider: ConfigProvider.ConfigProvider) =>
    Effect.succeed(provider)
  )
  const found = new Set<string>()
  let visited = 0
  const walk = (path: ReadonlyArray<string>): Effect.Effect<void> =>
    Effect.gen(function* () {
      if (path.length >= MAX_DEPTH || visited >= MAX_NODES) return
      const children = yield* Effect.orElseSucceed(provider.flattened.enumerateChildren(path), () => [])
      for (const child of children) {
        if (++visited > MAX_NODES) return
        const next = [...path, child]
        const name = next.join("_").toUpperCase()
        if (name.startsWith(PREFIX)) {
          const grandchildren = yield* Effect.orElseSucceed(provider.flattened.enumerateChildren(next), () => [])
          // a leaf is a variable; an inner node (DB_POOL_MAX of DB_POOL_MAX_SIZE) is one only if it has a value
          const isVariable =
            [...grandchildren].length === 0 ||
            Option.isSome(yield* Effect.orElseSucceed(provider.load(Config.option(Config.string(name))), Option.none))
          if (isVariable && !KNOWN.has(name)) found.add(name)
          yield* walk(next)
        } else if (PREFIX.startsWith(`${name}_`)) {
          yield* walk(next)
        }
      }
    })
  yield* walk([])
  return [...found].sort().map((name) => ({ name, closest: closestKnown(name) }))
})

/** @internal */
export const unknownVariableMessage = (unknown: UnknownVariable): string =>
  `${unknown.name} is not a setting of the pool and is ignored: did you mean ${unknown.closest}?`

/**
 * The configuration from the environment, and the `DB_POOL_*` variables it ignored. When the configuration is
 * invalid anyway, those are reported with its issues: a typo is the likeliest cause of a setting that seems lost.
 *
 * @internal
 */
export const fromEnvChecked: Effect.Effect<
  { readonly config: PoolConfig; readonly unknown: ReadonlyArray<UnknownVariable> },
  PoolConfigError
> = Effect.gen(function* () {
  const env = yield* readEnv
  const unknown = yield* unknownVariables
  const result = resolveEnv(env)
  if (Either.isRight(result)) return { config: result.right, unknown }
  return yield* new PoolConfigError({
    issues: [
      ...result.left.issues,
      ...unknown.map((u) => ({
        field: "env",
        env: u.name,
        setting: u.name,
        value: "",
        message: unknownVariableMessage(u)
      }))
    ]
  })
})

/** @internal */
export const fromEnv: Effect.Effect<PoolConfig, PoolConfigError> = Effect.map(fromEnvChecked, ({ config }) => config)

/**
 * What `PoolLogger.layerFromEnv` reads: `DB_POOL_LOG_FILE` and `DB_POOL_LOG_LEVEL`, validated as `fromEnv`
 * validates them (the same rules, the same messages), and the passwords to redact.
 *
 * @internal
 */
export const loggingFromEnv: Effect.Effect<
  {
    readonly logFile: string | undefined
    readonly logLevel: LogLevel.LogLevel | undefined
    readonly url: string | undefined
    readonly password: string | undefined
  },
  PoolConfigError
> = Effect.flatMap(readEnv, (env) => {
  const issues = new Issues("env", {})
  const logFile = logFileOf(issues, env.get(ENV.logFile))
  const level = issues.read<LogLevel.LogLevel | undefined>(
    "logLevel",
    ENV.logLevel,
    env.get(ENV.logLevel),
    undefined,
    logLevel
  )
  if (issues.list.length > 0) return new PoolConfigError({ issues: issues.list })
  return Effect.succeed({ logFile, logLevel: level, url: env.get(ENV.url), password: env.get(ENV.password) })
})

// ---------------------------------------------------------------------------
// Config keys
// ---------------------------------------------------------------------------

// Reads the key a `Config` is read under (`Config.integer("PG_MAX")` → "PG_MAX", nested paths joined with "." as
// Effect's own messages show them) from its structure, through mappings, descriptions and fallbacks. The node
// shapes are Effect's internal `_tag`s: a shape this does not know yields no key, and the option's name is used
// instead.
const configKey = (config: unknown, depth = 0): string | undefined => {
  if (!Config.isConfig(config) || depth > 32) return undefined
  const node = config as unknown as {
    readonly _tag: string
    readonly name?: string
    readonly config?: unknown
    readonly original?: unknown
    readonly first?: unknown
    readonly second?: unknown
  }
  switch (node._tag) {
    case "Nested": {
      const inner = configKey(node.config, depth + 1)
      return inner === undefined ? node.name : `${node.name}.${inner}`
    }
    case "Described":
      return configKey(node.config, depth + 1)
    case "MapOrFail":
      return configKey(node.original, depth + 1)
    case "Fallback":
      return configKey(node.first, depth + 1) ?? configKey(node.second, depth + 1)
    default:
      return undefined
  }
}

/**
 * The `Config` keys of the options given as `Config`s, keyed by option (`reconnect.maxDelay` for a nested one).
 *
 * @internal
 */
export const configKeys = (options: unknown): WrittenNames => {
  const out: Record<string, string> = {}
  const visit = (value: unknown, prefix: string) => {
    if (typeof value !== "object" || value === null || Config.isConfig(value)) return
    for (const [key, field] of Object.entries(value)) {
      const found = configKey(field)
      if (found !== undefined) out[prefix + key] = found
      else if (prefix === "" && key === "reconnect") visit(field, "reconnect.")
    }
  }
  visit(options, "")
  return out
}
