/**
 * The outage drill: workers loop on a small query mix through the pool while a timeline crashes the database
 * and starts it again — or, in the failover drill, kills the primary and promotes the standby. Everything the
 * view and the summary show is tallied here.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Random, Redacted, type Scope } from "effect"
import type { Options } from "./Cli.js"
import type { Figures, Pool, Query } from "./Edition.js"
import type { Failover, OutageControl } from "./Target.js"

export type Tone = "good" | "bad" | "info"

export interface Event {
  /** Milliseconds since the run started. */
  readonly at: number
  readonly text: string
  readonly tone: Tone
}

export interface FailureKind {
  count: number
  /** The first message seen of this kind. */
  readonly sample: string
}

/** Buckets of successful queries, for the rate and the sparkline. */
export const BUCKET_MILLIS = 100

/**
 * The run's tallies. JavaScript runs one fiber at a time, so plain counters updated synchronously are exact.
 */
export class RunState {
  readonly startedAt = performance.now()
  ok = 0
  okViaSqlClient = 0
  okViaWithConnection = 0
  inFlight = 0
  readonly failures = new Map<string, FailureKind>()
  failedBeforeOutage = 0
  failedDuringOutage = 0
  failedAfterReturn = 0
  readonly okBuckets: Array<number> = []
  readonly events: Array<Event> = []
  /** Set when the run's time is up: workers finish their current query and stop. */
  stopping = false
  stoppingAt: number | undefined = undefined

  // the outage, in milliseconds since the start; in the failover drill the crash is the primary's kill, the
  // start the standby's promotion, and "up" the new primary accepting writes
  crashAt: number | undefined = undefined
  stoppedAt: number | undefined = undefined
  startAt: number | undefined = undefined
  upAt: number | undefined = undefined
  firstOkAfterCrash: number | undefined = undefined
  connectionsAtCrash: number | undefined = undefined
  /** 1, or the statement slots of a multiplexed session: the queries one broken connection can fail. */
  statementsPerConnection = 1
  activeAtCrash: number | undefined = undefined
  outageError: string | undefined = undefined
  /** The last success before the crash: the callers' gap runs from it to the first success after. */
  lastOkBeforeCrash: number | undefined = undefined
  /**
   * Failover drill: successes after the primary died and before the promotion began, when no node accepted
   * writes — a read-write pool that served them had a session on the standby.
   */
  okWithNoPrimary = 0

  constructor(
    readonly options: Options,
    readonly outage: OutageControl | undefined,
    readonly failover: Failover | undefined
  ) {}

  elapsed(): number {
    return performance.now() - this.startedAt
  }

  event(text: string, tone: Tone): void {
    this.events.push({ at: this.elapsed(), text, tone })
  }

  succeeded(path: "sql" | "withConnection"): void {
    const now = this.elapsed()
    this.ok++
    if (path === "sql") this.okViaSqlClient++
    else this.okViaWithConnection++
    const bucket = Math.floor(now / BUCKET_MILLIS)
    this.okBuckets[bucket] = (this.okBuckets[bucket] ?? 0) + 1
    if (this.crashAt === undefined) this.lastOkBeforeCrash = now
    if (this.failover !== undefined && this.stoppedAt !== undefined && this.startAt === undefined) {
      this.okWithNoPrimary++
      return
    }
    if (this.stoppedAt !== undefined && this.firstOkAfterCrash === undefined) {
      this.firstOkAfterCrash = now
      this.event(
        this.failover !== undefined
          ? this.upAt === undefined
            ? `✓ first successful query, on the new primary ${this.failover.newPrimary} before promote() returned`
            : `✓ first successful query ${formatMillis(now - this.upAt)} after the promotion, on the new primary`
          : this.upAt === undefined
            ? "✓ first successful query, before start() had even returned"
            : `✓ first successful query ${formatMillis(now - this.upAt)} after the database's return`,
        "good"
      )
    }
  }

  failed(kind: string, message: string): void {
    const existing = this.failures.get(kind)
    if (existing === undefined) this.failures.set(kind, { count: 1, sample: message })
    else existing.count++
    if (this.crashAt === undefined) this.failedBeforeOutage++
    else if (this.upAt === undefined) this.failedDuringOutage++
    else this.failedAfterReturn++
  }

  get failedTotal(): number {
    let total = 0
    for (const kind of this.failures.values()) total += kind.count
    return total
  }

  /** Successful queries in the last second (the buckets that make it up, the current partial one left out). */
  rate(): number {
    const current = Math.floor(this.elapsed() / BUCKET_MILLIS)
    let sum = 0
    for (let b = current - 1000 / BUCKET_MILLIS; b < current; b++) sum += this.okBuckets[b] ?? 0
    return sum
  }

