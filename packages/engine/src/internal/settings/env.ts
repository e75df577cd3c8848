/**
 * The one table of settings: each setting's option name, its environment variable and what it is. Resolution,
 * messages, the log file's settings, the unknown-variable check and the docs all read it.
 *
 * @internal
 */

/** A setting by its option name; the reconnect schedule's as `reconnect.initialDelay` and so on. @internal */
export type Setting =
  | "name"
  | "url"
  | "host"
  | "port"
  | "database"
  | "user"
  | "password"
  | "ssl"
  | "sslmode"
  | "targetSessionAttrs"
  | "loadBalanceHosts"
  | "minSize"
  | "maxSize"
  | "acquireTimeout"
  | "connectTimeout"
  | "validateAfterIdle"
  | "validationTimeout"
  | "maxLifetime"
  | "maxIdleTime"
  | "maxQueries"
  | "pipeline"
  | "leakDetectionThreshold"
  | "shutdownTimeout"
  | "cancelTimeout"
  | "queryTimeout"
  | "keepAlive"
  | "reset"
  | "reconnect.initialDelay"
  | "reconnect.factor"
  | "reconnect.maxDelay"
  | "reconnect.initialAttempts"
  | "reconnect.jitter"
  | "init"
  | "pooler"
  | "statementTimeout"
  | "applicationName"
  | "logFile"
  | "logLevel"
  | "replicas"
  | "replicaHosts"
  | "replicaTargetSessionAttrs"
  | "replicaMinSize"
  | "replicaMaxSize"

/** One row of the table. @internal */
export interface Entry {
  readonly setting: Setting
  /** The environment variable; libpq's own where libpq has one. */
  readonly env: string
  /** What it is, with its default and its rule. */
  readonly doc: string
}

