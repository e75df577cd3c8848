/**
 * The outage drill: workers loop on a small query mix through the pool while a timeline crashes the database
 * and starts it again. Everything the view and the summary show is tallied here.
 */
import { Db } from "@effect-pg-pool/effect3"
import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Cause, Duration, Effect, Option, Predicate, Random, type Scope } from "effect"
import type { Options } from "./Cli.js"
import type { OutageControl } from "./Target.js"

export const TABLE = "effect_pg_pool_demo"

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

  // the outage, in milliseconds since the start
  crashAt: number | undefined = undefined
  stoppedAt: number | undefined = undefined
  startAt: number | undefined = undefined
  upAt: number | undefined = undefined
  firstOkAfterCrash: number | undefined = undefined
  connectionsAtCrash: number | undefined = undefined
  activeAtCrash: number | undefined = undefined
  outageError: string | undefined = undefined

  constructor(
    readonly options: Options,
    readonly outage: OutageControl | undefined
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
    if (this.stoppedAt !== undefined && this.firstOkAfterCrash === undefined) {
      this.firstOkAfterCrash = now
      this.event(
        this.upAt === undefined
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
// failures
// -----------------------------------------------------------------------------------------------------------

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

const firstLine = (text: string) => text.split("\n")[0] ?? text

/** Groups a failure by its tag, and a SqlError further by what lies beneath it. */
export const classify = (cause: Cause.Cause<unknown>): { readonly kind: string; readonly message: string } => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) {
    const defect = Cause.squash(cause)
    // @effect/sql's withTransaction dies when its COMMIT or ROLLBACK fails, e.g. on a connection the crash broke
    if (Predicate.isTagged(defect, "SqlError")) {
      const { kind, message } = classify(Cause.fail(defect))
      return { kind: `${kind}, as a defect from withTransaction`, message }
    }
    return { kind: "defect", message: firstLine(Cause.pretty(cause)) }
  }
  const error = failure.value
  const message = error instanceof Error ? error.message : String(error)
  if (!Predicate.isTagged(error, "SqlError")) {
    return { kind: Predicate.hasProperty(error, "_tag") ? String(error._tag) : "unknown", message }
  }
  const inner = (error as { readonly cause?: unknown }).cause
  // the pooled SqlClient wraps the pool's own errors in a SqlError
  if (Predicate.isTagged(inner, "AcquireTimeout") || Predicate.isTagged(inner, "PoolClosed")) {
    return { kind: `${inner._tag} (as SqlError)`, message }
  }
  const code = Predicate.hasProperty(inner, "code") ? inner.code : undefined
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) {
    return { kind: `SqlError SQLSTATE ${code}${SQLSTATE_NAMES[code] ? ` ${SQLSTATE_NAMES[code]}` : ""}`, message }
  }
  if (/Connection lost/.test(message)) return { kind: "SqlError connection lost", message }
  return { kind: "SqlError", message }
}

// -----------------------------------------------------------------------------------------------------------
// the workload
// -----------------------------------------------------------------------------------------------------------

