/**
 * The Effect 3 edition's pool: a thin adapter that feeds the engine (`@effect-pg-pool/engine`, the sans-IO state
 * machine that makes every decision) its events and carries out the decisions it returns, on fibers, timers and
 * the pg driver (internal/connection.ts). The engine decides who gets which session, when to open, validate,
 * reset, recycle or close one, when to back off and when a recovery holds, when a caller times out and how
 * healthy the pool is; this module only waits for things (sockets, timers) and reports them.
 *
 * `dispatch` is the only caller of `engine.handle`: an event raised while decisions are being carried out is
 * queued and handled right after, in order, so the engine sees one event at a time.
 *
 * @internal
 */
import type { Engine } from "@effect-pg-pool/engine"
import { Classify, Engine as Engines, Hosts, IdTable, Messages, Pooler } from "@effect-pg-pool/engine"
import { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Tracer from "effect/Tracer"
import type * as Pg from "pg"
import type { PoolConfig } from "../PoolConfig.js"
import { redactText } from "../PoolConfig.js"
import type { HealthStatus } from "../Health.js"
import { AcquireTimeout, ConnectionRejected, DatabaseUnreachable, PoolClosed } from "../PoolError.js"
import { HostStatistics, type PoolStatistics } from "../PoolStatistics.js"
import * as Backoff from "./backoff.js"
import * as Connection from "./connection.js"
import * as MultiHost from "./hosts.js"
import { failAfter } from "./deadline.js"
import type { PoolMetrics } from "./metrics.js"
import { noopMetrics } from "./metrics.js"
import * as Observed from "./observed.js"
import * as Pipeline from "./pipeline.js"
import * as Wiring from "./poolOptions.js"
import * as Timer from "./timer.js"

type PooledConnection = Connection.PooledConnection
type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** @internal */
export interface PoolOptions {
  readonly config: PoolConfig
  readonly types?: Pg.CustomTypesConfig | undefined
  /** Runs on every new connection before first use, and again after a session reset. */
  readonly onConnect?: ((conn: PooledConnection) => Effect.Effect<void, unknown>) | undefined
  readonly metrics?: PoolMetrics | undefined
  /** Evaluated for each new connection instead of the configuration's static password. */
  readonly passwordProvider?: Connection.PasswordProvider | undefined
}

/** How often housekeeping runs (lifetimes, idle times, leaks, the minimum size). */
const housekeepingPeriodMillis = 1_000
/** How often the health probe runs. */
const healthProbePeriodMillis = 5_000
/** How long shutdown waits for the CancelRequests of what still ran when it cut the sessions. */
const cancelOnShutdownMillis = 1_000

const liveClockClass = Clock.make().constructor

/** What a statement acquisition is granted: a slot of a session's pipeline, and its name to hand it back. @internal */
export interface StatementSlot {
  readonly session: Pipeline.PipelinedSession
  readonly acquisition: Engine.AcquisitionId
}

const exclusiveGrant = (conn: PooledConnection): PooledConnection => conn

type Outcome = Exit.Exit<PooledConnection, AcquireTimeout | PoolClosed>

/**
 * A caller waiting for the engine's answer: a grant, or a failure. One record and one `Effect.async` per wait,
 * not a `Deferred` (whose construction copies Effect's whole prototype into a dictionary-mode object and whose
 * await registers an interruption canceler): an interrupted caller's late outcome is dropped by the fiber, and the
 * caller's `onExit` tells the engine.
 */
class Waiter {
  /** The session granted to it, until it has seen it (a grant can race an interruption). */
  conn: PooledConnection | undefined = undefined
  private resume: ((outcome: Outcome) => void) | undefined = undefined
  /** The outcome, when it came before the caller suspended. */
  private outcome: Outcome | undefined = undefined

  constructor(
    readonly startedAtPerf: number,
    readonly site: string | undefined
  ) {}

  settle(outcome: Outcome): void {
    if (this.resume !== undefined) this.resume(outcome)
    else this.outcome = outcome
  }

  readonly await: Effect.Effect<PooledConnection, AcquireTimeout | PoolClosed> = Effect.async((resume) => {
    if (this.outcome !== undefined) return resume(this.outcome)
    this.resume = resume
  })
}

/** @internal */
export class Pool {
  readonly name: string
  private readonly config: PoolConfig
  /** Read at every open (a test swaps it for one whose reading throws). */
  connectOptions: Connection.ConnectOptions
  private readonly queryHooks: Connection.QueryHooks
  private readonly metrics: PoolMetrics
  private readonly engine: Engine.Engine
  private readonly observed: Observed.Observed
  private readonly backoff: Backoff.Backoff

  /** Open sessions by the engine's name. */
  private readonly sessions = new Map<Engine.SessionId, PooledConnection>()
  /** The pipelined side of each session that ran a statement slot. */
  private readonly pipelines = new WeakMap<PooledConnection, Pipeline.PipelinedSession>()
  /** Callers waiting for the engine's answer (an `IdTable`: a `Map` churned by ever-growing ids makes garbage). */
  private readonly waiters = new IdTable.IdTable<Waiter>()
  /** Counts acquisitions; an id is twice the count, plus one for a statement slot (`isStatement`). */
  private acquisitionCount = 0
  /** The acquisition being requested synchronously: its grant is handed back without a Deferred. */
  private requesting = 0
  private grantedNow: PooledConnection | undefined = undefined
  private failedNow: AcquireTimeout | PoolClosed | undefined = undefined

  private readonly pendingEvents: Array<Engine.Event> = []
  private dispatching = false
  /** The event being handled is a reconnect step: the `Open` it leads to is that attempt. */
  private reconnectStep = false
  private reconnectAttempt: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  private reconnectFiber: Fiber.RuntimeFiber<void, never> | undefined = undefined
  /** Closes that send a CancelRequest first: shutdown waits for them. */
  private readonly cancelling = new Set<Fiber.RuntimeFiber<void, never>>()

  private readonly timer: Timer.Timer

  private initOutcome: Deferred.Deferred<void, DatabaseUnreachable | ConnectionRejected> | undefined = undefined
  private drained: Deferred.Deferred<void> | undefined = undefined
  private shutDown = false
  /** Per-host state when the pool has several hosts or a target_session_attrs: routing, health, evictions. */
  private readonly hosts: Hosts.Table | undefined
  /** A scout of the hosts table runs: the next tick does not start another. */
  private scouting = false
  /** What each engine failure was in the driver's words (remedy, the unredacted cause), for errors built later. */
  private readonly failures = new WeakMap<Engine.Failure, Connection.ConnectFailure>()

  // the gauges, updated when the engine's counts change
  private idleGauge = -1
  private usedGauge = -1
  private waitingGauge = 0

  constructor(
    options: PoolOptions,
    private readonly clock: Clock.Clock,
    readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>,
    private readonly onConnect: ((conn: PooledConnection) => Effect.Effect<void, unknown>) | undefined,
    // the minimum log level of the fibers `fork` runs (their FiberRefs are fixed when the pool is made)
    private readonly minimumLogLevel: LogLevel.LogLevel = LogLevel.All
  ) {
    this.onPerformanceClock = clock.constructor === liveClockClass
    this.monotonicMillis = this.onPerformanceClock
      ? () => performance.now()
      : () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
    const config = options.config
    this.config = config
    this.name = config.name
    this.metrics = options.metrics ?? noopMetrics
    this.connectOptions = Wiring.connectOptions(config, options.types, options.passwordProvider)
    this.queryHooks = {
      cancelTimeout: config.cancelTimeout,
      onCancelFailed: (conn) => {
        conn.broken ??= new Error("the query could not be cancelled in time")
      }
    }
    this.engine = Engines.make(Wiring.engineConfig(config))
    this.hosts =
      config.hosts.length > 1 || config.targetSessionAttrs !== "any" || config.loadBalanceHosts !== "disable"
        ? new Hosts.Table({
            ...Hosts.tableDefaults,
            hosts: config.hosts,
            target: config.targetSessionAttrs,
            loadBalance: config.loadBalanceHosts
          })
        : undefined
    this.timer = new Timer.Timer(
      () => this.now(),
      (now) => this.dispatch({ _tag: "TimerDue", now })
    )
    this.observed = new Observed.Observed(this.name, this.engine, clock.unsafeCurrentTimeMillis())
    this.backoff = Backoff.make(
      config.reconnect,
      // several hosts: any one listening again ends the step
      Effect.map(
        Effect.forEach(config.hosts, ({ host, port }) => Connection.probeTcp(host, port), { concurrency: "unbounded" }),
        (latencies) => {
          const latency = latencies.find((l) => l !== undefined)
          if (latency !== undefined) this.observed.tcpLatencyMillis = latency
          return latency !== undefined
        }
      )
    )
  }

  /**
   * Monotonic milliseconds for deadlines, lifetimes and idle times: a wall-clock step (NTP) must not move them.
   * Effect's live clock is monotonic in its nanoseconds (hrtime), but their BigInt costs ~0.1 µs a read: under the
   * live clock `performance.now()` (also monotonic) gives the same at a fraction; any other clock (TestClock) is
   * read through its nanoseconds, so tests still drive time.
   */
  now(): number {
    return this.monotonicMillis()
  }

  private readonly monotonicMillis: () => number
  /** `now()` reads `performance.now()`: one reading serves the engine and the caller-seen times. */
  private readonly onPerformanceClock: boolean

  private perfNow(now: number): number {
    return this.onPerformanceClock ? now : performance.now()
  }

  // ---------------------------------------------------------------------------------------------------------
  // the dispatch loop
  // ---------------------------------------------------------------------------------------------------------

  private dispatch(event: Engine.Event): void {
    if (this.dispatching) {
      this.pendingEvents.push(event)
      return
    }
    this.dispatching = true
    try {
      this.handle(event)
      for (let next = this.pendingEvents.shift(); next !== undefined; next = this.pendingEvents.shift()) {
        this.handle(next)
      }
    } finally {
      this.dispatching = false
    }
    this.updateGauges()
  }

  private handle(event: Engine.Event): void {
    this.reconnectStep = event._tag === "ReconnectDue"
    const decisions = this.engine.handle(event)
    for (let i = 0; i < decisions.length; i++) this.execute(decisions[i]!)
    this.reconnectStep = false
  }

  private execute(decision: Engine.Decision): void {
    switch (decision._tag) {
      case "Grant":
        return this.grant(decision.acquisition, decision.session)
      case "Fail":
        return this.fail(decision.acquisition, decision.error)
      case "Open":
        return this.open(decision.session)
      case "Validate":
        return this.roundTrip(decision.session, decision.timeoutAt, "validation")
      case "ProbeSession":
        return this.roundTrip(decision.session, decision.timeoutAt, "probe")
      case "Reset":
        return this.reset(decision.session, decision.rollback, decision.discard, decision.timeoutAt)
      case "Close":
        return this.close(decision.session, decision.reason, decision.cancelFirst)
      case "ArmTimer":
        return this.timer.arm(decision.at)
      case "ScheduleReconnect":
        return this.scheduleReconnect(decision)
      case "CancelReconnect":
        return this.cancelReconnect()
      case "InitDone":
        return this.initDone(decision.error)
      case "StateChanged":
        return this.metrics.state(decision.to)
      case "Log":
        return this.logDecision(decision)
      case "ProbeAnswered":
        this.observed.probeAnswered(decision.reachable, this.clock.unsafeCurrentTimeMillis())
        return
      case "ProbeTcp":
        return this.probeTcp()
      case "Drained":
        if (this.drained !== undefined) Deferred.unsafeDone(this.drained, Exit.void)
        return
      default:
        return absurd(decision)
    }
  }

  /** The connection gauges and the waiting callers follow the engine's counts. */
  private updateGauges(): void {
    const { idle, total, waiting } = this.engine.gauges
    const used = total - idle
    if (idle !== this.idleGauge || used !== this.usedGauge) {
      this.idleGauge = idle
      this.usedGauge = used
      this.metrics.connections(idle, used)
    }
    if (waiting !== this.waitingGauge) {
      this.waitingGauge = waiting
      this.metrics.pendingRequests(waiting)
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // acquisition
  // ---------------------------------------------------------------------------------------------------------

  /**
   * Must run uninterruptibly (the callers do): `restore` makes only the wait interruptible, and a session granted
   * to a caller interrupted at the same instant is passed on by the engine (`AcquireAbandoned`), never lost. The
   * common case — a session the engine grants at once — resolves synchronously and allocates no `Waiter`.
   */
  acquire(restore: Restore): Effect.Effect<PooledConnection, AcquireTimeout | PoolClosed> {
    return this.request(restore, "exclusive", exclusiveGrant, Effect.succeed, Effect.failCause)
  }

  /**
   * `acquire`, continued in the same step: `use` runs on the session once granted (at once when the engine grants
   * synchronously, the common case), `orElse` on the acquisition's failure — no effect of `acquire`'s own to
   * match on in between. Must run uninterruptibly, as `acquire`.
   */
  withAcquired<X, E, R>(
    restore: Restore,
    use: (conn: PooledConnection) => Effect.Effect<X, E, R>,
    orElse: (cause: Cause.Cause<AcquireTimeout | PoolClosed>) => Effect.Effect<X, E, R>
  ): Effect.Effect<X, E, R> {
    return this.request(restore, "exclusive", exclusiveGrant, use, orElse)
  }

  /**
   * One statement slot (`pipeline` ≥ 2): the session's pipelined side and the acquisition to hand back, which
   * `releaseStatement` does from the statement's `onDone` (internal/pipeline.ts), never from the caller's exit.
   * Must run uninterruptibly, as `acquire`, and the statement be sent (`PipelinedSession.send`) before anything
   * interruptible runs.
   */
  acquireStatement(restore: Restore): Effect.Effect<StatementSlot, AcquireTimeout | PoolClosed> {
    return this.request(restore, "statement", this.statementGrant, Effect.succeed, Effect.failCause)
  }

  /** `acquireStatement`, continued in the same step (see `withAcquired`). */
  withStatementSlot<X, E, R>(
    restore: Restore,
    use: (slot: StatementSlot) => Effect.Effect<X, E, R>,
    orElse: (cause: Cause.Cause<AcquireTimeout | PoolClosed>) => Effect.Effect<X, E, R>
  ): Effect.Effect<X, E, R> {
    return this.request(restore, "statement", this.statementGrant, use, orElse)
  }

  private readonly statementGrant = (conn: PooledConnection, acquisition: Engine.AcquisitionId): StatementSlot => ({
    session: this.pipelineOf(conn),
    acquisition
  })

  /** The slot of a pipelined statement is free: the statement has left the wire. */
  releaseStatement(acquisition: Engine.AcquisitionId, facts: Engine.SessionFacts): void {
    this.dispatch({ _tag: "Released", now: this.now(), acquisition, facts })
  }

  private pipelineOf(conn: PooledConnection): Pipeline.PipelinedSession {
    let session = this.pipelines.get(conn)
    if (session === undefined) {
      session = Pipeline.make(conn.client)
      this.pipelines.set(conn, session)
    }
    return session
  }

  /**
   * Acquire → use → release in one guarded region of its own (`Db.withConnection`), in as few fiber steps as Effect 3
   * allows: the acquisition runs in the region's first step (no `withFiberRuntime` step unless the leak warning
   * needs the caller's span), `use` interruptibly, the release synchronously in the handler, which the region keeps
   * uninterruptible so that an interruption of `use` still returns the session. A fiber step costs ~0.15 µs, a
   * few percent of a whole checkout cycle: the 2 steps saved over `withAcquired` + `Effect.suspend` were ~7 %.
   */
  withSession<X, E, R>(
    use: (conn: PooledConnection) => Effect.Effect<X, E, R>
  ): Effect.Effect<X, E | AcquireTimeout | PoolClosed, R> {
    return Effect.uninterruptibleMask((restore) => {
      const guarded = (conn: PooledConnection): Effect.Effect<X, E, R> =>
        Effect.matchCauseEffect(restore(use(conn)), {
          onFailure: (cause) => this.afterRelease(conn, Effect.failCause(cause)),
          onSuccess: (value) => this.afterRelease(conn, Effect.succeed(value))
        })
      const acquire = (span: Tracer.AnySpan | undefined) =>
        this.requestNow<PooledConnection, X, E | AcquireTimeout | PoolClosed, R>(
          restore,
          "exclusive",
          exclusiveGrant,
          guarded,
          Effect.failCause,
          span
        )
      return this.engine.config.leakThreshold > 0
        ? Effect.withFiberRuntime<X, E | AcquireTimeout | PoolClosed, R>((fiber) => acquire(fiber.currentSpan))
        : acquire(undefined)
    })
  }

  /** The outcome of a guarded use, once the session is released (after its reset, when the engine asked for one). */
  afterRelease<A, E>(conn: PooledConnection, outcome: Effect.Effect<A, E>): Effect.Effect<A, E> {
    const reset = this.settleRelease(conn)
    return reset === undefined ? outcome : Effect.zipRight(reset, outcome)
  }

  private request<A, X, E, R>(
    restore: Restore,
    kind: "exclusive" | "statement",
    granted: (conn: PooledConnection, acquisition: Engine.AcquisitionId) => A,
    use: (granted: A) => Effect.Effect<X, E, R>,
    orElse: (cause: Cause.Cause<AcquireTimeout | PoolClosed>) => Effect.Effect<X, E, R>
  ): Effect.Effect<X, E, R> {
    return Effect.withFiberRuntime((fiber) => this.requestNow(restore, kind, granted, use, orElse, fiber.currentSpan))
  }

  /** `request`'s step, run synchronously where it is called (within the caller's uninterruptible region). */
  private requestNow<A, X, E, R>(
    restore: Restore,
    kind: "exclusive" | "statement",
    granted: (conn: PooledConnection, acquisition: Engine.AcquisitionId) => A,
    use: (granted: A) => Effect.Effect<X, E, R>,
    orElse: (cause: Cause.Cause<AcquireTimeout | PoolClosed>) => Effect.Effect<X, E, R>,
    span: Tracer.AnySpan | undefined
  ): Effect.Effect<X, E, R> {
    const now = this.now()
    const startedAtPerf = this.perfNow(now)
    const site = this.engine.config.leakThreshold > 0 ? Observed.acquisitionSite(span) : undefined
    const id = 2 * ++this.acquisitionCount + (kind === "statement" ? 1 : 0)
    this.requesting = id
    this.dispatch({ _tag: "AcquireRequested", now, acquisition: id, kind })
    this.requesting = 0
    const grantedConn = this.grantedNow
    if (grantedConn !== undefined) {
      this.grantedNow = undefined
      // granted within this very step: no wait to measure (a clock reading costs more than the grant)
      return use(granted(this.handOut(grantedConn, startedAtPerf, site, startedAtPerf), id))
    }
    const failed = this.failedNow
    if (failed !== undefined) {
      this.failedNow = undefined
      return orElse(Cause.fail(failed))
    }
    const waiter = new Waiter(startedAtPerf, site)
    this.waiters.set(id, waiter)
    // the caller's region is uninterruptible (only the wait is restored), so its handlers run before anything
    // can interrupt it: no `onExit` of its own around them
    return Effect.matchCauseEffect(restore(waiter.await), {
      onFailure: (cause) => {
        if (Cause.isInterrupted(cause)) this.abandon(id, waiter)
        return orElse(cause)
      },
      onSuccess: (conn) => use(granted(this.handOut(conn, startedAtPerf, site, performance.now()), id))
    })
  }

  /** The caller gave up (interrupted): it leaves the queue, or the engine passes on a session it never saw. */
  private abandon(id: Engine.AcquisitionId, waiter: Waiter): void {
    this.waiters.delete(id)
    if (waiter.conn !== undefined && waiter.conn.holder === id) waiter.conn.holder = 0
    this.dispatch({ _tag: "AcquireAbandoned", now: this.now(), acquisition: id })
  }

  private grant(acquisition: Engine.AcquisitionId, session: Engine.SessionId): void {
    const conn = this.sessions.get(session)!
    // a statement slot is one of several on the session: it neither holds it nor counts its queries there
    if (!isStatement(acquisition)) {
      conn.holder = acquisition
      conn.queriesAtGrant = conn.queries
    }
    if (acquisition === this.requesting) {
      this.grantedNow = conn
      return
    }
    const waiter = this.waiters.get(acquisition)
    if (waiter === undefined) return
    this.waiters.delete(acquisition)
    waiter.conn = conn
    waiter.settle(Exit.succeed(conn))
  }

  private fail(acquisition: Engine.AcquisitionId, error: Engine.AcquireError): void {
    const failure =
      error._tag === "Closed"
        ? new PoolClosed({ poolName: this.name })
        : new AcquireTimeout({
            waitedMillis: error.waitedMillis,
            statistics: this.observed.statistics(error.statistics, this.config, this.hostStatistics()),
            settingNames: {
              maxSize: this.config.settingNames.maxSize,
              acquireTimeout: this.config.settingNames.acquireTimeout
            }
          })
    if (acquisition === this.requesting) {
      if (error._tag === "Timeout") this.metrics.timedOut(0)
      else this.metrics.failed(0)
      this.failedNow = failure
      return
    }
    const waiter = this.waiters.get(acquisition)
    if (waiter === undefined) return
    this.waiters.delete(acquisition)
    const waited = performance.now() - waiter.startedAtPerf
    if (error._tag === "Timeout") this.metrics.timedOut(waited)
    else this.metrics.failed(waited)
    waiter.settle(Exit.fail(failure))
  }

  /** Counts one successful acquisition, once the session is the caller's (the caller's wait, on the real clock). */
  private handOut(
    conn: PooledConnection,
    startedAtPerf: number,
    site: string | undefined,
    nowPerf: number
  ): PooledConnection {
    conn.acquiredAtPerf = nowPerf
    conn.acquisitionSite = site
    const waited = nowPerf - startedAtPerf
    this.observed.acquired(waited)
    this.metrics.acquired(waited)
    return conn
  }

  // ---------------------------------------------------------------------------------------------------------
  // release and reset
  // ---------------------------------------------------------------------------------------------------------

  /**
   * Returns a connection, waiting for the reset it needs (a ROLLBACK, DISCARD ALL): the caller's session
   * state — advisory locks, LISTEN, temp tables — is gone by the time its `withConnection` completes.
   */
  releaseEffect(conn: PooledConnection): Effect.Effect<void> {
    return Effect.suspend(() => this.settleRelease(conn) ?? Effect.void)
  }

  /**
   * Reports the release with the facts read off the driver; returns the wait for the reset the engine asked for,
   * if any (it runs on its own fiber).
   */
  settleRelease(conn: PooledConnection): Effect.Effect<void> | undefined {
    const acquisition = conn.holder
    if (acquisition === 0) return
    conn.holder = 0
    const now = this.now()
    this.metrics.used(this.perfNow(now) - conn.acquiredAtPerf)
    this.dispatch({
      _tag: "Released",
      now,
      acquisition,
      facts: {
        transactionStatus: conn.transactionStatus,
        // behind a transaction pooler DISCARD ALL would run on whichever server connection PgBouncer picks
        dirty: conn.sessionDirty && Pooler.mayDiscard(this.config.pooler),
        broken: !conn.isUsable(),
        inFlight: conn.inFlight,
        queries: conn.queries - conn.queriesAtGrant
      }
    })
    const reset = conn.resetDone
    if (reset === undefined) return
    conn.resetDone = undefined
    return Deferred.await(reset)
  }

  /** Rolls back an open transaction and/or discards session state, then re-runs `onConnect`. */
  private reset(session: Engine.SessionId, rollback: boolean, discard: boolean, timeoutAt: number): void {
    const conn = this.sessions.get(session)!
    const done = Deferred.unsafeMake<void>(FiberIdNone)
    conn.resetDone = done
    const work = Effect.zipRight(
      rollback ? Connection.roundTrip(conn, "ROLLBACK", this.queryHooks) : Effect.void,
      discard
        ? Effect.zipRight(
            Connection.roundTrip(conn, "DISCARD ALL", this.queryHooks),
            this.onConnect?.(conn) ?? Effect.void
          )
        : Effect.void
    )
    const limit = Math.max(0, timeoutAt - this.now())
    const bounded = failAfter(
      work,
      limit,
      () => new Error(`the reset did not finish within ${Duration.format(this.config.validationTimeout)}`)
    )
    this.fork(
      Effect.map(Effect.exit(bounded), (exit) => {
        if (Exit.isSuccess(exit)) conn.sessionDirty = false
        const ok = Exit.isSuccess(exit) && conn.isUsable() && conn.transactionStatus === "I"
        const error = Exit.isFailure(exit) ? this.redact(Cause.squash(exit.cause)) : undefined
        this.dispatch({ _tag: "ResetResult", now: this.now(), session, ok, error })
        Deferred.unsafeDone(done, Exit.void)
      })
    )
  }

  /** A user statement on a checked-out connection, cancelled server-side on interruption. */
  query<A>(
    conn: PooledConnection,
    sql: string,
    values: ReadonlyArray<unknown>,
    rowMode: "array" | undefined,
    onResult: (err: Error | undefined, result: any) => Effect.Effect<A, any>
  ): Effect.Effect<A, any> {
    if (!conn.sessionDirty && Classify.mayLeaveSessionState(sql)) conn.sessionDirty = true
    // a plain text with its values: pg copies a config object on every call
    const query = rowMode === undefined ? sql : { text: sql, values: values as Array<unknown>, rowMode }
    const run = Connection.runQuery(conn, query, rowMode === undefined ? values : undefined, onResult, this.queryHooks)
    if (this.config.queryTimeout === undefined) return run
    // the timeout interrupts the query, which cancels it server-side before the failure surfaces
    return Effect.timeoutFail(run, {
      duration: this.config.queryTimeout,
      onTimeout: () =>
        new SqlError({
          message:
            `The statement exceeded queryTimeout (${Duration.format(this.config.queryTimeout!)}) and was ` +
            `cancelled: make it faster, or raise DB_POOL_QUERY_TIMEOUT`
        })
    })
  }

  // ---------------------------------------------------------------------------------------------------------
  // sessions: open, round trips, close
  // ---------------------------------------------------------------------------------------------------------

  /**
   * What runs on a new session before its first use: behind a pooler first a round trip, because PgBouncer accepts
   * logins while its server is down and then fails every statement ("server login has been failing"): such a session
   * counts as a failed open, paced by the backoff, instead of failing the callers one after another.
   */
  private openHook(): ((conn: PooledConnection) => Effect.Effect<void, unknown>) | undefined {
    if (this.config.pooler === "none") return this.onConnect
    const onConnect = this.onConnect
    return (conn) =>
      Effect.zipRight(
        Effect.mapError(
          Connection.roundTrip(conn, "SELECT 1", this.queryHooks),
          (cause) => new Error(`PgBouncer accepted the login but no server answered: ${Classify.errorMessage(cause)}`)
        ),
        onConnect?.(conn) ?? Effect.void
      )
  }

  private open(session: Engine.SessionId): void {
    const startedAtPerf = performance.now()
    const attempt = this.reconnectStep
    if (attempt) this.metrics.reconnectAttempt()
    // every exit answers the engine: a defect (a hook that throws, a driver bug) or an interruption included; a
    // fiber may run to its end before `fork` returns
    let done = false
    let fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
    let reached: MultiHost.Reached | undefined
    fiber = this.fork(
      Effect.onExit(
        Effect.suspend(() =>
          Connection.open(
            session,
            this.connectOptions,
            this.openHook(),
            this.config.connectTimeout,
            (conn, cause) => this.closedByServer(conn, cause),
            this.hosts === undefined
              ? undefined
              : (closed) => this.connectHosts(this.hosts!, closed, (r) => (reached = r))
          )
        ),
        (exit) =>
          Effect.sync(() => {
            done = true
            if (attempt && fiber !== undefined && this.reconnectAttempt === fiber) this.reconnectAttempt = undefined
            if (Exit.isSuccess(exit)) {
              this.metrics.created(performance.now() - startedAtPerf)
              this.sessions.set(session, exit.value)
              this.dispatch({ _tag: "SessionOpened", now: this.now(), session, jitter: Math.random() })
              if (reached !== undefined) this.hostOpened(exit.value, reached)
              return
            }
            this.dispatch({ _tag: "OpenFailed", now: this.now(), session, failure: this.openFailure(exit.cause) })
          })
      )
    )
    if (attempt && !done) this.reconnectAttempt = fiber
  }

  /** One open on several hosts: the table's order, the driver's tries; what each try came to goes to the table. */
  private connectHosts(
    hosts: Hosts.Table,
    closed: (client: Pg.Client, cause: unknown) => void,
    onReached: (reached: MultiHost.Reached) => void
  ): Effect.Effect<Pg.Client, Connection.ConnectFailure> {
    const attempts = hosts.attempts(this.now(), Math.random)
    return MultiHost.connectAny(this.connectOptions, attempts, this.config.targetSessionAttrs, closed).pipe(
      Effect.tapError((failure) => Effect.sync(() => this.evict(hosts.record(this.now(), failure.outcomes)))),
      Effect.map((reached) => {
        onReached(reached)
        return reached.client
      })
    )
  }

  /**
   * A session opened on one of several hosts: the table learns which host and role, and hears every later
   * ParameterStatus on it (a promotion, a reload), so that sessions whose server changed role are evicted.
   */
  private hostOpened(conn: PooledConnection, reached: MultiHost.Reached): void {
    const hosts = this.hosts!
    const now = this.now()
    const evicted = [
      ...hosts.record(now, reached.outcomes),
      ...hosts.opened(now, conn.id, reached.attempt.index, reached.observed, reached.parameters)
    ]
    Connection.onParameterStatus(conn.client, (name, value) => {
      if (this.sessions.get(conn.id) === conn) this.evict(hosts.reported(this.now(), conn.id, { [name]: value }))
    })
    this.evict(evicted)
  }

  /**
   * The scouts the hosts table asks for on a tick, one batch at a time: for a `prefer-standby` pool on its fallback
   * one throwaway connection looking for a standby (`recheck`), for hosts before PostgreSQL 14 one per host
   * checking its role again (`roleChecks`). A scout is no pool session: it is closed at once, and only the table
   * hears of it — a standby found ends the fallback, a role change evicts, a failure backs the host off.
   */
  private scoutHosts(): void {
    const hosts = this.hosts
    if (hosts === undefined || this.shutDown || this.scouting) return
    const now = this.now()
    const batches = [hosts.recheck(now), ...hosts.roleChecks(now).map((attempt) => [attempt])]
    const due = batches.filter((attempts) => attempts.length > 0)
    if (due.length === 0) return
    this.scouting = true
    this.fork(
      Effect.ensuring(
        Effect.forEach(due, (attempts) => this.scout(hosts, attempts), { discard: true }),
        Effect.sync(() => {
          this.scouting = false
        })
      )
    )
  }

  private scout(hosts: Hosts.Table, attempts: ReadonlyArray<Hosts.Attempt>): Effect.Effect<void> {
    return Effect.match(
      MultiHost.connectAny(this.connectOptions, attempts, this.config.targetSessionAttrs, () => {}),
      {
        onFailure: (failure) => this.evict(hosts.record(this.now(), failure.outcomes)),
        onSuccess: (reached) => {
          Connection.destroy(reached.client)
          const now = this.now()
          this.evict([
            ...hosts.record(now, reached.outcomes),
            ...hosts.scouted(now, reached.attempt.index, reached.observed)
          ])
        }
      }
    )
  }

  /**
   * Sessions on a host that no longer serves the pool's target: the engine evicts them — an idle one at once, one in
   * use when its holder releases it — counted `roleChanged`; none is handed out again. Not a failure of the
   * server: nothing backs off. The pipelined side learns it from `broken`, and takes no new statement.
   */
  private evict(evictions: ReadonlyArray<Hosts.Eviction>): void {
    for (const { reason, session } of evictions) {
      const conn = this.sessions.get(session)
      if (conn === undefined) continue
      conn.broken ??= new Error(reason)
      this.dispatch({ _tag: "SessionEvicted", now: this.now(), session, reason })
    }
  }

  /** Why an open failed, defects and interruptions included, classified and redacted for the engine. */
  private openFailure(cause: Cause.Cause<Connection.ConnectFailure>): Engine.Failure {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) return this.report(failure.value)
    if (Cause.isInterruptedOnly(cause)) {
      return { kind: "outage", message: "the attempt was interrupted", probeable: false, startingUp: false }
    }
    const defect = Cause.squash(cause)
    this.log("Error", "a connection attempt died of a defect", { error: this.redact(defect) })
    return this.report(Connection.classifyConnectError(defect, this.config))
  }

  /** A driver's failure in the engine's terms, its message redacted; for a rejection, what to fix. */
  private report(failure: Connection.ConnectFailure): Engine.Failure {
    const message = redactText(failure.message, this.connectOptions.password)
    const reported: Engine.Failure = {
      kind: failure.kind,
      message: failure.kind === "outage" ? message : Messages.rejectedLogin({ ...failure, message }),
      code: failure.code,
      probeable: failure.probeable,
      // a server going away is retried on the same short cadence as one starting up
      startingUp: failure.startingUp || failure.goingAway
    }
    this.failures.set(reported, failure)
    this.observed.lastFailureKind = failure.kind
    return reported
  }

  /** The closed signal: the socket of an open session errored or ended on its own. */
  private closedByServer(conn: PooledConnection, cause: unknown): void {
    if (this.sessions.get(conn.id) !== conn) return
    const failure = this.report(Connection.classifyConnectError(cause, this.config))
    this.dispatch({ _tag: "SessionClosed", now: this.now(), session: conn.id, failure })
  }

  /**
   * A validation (for an acquisition) or the health probe: one round trip, given up at `timeoutAt`. A session
   * that does not answer is discarded, not cancelled: marked broken first, its query's canceler returns at once
   * instead of waiting up to cancelTimeout on the same dead network path.
   */
  private roundTrip(session: Engine.SessionId, timeoutAt: number, what: "validation" | "probe"): void {
    const conn = this.sessions.get(session)!
    const limit = Math.max(0, timeoutAt - this.now())
    const startedAtPerf = performance.now()
    const probedAt = this.clock.unsafeCurrentTimeMillis()
    const timeout = () => {
      const error = new Error(
        what === "probe"
          ? `no answer to the health probe within ${Math.round(limit)} ms`
          : `no answer to the validation round trip within ${Math.round(limit)} ms`
      )
      conn.broken ??= error
      return error
    }
    this.fork(
      Effect.map(Effect.exit(failAfter(Connection.roundTrip(conn, "", this.queryHooks), limit, timeout)), (exit) => {
        const ok = Exit.isSuccess(exit)
        if (!ok) conn.broken ??= Cause.squash(exit.cause)
        if (what === "probe") this.observed.probed(ok, performance.now() - startedAtPerf, probedAt)
        const error = ok ? undefined : this.redact(Cause.squash(exit.cause))
        this.dispatch({ _tag: "ValidationResult", now: this.now(), session, ok, error })
      })
    )
  }

  private close(session: Engine.SessionId, reason: PoolStatisticsReason, cancelFirst: boolean): void {
    const conn = this.sessions.get(session)
    if (conn === undefined) return
    this.sessions.delete(session)
    this.hosts?.closed(session)
    this.metrics.closed(reason)
    const target = cancelFirst && conn.inFlight > 0 ? conn.cancelTarget() : undefined
    if (target === undefined) {
      if (cancelFirst) conn.broken ??= new Error("closed by pool shutdown")
      return Connection.destroy(conn.client)
    }
    // still busy after shutdownTimeout: cancel what runs, then cut the socket
    let fiber: Fiber.RuntimeFiber<void, never> | undefined
    fiber = this.fork(
      Effect.ensuring(
        Effect.timeoutOption(Connection.sendCancelRequest(target), cancelOnShutdownMillis),
        Effect.sync(() => {
          conn.broken ??= new Error("closed by pool shutdown")
          Connection.destroy(conn.client)
          if (fiber !== undefined) this.cancelling.delete(fiber)
          fiber = undefined
        })
      ).pipe(Effect.asVoid)
    )
    if (fiber !== undefined && fiber.unsafePoll() === null) this.cancelling.add(fiber)
  }

  // ---------------------------------------------------------------------------------------------------------
  // timers: the acquisition deadlines and shutdown's (ArmTimer), housekeeping, the health probe
  // ---------------------------------------------------------------------------------------------------------

  /** The background fibers: the engine's timer, housekeeping every second. */
  background(): ReadonlyArray<Effect.Effect<never>> {
    return [
      this.timer.loop(),
      Timer.every(
        housekeepingPeriodMillis,
        () => {
          this.dispatch({ _tag: "Tick", now: this.now() })
          this.scoutHosts()
        },
        false
      )
    ]
  }

  private healthProbeLoop(): Effect.Effect<never> {
    return Timer.every(healthProbePeriodMillis, () => this.dispatch({ _tag: "ProbeRequested", now: this.now() }), true)
  }

  private probeTcp(): void {
    const probedAt = this.clock.unsafeCurrentTimeMillis()
    this.fork(
      Effect.map(Connection.probeTcp(this.config.host, this.config.port), (latency) =>
        this.observed.tcpProbed(latency, !this.engine.gauges.reconnecting, probedAt)
      )
    )
  }

  // ---------------------------------------------------------------------------------------------------------
  // reconnection: the engine counts the attempts, the schedule times them
  // ---------------------------------------------------------------------------------------------------------

  private scheduleReconnect(decision: Extract<Engine.Decision, { _tag: "ScheduleReconnect" }>): void {
    let fiber: Fiber.RuntimeFiber<void, never> | undefined
    fiber = this.fork(
      Effect.zipRight(
        this.backoff.step(decision, () => this.now(), this.log.bind(this), this.redact.bind(this)),
        Effect.sync(() => {
          if (this.reconnectFiber === fiber) this.reconnectFiber = undefined
          this.dispatch({ _tag: "ReconnectDue", now: this.now() })
        })
      )
    )
    this.reconnectFiber = fiber
  }

  /** The pool recovered (or closes, or init failed): the step and an attempt still opening are moot. */
  private cancelReconnect(): void {
    const fibers = [this.reconnectFiber, this.reconnectAttempt]
    this.reconnectFiber = undefined
    this.reconnectAttempt = undefined
    for (const fiber of fibers) if (fiber !== undefined) this.fork(fiberInterrupt(fiber))
  }

  // ---------------------------------------------------------------------------------------------------------
  // initialisation and shutdown
  // ---------------------------------------------------------------------------------------------------------

  /** Opens the first connections. Eager: waits for one to succeed or the initial attempts to run out. */
  initialize(): Effect.Effect<void, DatabaseUnreachable | ConnectionRejected> {
    return Effect.suspend(() => {
      if (this.config.init === "lazy") {
        this.dispatch({ _tag: "Started", now: this.now() })
        this.fork(this.healthProbeLoop())
        return Effect.void
      }
      const outcome = Deferred.unsafeMake<void, DatabaseUnreachable | ConnectionRejected>(FiberIdNone)
      this.initOutcome = outcome
      this.dispatch({ _tag: "Started", now: this.now() })
      return Effect.zipRight(
        Effect.interruptible(Deferred.await(outcome)),
        // the first probe runs on a connection, so health reports the database reachable from the start
        Effect.sync(() => {
          this.fork(this.healthProbeLoop())
        })
      )
    })
  }

  private initDone(error: Extract<Engine.Decision, { _tag: "InitDone" }>["error"]): void {
    const outcome = this.initOutcome
    if (outcome === undefined) return
    this.initOutcome = undefined
    if (error === undefined) return Deferred.unsafeDone(outcome, Exit.void)
    const { attempts, elapsedMillis } = error
    const failure = this.failures.get(error.failure)
    const { database, host, port, user } = this.config
    const serverMessage = redactText(failure?.message ?? error.failure.message, this.connectOptions.password)
    Deferred.unsafeDone(
      outcome,
      Exit.fail(
        error.failure.kind === "rejected"
          ? new ConnectionRejected({
              host,
              port,
              database,
              user,
              code: error.failure.code,
              serverMessage,
              remedy: failure?.remedy ?? "check DATABASE_URL",
              attempts,
              elapsedMillis
            })
          : new DatabaseUnreachable({
              host,
              port,
              database,
              attempts,
              elapsedMillis,
              lastCause: serverMessage,
              settingNames: { url: this.config.settingNames.url, init: this.config.settingNames.init }
            })
      )
    )
  }

  /**
   * Fails waiters, closes idle sessions, waits for busy ones up to shutdownTimeout (the engine's timer), then for
   * the CancelRequests of what still ran. The wait stays interruptible so the timer can fire inside the
   * uninterruptible finalizer.
   */
  shutdown(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.shutDown) return Effect.void
      this.shutDown = true
      const drained = Deferred.unsafeMake<void>(FiberIdNone)
      this.drained = drained
      this.dispatch({ _tag: "ShutdownRequested", now: this.now() })
      return Effect.zipRight(
        Effect.interruptible(Deferred.await(drained)),
        Effect.suspend(() =>
          Effect.forEach([...this.cancelling], (fiber) => fiberAwait(fiber), {
            discard: true,
            concurrency: "unbounded"
          })
        )
      )
    })
  }

  // ---------------------------------------------------------------------------------------------------------
  // observability
  // ---------------------------------------------------------------------------------------------------------

  /** Per host, from the hosts table; none for a single-host pool. */
  private hostStatistics(): ReadonlyArray<HostStatistics> {
    if (this.hosts === undefined) return []
    return this.hosts.health(this.now()).map(
      (health) =>
        new HostStatistics(
          {
            host: health.host.host,
            port: health.host.port,
            role: health.role,
            up: health.up,
            sessions: health.sessions,
            failures: health.failures,
            lastError: Option.fromNullable(
              health.lastFailure === undefined
                ? undefined
                : redactText(health.lastFailure, this.connectOptions.password)
            )
          },
          true
        )
    )
  }

  /** Retires every session opened until now (see the engine's `RefreshRequested`). */
  refresh(): void {
    this.dispatch({ _tag: "RefreshRequested", now: this.now() })
  }

  statistics(): PoolStatistics {
    return this.observed.statistics(this.engine.statistics(this.now()), this.config, this.hostStatistics())
  }

  /** Health from the engine's assessment and the last background probe; see Health.ts for the rules. */
  health(): HealthStatus {
    return this.observed.health(this.now(), this.config, this.clock.unsafeCurrentTimeMillis(), this.hostStatistics())
  }

  redact(cause: unknown): string {
    return redactText(Connection.errorMessage(cause), this.connectOptions.password)
  }

  /** A lifecycle log of the engine's: an acquisition is named by where it was acquired, undefined fields left out. */
  private logDecision(decision: Extract<Engine.Decision, { _tag: "Log" }>): void {
    const annotations: Record<string, unknown> = {}
    for (const key in decision.fields) {
      const value = decision.fields[key]
      if (value !== undefined && key !== "acquisition") annotations[key] = value
    }
    if (decision.message === Observed.leakMessage) {
      this.metrics.leak()
      const conn = this.sessions.get(decision.fields.connectionId as number)
      annotations.acquiredAt = conn?.acquisitionSite ?? "unknown (run inside a span to see where)"
    }
    this.log(decision.level, decision.message, annotations)
  }

  log(level: "Debug" | "Info" | "Warning" | "Error", message: string, annotations: Record<string, unknown>) {
    const logLevel = level === "Warning" ? LogLevel.Warning : LogLevel.fromLiteral(level)
    // a line the forked fiber would drop forks no fiber (the first forks cost 0.3–2.5 ms each at a cold start)
    if (LogLevel.lessThan(logLevel, this.minimumLogLevel)) return
    const effect = Effect.logWithLevel(logLevel, message)
    // the message is the event's name: every logger renders it, so no annotation repeats it
    this.fork(Effect.annotateLogs(effect, { pool: this.name, ...annotations }))
  }
}

