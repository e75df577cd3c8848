/**
 * Aggregation (medians over rounds, ratios computed within each round, then their median), the targets of the
 * issue, and the table as plain text and as Markdown.
 */
import { type ClientName, clientLabels, type LoopStats, type WorkloadResult } from "./protocol.js"
import { fmt, fmtRatio, median } from "./stats.js"

export type Column = ClientName | "pgbench"
export const columns: ReadonlyArray<Column> = [
  "ours-sql",
  "ours-conn",
  "effect-sql-pg",
  "pg-pool",
  "postgres-js",
  "pgbench"
]
const ours: ReadonlyArray<Column> = ["ours-sql", "ours-conn"]
const peers: ReadonlyArray<Column> = ["effect-sql-pg", "pg-pool", "postgres-js", "pgbench"]

export interface ReconnectSummary {
  /** First successful query after the server reported ready, minus that moment. */
  readonly recoveryMs: number | undefined
  /** Failed calls from the stop to the end of the scenario. */
  readonly failed: number
  /** Of those, failed after the server was ready again. */
  readonly failedAfterReady: number
  readonly outageMs: number
}

export type HttpServer = "example" | "live" | "static"
export const httpLabels: Record<HttpServer, string> = {
  example: "examples/health-server (@effect/platform)",
  live: "node:http + Db.health (JSON-encoded per request)",
  static: "node:http, the same JSON as a constant (reference)"
}

export interface HttpResult {
  readonly reqPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly errors: number
  readonly non2xx: number
}

export interface RoundData {
  readonly round: number
  /** 1-minute load average at the start and the end of the round (other processes share the machine). */
  readonly loadAverage: readonly [number, number]
  readonly order: ReadonlyArray<ClientName>
  readonly workload: Partial<Record<ClientName, WorkloadResult>>
  readonly pgbench: { readonly select10: LoopStats; readonly select100: LoopStats } | undefined
  readonly reconnect: Partial<Record<ClientName, ReconnectSummary>>
  readonly http: Partial<Record<HttpServer, HttpResult>>
}

interface Metric {
  readonly id: string
  readonly label: string
  readonly better: "higher" | "lower"
  readonly ratio: boolean
  readonly get: (round: RoundData, column: Column) => number | undefined
}

const loop =
  (pick: (w: WorkloadResult) => LoopStats, field: keyof LoopStats, pg?: "select10" | "select100") =>
  (round: RoundData, column: Column): number | undefined => {
    if (column === "pgbench") return pg === undefined ? undefined : round.pgbench?.[pg][field]
    const w = round.workload[column]
    return w === undefined ? undefined : pick(w)[field]
  }

const workload =
  (pick: (w: WorkloadResult) => number | undefined) =>
  (round: RoundData, column: Column): number | undefined => {
    if (column === "pgbench") return undefined
    const w = round.workload[column]
    return w === undefined ? undefined : pick(w)
  }

const reconnect =
  (pick: (r: ReconnectSummary) => number | undefined) =>
  (round: RoundData, column: Column): number | undefined => {
    if (column === "pgbench") return undefined
    const r = round.reconnect[column]
    return r === undefined ? undefined : pick(r)
  }

