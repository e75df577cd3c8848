/**
 * What the orchestrator (main.ts) and the per-client child processes (worker.ts) exchange over the IPC channel.
 */

export const clients = ["ours-sql", "ours-conn", "effect-sql-pg", "pg-pool", "postgres-js"] as const
export type ClientName = (typeof clients)[number]

export const clientLabels: Record<ClientName | "pgbench", string> = {
  "ours-sql": "ours · SqlClient",
  "ours-conn": "ours · Db.withConnection",
  "effect-sql-pg": "@effect/sql-pg",
  "pg-pool": "pg.Pool",
  "postgres-js": "postgres.js",
  pgbench: "pgbench"
}

export const isClientName = (value: string): value is ClientName => (clients as ReadonlyArray<string>).includes(value)

export interface WorkloadPlan {
  readonly warmupMs: number
  readonly selectMs: number
  readonly checkoutMs: number
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

export interface WorkloadResult {
  readonly client: ClientName
  /** Dynamic import of the client's adapter module and library (under tsx; transpilation is cached). */
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
  | { readonly type: "error"; readonly message: string }
