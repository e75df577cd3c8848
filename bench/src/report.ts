/**
 * Aggregation (medians over rounds, ratios computed within each round, then their median), the targets of the
 * issue, and the table as plain text and as Markdown.
 */
import {
  type ClientName,
  clientLabels,
  clients,
  defaultPoolSize,
  type LoopStats,
  officialOf,
  poolScalingCallers,
  scalingCallers,
  scalingPoolSizes,
  type WorkloadResult
} from "./protocol.js"
import { fmt, fmtRatio, median } from "./stats.js"

export type Column = ClientName | "pgbench" | "pgbench-prepared"
export const columns: ReadonlyArray<Column> = [...clients, "pgbench", "pgbench-prepared"]
const isPgbench = (column: Column): column is "pgbench" | "pgbench-prepared" =>
  column === "pgbench" || column === "pgbench-prepared"

/** The two peers every ratio is taken against: pg.Pool, and the official Effect client of the same major. */
export type Peer = "pg-pool" | "official"
const peerColumn = (subject: ClientName, peer: Peer): ClientName | undefined =>
  peer === "pg-pool" ? (subject === "pg-pool" ? undefined : "pg-pool") : officialOf[subject]

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
  /** pgbench's SELECT 1 with the simple query protocol, and with prepared statements (`-M prepared`). */
  readonly pgbench: { readonly select10: LoopStats; readonly select100: LoopStats } | undefined
  readonly pgbenchPrepared?: { readonly select10: LoopStats; readonly select100: LoopStats } | undefined
  readonly reconnect: Partial<Record<ClientName, ReconnectSummary>>
  readonly http: Partial<Record<HttpServer, HttpResult>>
}

interface Metric {
  readonly id: string
  /** The main table, or the scaling table (SELECT 1 at every callers × pool size step). */
  readonly section?: "scaling" | undefined
  readonly label: string
  readonly better: "higher" | "lower"
  readonly ratio: boolean
  readonly get: (round: RoundData, column: Column) => number | undefined
}

const loop =
  (pick: (w: WorkloadResult) => LoopStats, field: keyof LoopStats, pg?: "select10" | "select100") =>
  (round: RoundData, column: Column): number | undefined => {
    if (isPgbench(column))
      return pg === undefined ? undefined : (column === "pgbench" ? round.pgbench : round.pgbenchPrepared)?.[pg][field]
    const w = round.workload[column]
    return w === undefined ? undefined : pick(w)[field]
  }

const workload =
  (pick: (w: WorkloadResult) => number | undefined) =>
  (round: RoundData, column: Column): number | undefined => {
    if (isPgbench(column)) return undefined
    const w = round.workload[column]
    return w === undefined ? undefined : pick(w)
  }

const reconnect =
  (pick: (r: ReconnectSummary) => number | undefined) =>
  (round: RoundData, column: Column): number | undefined => {
    if (isPgbench(column)) return undefined
    const r = round.reconnect[column]
    return r === undefined ? undefined : pick(r)
  }

/** One scaling step of SELECT 1: callers 1 → 1,000 at pool size 10, then pool sizes 1 → 50 at 100 callers. */
export interface Step {
  readonly callers: number
  readonly poolSize: number
}
/** The two series of the issue: callers at pool size 10, then pool sizes at 100 callers (one step in both). */
export const scalingSeries: ReadonlyArray<{ readonly name: string; readonly steps: ReadonlyArray<Step> }> = [
  {
    name: `callers at pool size ${defaultPoolSize}`,
    steps: scalingCallers.map((callers) => ({ callers, poolSize: defaultPoolSize }))
  },
  {
    name: `pool size at ${poolScalingCallers} callers`,
    steps: scalingPoolSizes.map((poolSize) => ({ callers: poolScalingCallers, poolSize }))
  }
]
export const stepId = (step: Step) => `scale.c${step.callers}.p${step.poolSize}`

