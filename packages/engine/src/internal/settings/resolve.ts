/**
 * Resolution: an options object in, a resolved configuration or every issue out. Each
 * issue names the setting as the user wrote it, shows the offending value (a URL with its password masked, a
 * password never), says what is allowed and what to do.
 *
 * @internal
 */
import { defaults } from "./defaults.js"
import { envOf, type Setting } from "./env.js"
import { Issues, logFileOf, nonEmpty } from "./issues.js"
import {
  ALIASES,
  type Input,
  type Options,
  type Replicas,
  type Result,
  type Settings,
  type TlsParams,
  type TlsResolver,
  type WrittenNames
} from "./model.js"
import { passTls } from "./tls.js"
import {
  type Host,
  hostList,
  hostPortList,
  REPLICA_TARGET_FIX,
  replicaTargetValues,
  LOAD_BALANCE_FIX,
  loadBalanceHostsValues,
  mismatch,
  pair,
  portList,
  showList,
  TARGET_FIX,
  targetSessionAttrsValues
} from "./hosts.js"
import { redactUrl } from "./redact.js"
import { buildUrl, EXAMPLE_URL, type ParsedUrl, parseUrl } from "./url.js"
import {
  boolean,
  duration,
  durationMillis,
  factor,
  formatMillis,
  integer,
  type LogLevel,
  logLevel,
  MAX_POOL_SIZE,
  name,
  oneOf,
  SIZE_FIX,
  secretText,
  text
} from "./values.js"

/** Folds each alias into its setting, records which name was written, and reports pairs that disagree. */
const applyAliases = (raw: Input, written: WrittenNames, issues: Issues): Input => {
  // Two values mean the same when they read as the same number, duration or text: `idleTimeout: "60s"` and
  // `maxIdleTime: Duration.minutes(1)` agree.
  const sameValue = (a: unknown, b: unknown): boolean => {
    const millisA = durationMillis(a, issues.runtime)
    const millisB = durationMillis(b, issues.runtime)
    if (millisA !== undefined || millisB !== undefined) return millisA === millisB
    return issues.show(a) === issues.show(b)
  }
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
      const [a, b] = [issues.show(aliasValue), issues.show(value)]
      issues.report(
        setting,
        envOf[setting],
        `${a} / ${b}`,
        `${aliasName} (${a}) and ${name} (${b}) are two names for the same setting and disagree: keep one of them`
      )
    }
  }
  return out as Input
}

/** Reads the host and port lists (options win over the URL) and pairs them. */
const hostsOf = (raw: Input, parsed: ParsedUrl | undefined, urlLabel: string, issues: Issues): ReadonlyArray<Host> => {
  const hostGiven = raw.host === undefined || raw.host === "" ? undefined : raw.host
  const optionHosts = issues.read<ReadonlyArray<string> | undefined>("host", hostGiven, undefined, hostList)
  const optionPorts = issues.read<ReadonlyArray<number | undefined> | undefined>("port", raw.port, undefined, portList)
  if (!issues.valid("host", "port")) return defaults.hosts
  const hosts = optionHosts ?? parsed?.hosts ?? [defaults.host]
  const ports = optionPorts ?? parsed?.ports ?? [undefined]
  const paired = pair(hosts, ports)
  if (paired.ok) return paired.hosts
  const label = (option: unknown, list: ReadonlyArray<string | number | undefined>, setting: Setting) =>
    option === undefined ? urlLabel : `${issues.nameOf(setting)} (${showList(list)})`
  const hostLabel = label(optionHosts, hosts, "host")
  const portLabel = label(optionPorts, ports, "port")
  issues.report(
    "port",
    envOf.port,
    showList(ports),
    `${portLabel} ${mismatch(ports.length, hosts.length, hostLabel === portLabel ? undefined : hostLabel)}`,
    optionPorts === undefined ? "url" : "port"
  )
  return defaults.hosts
}

type PositiveField =
  | "acquireTimeout"
  | "connectTimeout"
  | "validationTimeout"
  | "maxLifetime"
  | "maxIdleTime"
  | "cancelTimeout"

type NonNegativeField = "validateAfterIdle" | "leakDetectionThreshold" | "shutdownTimeout"