  /** Successful queries in each whole second of the run. */
  perSecond(): Array<number> {
    const seconds: Array<number> = []
    const perSecond = 1000 / BUCKET_MILLIS
    for (let b = 0; b < this.okBuckets.length; b++) {
      const s = Math.floor(b / perSecond)
      seconds[s] = (seconds[s] ?? 0) + (this.okBuckets[b] ?? 0)
    }
    return seconds
  }
}

export const formatMillis = (millis: number): string =>
  millis < 10
    ? `${millis.toFixed(1)} ms`
    : millis < 1000
      ? `${Math.round(millis)} ms`
      : `${(millis / 1000).toFixed(2)} s`

// -----------------------------------------------------------------------------------------------------------
// the workload
// -----------------------------------------------------------------------------------------------------------

/** Runs one query of the mix and tallies it. Interruption (the end of the run, Ctrl-C) is neither. */
const tracked = (state: RunState, pool: Pool, query: Query, worker: number) =>
  Effect.suspend(() => {
    state.inFlight++
    return Effect.promise((signal) => pool.run(query, worker, signal)).pipe(
      Effect.ensuring(Effect.sync(() => state.inFlight--)),
      Effect.flatMap((outcome) => {
        if (outcome._tag === "Ok") {
          return Effect.sync(() => state.succeeded(query === "session" ? "withConnection" : "sql"))
        }
        if (outcome._tag === "Interrupted") return Effect.interrupt
        state.failed(outcome.kind, outcome.message)
        // a failing client backs off a little instead of spinning
        return Effect.sleep("50 millis")
      })
    )
  })

const worker = (state: RunState, pool: Pool, id: number) =>
  Effect.gen(function* () {
    while (!state.stopping) {
      const roll = yield* Random.nextIntBetween(0, 100)
      yield* tracked(state, pool, roll < 40 ? "sleep" : roll < 70 ? "insert" : roll < 80 ? "count" : "session", id)
    }
  })

/** Forks the workers; they stop on their own once `state.stopping` is set. */
export const startWorkers = (state: RunState, pool: Pool) =>
  Effect.forkScoped(
    Effect.forEach(
      Array.from({ length: state.options.workers }, (_, i) => i + 1),
      (id) => worker(state, pool, id),
      { concurrency: "unbounded", discard: true }
    )
  )

// -----------------------------------------------------------------------------------------------------------
// the outage
// -----------------------------------------------------------------------------------------------------------

/** The timeline's words: the outage drill's, or the failover drill's. */
const timelineText = (failover: Failover | undefined) =>
  failover === undefined
    ? {
        crash: "crashing the database",
        stopVerb: "stop",
        stopped: "the database",
        down: "database down",
        starting: "starting the database again",
        startVerb: "start",
        started: "the database again",
        up: "database accepting sessions again",
        downtime: "down"
      }
    : {
        crash: `killing the primary ${failover.oldPrimary}`,
        stopVerb: "kill",
        stopped: "the primary",
        down: "primary dead: no node accepts writes",
        starting: `promoting the standby ${failover.newPrimary} (pg_ctl promote)`,
        startVerb: "promote",
        started: "the standby",
        up: `${failover.newPrimary} is the new primary: it accepts writes`,
        downtime: "no primary for"
      }

/**
 * Warm-up, crash, down time, start: the outage as the timeline of the run. In the failover drill: warm-up, the
 * primary killed, the standby promoted.
 */
export const outageTimeline = (state: RunState, pool: Pool, control: OutageControl) =>
  Effect.gen(function* () {
    const text = timelineText(state.failover)
    yield* Effect.sleep(Duration.millis(Math.max(0, state.options.outageAfterMillis - state.elapsed())))
    const stats = pool.statistics()
    state.connectionsAtCrash = stats.total
    state.activeAtCrash = stats.active
    state.crashAt = state.elapsed()
    state.event(
      `▼ ${text.crash} (${control.stopDescription}): ${stats.total} connections open, ${stats.active} busy`,
      "bad"
    )
    const stopped = yield* Effect.either(control.stop)
    if (stopped._tag === "Left") {
      state.outageError = `could not ${text.stopVerb} ${text.stopped}: ${stopped.left.message}`
      return state.event(`✗ ${state.outageError}`, "bad")
    }
    state.stoppedAt = state.elapsed()
    state.event(`  ${text.down} (${text.stopVerb} took ${formatMillis(state.stoppedAt - state.crashAt)})`, "bad")
    yield* Effect.sleep(Duration.millis(Math.max(0, state.options.outageForMillis - (state.elapsed() - state.crashAt))))
    state.startAt = state.elapsed()
    state.event(`  ${text.starting}`, "info")
    const started = yield* Effect.either(control.start)
    if (started._tag === "Left") {
      state.outageError = `could not ${text.startVerb} ${text.started}: ${started.left.message}`
      return state.event(`✗ ${state.outageError}`, "bad")
    }
    state.upAt = state.elapsed()
    state.event(
      `▲ ${text.up} (${text.startVerb} took ${formatMillis(state.upAt - state.startAt)}, ` +
        `${text.downtime} ${formatMillis(state.upAt - state.crashAt)} in all)`,
      "good"
    )
  })

