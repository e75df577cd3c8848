/**
 * The terminal view: a frame redrawn in place on a terminal, one status line per second elsewhere (CI, pipes),
 * and the summary at the end.
 */
import { Effect, Exit, Schedule } from "effect"
import type { Event, LeakCheck, RunState, Tone } from "./Drill.js"
import type { Figures, HealthView, Pool } from "./Edition.js"
import { formatMillis } from "./Drill.js"

// -----------------------------------------------------------------------------------------------------------
// text
// -----------------------------------------------------------------------------------------------------------

const ESC = String.fromCharCode(27)
const ANSI = new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, "y")

export interface Output {
  /** A terminal: the frame is redrawn in place. */
  readonly live: boolean
  readonly color: boolean
}

export const output = (): Output => {
  const live = process.stdout.isTTY === true && process.env.TERM !== "dumb"
  return { live, color: live && process.env.NO_COLOR === undefined }
}

export interface Paint {
  readonly bold: (text: string) => string
  readonly dim: (text: string) => string
  readonly tone: (tone: Tone, text: string) => string
}

export const paint = (out: Output): Paint => {
  const sgr = (on: string, off: string) => (text: string) => (out.color ? `${ESC}[${on}m${text}${ESC}[${off}m` : text)
  const red = sgr("31", "39")
  const green = sgr("32", "39")
  const cyan = sgr("36", "39")
  return {
    bold: sgr("1", "22"),
    dim: sgr("2", "22"),
    tone: (tone, text) => (tone === "bad" ? red(text) : tone === "good" ? green(text) : cyan(text))
  }
}

/** Cuts a line to the terminal's width, escape sequences not counted, so a redraw never wraps. */
const fit = (line: string, width: number): string => {
  let visible = 0
  let result = ""
  let i = 0
  while (i < line.length) {
    ANSI.lastIndex = i
    const sequence = ANSI.exec(line)
    if (sequence !== null) {
      result += sequence[0]
      i += sequence[0].length
      continue
    }
    const char = String.fromCodePoint(line.codePointAt(i)!)
    // one column short of the width: some terminals wrap a line that fills it exactly
    if (visible === width - 2) return `${result}…${ESC}[0m`
    result += char
    visible++
    i += char.length
  }
  return result
}

const int = (n: number) => Math.round(n).toLocaleString("en-US")
const secs = (millis: number) => `${(millis / 1000).toFixed(1)} s`
const pad = (text: string, width: number) => text.padEnd(width)

// -----------------------------------------------------------------------------------------------------------
// the live view
// -----------------------------------------------------------------------------------------------------------

interface Phase {
  readonly label: string
  readonly tone: Tone
  readonly detail: string
}

export const phase = (state: RunState): Phase => {
  const now = state.elapsed()
  const { options } = state
  if (state.stopping) return { label: "finishing", tone: "info", detail: "workers complete their last query" }
  if (state.outage === undefined) {
    return now < 2000
      ? { label: "warm-up", tone: "info", detail: "" }
      : { label: "steady", tone: "good", detail: "no outage in this run" }
  }
  if (state.crashAt === undefined) {
    const next = state.failover === undefined ? "crash" : "primary killed"
    return { label: "warm-up", tone: "info", detail: `${next} in ${secs(options.outageAfterMillis - now)}` }
  }
  if (state.outageError !== undefined) return { label: "OUTAGE FAILED", tone: "bad", detail: state.outageError }
  if (state.failover !== undefined) return failoverPhase(state, now)
  if (state.upAt === undefined) {
    return {
      label: "DATABASE DOWN",
      tone: "bad",
      detail:
        state.startAt === undefined
          ? `down ${secs(now - state.crashAt)}, start in ${secs(state.crashAt + options.outageForMillis - now)}`
          : `down ${secs(now - state.crashAt)}, starting…`
    }
  }
  if (state.firstOkAfterCrash === undefined) {
    return { label: "recovering", tone: "info", detail: `database back for ${formatMillis(now - state.upAt)}` }
  }
  return { label: "steady", tone: "good", detail: "riding on after the outage" }
}