export const metrics: ReadonlyArray<Metric> = [
  {
    id: "select10.qps",
    label: "SELECT 1, 10 callers: queries/s",
    better: "higher",
    ratio: true,
    get: loop((w) => w.select10, "opsPerSec", "select10")
  },
  {
    id: "select10.p50",
    label: "  p50 latency, ms",
    better: "lower",
    ratio: false,
    get: loop((w) => w.select10, "p50Ms", "select10")
  },
  {
    id: "select10.p99",
    label: "  p99 latency, ms",
    better: "lower",
    ratio: false,
    get: loop((w) => w.select10, "p99Ms", "select10")
  },
  {
    id: "select10.cpu",
    label: "  client CPU, µs/query",
    better: "lower",
    ratio: true,
    get: loop((w) => w.select10, "cpuMicrosPerOp", "select10")
  },
  {
    id: "select100.qps",
    label: "SELECT 1, 100 callers: queries/s",
    better: "higher",
    ratio: true,
    get: loop((w) => w.select100, "opsPerSec", "select100")
  },
  {
    id: "select100.p50",
    label: "  p50 latency, ms",
    better: "lower",
    ratio: false,
    get: loop((w) => w.select100, "p50Ms", "select100")
  },
  {
    id: "select100.p99",
    label: "  p99 latency, ms",
    better: "lower",
    ratio: false,
    get: loop((w) => w.select100, "p99Ms", "select100")
  },
  {
    id: "select100.cpu",
    label: "  client CPU, µs/query",
    better: "lower",
    ratio: true,
    get: loop((w) => w.select100, "cpuMicrosPerOp", "select100")
  },
  {
    id: "rssInit",
    label: "RSS after init (before any load), MB",
    better: "lower",
    ratio: false,
    get: workload((w) => w.rssAfterInitMb)
  },
  {
    id: "rss100",
    label: "RSS after the 100-caller run, MB",
    better: "lower",
    ratio: true,
    get: workload((w) => w.rssAfter100Mb)
  },
  {
    id: "checkout1",
    label: "checkout cycle, 1 caller: cycles/s",
    better: "higher",
    ratio: true,
    get: loop((w) => w.checkout1, "opsPerSec")
  },
  {
    id: "checkout10",
    label: "checkout cycle, 10 callers: cycles/s",
    better: "higher",
    ratio: true,
    get: loop((w) => w.checkout10, "opsPerSec")
  },
  {
    id: "coldInit",
    label: "cold init (pool + first query), ms",
    better: "lower",
    ratio: true,
    get: workload((w) => w.coldInitMs)
  },
  {
    id: "health.p50",
    label: "in-process health check p50, µs",
    better: "lower",
    ratio: false,
    get: workload((w) => w.health?.p50Us)
  },
  {
    id: "health.p99",
    label: "in-process health check p99, µs",
    better: "lower",
    ratio: false,
    get: workload((w) => w.health?.p99Us)
  },
  {
    id: "reconnect.recovery",
    label: "reconnect: server ready → first success, ms",
    better: "lower",
    ratio: false,
    get: reconnect((r) => r.recoveryMs)
  },
  {
    id: "reconnect.failed",
    label: "reconnect: failed calls (10 callers, outage)",
    better: "lower",
    ratio: false,
    get: reconnect((r) => r.failed)
  },
  {
    id: "shutdown.idle",
    label: "shutdown, idle pool, ms",
    better: "lower",
    ratio: true,
    get: workload((w) => w.shutdownIdleMs)
  },
  {
    id: "shutdown.busy",
    label: "shutdown, 10 × pg_sleep(1) in flight, ms",
    better: "lower",
    ratio: false,
    get: workload((w) => w.shutdownBusyMs)
  },
  {
    id: "import",
    label: "import of the client library, ms",
    better: "lower",
    ratio: false,
    get: workload((w) => w.importMs)
  }
]

export interface Aggregate {
  /** metric id → column → median over rounds */
  readonly medians: Record<string, Partial<Record<Column, number>>>
  /** metric id → ours column → peer column → median of per-round ratios ("times better": > 1 favours ours) */
  readonly ratios: Record<string, Partial<Record<Column, Partial<Record<Column, number>>>>>
  readonly http: Partial<Record<HttpServer, HttpResult>>
}

const finite = (values: ReadonlyArray<number | undefined>): Array<number> =>
  values.filter((v): v is number => v !== undefined && Number.isFinite(v))

export const aggregate = (rounds: ReadonlyArray<RoundData>): Aggregate => {
  const medians: Aggregate["medians"] = {}
  const ratios: Aggregate["ratios"] = {}
  for (const metric of metrics) {
    const byColumn: Partial<Record<Column, number>> = {}
    for (const column of columns) {
      const values = finite(rounds.map((r) => metric.get(r, column)))
      if (values.length > 0) byColumn[column] = median(values)
    }
    medians[metric.id] = byColumn
    if (!metric.ratio) continue
    const byOurs: Partial<Record<Column, Partial<Record<Column, number>>>> = {}
    for (const mine of ours) {
      const byPeer: Partial<Record<Column, number>> = {}
      for (const peer of peers) {
        const perRound = finite(
          rounds.map((r) => {
            const a = metric.get(r, mine)
            const b = metric.get(r, peer)
            if (a === undefined || b === undefined || a === 0 || b === 0) return undefined
            return metric.better === "higher" ? a / b : b / a
          })
        )
        if (perRound.length > 0) byPeer[peer] = median(perRound)
      }
      byOurs[mine] = byPeer
    }
    ratios[metric.id] = byOurs
  }
  const http: Partial<Record<HttpServer, HttpResult>> = {}
  for (const server of ["example", "live", "static"] as const) {
    const results = rounds.map((r) => r.http[server]).filter((h): h is HttpResult => h !== undefined)
    if (results.length === 0) continue
    http[server] = {
      reqPerSec: median(results.map((h) => h.reqPerSec)),
      p50Ms: median(results.map((h) => h.p50Ms)),
      p99Ms: median(results.map((h) => h.p99Ms)),
      errors: results.reduce((n, h) => n + h.errors, 0),
      non2xx: results.reduce((n, h) => n + h.non2xx, 0)
    }
  }
  return { medians, ratios, http }
}