/** @internal */
export const table: ReadonlyArray<Entry> = [
  { setting: "name", env: "DB_POOL_NAME", doc: 'pool name for logs and metrics; default "default"' },
  {
    setting: "url",
    env: "DATABASE_URL",
    doc: "a postgres:// or postgresql:// URL, libpq's syntax (several hosts too)"
  },
  {
    setting: "host",
    env: "PGHOST",
    doc: 'host name, IP address or Unix socket directory, or a comma list; default "localhost"'
  },
  { setting: "port", env: "PGPORT", doc: "port, one for all hosts or one per host; default 5432" },
  { setting: "database", env: "PGDATABASE", doc: "database name; default the user name" },
  { setting: "user", env: "PGUSER", doc: 'user name; default "postgres"' },
  { setting: "password", env: "PGPASSWORD", doc: "password; default none" },
  { setting: "ssl", env: "PGSSLMODE", doc: "TLS options in code (wins over sslmode)" },
  {
    setting: "sslmode",
    env: "PGSSLMODE",
    doc: "disable, allow, prefer, require, verify-ca or verify-full; default disable"
  },
  {
    setting: "targetSessionAttrs",
    env: "PGTARGETSESSIONATTRS",
    doc: "any, read-write, read-only, primary, standby or prefer-standby (libpq's target_session_attrs); default any"
  },
  {
    setting: "loadBalanceHosts",
    env: "PGLOADBALANCEHOSTS",
    doc: "disable (hosts in order) or random (libpq's load_balance_hosts); default disable"
  },
  { setting: "minSize", env: "DB_POOL_MIN_SIZE", doc: "connections kept open; default 2, ≤ maxSize" },
  { setting: "maxSize", env: "DB_POOL_MAX_SIZE", doc: "most connections open; default 10, from 1 to 10 000" },
  { setting: "acquireTimeout", env: "DB_POOL_ACQUIRE_TIMEOUT", doc: "how long a caller waits; default 30s" },
  {
    setting: "connectTimeout",
    env: "DB_POOL_CONNECT_TIMEOUT",
    doc: "bound on one connection attempt, per host; default 5s"
  },
  {
    setting: "validateAfterIdle",
    env: "DB_POOL_VALIDATE_AFTER_IDLE",
    doc: "idle time before a validation; default 1s"
  },
  { setting: "validationTimeout", env: "DB_POOL_VALIDATION_TIMEOUT", doc: "bound on a validation; default 2s" },
  { setting: "maxLifetime", env: "DB_POOL_MAX_LIFETIME", doc: "a connection's lifetime; default 1h" },
  { setting: "maxIdleTime", env: "DB_POOL_MAX_IDLE_TIME", doc: "idle time above minSize before a close; default 60s" },
  { setting: "maxQueries", env: "DB_POOL_MAX_QUERIES", doc: "queries before a connection is replaced; default 50000" },
  {
    setting: "pipeline",
    env: "DB_POOL_PIPELINE",
    doc: "autocommit statements pipelined per connection (statement slots); 0 = off, the default"
  },
  {
    setting: "leakDetectionThreshold",
    env: "DB_POOL_LEAK_DETECTION_THRESHOLD",
    doc: "hold time reported as a leak, 0 disables; default 30s"
  },
  { setting: "shutdownTimeout", env: "DB_POOL_SHUTDOWN_TIMEOUT", doc: "how long shutdown waits; default 30s" },
  { setting: "cancelTimeout", env: "DB_POOL_CANCEL_TIMEOUT", doc: "how long a cancelled query may take; default 5s" },
  { setting: "queryTimeout", env: "DB_POOL_QUERY_TIMEOUT", doc: "client-side bound per query; default none" },
  { setting: "keepAlive", env: "DB_POOL_KEEPALIVE", doc: "TCP keepalive; default true" },
  { setting: "reset", env: "DB_POOL_RESET", doc: "auto or always (DISCARD ALL on every return); default auto" },
  { setting: "reconnect.initialDelay", env: "DB_POOL_RECONNECT_INITIAL_DELAY", doc: "first retry delay; default 1s" },
  { setting: "reconnect.factor", env: "DB_POOL_RECONNECT_FACTOR", doc: "growth of the delay, > 1; default 2" },
  { setting: "reconnect.maxDelay", env: "DB_POOL_RECONNECT_MAX_DELAY", doc: "cap on the delay; default 16s" },
  {
    setting: "reconnect.initialAttempts",
    env: "DB_POOL_RECONNECT_INITIAL_ATTEMPTS",
    doc: "attempts an eager start makes; default 5"
  },
  { setting: "reconnect.jitter", env: "DB_POOL_RECONNECT_JITTER", doc: "randomise each delay; default false" },
  { setting: "init", env: "DB_POOL_INIT", doc: "eager (fail startup when unreachable) or lazy; default eager" },
  {
    setting: "pooler",
    env: "DB_POOL_POOLER",
    doc: "none, session or transaction: the pool mode of a PgBouncer between pool and server; default none"
  },
  { setting: "statementTimeout", env: "DB_POOL_STATEMENT_TIMEOUT", doc: "server-side statement_timeout; default none" },
  {
    setting: "applicationName",
    env: "DB_POOL_APPLICATION_NAME",
    doc: 'shown in pg_stat_activity; default "effect-pg-pool"'
  },
  { setting: "logFile", env: "DB_POOL_LOG_FILE", doc: "JSON-lines file of the pool's own events; default none" },
  {
    setting: "logLevel",
    env: "DB_POOL_LOG_LEVEL",
    doc: "lowest level of the pool's own events; default the program's"
  },
  {
    setting: "replicas",
    env: "DB_POOL_REPLICAS",
    doc: "a second, read-only pool for reads on standbys (the primary when none is up); default false"
  },
  {
    setting: "replicaHosts",
    env: "DB_POOL_REPLICA_HOSTS",
    doc: "the read-only pool's hosts, host:port comma list; default the primary's hosts; giving it turns replicas on"
  },
  {
    setting: "replicaTargetSessionAttrs",
    env: "DB_POOL_REPLICA_TARGET_SESSION_ATTRS",
    doc: "prefer-standby, standby, read-only or any: where the read-only pool connects; default prefer-standby"
  },
  {
    setting: "replicaMinSize",
    env: "DB_POOL_REPLICA_MIN_SIZE",
    doc: "the read-only pool's minSize; default the primary's, ≤ replicaMaxSize"
  },
  {
    setting: "replicaMaxSize",
    env: "DB_POOL_REPLICA_MAX_SIZE",
    doc: "the read-only pool's maxSize; default the primary's"
  }
]