/** After the kill: no primary, the promotion, the pool finding the new primary, and on from there. */
const failoverPhase = (state: RunState, now: number): Phase => {
  const crashAt = state.crashAt ?? now
  if (state.startAt === undefined) {
    return {
      label: "PRIMARY DOWN",
      tone: "bad",
      detail: `no primary for ${secs(now - crashAt)}, promotion in ${secs(crashAt + state.options.outageForMillis - now)}`
    }
  }
  if (state.upAt === undefined) {
    return { label: "PROMOTING", tone: "bad", detail: `no primary for ${secs(now - crashAt)}, pg_ctl promote…` }
  }
  if (state.firstOkAfterCrash === undefined) {
    return { label: "failing over", tone: "info", detail: `new primary up for ${formatMillis(now - state.upAt)}` }
  }
  return { label: "steady", tone: "good", detail: "serving from the new primary" }
}

/** `127.0.0.1:5432 primary down 0 sessions (3 failures)  127.0.0.1:5433 primary up 10 sessions` */
const hostsText = (hosts: Figures["hosts"], p: Paint): string =>
  hosts
    .map((h) => {
      const text = `${h.label} ${h.role} ${h.up ? "up" : "down"} ${h.sessions} sessions`
      return h.up ? text : p.tone("bad", `${text} (${h.failures} failures in a row)`)
    })
    .join("   ")

const statusTone = (status: string): Tone => (status === "healthy" ? "good" : status === "degraded" ? "info" : "bad")

const SPARKS = "▁▂▃▄▅▆▇█"

/** One character per second of the run: successful queries per second, `·` for a second without any. */
const sparkline = (
  state: RunState,
  p: Paint
): { readonly line: string; readonly marks: string; readonly max: number } => {
  const perSecond = state.perSecond()
  const done = Math.floor(state.elapsed() / 1000)
  const seconds = Math.ceil(state.options.durationMillis / 1000)
  const max = Math.max(1, ...perSecond.slice(0, done).map((n) => n ?? 0))
  let line = ""
  let marks = ""
  for (let s = 0; s < seconds; s++) {
    const n = perSecond[s] ?? 0
    line +=
      s >= done
        ? " "
        : n === 0
          ? p.tone("bad", "·")
          : SPARKS[Math.min(SPARKS.length - 1, Math.floor((n / max) * (SPARKS.length - 1)))]
    const crash = state.crashAt !== undefined && Math.floor(state.crashAt / 1000) === s
    const up = state.upAt !== undefined && Math.floor(state.upAt / 1000) === s
    marks += up ? p.tone("good", "▲") : crash ? p.tone("bad", "▼") : " "
  }
  return { line, marks, max }
}

export interface Snapshot {
  readonly state: RunState
  readonly stats: Figures
  readonly health: HealthView
}

const failuresText = (state: RunState, p: Paint): string => {
  if (state.failures.size === 0) return p.dim("none")
  return [...state.failures.entries()].map(([kind, { count }]) => p.tone("bad", `${int(count)} × ${kind}`)).join("  ")
}

const eventLine = (event: Event, p: Paint) => `${p.dim(secs(event.at).padStart(7))}  ${p.tone(event.tone, event.text)}`