// -------------------------------------------------------------------------------------------------------------
// targets
// -------------------------------------------------------------------------------------------------------------

export interface TargetResult {
  readonly target: string
  readonly measured: string
  readonly pass: boolean | undefined
}

const ratioTarget = (
  agg: Aggregate,
  metric: string,
  mine: Column,
  peer: Column,
  min: number,
  text: string
): TargetResult => {
  const value = agg.ratios[metric]?.[mine]?.[peer]
  return {
    target: text,
    measured: value === undefined ? "not measured" : fmtRatio(value),
    pass: value === undefined ? undefined : value >= min
  }
}

const valueTarget = (
  value: number | undefined,
  ok: (v: number) => boolean,
  text: string,
  unit: string
): TargetResult => ({
  target: text,
  measured: value === undefined || !Number.isFinite(value) ? "not measured" : `${fmt(value)} ${unit}`,
  pass: value === undefined || !Number.isFinite(value) ? undefined : ok(value)
})

const worst = (values: ReadonlyArray<number | undefined>, better: "higher" | "lower"): number | undefined => {
  const f = finite(values)
  if (f.length === 0) return undefined
  return better === "higher" ? Math.min(...f) : Math.max(...f)
}

export const targets = (agg: Aggregate, httpNote: string | undefined): ReadonlyArray<TargetResult> => {
  const m = agg.medians
  const both = (id: string) => [m[id]?.["ours-sql"], m[id]?.["ours-conn"]]
  const http = agg.http.example ?? agg.http.live
  return [
    ratioTarget(
      agg,
      "select10.qps",
      "ours-sql",
      "effect-sql-pg",
      2,
      "SqlClient ≥ 2× @effect/sql-pg queries/s, 10 callers"
    ),
    ratioTarget(
      agg,
      "select100.qps",
      "ours-sql",
      "effect-sql-pg",
      2,
      "SqlClient ≥ 2× @effect/sql-pg queries/s, 100 callers"
    ),
    ratioTarget(
      agg,
      "select10.qps",
      "ours-conn",
      "pg-pool",
      0.9,
      "Db.withConnection ≥ 0.9× pg.Pool queries/s, 10 callers"
    ),
    ratioTarget(
      agg,
      "select100.qps",
      "ours-conn",
      "pg-pool",
      0.9,
      "Db.withConnection ≥ 0.9× pg.Pool queries/s, 100 callers"
    ),
    ratioTarget(agg, "checkout1", "ours-conn", "effect-sql-pg", 4, "checkout cycle ≥ 4× @effect/sql-pg, 1 caller"),
    ratioTarget(agg, "checkout10", "ours-conn", "effect-sql-pg", 4, "checkout cycle ≥ 4× @effect/sql-pg, 10 callers"),
    ratioTarget(agg, "checkout1", "ours-conn", "pg-pool", 0.5, "checkout cycle ≥ 0.5× pg.Pool, 1 caller"),
    ratioTarget(agg, "checkout10", "ours-conn", "pg-pool", 0.5, "checkout cycle ≥ 0.5× pg.Pool, 10 callers"),
    valueTarget(worst(both("rss100"), "lower"), (v) => v <= 100, "RSS after the 100-caller run ≤ 100 MB", "MB"),
    valueTarget(worst(both("coldInit"), "lower"), (v) => v <= 50, "cold init (pool + first query) ≤ 50 ms", "ms"),
    valueTarget(worst(both("health.p99"), "lower"), (v) => v < 100, "in-process health check p99 < 0.1 ms", "µs"),
    {
      ...valueTarget(
        http?.reqPerSec,
        (v) => v > 10_000,
        `HTTP /health > 10 000 requests/s${httpNote === undefined ? "" : ` (${httpNote})`}`,
        "req/s"
      ),
      ...(http !== undefined && agg.http.static !== undefined
        ? {
            measured:
              `${fmt(http.reqPerSec)} req/s (a constant answer from bare node:http: ` +
              `${fmt(agg.http.static.reqPerSec)})`
          }
        : {})
    },
    valueTarget(
      worst(both("reconnect.recovery"), "lower"),
      (v) => v <= 1_000,
      "reconnection within one backoff step (≤ 1 000 ms after the server is ready)",
      "ms"
    ),
    valueTarget(worst(both("shutdown.idle"), "lower"), (v) => v < 50, "idle shutdown < 50 ms", "ms")
  ]
}

