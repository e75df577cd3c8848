/**
 * What the orchestrator (main.ts) and the per-client child processes (worker.ts, effect4/src/worker.ts) exchange
 * over the IPC channel, and which process runs which client.
 */

export const clients = [
  "ours-sql",
  "ours-pipe",
  "ours-conn",
  "ours4",
  "ours4-mux",
  "effect-sql-pg",
  "sql-pg4",
  "sql-pg4-mux",
  "pg-pool",
  "postgres-js"
] as const
export type ClientName = (typeof clients)[number]

export const clientLabels: Record<ClientName | "pgbench" | "pgbench-prepared", string> = {
  "ours-sql": "ours (Effect 3) · SqlClient",
  "ours-pipe": "ours (Effect 3) · SqlClient, pipeline 16",
  "ours-conn": "ours (Effect 3) · Db.withConnection",
  ours4: "ours (Effect 4) · SqlClient",
  "ours4-mux": "ours (Effect 4) · SqlClient, multiplex",
  "effect-sql-pg": "@effect/sql-pg 0.53 (Effect 3)",
  "sql-pg4": "@effect/sql-pg 4.0.5",
  "sql-pg4-mux": "@effect/sql-pg 4.0.5, multiplex",
  "pg-pool": "pg.Pool",
  "postgres-js": "postgres.js",
  pgbench: "pgbench -M simple",
  "pgbench-prepared": "pgbench -M prepared"
}

/**
 * The worker bundle a client runs in: bench/'s own (effect 3, pg, postgres.js) or bench/effect4/'s (effect 4 and
 * @effect/sql-pg 4, which cannot share bench/'s node_modules).
 */
export const workerOf: Record<ClientName, "effect3" | "effect4"> = {
  "ours-sql": "effect3",
  "ours-pipe": "effect3",
  "ours-conn": "effect3",
  ours4: "effect4",
  "ours4-mux": "effect4",
  "effect-sql-pg": "effect3",
  "sql-pg4": "effect4",
  "sql-pg4-mux": "effect4",
  "pg-pool": "effect3",
  "postgres-js": "effect3"
}

/** Our clients, each with the official Effect client of the same major (and multiplex setting) it is held to. */
export const officialOf: Partial<Record<ClientName, ClientName>> = {
  "ours-sql": "effect-sql-pg",
  "ours-pipe": "effect-sql-pg",
  "ours-conn": "effect-sql-pg",
  ours4: "sql-pg4",
  "ours4-mux": "sql-pg4-mux"
}

export const isClientName = (value: string): value is ClientName => (clients as ReadonlyArray<string>).includes(value)

/** The scaling steps: callers at the default pool size, then pool sizes at 100 callers. */
export const scalingCallers = [1, 10, 100, 1000] as const
export const scalingPoolSizes = [1, 10, 50] as const
export const defaultPoolSize = 10
export const poolScalingCallers = 100

export interface WorkloadPlan {
  /** 10 callers of SELECT 1 right after the cold init, measured nowhere: every pool at its maxSize, the JIT warm. */
  readonly prewarmMs: number
  readonly warmupMs: number
  readonly selectMs: number
  readonly checkoutMs: number
  /** The scaling steps not already measured by the 10- and 100-caller runs, and the row workloads. */
  readonly scalingMs: number
  readonly rowsMs: number
  readonly healthIterations: number
  readonly busyQueries: number
  readonly busyShutdownTimeoutMs: number
}

export interface LoopStats {
  readonly callers: number
  readonly ops: number
  readonly errors: number
  readonly elapsedMs: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly cpuMicrosPerOp: number
}

export interface ScalingStep {
  readonly callers: number
  readonly poolSize: number
  readonly stats: LoopStats
}

export interface WorkloadResult {
  readonly client: ClientName
  /** Dynamic import of the client's adapter module and library, the first thing the fresh process does. */
  readonly importMs: number
  /** Building the pool and running the first query, in a fresh process. */
  readonly coldInitMs: number
  readonly select10: LoopStats
  readonly select100: LoopStats
  readonly rssAfterImportMb: number
  readonly rssAfterInitMb: number
  readonly rssAfter100Mb: number
  readonly heapUsedAfter100Mb: number
  readonly checkout1: LoopStats
  readonly checkout10: LoopStats
  /** 10 callers reading 100 rows × 10 columns per query, and one 1 MB row per query. */
  readonly rows: LoopStats
  readonly blob: LoopStats
  /** SELECT 1 at every (callers, pool size) step; the 10- and 100-caller steps at pool size 10 are select10/100. */
  readonly scaling: ReadonlyArray<ScalingStep>
  readonly health: { readonly p50Us: number; readonly p99Us: number; readonly iterations: number } | undefined
  readonly shutdownIdleMs: number
  readonly shutdownBusyMs: number
  /** How the busy queries (pg_sleep(1)) in flight at shutdown ended. */
  readonly busyOutcome: { readonly ok: number; readonly failed: number; readonly unsettled: number }
}

export interface ReconnectResult {
  readonly client: ClientName
  readonly okTotal: number
  readonly failedTotal: number
  /** Completion time (epoch ms) of every failed call, and of the first successful one after the outage began. */
  readonly failedAt: ReadonlyArray<number>
  readonly firstOkAfter: number | undefined
  readonly lastOkBefore: number | undefined
}

export type ToWorker =
  | { readonly type: "outage-started"; readonly at: number }
  | { readonly type: "finish" }
  | { readonly type: "static-body"; readonly body: string }

export type FromWorker =
  | { readonly type: "result"; readonly result: WorkloadResult }
  | { readonly type: "running" }
  | { readonly type: "recovered"; readonly at: number }
  | { readonly type: "reconnect-result"; readonly result: ReconnectResult }
  | { readonly type: "listening"; readonly port: number }
  | {
      readonly type: "profiled"
      readonly opsPerSec: number
      readonly cpuMicrosPerOp: number
      readonly elapsedMs: number
    }
  /** The answer to `probe`: the client's adapter loads (its library is installed and exposes what it needs). */
  | { readonly type: "available" }
  /** The client cannot be measured in this checkout (e.g. the package does not export its layer yet), and why. */
  | { readonly type: "unavailable"; readonly reason: string }
  | { readonly type: "error"; readonly message: string }