// -----------------------------------------------------------------------------------------------------------
// leaks
// -----------------------------------------------------------------------------------------------------------

export interface LeakCheck {
  readonly active: number
  readonly waiting: number
  readonly total: number
  /** Sessions with the pool's application_name in pg_stat_activity, or why they could not be counted. */
  readonly serverSessions: number | string
  readonly applicationName: string
  /** Connections unaccounted for: still checked out, or open on the server but unknown to the pool. */
  readonly leaked: number
}

const withoutApplicationName = (url: Redacted.Redacted<string>): Redacted.Redacted<string> => {
  try {
    const parsed = new URL(Redacted.value(url))
    parsed.searchParams.delete("application_name")
    return Redacted.make(parsed.toString())
  } catch {
    // not a URL that `URL` parses: the pool would not have started on it either
    return url
  }
}

/**
 * A separate client, outside the pool and on Effect 3's @effect/sql-pg whatever the edition, to see what the server
 * sees. Its URL is the pool's without an `application_name` parameter, which would override this client's (pg lets
 * a connection string win over fields), so the check would count itself among the pool's sessions.
 */
export const makeServerView = (
  url: Redacted.Redacted<string>
): Effect.Effect<(applicationName: string) => Effect.Effect<number, string>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const client = yield* PgClient.make({
      url: withoutApplicationName(url),
      applicationName: "effect-pg-pool-demo-check",
      maxConnections: 1,
      minConnections: 0,
      connectTimeout: "5 seconds"
    }).pipe(Effect.provide(Reactivity.layer), Effect.either)
    return (applicationName: string) =>
      client._tag === "Left"
        ? Effect.fail(`a separate client could not connect: ${client.left.message}`)
        : client.right<{ readonly n: number }>`
            SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${applicationName}
          `.pipe(
            Effect.map((rows) => rows[0]?.n ?? 0),
            Effect.timeout("5 seconds"),
            Effect.mapError((error) => `the pg_stat_activity query failed: ${error.message}`)
          )
  })

/**
 * After the workers are done: waits for the pool to settle (a background health probe may hold a connection for a
 * moment; closed sessions take a moment to leave pg_stat_activity), then compares the pool's count with the server's.
 */
export const checkLeaks = (pool: Pool, serverSessions: (applicationName: string) => Effect.Effect<number, string>) =>
  Effect.gen(function* () {
    const applicationName = pool.info.applicationName
    let check: LeakCheck | undefined
    for (let attempt = 0; attempt < 40; attempt++) {
      if (attempt > 0) yield* Effect.sleep("250 millis")
      const before = pool.statistics()
      const counted = yield* Effect.either(serverSessions(applicationName))
      const stats = pool.statistics()
      const server = counted._tag === "Right" ? counted.right : counted.left
      const settled = before.total === stats.total && stats.pending === 0
      const mismatch = typeof server === "number" ? Math.abs(server - stats.total) : 0
      check = {
        active: stats.active,
        waiting: stats.waiting,
        total: stats.total,
        serverSessions: server,
        applicationName,
        leaked: stats.active + stats.waiting + mismatch
      }
      if (typeof server === "string") return check
      if (settled && check.leaked === 0) return check
    }
    return check!
  })

/** Sessions left on the server after the pool shut down; they take a moment to disappear. */
export const sessionsAfterShutdown = (
  serverSessions: (applicationName: string) => Effect.Effect<number, string>,
  applicationName: string
) =>
  Effect.gen(function* () {
    let left: number | string = "not checked"
    for (let attempt = 0; attempt < 20; attempt++) {
      if (attempt > 0) yield* Effect.sleep("100 millis")
      const counted = yield* Effect.either(serverSessions(applicationName))
      left = counted._tag === "Right" ? counted.right : counted.left
      if (left === 0 || typeof left === "string") return left
    }
    return left
  })

// -----------------------------------------------------------------------------------------------------------
// the verdict
// -----------------------------------------------------------------------------------------------------------