export const frame = ({ health, state, stats }: Snapshot, header: ReadonlyArray<string>, p: Paint): Array<string> => {
  const now = state.elapsed()
  const ph = phase(state)
  const total = state.options.durationMillis
  const barWidth = 20
  const filled = Math.min(barWidth, Math.round((now / total) * barWidth))
  const reason = health.reason ?? ""
  const spark = sparkline(state, p)
  const lines = [
    ...header,
    "",
    `  elapsed   ${pad(`${secs(now)} of ${secs(total)}`, 16)} ${"█".repeat(filled)}${p.dim("░".repeat(barWidth - filled))}   ` +
      `${p.bold(p.tone(ph.tone, ph.label))}  ${p.dim(ph.detail)}`,
    `  health    ${p.bold(p.tone(statusTone(health.status), health.status.toUpperCase()))}  ${reason}`,
    `  database  last probe ${
      health.reachable ? "reachable" : p.tone("bad", "unreachable")
    }${health.latencyMs === undefined ? "" : `, round trip ${formatMillis(health.latencyMs)}`}${
      health.probedAt === undefined ? "" : p.dim(` (${secs(Date.now() - health.probedAt)} ago)`)
    }`,
    `  pool      total ${stats.total}  idle ${stats.idle}  active ${stats.active}  pending ${stats.pending}  ` +
      `waiting ${stats.waiting}   ${p.dim(`(min ${stats.minSize}, max ${stats.maxSize}, peak waiting ${stats.peakWaiting})`)}`,
    ...(stats.hosts.length === 0 ? [] : [`  hosts     ${hostsText(stats.hosts, p)}`]),
    `  queries   ${p.bold(`${int(state.rate())}/s`)}  ok ${p.tone("good", int(state.ok))}  ` +
      `failed ${state.failedTotal === 0 ? "0" : p.tone("bad", int(state.failedTotal))}  in flight ${state.inFlight}  ` +
      p.dim(`(SqlClient ${int(state.okViaSqlClient)}, Db.withConnection ${int(state.okViaWithConnection)})`),
    `  failures  ${failuresText(state, p)}`,
    `  acquire   p99 ${formatMillis(stats.acquisitionTimeP99Ms)}  avg ${formatMillis(stats.acquisitionTimeAvgMs)}  ` +
      `timeouts ${stats.acquireTimeouts}   reconnect attempts ${stats.reconnectAttempts}   ` +
      `connections created ${stats.connectionsCreated}, broken ${stats.connectionsClosedBroken}`,
    `  q/s       ${spark.line}  ${p.dim(`max ${int(spark.max)}/s`)}`,
    `            ${spark.marks}`,
    "  events",
    ...state.events.slice(-5).map((event) => `  ${eventLine(event, p)}`)
  ]
  return lines
}

export const statusLine = ({ health, state, stats }: Snapshot): string =>
  `[${secs(state.elapsed()).padStart(7)}] ${pad(phase(state).label, 13)} ${pad(health.status, 9)} ` +
  `pool total ${stats.total} idle ${stats.idle} active ${stats.active} pending ${stats.pending} ` +
  `waiting ${pad(String(stats.waiting), 4)} | ${pad(`${int(state.rate())}/s`, 8)} ok ${int(state.ok)} ` +
  `failed ${int(state.failedTotal)} | acquire p99 ${formatMillis(stats.acquisitionTimeP99Ms)} | ` +
  `reconnects ${stats.reconnectAttempts}` +
  (stats.hosts.length === 0
    ? ""
    : ` | ${stats.hosts.map((h) => `${h.label} ${h.role} ${h.up ? "up" : "down"} ${h.sessions}`).join(", ")}`)

/**
 * Shows the run until the scope closes: on a terminal a frame redrawn every 250 ms, elsewhere a status line per
 * second and each event as it happens. Closing draws the final state and gives the cursor back.
 */
export const show = (state: RunState, pool: Pool, header: ReadonlyArray<string>, out: Output) =>
  Effect.gen(function* () {
    const p = paint(out)
    const snapshot = Effect.sync((): Snapshot => ({ state, stats: pool.statistics(), health: pool.health() }))
    let drawn = 0
    let eventsShown = 0
    let lastStatus = -1
    const draw = (snap: Snapshot, final: boolean) => {
      if (out.live) {
        const width = process.stdout.columns || 120
        let text = drawn > 0 ? `${ESC}[${drawn}A\r` : ""
        const lines = frame(snap, header, p)
        for (const line of lines) text += `${ESC}[2K${fit(line, width)}\n`
        process.stdout.write(`${text}${ESC}[J`)
        drawn = lines.length
        return
      }
      if (drawn === 0) {
        process.stdout.write(`${header.join("\n")}\n`)
        drawn = 1
      }
      for (const event of state.events.slice(eventsShown)) process.stdout.write(`${eventLine(event, p)}\n`)
      eventsShown = state.events.length
      const second = Math.floor(state.elapsed() / 1000)
      if (second !== lastStatus || final) {
        lastStatus = second
        process.stdout.write(`${statusLine(snap)}\n`)
      }
    }
    if (out.live) process.stdout.write(`${ESC}[?25l`)
    yield* Effect.addFinalizer((exit) =>
      Effect.gen(function* () {
        draw(yield* snapshot, true)
        if (out.live) process.stdout.write(`${ESC}[?25h`)
        if (Exit.isInterrupted(exit)) {
          process.stdout.write("\nInterrupted: stopping the workers and shutting the pool down…\n")
        }
      })
    )
    yield* Effect.forkScoped(
      snapshot.pipe(
        Effect.map((snap) => draw(snap, false)),
        Effect.repeat(Schedule.spaced(out.live ? "250 millis" : "100 millis"))
      )
    )
  })