const connection = <T>(
  raw: Input,
  source: "input" | "env",
  issues: Issues,
  options: Options<T>,
  env: Map<string, string>
) => {
  const urlName = issues.nameOf("url")
  let urlText: string | undefined
  if (raw.url !== undefined) {
    urlText = secretText(raw.url, issues.runtime)
    if (urlText === undefined) {
      issues.report(
        "url",
        envOf.url,
        "<not a string>",
        `${urlName} must be a string or a Redacted string: ${EXAMPLE_URL}`
      )
    }
  }
  let parsed: ParsedUrl | undefined
  const shown = urlText === undefined ? "" : redactUrl(urlText)
  if (urlText !== undefined) {
    const result = parseUrl(urlText)
    if (!result.ok) {
      for (const { field, problem } of result.problems) {
        issues.report(field, envOf.url, shown, `${urlName} (${shown}) ${problem}`, "url")
      }
    } else {
      parsed = result.url
    }
  }
  const given = [raw.host, raw.port, raw.user, raw.password, raw.database].some((v) => v !== undefined)
  if (raw.url === undefined && !given) {
    issues.report(
      "url",
      envOf.url,
      "",
      source === "env"
        ? `${envOf.url} is not set: set it to the database's URL, e.g. ${envOf.url}=${EXAMPLE_URL} ` +
            `(or set PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE)`
        : `no connection is configured: pass url, e.g. ${EXAMPLE_URL}, or host, port, user, password and database`
    )
  }

  // Explicit fields win over the URL's parts; empty strings count as not given.
  const hosts = hostsOf(raw, parsed, `${urlName} (${shown})`, issues)
  const user =
    issues.read<string | undefined>("user", raw.user, undefined, text("e.g. postgres")) || parsed?.user || defaults.user
  const database =
    issues.read<string | undefined>("database", raw.database, undefined, text("e.g. mydb")) || parsed?.database || user
  let password: string | undefined
  if (raw.password !== undefined) {
    password = secretText(raw.password, issues.runtime)
    if (password === undefined) {
      issues.report(
        "password",
        envOf.password,
        "***",
        `${issues.nameOf("password")} must be a string or a Redacted string`
      )
    }
  }
  password = password || parsed?.password || undefined
  const resolveTls = (options.tls ?? passTls) as TlsResolver<T>
  const tls = resolveTls(
    { option: raw.ssl, url: parsed && { params: parsed.tls, shown, name: urlName }, env },
    (field, env, value, message) => issues.report(field, env, value, message)
  )
  // libpq's rule: the option, else the URL's parameter, else the variable fills in
  const fromUrlOrEnv = <A extends string>(
    field: "targetSessionAttrs" | "loadBalanceHosts",
    param: string,
    urlValue: string | undefined,
    values: ReadonlyArray<A>,
    fix: string,
    fallback: A
  ): A => {
    if (raw[field] !== undefined) return issues.read(field, raw[field], fallback, oneOf(values, fix))
    const variable = env.get(envOf[field])
    const [value, label, envName] =
      urlValue !== undefined
        ? [urlValue, `${urlName} (${shown}) ${param} (${urlValue})`, envOf.url]
        : variable !== undefined
          ? [variable, `${envOf[field]} (${variable})`, envOf[field]]
          : [undefined, "", ""]
    if (value === undefined) return fallback
    const result = oneOf(values, fix)(value, issues.runtime)
    if (result.ok) return result.value
    issues.report(field, envName, value, `${label} ${result.problem}`, urlValue !== undefined ? "url" : field)
    return fallback
  }
  const targetSessionAttrs = fromUrlOrEnv(
    "targetSessionAttrs",
    "target_session_attrs",
    parsed?.targetSessionAttrs,
    targetSessionAttrsValues,
    TARGET_FIX,
    defaults.targetSessionAttrs
  )
  const loadBalanceHosts = fromUrlOrEnv(
    "loadBalanceHosts",
    "load_balance_hosts",
    parsed?.loadBalanceHosts,
    loadBalanceHostsValues,
    LOAD_BALANCE_FIX,
    defaults.loadBalanceHosts
  )
  const applicationName =
    issues.read<string | undefined>("applicationName", raw.applicationName, undefined, text("e.g. my-service")) ??
    parsed?.applicationName ??
    defaults.applicationName
  const params: Array<readonly [string, string]> = [...tls.params, ["application_name", applicationName]]
  if (targetSessionAttrs !== defaults.targetSessionAttrs) params.push(["target_session_attrs", targetSessionAttrs])
  if (loadBalanceHosts !== defaults.loadBalanceHosts) params.push(["load_balance_hosts", loadBalanceHosts])
  return {
    hosts,
    targetSessionAttrs,
    loadBalanceHosts,
    user,
    database,
    password,
    sslmode: tls.sslmode,
    tls: tls.tls,
    applicationName,
    url: buildUrl({ hosts, user, password, database, params })
  }
}