const scalingMetrics = (): ReadonlyArray<Metric> => {
  const stats = (step: Step) => (w: WorkloadResult) =>
    w.scaling.find((s) => s.callers === step.callers && s.poolSize === step.poolSize)?.stats
  const pick =
    (step: Step, field: "opsPerSec" | "cpuMicrosPerOp") =>
    (round: RoundData, column: Column): number | undefined => {
      if (isPgbench(column)) return undefined
      const w = round.workload[column]
      return w === undefined ? undefined : stats(step)(w)?.[field]
    }
  const ordered = scalingSeries.flatMap((series) => series.steps)
  return ordered.flatMap((step, i): ReadonlyArray<Metric> => {
    const name = `${step.callers.toLocaleString("en-US")} caller${step.callers === 1 ? "" : "s"}, pool ${step.poolSize}`
    // the 100-caller, pool-10 step is listed in both series; its metric once
    if (ordered.findIndex((s) => stepId(s) === stepId(step)) !== i) return []
    return [
      {
        id: `${stepId(step)}.qps`,
        section: "scaling",
        label: `${name}: queries/s`,
        better: "higher",
        ratio: true,
        get: pick(step, "opsPerSec")
      },
      {
        id: `${stepId(step)}.cpu`,
        section: "scaling",
        label: "  client CPU, µs/query",
        better: "lower",
        ratio: true,
        get: pick(step, "cpuMicrosPerOp")
      }
    ]
  })
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
    id: "rows.qps",
    label: "100 rows × 10 columns, 10 callers: queries/s",
    better: "higher",
    ratio: true,
    get: loop((w) => w.rows, "opsPerSec")
  },
  {
    id: "rows.cpu",
    label: "  client CPU, µs/query",
    better: "lower",
    ratio: true,
    get: loop((w) => w.rows, "cpuMicrosPerOp")
  },
  {
    id: "blob.qps",
    label: "one 1 MB row, 10 callers: queries/s",
    better: "higher",
    ratio: true,
    get: loop((w) => w.blob, "opsPerSec")
  },
  {
    id: "blob.cpu",
    label: "  client CPU, µs/query",
    better: "lower",
    ratio: true,
    get: loop((w) => w.blob, "cpuMicrosPerOp")
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
    ratio: true,
    get: workload((w) => w.importMs)
  },
  ...scalingMetrics()
]