/**
 * What the failover drill adds, from the pool's per-host statistics after the workers stopped: nothing was served
 * while no node accepted writes, and no session is left on a node that is not the primary — none on the old
 * primary, every one on the promoted standby, which the pool now sees as the primary.
 */
const failoverViolations = (state: RunState, failover: Failover, stats: Figures): Array<string> => {
  const found: Array<string> = []
  if (state.okWithNoPrimary > 0) {
    found.push(
      `${state.okWithNoPrimary} queries succeeded while no node accepted writes (after the kill, before the ` +
        "promotion): the read-write pool had a session on the standby"
    )
  }
  const oldPrimary = stats.hosts.find((h) => h.label === failover.oldPrimary)
  const newPrimary = stats.hosts.find((h) => h.label === failover.newPrimary)
  if (oldPrimary === undefined || newPrimary === undefined) {
    found.push(`the pool's statistics do not list both hosts (${stats.hosts.map((h) => h.label).join(", ") || "none"})`)
    return found
  }
  if (oldPrimary.sessions > 0) found.push(`${oldPrimary.sessions} sessions left on the old primary ${oldPrimary.label}`)
  for (const host of stats.hosts) {
    if (host.sessions > 0 && host.role !== "primary") {
      found.push(`${host.sessions} sessions left on ${host.label}, whose role is ${host.role}, in a read-write pool`)
    }
  }
  if (newPrimary.role !== "primary") found.push(`the pool sees the promoted ${newPrimary.label} as ${newPrimary.role}`)
  if (newPrimary.sessions !== stats.total) {
    found.push(`the new primary holds ${newPrimary.sessions} of the pool's ${stats.total} sessions`)
  }
  return found
}

/**
 * What must hold after the run: queries fail only when they were running on a connection the crash broke (each
 * open connection can fail at most the one query it carried), callers that wait out an outage shorter than
 * acquireTimeout are served, the pool recovers, and no connection leaks — neither before nor after shutdown.
 */
export const violations = (
  state: RunState,
  leak: LeakCheck,
  sessionsLeft: number | string,
  acquireTimeoutMillis: number,
  stats: Figures
): Array<string> => {
  const found: Array<string> = []
  if (state.failover !== undefined) found.push(...failoverViolations(state, state.failover, stats))
  if (state.ok === 0) found.push("no query succeeded")
  const defects = state.failures.get("defect")?.count ?? 0
  if (defects > 0) found.push(`${defects} queries died of a defect other than a SqlError`)
  if (state.failedBeforeOutage > 0) found.push(`${state.failedBeforeOutage} queries failed with the database up`)
  if (state.failedAfterReturn > 0) {
    found.push(`${state.failedAfterReturn} queries failed after the database had returned`)
  }
  if (state.outage !== undefined) {
    if (state.outageError !== undefined) found.push(state.outageError)
    else if (state.upAt === undefined) found.push("the outage did not complete")
    else if (state.firstOkAfterCrash === undefined) {
      found.push(
        state.failover === undefined
          ? "no query succeeded after the database returned"
          : "no query succeeded on the new primary after the promotion"
      )
    }
    if (state.crashAt !== undefined && state.upAt !== undefined) {
      const timeouts = [...state.failures.entries()]
        .filter(([kind]) => kind.startsWith("AcquireTimeout"))
        .reduce((sum, [, { count }]) => sum + count, 0)
      const downtime = state.upAt - state.crashAt
      const allowedTimeouts = downtime >= acquireTimeoutMillis ? timeouts : 0
      const inFlight = state.failedDuringOutage - allowedTimeouts
      if (timeouts > allowedTimeouts) {
        found.push(
          `${timeouts} acquisitions timed out although the outage (${formatMillis(downtime)}) was shorter than ` +
            `acquireTimeout (${formatMillis(acquireTimeoutMillis)})`
        )
      }
      const carried = (state.connectionsAtCrash ?? 0) * state.statementsPerConnection
      if (inFlight > carried) {
        found.push(
          `${inFlight} queries failed during the outage, more than the ${state.connectionsAtCrash} connections ` +
            `open at the ${state.failover === undefined ? "crash" : "kill"} could have carried (${carried})`
        )
      }
    }
  }
  if (typeof leak.serverSessions === "string") found.push(`the server-side check failed: ${leak.serverSessions}`)
  else if (leak.leaked > 0) {
    found.push(
      `${leak.leaked} connections leaked (active ${leak.active}, waiting ${leak.waiting}, pool total ${leak.total}, ` +
        `server sessions ${leak.serverSessions})`
    )
  }
  if (sessionsLeft !== 0) found.push(`sessions left on the server after shutdown: ${sessionsLeft}`)
  return found
}