// -------------------------------------------------------------------------------------------------------------
// rendering
// -------------------------------------------------------------------------------------------------------------

type Table = ReadonlyArray<ReadonlyArray<string>>

const renderText = (table: Table): string => {
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => [...(row[i] ?? "")].length)))
  const line = (row: ReadonlyArray<string>) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
  return [line(table[0]!), widths.map((w) => "─".repeat(w)).join("  "), ...table.slice(1).map(line)].join("\n")
}

const renderMarkdown = (table: Table): string => {
  const line = (row: ReadonlyArray<string>) => `| ${row.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`
  const align = table[0]!.map((_, i) => (i === 0 ? ":---" : "---:"))
  return [line(table[0]!), `| ${align.join(" | ")} |`, ...table.slice(1).map(line)].join("\n")
}

const mainTable = (agg: Aggregate, shown: ReadonlyArray<Column>): Table => [
  ["workload (median of rounds)", ...shown.map((c) => clientLabels[c])],
  ...metrics.map((metric) => [
    metric.label,
    ...shown.map((c) => {
      const value = agg.medians[metric.id]?.[c]
      return metric.id === "reconnect.failed" && value !== undefined ? String(Math.round(value)) : fmt(value)
    })
  ])
]

const ratioTable = (agg: Aggregate, shown: ReadonlyArray<Column>): Table => {
  const peerColumns = peers.filter((p) => shown.includes(p))
  const rows: Array<ReadonlyArray<string>> = [
    ["ratio, ours ÷ peer (> 1 = ours better)", ...peerColumns.map((p) => `vs ${clientLabels[p]}`)]
  ]
  for (const metric of metrics) {
    if (!metric.ratio) continue
    for (const mine of ours) {
      if (!shown.includes(mine)) continue
      const cells = peerColumns.map((p) => fmtRatio(agg.ratios[metric.id]?.[mine]?.[p]))
      if (cells.every((c) => c === "—")) continue
      rows.push([`${metric.label.trim()} — ${clientLabels[mine]}`, ...cells])
    }
  }
  return rows
}

const httpTable = (agg: Aggregate): Table => [
  ["HTTP GET /health (autocannon)", "req/s", "p50 ms", "p99 ms", "errors"],
  ...(["example", "live", "static"] as const).flatMap((server) => {
    const h = agg.http[server]
    return h === undefined
      ? []
      : [[httpLabels[server], fmt(h.reqPerSec), fmt(h.p50Ms), fmt(h.p99Ms), String(h.errors + h.non2xx)]]
  })
]

const targetTable = (results: ReadonlyArray<TargetResult>): Table => [
  ["target", "measured", "status"],
  ...results.map((t) => [t.target, t.measured, t.pass === undefined ? "n/a" : t.pass ? "met" : "MISSED"])
]

export interface Rendered {
  readonly text: string
  readonly markdown: string
}

export const render = (
  agg: Aggregate,
  results: ReadonlyArray<TargetResult>,
  shown: ReadonlyArray<Column>
): Rendered => {
  const tables = [mainTable(agg, shown), ratioTable(agg, shown), httpTable(agg), targetTable(results)]
  return {
    text: tables.map(renderText).join("\n\n"),
    markdown: tables.map(renderMarkdown).join("\n\n")
  }
}