/** Each setting's environment variable. @internal */
export const envOf: { readonly [K in Setting]: string } = Object.fromEntries(
  table.map((entry) => [entry.setting, entry.env])
) as { readonly [K in Setting]: string }

/** A configuration written in code names its settings by their option names. @internal */
export const optionNames: { readonly [K in Setting]: string } = Object.fromEntries(
  table.map((entry) => [entry.setting, entry.setting])
) as { readonly [K in Setting]: string }

/** libpq's TLS parameters, as in a URL; each but `ssl` and `sslpassword` has a `PGSSL*` variable. @internal */
export type TlsParam =
  | "sslmode"
  | "ssl"
  | "sslrootcert"
  | "sslcert"
  | "sslkey"
  | "sslpassword"
  | "sslcrl"
  | "sslsni"
  | "ssl_min_protocol_version"
  | "ssl_max_protocol_version"

/** The TLS parameters a URL may carry; `ssl` is node-postgres's `ssl=true`. @internal */
export const tlsUrlParams: ReadonlySet<string> = new Set<TlsParam>([
  "sslmode",
  "ssl",
  "sslrootcert",
  "sslcert",
  "sslkey",
  "sslpassword",
  "sslcrl",
  "sslsni",
  "ssl_min_protocol_version",
  "ssl_max_protocol_version"
])

/** The TLS parameters' variables. @internal */
export const tlsEnv: { readonly [K in Exclude<TlsParam, "ssl" | "sslpassword">]: string } = {
  sslmode: "PGSSLMODE",
  sslrootcert: "PGSSLROOTCERT",
  sslcert: "PGSSLCERT",
  sslkey: "PGSSLKEY",
  sslcrl: "PGSSLCRL",
  sslsni: "PGSSLSNI",
  ssl_min_protocol_version: "PGSSLMINPROTOCOLVERSION",
  ssl_max_protocol_version: "PGSSLMAXPROTOCOLVERSION"
}

/** libpq TLS settings no Node driver can honour: a URL or variable naming one is reported, never ignored. @internal */
export const tlsUnsupported: ReadonlyArray<readonly [param: string, env: string | undefined, fix: string]> = [
  ["sslcrldir", "PGSSLCRLDIR", "Node cannot read a CRL directory: concatenate the CRLs into one file for sslcrl"],
  ["sslcertmode", "PGSSLCERTMODE", "remove it: a client certificate is sent whenever sslcert and sslkey are given"],
  ["sslnegotiation", "PGSSLNEGOTIATION", "remove it: only the standard negotiation (postgres) is supported"],
  ["sslcompression", "PGSSLCOMPRESSION", "remove it: TLS compression is obsolete and never used"],
  ["sslkeylogfile", undefined, "remove it: key logging is not supported"],
  ["requiressl", "PGREQUIRESSL", "it is deprecated: use sslmode=require"],
  ["gssencmode", "PGGSSENCMODE", "remove it: GSSAPI encryption is not supported, use TLS (sslmode)"]
]

/** Every variable read, supported or not, in the table's order. @internal */
export const envNames: ReadonlyArray<string> = [
  ...new Set([
    ...table.map((entry) => entry.env),
    ...Object.values(tlsEnv),
    ...tlsUnsupported.flatMap(([, env]) => (env === undefined ? [] : [env]))
  ])
]

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

/** @internal */
export const PREFIX = "DB_POOL_"
const KNOWN: ReadonlySet<string> = new Set(envNames)
const KNOWN_POOL = envNames.filter((name) => name.startsWith(PREFIX))

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

/** The `DB_POOL_*` names among `names` that are not settings, sorted, each with its likeliest meaning. @internal */
export const unknownVariables = (names: Iterable<string>): ReadonlyArray<UnknownVariable> =>
  [...new Set([...names].filter((name) => name.startsWith(PREFIX) && !KNOWN.has(name)))]
    .sort()
    .map((name) => ({ name, closest: closestKnown(name) }))

/** @internal */
export const unknownVariableMessage = (unknown: UnknownVariable): string =>
  `${unknown.name} is not a setting of the pool and is ignored: did you mean ${unknown.closest}?`