// -----------------------------------------------------------------------------------------------------------
// the summary
// -----------------------------------------------------------------------------------------------------------

export interface Report {
  readonly state: RunState
  readonly stats: Figures
  readonly leak: LeakCheck
  readonly shutdownMillis: number
  readonly sessionsLeft: number | string
  readonly violations: ReadonlyArray<string>
}

const row = (label: string, value: string) => `  ${pad(label, 22)}${value}`

/** The failover drill's figures: how long no node took writes, and how long the callers went without a success. */
const failoverRows = (state: RunState, crashAt: number, upAt: number, p: Paint): Array<string> => {
  const lines = [
    row(
      "no primary",
      `${p.bold(formatMillis(upAt - crashAt))}   ${p.dim(
        `(kill at ${secs(crashAt)}, the promoted standby accepting writes at ${secs(upAt)}; ` +
          `promotion took ${formatMillis(upAt - (state.startAt ?? upAt))})`
      )}`
    )
  ]
  if (state.firstOkAfterCrash === undefined) {
    lines.push(row("new primary", p.tone("bad", "no successful query on the new primary")))
    return lines
  }
  const recovery = state.firstOkAfterCrash - upAt
  lines.push(
    row(
      "first success",
      (recovery <= 0
        ? `${p.bold("0 ms")}   on the new primary ${formatMillis(-recovery)} before promote() returned`
        : `${p.bold(formatMillis(recovery))}   from the promotion to the first successful query on the new primary`) +
        `   ${recovery <= 1000 ? p.tone("good", "✓ goal ≤ 1 s") : p.tone("bad", "✗ goal ≤ 1 s")}`
    )
  )
  if (state.lastOkBeforeCrash !== undefined) {
    lines.push(
      row(
        "downtime for callers",
        `${p.bold(formatMillis(state.firstOkAfterCrash - state.lastOkBeforeCrash))}   ` +
          p.dim("from the last successful query before the kill to the first one after")
      )
    )
  }
  return lines
}