const REPLICA_SIZES = ["replicaTargetSessionAttrs", "replicaMinSize", "replicaMaxSize"] as const

/**
 * The read-only pool: on with `replicas`, or with `replicaHosts` given; its sizes default to the primary's. A replica
 * setting that cannot take effect (replicas off) is an issue, not ignored.
 */
const replicasOf = (
  raw: Input,
  issues: Issues,
  primary: {
    readonly name: string
    readonly hosts: ReadonlyArray<Host>
    readonly minSize: number
    readonly maxSize: number
  }
): Replicas | undefined => {
  const n = (setting: Setting) => issues.nameOf(setting)
  const given = (value: unknown) => value !== undefined && value !== ""
  const enabled = issues.read<boolean | undefined>("replicas", raw.replicas, undefined, boolean)
  const hosts = given(raw.replicaHosts)
    ? issues.read<ReadonlyArray<Host> | undefined>(
        "replicaHosts",
        raw.replicaHosts,
        undefined,
        hostPortList(primary.hosts[0]!.port)
      )
    : undefined
  const on = enabled ?? given(raw.replicaHosts)
  if (!on) {
    const stray = [
      ...(given(raw.replicaHosts) ? ["replicaHosts" as const] : []),
      ...REPLICA_SIZES.filter((s) => given(raw[s]))
    ]
    for (const setting of stray) {
      issues.report(
        setting,
        envOf[setting],
        issues.show(raw[setting]),
        `${n(setting)} (${issues.show(raw[setting])}) is set but the read replicas are off ` +
          `(${n("replicas")}${enabled === false ? " is false" : " is not set"}): set ${n("replicas")} to true, ` +
          `or remove ${n(setting)}`
      )
    }
    return undefined
  }
  const maxSize = issues.read(
    "replicaMaxSize",
    raw.replicaMaxSize,
    primary.maxSize,
    integer(1, MAX_POOL_SIZE, `e.g. 10; ${SIZE_FIX}`)
  )
  const minSize = issues.read(
    "replicaMinSize",
    raw.replicaMinSize,
    Math.min(primary.minSize, maxSize),
    integer(0, MAX_POOL_SIZE, "e.g. 2")
  )
  if (issues.valid("replicaMinSize", "replicaMaxSize") && minSize > maxSize) {
    issues.report(
      "replicaMinSize",
      envOf.replicaMinSize,
      issues.show(raw.replicaMinSize),
      `${n("replicaMinSize")} (${issues.show(raw.replicaMinSize)}) must be ≤ ${n("replicaMaxSize")} ` +
        `(${raw.replicaMaxSize === undefined ? `${maxSize}, the primary's maxSize` : issues.show(raw.replicaMaxSize)}): ` +
        `lower ${n("replicaMinSize")} or raise ${n("replicaMaxSize")}`
    )
  }
  return {
    name: `${primary.name}-replicas`,
    hosts: hosts ?? primary.hosts,
    targetSessionAttrs: issues.read(
      "replicaTargetSessionAttrs",
      raw.replicaTargetSessionAttrs,
      "prefer-standby",
      oneOf(replicaTargetValues, REPLICA_TARGET_FIX)
    ),
    minSize,
    maxSize
  }
}

