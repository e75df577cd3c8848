/**
 * What the drill needs from an edition of the pool, in runtime-free terms (plain values and Promises, no `effect`
 * import): Effect 3 and Effect 4 cannot share one `effect` package, so the drill and the view, written once on
 * Effect 3, drive either edition through this boundary. Each edition is one small adapter implementing it:
 * `editions/Effect3.ts` here, and `@effect-pg-pool/example-demo-effect4` (its own package, on effect 4), loaded only
 * when `--effect 4` asks for it.
 */

/** The demo's table; a plain table with an index, as an application would have. */
export const TABLE = "effect_pg_pool_demo"

/** The statements that create it, run once through the pool's `SqlClient` before the drill. */
export const SETUP_STATEMENTS: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS ${TABLE} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker int NOT NULL,
    note text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`,
  `CREATE INDEX IF NOT EXISTS ${TABLE}_worker ON ${TABLE} (worker)`
]

/**
 * The query mix: a short read (`SELECT pg_sleep(0.002)`), a write, an indexed aggregate — all through `SqlClient`
 * — and a unit of work on one connection (`Db.withConnection`: a transaction that writes and reads back).
 */
export type Query = "sleep" | "insert" | "count" | "session"

export type Outcome =
  | { readonly _tag: "Ok" }
  /** `kind` groups failures for the summary: the error's tag, and for a SqlError what lies beneath it. */
  | { readonly _tag: "Failed"; readonly kind: string; readonly message: string }
  /** The drill interrupted it (the end of the run, Ctrl-C): neither a success nor a failure. */
  | { readonly _tag: "Interrupted" }

/** The pool's statistics the view shows (each edition's `PoolStatistics`, flattened). */
export interface Figures {
  readonly total: number
  readonly idle: number
  readonly active: number
  readonly pending: number
  readonly waiting: number
  readonly minSize: number
  readonly maxSize: number
  readonly peakWaiting: number
  readonly acquisitionTimeP99Ms: number
  readonly acquisitionTimeAvgMs: number
  readonly acquireTimeouts: number
  readonly reconnectAttempts: number
  readonly connectionsCreated: number
  readonly connectionsClosedBroken: number
  /** Per host, for a multi-host pool (the failover drill's); empty for one host. */
  readonly hosts: ReadonlyArray<HostFigures>
}

/** One host of a multi-host pool, as its `PoolStatistics.hosts` entry says. */
export interface HostFigures {
  /** `host:port`. */
  readonly label: string
  /** As last seen: `primary`, `standby`, `read-only` or `unknown`. */
  readonly role: string
  readonly up: boolean
  /** The pool's sessions on it. */
  readonly sessions: number
  /** Failures in a row. */
  readonly failures: number
}

/** Each edition's `HealthStatus`, flattened. */
export interface HealthView {
  readonly status: "healthy" | "degraded" | "unhealthy"
  readonly reason: string | undefined
  readonly reachable: boolean
  readonly latencyMs: number | undefined
  /** Epoch milliseconds of the last probe. */
  readonly probedAt: number | undefined
}

export interface PoolInfo {
  /** The edition, for the header: e.g. "@effect-pg-pool/effect4 (Effect 4, @effect/sql-pg 4, multiplexed)". */
  readonly edition: string
  readonly name: string
  readonly host: string
  readonly port: number
  readonly minSize: number
  readonly maxSize: number
  readonly acquireTimeoutMillis: number
  readonly applicationName: string
  /**
   * Statements one connection carries at once: 1, or `multiplexConcurrency` when multiplexing — how many queries
   * the crash of one connection can fail.
   */
  readonly statementsPerConnection: number
  /** The server's `server_version`, read through the pool. */
  readonly serverVersion: string
}

/** An open pool (`DatabaseLive`, configured from the environment), its demo table created. */
export interface Pool {
  readonly info: PoolInfo
  /** Snapshots; no I/O. */
  readonly statistics: () => Figures
  readonly health: () => HealthView
  /** Runs one query of the mix for `worker`; never rejects. Aborting `signal` interrupts it. */
  readonly run: (query: Query, worker: number, signal: AbortSignal) => Promise<Outcome>
  /** Drops the demo table (on a server the demo did not start); never rejects. */
  readonly dropTable: () => Promise<void>
  /** The pool's graceful shutdown. */
  readonly close: () => Promise<void>
}

export interface OpenOptions {
  /** A password to keep out of the pool's log file, besides the one in DATABASE_URL. */
  readonly redact: string | undefined
}

export interface Edition {
  /**
   * `DatabaseLive` from the environment (DATABASE_URL and DB_POOL_*, which the demo has filled in with its
   * defaults), its logs to DB_POOL_LOG_FILE or nowhere — never the terminal. Rejects with an Error whose message
   * says why the pool could not start.
   */
  readonly open: (options: OpenOptions) => Promise<Pool>
}

const SQLSTATE_NAMES: Record<string, string> = {
  "57P01": "admin_shutdown",
  "57P02": "crash_shutdown",
  "57P03": "cannot_connect_now",
  "57014": "query_canceled",
  "08000": "connection_exception",
  "08003": "connection_does_not_exist",
  "08006": "connection_failure",
  "25P02": "in_failed_sql_transaction",
  "40001": "serialization_failure",
  "40P01": "deadlock_detected"
}

/** The SQLSTATE found on an error or down its `cause` chain, if any. */
export const sqlState = (error: unknown): string | undefined => {
  let current = error
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const code = (current as { readonly code?: unknown }).code
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code
    current = (current as { readonly cause?: unknown }).cause
  }
  return undefined
}

/** "SqlError SQLSTATE 57P01 admin_shutdown" */
export const sqlStateKind = (code: string): string =>
  `SqlError SQLSTATE ${code}${SQLSTATE_NAMES[code] ? ` ${SQLSTATE_NAMES[code]}` : ""}`

export const firstLine = (text: string): string => text.split("\n")[0] ?? text