export const summary = (report: Report, p: Paint): Array<string> => {
  const { leak, state, stats } = report
  const ranFor = state.stoppingAt ?? state.elapsed()
  const lines = [
    "",
    p.bold("Summary"),
    row(
      "queries ok",
      `${p.tone("good", int(state.ok))}   ${int(state.ok / (ranFor / 1000))}/s on average   ` +
        p.dim(`(SqlClient ${int(state.okViaSqlClient)}, Db.withConnection ${int(state.okViaWithConnection)})`)
    ),
    row("queries failed", state.failedTotal === 0 ? "0" : p.tone("bad", int(state.failedTotal)))
  ]
  for (const [kind, { count, sample }] of state.failures) {
    lines.push(row("", `${int(count)} × ${kind}  ${p.dim(`e.g. "${sample.split("; ")[0]!.slice(0, 120)}"`)}`))
  }
  const failover = state.failover !== undefined
  if (state.outage !== undefined && state.crashAt !== undefined) {
    const [crash, down, back] = failover
      ? ["kill", "with no primary", "after the promotion"]
      : ["crash", "while down", "after the return"]
    lines.push(
      row(
        "failures by phase",
        `before the ${crash} ${state.failedBeforeOutage}, ${down} ${state.failedDuringOutage} ` +
          `(${state.connectionsAtCrash} connections open at the ${crash}, ${state.activeAtCrash} busy` +
          (state.statementsPerConnection > 1 ? `, up to ${state.statementsPerConnection} statements each` : "") +
          "), " +
          `${back} ${state.failedAfterReturn}`
      )
    )
  }
  if (state.outage === undefined) {
    lines.push(row("outage", p.dim("none in this run")))
  } else if (failover && state.upAt !== undefined && state.crashAt !== undefined) {
    lines.push(...failoverRows(state, state.crashAt, state.upAt, p))
  } else if (state.upAt !== undefined && state.crashAt !== undefined) {
    lines.push(
      row(
        "downtime",
        `${p.bold(formatMillis(state.upAt - state.crashAt))}   ${p.dim(
          `(crash at ${secs(state.crashAt)}, accepting sessions again at ${secs(state.upAt)}; ` +
            `start took ${formatMillis(state.upAt - (state.startAt ?? state.upAt))})`
        )}`
      )
    )
    if (state.firstOkAfterCrash === undefined) {
      lines.push(row("recovery", p.tone("bad", "no successful query after the database's return")))
    } else {
      const recovery = state.firstOkAfterCrash - state.upAt
      lines.push(
        row(
          "recovery",
          (recovery <= 0
            ? `${p.bold("0 ms")}   the first query succeeded ${formatMillis(-recovery)} before start() returned`
            : `${p.bold(formatMillis(recovery))}   from the database's return to the first successful query`) +
            p.dim(
              ` (${formatMillis(state.firstOkAfterCrash - (state.startAt ?? state.upAt))} after start() was called)`
            ) +
            `   ${recovery <= 1000 ? p.tone("good", "✓ goal ≤ 1 s") : p.tone("bad", "✗ goal ≤ 1 s")}`
        )
      )
    }
  } else if (state.outageError !== undefined) {
    lines.push(row("outage", p.tone("bad", state.outageError)))
  }
  if (stats.hosts.length > 0) lines.push(row("sessions per host", hostsText(stats.hosts, p)))
  lines.push(
    row(
      "pool",
      `reconnect attempts ${stats.reconnectAttempts}, connections created ${stats.connectionsCreated}, ` +
        `closed as broken ${stats.connectionsClosedBroken}, acquire p99 ${formatMillis(stats.acquisitionTimeP99Ms)}, ` +
        `acquire timeouts ${stats.acquireTimeouts}, peak waiting ${stats.peakWaiting}`
    ),
    row(
      "leaked connections",
      `${leak.leaked === 0 && typeof leak.serverSessions === "number" ? p.tone("good", "0") : p.tone("bad", String(leak.leaked))}   ` +
        p.dim(
          `(active ${leak.active}, waiting ${leak.waiting}; ` +
            (typeof leak.serverSessions === "number"
              ? `pg_stat_activity has ${leak.serverSessions} sessions named "${leak.applicationName}", ` +
                `the pool counts ${leak.total})`
              : `server side not checked: ${leak.serverSessions})`)
        )
    ),
    row(
      "shutdown",
      `graceful in ${formatMillis(report.shutdownMillis)}; sessions left on the server: ${
        report.sessionsLeft === 0 ? "0" : p.tone("bad", String(report.sessionsLeft))
      }`
    ),
    ""
  )
  if (report.violations.length === 0) {
    const timeouts = [...state.failures.entries()]
      .filter(([kind]) => kind.startsWith("AcquireTimeout"))
      .reduce((sum, [, { count }]) => sum + count, 0)
    lines.push(
      p.tone(
        "good",
        state.outage === undefined
          ? "✓ no failures, no leaks"
          : failover
            ? "✓ the pool failed over: only the queries in flight at the kill failed, every session is on the new " +
              "primary and none on the old role, nothing leaked" +
              (timeouts === 0 ? "" : ` (and ${timeouts} callers waited longer than acquireTimeout)`)
            : timeouts === 0
              ? "✓ the pool rode through the outage: only the queries in flight at the crash failed, nothing leaked"
              : `✓ the pool rode through the outage: besides the queries in flight at the crash, only the ${timeouts} ` +
                "callers that waited longer than acquireTimeout failed (the outage outlasted it); nothing leaked"
      )
    )
  } else {
    lines.push(p.tone("bad", "✗ invariants broken:"))
    for (const violation of report.violations) lines.push(p.tone("bad", `  - ${violation}`))
  }
  return lines
}