/** The demo table; a plain table with an index, as an application would have. */
export const setup = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS ${sql(TABLE)} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker int NOT NULL,
    note text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`
  yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${TABLE}_worker`)} ON ${sql(TABLE)} (worker)`
  const [row] = yield* sql<{ readonly version: string }>`SELECT current_setting('server_version') AS version`
  return row?.version ?? "unknown"
})

const workload = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const db = yield* Db.Db
  const table = sql(TABLE)
  return {
    // a short read
    sleep: sql`SELECT pg_sleep(0.002)`,
    // a write
    insert: (worker: number) => sql`INSERT INTO ${table} ${sql.insert({ worker, note: "via SqlClient" })}`,
    // an indexed aggregate
    count: (worker: number) =>
      sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${table} WHERE worker = ${worker}`,
    // a unit of work on one connection: a transaction that writes and reads back
    session: (worker: number) =>
      db.withConnection((conn) =>
        conn.withTransaction(
          Effect.zipRight(
            conn`INSERT INTO ${table} ${conn.insert({ worker, note: "via Db.withConnection" })}`,
            conn<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${table} WHERE worker = ${worker}`
          )
        )
      )
  }
})

/** Runs one query and tallies it. Interruption (the end of the run, Ctrl-C) is neither a success nor a failure. */
const tracked = <A, E, R>(state: RunState, path: "sql" | "withConnection", query: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    state.inFlight++
    return query.pipe(
      Effect.ensuring(Effect.sync(() => state.inFlight--)),
      Effect.matchCauseEffect({
        onSuccess: () => Effect.sync(() => state.succeeded(path)),
        onFailure: (cause) => {
          if (Cause.isInterruptedOnly(cause)) return Effect.interrupt
          const { kind, message } = classify(cause)
          state.failed(kind, message)
          // a failing client backs off a little instead of spinning
          return Effect.sleep("50 millis")
        }
      })
    )
  })

const worker = (state: RunState, id: number) =>
  Effect.gen(function* () {
    const q = yield* workload
    while (!state.stopping) {
      const roll = yield* Random.nextIntBetween(0, 100)
      if (roll < 40) yield* tracked(state, "sql", q.sleep)
      else if (roll < 70) yield* tracked(state, "sql", q.insert(id))
      else if (roll < 80) yield* tracked(state, "sql", q.count(id))
      else yield* tracked(state, "withConnection", q.session(id))
    }
  })

/** Forks the workers; they stop on their own once `state.stopping` is set. */
export const startWorkers = (state: RunState) =>
  Effect.forkScoped(
    Effect.forEach(
      Array.from({ length: state.options.workers }, (_, i) => i + 1),
      (id) => worker(state, id),
      { concurrency: "unbounded", discard: true }
    )
  )

// -----------------------------------------------------------------------------------------------------------
// the outage
// -----------------------------------------------------------------------------------------------------------

/** Warm-up, crash, down time, start: the outage as the timeline of the run. */
export const outageTimeline = (state: RunState, control: OutageControl) =>
  Effect.gen(function* () {
    const db = yield* Db.Db
    yield* Effect.sleep(Duration.millis(Math.max(0, state.options.outageAfterMillis - state.elapsed())))
    const stats = yield* db.statistics
    state.connectionsAtCrash = stats.total
    state.activeAtCrash = stats.active
    state.crashAt = state.elapsed()
    state.event(
      `▼ crashing the database (${control.stopDescription}): ${stats.total} connections open, ${stats.active} busy`,
      "bad"
    )
    const stopped = yield* Effect.either(control.stop)
    if (stopped._tag === "Left") {
      state.outageError = `could not stop the database: ${stopped.left.message}`
      return state.event(`✗ ${state.outageError}`, "bad")
    }
    state.stoppedAt = state.elapsed()
    state.event(`  database down (stop took ${formatMillis(state.stoppedAt - state.crashAt)})`, "bad")
    yield* Effect.sleep(Duration.millis(Math.max(0, state.options.outageForMillis - (state.elapsed() - state.crashAt))))
    state.startAt = state.elapsed()
    state.event("  starting the database again", "info")
    const started = yield* Effect.either(control.start)
    if (started._tag === "Left") {
      state.outageError = `could not start the database again: ${started.left.message}`
      return state.event(`✗ ${state.outageError}`, "bad")
    }
    state.upAt = state.elapsed()
    state.event(
      `▲ database accepting sessions again (start took ${formatMillis(state.upAt - state.startAt)}, ` +
        `down ${formatMillis(state.upAt - state.crashAt)} in all)`,
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

/** A separate client, outside the pool, to see what the server sees. */
export const makeServerView = (
  pool: PgClient.PgClientConfig
): Effect.Effect<(applicationName: string) => Effect.Effect<number, string>, never, Scope.Scope> =>
  Effect.gen(function* () {
    // The pool's own connection settings (db.sql.config), as one more plain @effect/sql-pg connection — without
    // the URL, which carries the pool's application_name and would override this client's (pg lets a connection
    // string win over fields), so the check would count itself among the pool's sessions.
    const { url: _url, ...settings } = pool
    const client = yield* PgClient.make({
      ...settings,
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
export const checkLeaks = (serverSessions: (applicationName: string) => Effect.Effect<number, string>) =>
  Effect.gen(function* () {
    const db = yield* Db.Db
    const applicationName = db.config.applicationName
    let check: LeakCheck | undefined
    for (let attempt = 0; attempt < 40; attempt++) {
      if (attempt > 0) yield* Effect.sleep("250 millis")
      const before = yield* db.statistics
      const counted = yield* Effect.either(serverSessions(applicationName))
      const stats = yield* db.statistics
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
 * What must hold after the run: queries fail only when they were running on a connection the crash broke (each
 * open connection can fail at most the one query it carried), callers that wait out an outage shorter than
 * acquireTimeout are served, the pool recovers, and no connection leaks — neither before nor after shutdown.
 */
export const violations = (
  state: RunState,
  leak: LeakCheck,
  sessionsLeft: number | string,
  acquireTimeoutMillis: number
): Array<string> => {
  const found: Array<string> = []
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
    else if (state.firstOkAfterCrash === undefined) found.push("no query succeeded after the database returned")
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
      if (inFlight > (state.connectionsAtCrash ?? 0)) {
        found.push(
          `${inFlight} queries failed during the outage, more than the ${state.connectionsAtCrash} connections ` +
            `open at the crash could have carried`
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