/** @internal */
export const resolve = <T = TlsParams>(input: Input, options: Options<T> = {}): Result<T> => {
  const source = options.source ?? "input"
  const written = options.written ?? {}
  const issues = new Issues(source, written, options.runtime ?? {})
  const env = nonEmpty(options.env)
  const raw = applyAliases(input, written, issues)
  const n = (setting: Setting) => issues.nameOf(setting)
  const conn = connection(raw, source, issues, options, env)
  const d = defaults
  const maxSize = issues.read(
    "maxSize",
    raw.maxSize,
    d.maxSize as number,
    integer(1, MAX_POOL_SIZE, `e.g. 10; ${SIZE_FIX}`)
  )
  // A default never conflicts with a setting the user made: the default minimum is capped at the maximum. With
  // the maximum given as `PgClient.layer`'s `maxConnections` and no minimum, the minimum is that layer's: 0.
  const defaultMinSize = input.maxSize === undefined && input.maxConnections !== undefined ? 0 : d.minSize
  const minSize = issues.read(
    "minSize",
    raw.minSize,
    Math.min(defaultMinSize, maxSize),
    integer(0, MAX_POOL_SIZE, "e.g. 2")
  )
  // A default taking part in a conflict is labelled as such: the user never wrote it and may not know it exists.
  const shownOr = (value: unknown, fallback: string) =>
    value === undefined ? `${fallback}, the default` : issues.show(value)
  if (issues.valid("minSize", "maxSize") && minSize > maxSize) {
    issues.report(
      "minSize",
      envOf.minSize,
      issues.show(raw.minSize),
      `${n("minSize")} (${issues.show(raw.minSize)}) must be ≤ ${n("maxSize")} ` +
        `(${shownOr(raw.maxSize, String(d.maxSize))}): lower ${n("minSize")} or raise ${n("maxSize")}`
    )
  }
  const positive = (field: PositiveField, fix: string) =>
    issues.read(field, raw[field], d[field] as number, duration("> 0", fix))
  const optionalPositive = (field: "queryTimeout" | "statementTimeout", what: string) =>
    issues.read<number | undefined>(
      field,
      raw[field],
      undefined,
      duration("> 0", `set ${what} such as 30s, or leave ${n(field)} unset for none`)
    )
  const nonNegative = (field: NonNegativeField, zero: string, example: string) =>
    issues.read(
      field,
      raw[field],
      d[field] as number,
      duration("≥ 0", `use 0 ${zero}, or a duration such as ${example}`)
    )

  const reconnectRaw = raw.reconnect ?? {}
  const r = d.reconnect
  const initialDelay = issues.read(
    "reconnect.initialDelay",
    reconnectRaw.initialDelay,
    r.initialDelay as number,
    duration("> 0", "set the delay before the first retry, e.g. 1s")
  )
  const maxDelay = issues.read(
    "reconnect.maxDelay",
    reconnectRaw.maxDelay,
    r.maxDelay as number,
    duration("> 0", "set the longest delay between retries, e.g. 16s")
  )
  if (issues.valid("reconnect.initialDelay", "reconnect.maxDelay") && maxDelay < initialDelay) {
    const max = shownOr(reconnectRaw.maxDelay, formatMillis(r.maxDelay))
    issues.report(
      "reconnect.maxDelay",
      envOf["reconnect.maxDelay"],
      reconnectRaw.maxDelay === undefined ? formatMillis(r.maxDelay) : issues.show(reconnectRaw.maxDelay),
      `${n("reconnect.maxDelay")} (${max}) must be ≥ ${n("reconnect.initialDelay")} ` +
        `(${shownOr(reconnectRaw.initialDelay, formatMillis(r.initialDelay))}): ` +
        `raise ${n("reconnect.maxDelay")} or lower ${n("reconnect.initialDelay")}`
    )
  }

  const poolName = issues.read("name", raw.name, d.name as string, name)
  const settings: Settings<T> = {
    name: poolName,
    url: conn.url,
    hosts: conn.hosts,
    host: conn.hosts[0]!.host,
    port: conn.hosts[0]!.port,
    targetSessionAttrs: conn.targetSessionAttrs,
    loadBalanceHosts: conn.loadBalanceHosts,
    database: conn.database,
    user: conn.user,
    password: conn.password,
    sslmode: conn.sslmode,
    tls: conn.tls,
    minSize,
    maxSize,
    acquireTimeout: positive("acquireTimeout", "set how long a caller may wait for a connection, e.g. 30s"),
    connectTimeout: positive("connectTimeout", "set how long one connection attempt may take, e.g. 5s"),
    validateAfterIdle: nonNegative("validateAfterIdle", "to validate on every acquisition", "1s"),
    validationTimeout: positive("validationTimeout", "set how long the validation round trip may take, e.g. 2s"),
    maxLifetime: positive("maxLifetime", "set how long a connection may live before it is replaced, e.g. 1h"),
    maxIdleTime: positive(
      "maxIdleTime",
      `set how long a connection above ${n("minSize")} may stay idle before it is closed, e.g. 60s`
    ),
    maxQueries: issues.read("maxQueries", raw.maxQueries, d.maxQueries as number, integer(1, undefined, "e.g. 50000")),
    pipeline: issues.read("pipeline", raw.pipeline, d.pipeline as number, integer(0, 1000, "0 (off) or e.g. 16")),
    leakDetectionThreshold: nonNegative("leakDetectionThreshold", "to disable leak detection", "30s"),
    shutdownTimeout: nonNegative("shutdownTimeout", "to stop checked-out connections at once on shutdown", "30s"),
    cancelTimeout: positive("cancelTimeout", "set how long an interrupted query may take to stop, e.g. 5s"),
    queryTimeout: optionalPositive("queryTimeout", "a client-side limit per query"),
    keepAlive: issues.read("keepAlive", raw.keepAlive, d.keepAlive as boolean, boolean),
    reset: issues.read(
      "reset",
      raw.reset,
      d.reset,
      oneOf(
        ["auto", "always"],
        "auto discards session state only after statements that may leave some, always runs DISCARD ALL on every return"
      )
    ),
    reconnect: {
      initialDelay,
      factor: issues.read("reconnect.factor", reconnectRaw.factor, r.factor as number, factor),
      maxDelay,
      initialAttempts: issues.read(
        "reconnect.initialAttempts",
        reconnectRaw.initialAttempts,
        r.initialAttempts as number,
        integer(1, undefined, "set how many attempts startup makes before it fails, e.g. 5")
      ),
      jitter: issues.read("reconnect.jitter", reconnectRaw.jitter, r.jitter as boolean, boolean)
    },
    init: issues.read(
      "init",
      raw.init,
      d.init,
      oneOf(
        ["eager", "lazy"],
        "eager fails startup when the database is unreachable, lazy starts degraded and connects in the background"
      )
    ),
    pooler: issues.read(
      "pooler",
      raw.pooler,
      d.pooler,
      oneOf(
        ["none", "session", "transaction"],
        "say what is between the pool and the server: none, or PgBouncer's pool_mode (session or transaction)"
      )
    ),
    statementTimeout: optionalPositive("statementTimeout", "a server-side limit per statement"),
    applicationName: conn.applicationName,
    logFile: logFileOf(issues, raw.logFile),
    logLevel: issues.read<LogLevel | undefined>("logLevel", raw.logLevel, undefined, logLevel),
    replicas: replicasOf(raw, issues, { name: poolName, hosts: conn.hosts, minSize, maxSize }),
    settingNames: issues.names
  }
  // pg sends statement_timeout as a startup parameter, which PgBouncer refuses ("unsupported startup parameter")
  if (settings.pooler !== "none" && settings.statementTimeout !== undefined && issues.valid("pooler")) {
    issues.report(
      "statementTimeout",
      envOf.statementTimeout,
      issues.show(raw.statementTimeout),
      `${n("statementTimeout")} (${issues.show(raw.statementTimeout)}) cannot be sent through PgBouncer ` +
        `(${n("pooler")}=${settings.pooler}): it refuses the startup parameter. Set it per role on the server ` +
        `(ALTER ROLE … SET statement_timeout = …) and remove ${n("statementTimeout")}`
    )
  }
  // Behind a transaction pooler DISCARD ALL runs on whichever server connection PgBouncer picks, never on the one
  // that holds the state: it cannot do what `always` promises.
  if (settings.pooler === "transaction" && settings.reset === "always" && issues.valid("pooler", "reset")) {
    issues.report(
      "reset",
      envOf.reset,
      issues.show(raw.reset),
      `${n("reset")} (${issues.show(raw.reset)}) cannot be honoured with ${n("pooler")} (transaction): behind a ` +
        "transaction pooler no session state survives a statement, and DISCARD ALL would run on another server " +
        `connection; remove ${n("reset")}, or use PgBouncer in session mode (${n("pooler")}=session)`
    )
  }
  return issues.list.length === 0 ? { ok: true, settings } : { ok: false, issues: issues.list }
}