export interface Aggregate {
  /** metric id → column → median over rounds */
  readonly medians: Record<string, Partial<Record<Column, number>>>
  /**
   * metric id → client → peer (pg.Pool, or the official Effect client of the same major) → median of per-round
   * ratios, "times better": > 1 favours the client (its rate ÷ the peer's, or the peer's time or memory ÷ its own)
   */
  readonly ratios: Record<string, Partial<Record<ClientName, Partial<Record<Peer, number>>>>>
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
    const bySubject: Partial<Record<ClientName, Partial<Record<Peer, number>>>> = {}
    for (const subject of clients) {
      const byPeer: Partial<Record<Peer, number>> = {}
      for (const peer of ["pg-pool", "official"] as const) {
        const other = peerColumn(subject, peer)
        if (other === undefined) continue
        const perRound = finite(
          rounds.map((r) => {
            const a = metric.get(r, subject)
            const b = metric.get(r, other)
            if (a === undefined || b === undefined || a === 0 || b === 0) return undefined
            return metric.better === "higher" ? a / b : b / a
          })
        )
        if (perRound.length > 0) byPeer[peer] = median(perRound)
      }
      bySubject[subject] = byPeer
    }
    ratios[metric.id] = bySubject
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
// scaling: per-query client CPU must not grow faster than the work
// -------------------------------------------------------------------------------------------------------------

/**
 * Every scaling step runs the same work per query (`SELECT 1`, one row), so the per-query client CPU should stay
 * flat from step to step; a step is flagged when it grows by more than this factor over the previous step (the
 * margin is the round-to-round noise of a shared 2-core machine).
 */
export const cpuGrowthTolerance = 1.2

export interface ScalingFlag {
  readonly client: ClientName
  readonly series: string
  readonly from: Step
  readonly to: Step
  /** Per-query client CPU at `to` ÷ at `from` (the work per query is the same: growth 1×). */
  readonly growth: number
}

export const scalingFlags = (agg: Aggregate): ReadonlyArray<ScalingFlag> => {
  const flags: Array<ScalingFlag> = []
  for (const client of clients) {
    for (const series of scalingSeries) {
      for (let i = 1; i < series.steps.length; i++) {
        const from = series.steps[i - 1]!
        const to = series.steps[i]!
        const a = agg.medians[`${stepId(from)}.cpu`]?.[client]
        const b = agg.medians[`${stepId(to)}.cpu`]?.[client]
        if (a === undefined || b === undefined || a <= 0) continue
        if (b / a > cpuGrowthTolerance) flags.push({ client, series: series.name, from, to, growth: b / a })
      }
    }
  }
  return flags
}

const stepName = (step: Step) =>
  `${step.callers.toLocaleString("en-US")} caller${step.callers === 1 ? "" : "s"} / pool ${step.poolSize}`

// -------------------------------------------------------------------------------------------------------------
// targets
// -------------------------------------------------------------------------------------------------------------

export interface TargetResult {
  /** Whose target: issue 14 (performance on both majors), or one set before it that still holds. */
  readonly issue: "14" | "earlier"
  readonly target: string
  readonly measured: string
  readonly pass: boolean | undefined
}

/** Clients that could not run in this checkout, with the reason (see `NotAvailable`). */
export type Unavailable = Partial<Record<ClientName, string>>

/**
 * A ratio target. Rates (`atLeast`): the client's ÷ the peer's. Times and memory (`atMost`): the client's ÷ the
 * peer's as well, so "≤ 1.2× the official client's import" reads as written.
 */
const ratioTarget = (
  agg: Aggregate,
  unavailable: Unavailable,
  text: string,
  metric: string,
  subject: ClientName,
  peer: Peer,
  bound: { readonly atLeast: number } | { readonly atMost: number }
): TargetResult => {
  const other = peerColumn(subject, peer)
  const missing = [subject, other].find((c) => c !== undefined && unavailable[c] !== undefined)
  if (missing !== undefined) {
    return { issue: "14", target: text, measured: `${clientLabels[missing]} not available`, pass: undefined }
  }
  const better = agg.ratios[metric]?.[subject]?.[peer]
  if (better === undefined) return { issue: "14", target: text, measured: "not measured", pass: undefined }
  const natural = "atLeast" in bound ? better : 1 / better
  return {
    issue: "14",
    target: text,
    measured: fmtRatio(natural),
    pass: "atLeast" in bound ? natural >= bound.atLeast : natural <= bound.atMost
  }
}

const valueTarget = (
  value: number | undefined,
  ok: (v: number) => boolean,
  text: string,
  unit: string
): TargetResult => ({
  issue: "earlier",
  target: text,
  measured: value === undefined || !Number.isFinite(value) ? "not measured" : `${fmt(value)} ${unit}`,
  pass: value === undefined || !Number.isFinite(value) ? undefined : ok(value)
})

const worst = (values: ReadonlyArray<number | undefined>, better: "higher" | "lower"): number | undefined => {
  const f = finite(values)
  if (f.length === 0) return undefined
  return better === "higher" ? Math.min(...f) : Math.max(...f)
}

/** Issue 14's targets, then the earlier ones the Effect 3 edition met or still misses. */
export const targets = (
  agg: Aggregate,
  flags: ReadonlyArray<ScalingFlag>,
  unavailable: Unavailable,
  httpNote: string | undefined
): ReadonlyArray<TargetResult> => {
  const t = (
    text: string,
    metric: string,
    subject: ClientName,
    peer: Peer,
    bound: { readonly atLeast: number } | { readonly atMost: number }
  ) => ratioTarget(agg, unavailable, text, metric, subject, peer, bound)
  const effect4: Array<TargetResult> = []
  for (const [subject, mode] of [
    ["ours4-mux", "multiplexed"],
    ["ours4", "not multiplexed"]
  ] as const) {
    for (const callers of [100, 10] as const) {
      const metric = `select${callers}.qps`
      effect4.push(
        t(
          `Effect 4, ${mode}: ≥ 1.0× @effect/sql-pg 4 ${mode}, SELECT 1, ${callers} callers`,
          metric,
          subject,
          "official",
          { atLeast: 1 }
        ),
        t(
          `Effect 4, ${mode}: ≥ ${mode === "multiplexed" ? "2.5" : "1.0"}× pg.Pool, SELECT 1, ${callers} callers`,
          metric,
          subject,
          "pg-pool",
          { atLeast: mode === "multiplexed" ? 2.5 : 1 }
        )
      )
    }
  }
  const effect3 = [
    t(
      "Effect 3, SqlClient (pipelined statements): ≥ 1.5× pg.Pool, SELECT 1, 100 callers",
      "select100.qps",
      "ours-pipe",
      "pg-pool",
      { atLeast: 1.5 }
    ),
    t("Effect 3, Db.withConnection: ≥ 0.9× pg.Pool, SELECT 1, 10 callers", "select10.qps", "ours-conn", "pg-pool", {
      atLeast: 0.9
    }),
    t("Effect 3, checkout cycle (Db.withConnection): ≥ 0.5× pg.Pool, 1 caller", "checkout1", "ours-conn", "pg-pool", {
      atLeast: 0.5
    }),
    t(
      "Effect 3, checkout cycle (Db.withConnection): ≥ 0.5× pg.Pool, 10 callers",
      "checkout10",
      "ours-conn",
      "pg-pool",
      { atLeast: 0.5 }
    )
  ]
  const ours = ["ours-sql", "ours-pipe", "ours-conn", "ours4", "ours4-mux"] as const
  const both = ours.flatMap((subject) => [
    t(`${clientLabels[subject]}: cold init (pool + first query) ≤ 1.5× pg.Pool's`, "coldInit", subject, "pg-pool", {
      atMost: 1.5
    }),
    t(
      `${clientLabels[subject]}: RSS after the 100-caller run ≤ ${clientLabels[officialOf[subject]!]}'s`,
      "rss100",
      subject,
      "official",
      { atMost: 1 }
    ),
    t(
      `${clientLabels[subject]}: import ≤ 1.2× ${clientLabels[officialOf[subject]!]}'s`,
      "import",
      subject,
      "official",
      { atMost: 1.2 }
    )
  ])
  const scaling = ours.map((subject): TargetResult => {
    const text = `${clientLabels[subject]}: no scaling step grows the per-query client CPU faster than the work`
    if (unavailable[subject] !== undefined)
      return { issue: "14", target: text, measured: "not available", pass: undefined }
    const measured = agg.medians[`${stepId(scalingSeries[0]!.steps[0]!)}.cpu`]?.[subject] !== undefined
    const mine = flags.filter((f) => f.client === subject)
    const worstFlag = mine.reduce<ScalingFlag | undefined>(
      (w, f) => (w === undefined || f.growth > w.growth ? f : w),
      undefined
    )
    return {
      issue: "14",
      target: text,
      measured: !measured
        ? "not measured"
        : worstFlag === undefined
          ? `every step ≤ ${cpuGrowthTolerance}× the previous`
          : `${mine.length} step(s) flagged (notes), worst ${fmtRatio(worstFlag.growth)}: ` +
            `${stepName(worstFlag.from)} → ${stepName(worstFlag.to)}`,
      pass: measured ? mine.length === 0 : undefined
    }
  })

  const m = agg.medians
  const both3 = (id: string) => [m[id]?.["ours-sql"], m[id]?.["ours-conn"]]
  const http = agg.http.example ?? agg.http.live
  const earlierRatio = (metric: string, text: string, min: number): TargetResult => {
    const value = agg.ratios[metric]?.["ours-conn"]?.official
    return {
      issue: "earlier",
      target: text,
      measured: value === undefined ? "not measured" : fmtRatio(value),
      pass: value === undefined ? undefined : value >= min
    }
  }
  const earlier: Array<TargetResult> = [
    earlierRatio("checkout1", "Effect 3, checkout cycle ≥ 4× @effect/sql-pg 0.53, 1 caller", 4),
    earlierRatio("checkout10", "Effect 3, checkout cycle ≥ 4× @effect/sql-pg 0.53, 10 callers", 4),
    valueTarget(worst(both3("health.p99"), "lower"), (v) => v < 100, "in-process health check p99 < 0.1 ms", "µs"),
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
      worst(both3("reconnect.recovery"), "lower"),
      (v) => v <= 1_000,
      "reconnection within one backoff step (≤ 1 000 ms after the server is ready)",
      "ms"
    ),
    valueTarget(worst(both3("shutdown.idle"), "lower"), (v) => v < 50, "idle shutdown < 50 ms", "ms")
  ]
  return [...effect4, ...effect3, ...both, ...scaling, ...earlier]
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

const figureTable = (
  agg: Aggregate,
  shown: ReadonlyArray<Column>,
  section: "scaling" | undefined,
  title: string
): Table => [
  [title, ...shown.map((c) => clientLabels[c])],
  ...metrics
    .filter((metric) => metric.section === section)
    .map((metric) => [
      metric.label,
      ...shown.map((c) => {
        const value = agg.medians[metric.id]?.[c]
        return metric.id === "reconnect.failed" && value !== undefined ? String(Math.round(value)) : fmt(value)
      })
    ])
]

/** One row per metric, one column per client: "vs pg.Pool · vs the official client of the same major". */
const ratioTable = (agg: Aggregate, shown: ReadonlyArray<Column>): Table => {
  const subjects = shown.filter((c): c is ClientName => !isPgbench(c) && c !== "pg-pool")
  const rows: Array<ReadonlyArray<string>> = [
    ["ratio (> 1 = better): vs pg.Pool · vs official same major", ...subjects.map((c) => clientLabels[c])]
  ]
  let last = ""
  for (const metric of metrics) {
    if (!metric.ratio) continue
    const cells = subjects.map((c) => {
      const r = agg.ratios[metric.id]?.[c]
      const pool = fmtRatio(r?.["pg-pool"])
      return officialOf[c] === undefined ? pool : `${pool} · ${fmtRatio(r?.official)}`
    })
    if (cells.every((c) => c === "—" || c === "— · —")) continue
    // an indented label ("  client CPU") names its metric by the one above it
    const label = metric.label.startsWith("  ") ? `${last} — ${metric.label.trim()}` : metric.label
    if (!metric.label.startsWith("  ")) last = metric.label.split(":")[0]!
    rows.push([label, ...cells])
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
  ["target", "issue", "measured", "status"],
  ...results.map((t) => [t.target, t.issue, t.measured, t.pass === undefined ? "n/a" : t.pass ? "met" : "MISSED"])
]

const flagLines = (flags: ReadonlyArray<ScalingFlag>): ReadonlyArray<string> =>
  flags.map(
    (f) =>
      `scaling, ${clientLabels[f.client]} (${f.series}): ${stepName(f.from)} → ${stepName(f.to)} grows the ` +
      `per-query client CPU ${fmtRatio(f.growth)} for the same work (tolerance ${cpuGrowthTolerance}×)`
  )

export interface Rendered {
  readonly text: string
  readonly markdown: string
  /** One line per flagged scaling step, for the notes. */
  readonly flags: ReadonlyArray<string>
}

export const render = (
  agg: Aggregate,
  results: ReadonlyArray<TargetResult>,
  flags: ReadonlyArray<ScalingFlag>,
  shown: ReadonlyArray<Column>
): Rendered => {
  const scalingShown = shown.filter((c) => !isPgbench(c))
  const tables = [
    figureTable(agg, shown, undefined, "workload (median of rounds)"),
    figureTable(agg, scalingShown, "scaling", "scaling, SELECT 1 (median of rounds)"),
    ratioTable(agg, shown),
    httpTable(agg),
    targetTable(results)
  ].filter((table) => table.length > 1)
  return {
    text: tables.map(renderText).join("\n\n"),
    markdown: tables.map(renderMarkdown).join("\n\n"),
    flags: flagLines(flags)
  }
}