type PoolStatisticsReason = Extract<Engine.Decision, { _tag: "Close" }>["reason"]

/** Whether an acquisition id names a statement slot (odd) rather than a whole session (even). */
const isStatement = (acquisition: Engine.AcquisitionId): boolean => acquisition % 2 === 1

const FiberIdNone = FiberId.none

const fiberInterrupt = (fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
  Effect.flatMap(Effect.fiberId, (id) => fiber.interruptAsFork(id))

const fiberAwait = (fiber: Fiber.RuntimeFiber<void, never>) => Effect.asVoid(fiber.await)

const absurd = (decision: never): never => {
  throw new Error(`unknown engine decision: ${JSON.stringify(decision)}`)
}

/**
 * Builds a pool in the current scope: background fibers live in it, and closing it shuts the pool down
 * gracefully. The caller runs `initialize` once everything that `onConnect` needs exists.
 *
 * @internal
 */
export const make = (options: PoolOptions): Effect.Effect<Pool, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const fork = yield* FiberSet.makeRuntime<never, any, any>()
    const pool: Pool = new Pool(
      options,
      clock,
      (effect) => fork(effect as Effect.Effect<any, any>) as any,
      options.onConnect,
      yield* FiberRef.get(FiberRef.currentMinimumLogLevel)
    )
    yield* Effect.addFinalizer(() => pool.shutdown())
    for (const loop of pool.background()) fork(loop)
    return pool
  })
