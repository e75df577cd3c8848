/**
 * The pool's machinery: a strictly FIFO waiter queue with direct hand-off, demand-driven opening,
 * validation, recycling, reset on release, reconnection with backoff and a readiness probe, leak
 * detection and graceful shutdown. All bookkeeping is synchronous and single-threaded; effects are only
 * used where something waits (a socket, a timer).
 *
 * @internal
 */
import { Assessment, Classify, Statistics, WaiterQueue } from "@effect-pg-pool/engine"
import { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import type * as Scope from "effect/Scope"
import type * as Tracer from "effect/Tracer"
import type * as Pg from "pg"
import type { PoolConfig } from "../PoolConfig.js"
import { redactText } from "../PoolConfig.js"
import { DatabaseReachability, HealthStatus } from "../Health.js"
import { AcquireTimeout, ConnectionRejected, DatabaseUnreachable, PoolClosed } from "../PoolError.js"
import type { CloseReason, PoolState } from "../PoolStatistics.js"
import { ClosedByReason, PoolStatistics } from "../PoolStatistics.js"
import * as Connection from "./connection.js"
import { failAfter } from "./deadline.js"
import type { PoolMetrics } from "./metrics.js"
import { noopMetrics } from "./metrics.js"
import { Waiter } from "./waiters.js"

type PooledConnection = Connection.PooledConnection

/** @internal */
export interface PoolOptions {
  readonly config: PoolConfig
  readonly types?: Pg.CustomTypesConfig | undefined
  /** Runs on every new connection before first use, and again after a session reset. */
  readonly onConnect?: ((conn: PooledConnection) => Effect.Effect<void, unknown>) | undefined
  readonly metrics?: PoolMetrics | undefined
}

/** How often idle connections are checked for lifetime/idle time and held ones for leaks. */
const housekeepingPeriodMillis = 1_000
/** How often a down server's port is probed to cut the backoff short. */
const probeIntervalMillis = 100
/** How often the health probe runs. */
const healthProbePeriodMillis = 5_000
/** How many acquisition times are kept for the percentiles. */
const latencySamples = 1024
/**
 * How long a connection opened by a recovery (the reconnect loop's, or the scout after connections broke) must
 * live before the recovery counts. A server that accepts the login and kills the session at once — a failover
 * in progress, a pooler, a `pg_terminate_backend` loop — does so within milliseconds, while a working
 * connection lives minutes (maxLifetime is an hour): one second is orders of magnitude from both, and the
 * default first backoff step, so a connection lost that young resumes the backoff where it stood instead of
 * resetting it, and costs no more than waiting would have.
 */
const survivalMillis = 1_000

const liveClockClass = Clock.make().constructor

/** One call to `acquire`: where it stands in the FIFO order and when it must give up. */
interface Attempt {
  readonly arrivedAt: number
  readonly deadline: number
  readonly startedAtPerf: number
  readonly site: string | undefined
}

/** @internal */
export class Pool {
  readonly name: string
  private readonly config: PoolConfig
  readonly connectOptions: Connection.ConnectOptions
  private readonly queryHooks: Connection.QueryHooks
  private readonly metrics: PoolMetrics
  private readonly acquireTimeoutMillis: number
  private readonly validationTimeoutMillis: number
  private readonly validateAfterIdleMillis: number
  private readonly leakThresholdMillis: number

  private readonly idle: Array<PooledConnection> = []
  private readonly all = new Set<PooledConnection>()
  private readonly byClient = new WeakMap<Pg.Client, PooledConnection>()
  private readonly waiters = new WaiterQueue.WaiterQueue<Waiter>()
  private pending = 0
  private nextId = 1

  private closing = false
  /** Eager initialisation failed: the pool is about to be torn down, so it opens and retries nothing more. */
  private initFailed = false
  /** The last failed open: health words a rejected login differently from an outage. */
  private lastFailure: Connection.ConnectFailure | undefined = undefined
  /** The last failed open in the assessment's words: for a rejection, what the server said and what to fix. */
  private lastFailureText: string | undefined = undefined
  /** Until then, a young connection that breaks resumes the backoff instead of counting as a recovery. */
  private probationUntil = 0
  /** Where the backoff stood when the last outage ended, resumed when the recovery does not last. */
  private backoffResume: { readonly state: unknown; readonly attempt: number } | undefined = undefined
  /** Connections broke since the last successful open: open one at a time until one succeeds. */
  private suspect = false
  private reconnecting = false
  private reconnectFiber: Fiber.RuntimeFiber<void, never> | undefined = undefined
  private everConnected = false
  private outageStartedAt: number | undefined = undefined
  private loggedState: PoolState | undefined = undefined
  /** An eager start announces its first healthy state with "pool ready", not as a transition. */
  private quietStart: boolean
  private wakeDeadlines: (() => void) | undefined = undefined
  private drained: (() => void) | undefined = undefined

  // statistics
  private readonly startedAt: number
  private peakActive = 0
  private peakWaiting = 0
  private acquisitions = 0
  private acquisitionTimeTotal = 0
  private readonly latencies = new Statistics.LatencyWindow(latencySamples)
  private acquireTimeouts = 0
  private created = 0
  private readonly closed = Statistics.noneClosed()
  private reconnectAttempts = 0
  private leaks = 0
  private lastError: string | undefined = undefined
  private lastProbeLatencyMillis: number | undefined = undefined

  private initOutcome: Deferred.Deferred<void, DatabaseUnreachable | ConnectionRejected> | undefined = undefined
  private initStartedAt = 0

  constructor(
    options: PoolOptions,
    private readonly clock: Clock.Clock,
    readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>,
    private readonly onConnect: ((conn: PooledConnection) => Effect.Effect<void, unknown>) | undefined
  ) {
    this.monotonicMillis =
      clock.constructor === liveClockClass
        ? () => performance.now()
        : () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
    const config = options.config
    this.config = config
    this.name = config.name
    this.metrics = options.metrics ?? noopMetrics
    this.acquireTimeoutMillis = Duration.toMillis(config.acquireTimeout)
    this.validationTimeoutMillis = Duration.toMillis(config.validationTimeout)
    this.validateAfterIdleMillis = Duration.toMillis(config.validateAfterIdle)
    this.leakThresholdMillis = Duration.toMillis(config.leakDetectionThreshold)
    this.startedAt = clock.unsafeCurrentTimeMillis()
    this.quietStart = config.init === "eager"
    this.connectOptions = {
      host: config.host,
      port: config.port,
      database: config.database,
      user: config.user,
      password: config.password === undefined ? undefined : Redacted.value(config.password),
      ssl: { mode: config.sslmode, options: config.ssl },
      applicationName: config.applicationName,
      statementTimeoutMillis:
        config.statementTimeout === undefined ? undefined : Duration.toMillis(config.statementTimeout),
      connectTimeoutMillis: Duration.toMillis(config.connectTimeout),
      keepAlive: config.keepAlive,
      types: options.types
    }
    this.queryHooks = {
      cancelTimeout: config.cancelTimeout,
      onCancelFailed: (conn) => {
        conn.broken ??= new Error("the query could not be cancelled in time")
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // acquisition
  // ---------------------------------------------------------------------------------------------------------

  /** Monotonic milliseconds for deadlines, lifetimes and idle times: a wall-clock step (NTP) must not move them. */
  now(): number {
    return this.monotonicMillis()
  }

  /**
   * Effect's live clock is monotonic in its nanoseconds (hrtime), but their BigInt costs ~0.1 µs a read, five reads
   * per checkout: under the live clock `performance.now()` (also monotonic) gives the same at a fraction; any other
   * clock (TestClock) is read through its nanoseconds, so tests still drive time.
   */
  private readonly monotonicMillis: () => number

  private get waitingCount(): number {
    return this.waiters.size
  }

  /**
   * Must run uninterruptibly (the callers below do): `restore` makes only the waits interruptible, and a
   * connection granted to a waiter that is interrupted at the same instant is returned, never lost. One
   * deadline, `acquireTimeout` after the call, bounds the whole acquisition, validations included.
   */
  acquire(
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  ): Effect.Effect<PooledConnection, AcquireTimeout | PoolClosed> {
    return Effect.withFiberRuntime((fiber) => {
      if (this.closing) {
        this.metrics.failed(0)
        return Effect.fail(new PoolClosed({ poolName: this.name }))
      }
      const startedAtPerf = performance.now()
      const site = this.leakThresholdMillis > 0 ? acquisitionSite(fiber.currentSpan) : undefined
      const now = this.now()
      // the common case, an idle connection used recently and no one waiting, allocates nothing
      const top = this.waitingCount === 0 ? this.idle[this.idle.length - 1] : undefined
      if (top !== undefined && now - top.releasedAt <= this.validateAfterIdleMillis && this.usable(top)) {
        this.idle.pop()
        return Effect.succeed(this.checkout(top, startedAtPerf, site))
      }
      const attempt: Attempt = { arrivedAt: now, deadline: now + this.acquireTimeoutMillis, startedAtPerf, site }
      return this.takeIdleOrWait(restore, attempt, false)
    })
  }

  /** An idle connection when no one waits (validated first if it idled long), else a place in the queue. */
  private takeIdleOrWait(
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
    attempt: Attempt,
    retry: boolean
  ): Effect.Effect<PooledConnection, AcquireTimeout | PoolClosed> {
    while (this.idle.length > 0 && this.waitingCount === 0) {
      const conn = this.idle.pop()!
      if (!this.usable(conn)) continue
      if (this.now() - conn.releasedAt > this.validateAfterIdleMillis) {
        this.take(conn, attempt.site)
        return this.validate(conn, restore, attempt)
      }
      return Effect.succeed(this.checkout(conn, attempt.startedAtPerf, attempt.site))
    }
    return this.wait(restore, attempt, retry)
  }

  private wait(
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
    attempt: Attempt,
    retry: boolean
  ): Effect.Effect<PooledConnection, AcquireTimeout | PoolClosed> {
    const now = this.now()
    if (now >= attempt.deadline) return Effect.fail(this.acquireTimedOut(attempt, now))
    const waiter = new Waiter(attempt.arrivedAt, attempt.deadline, attempt.startedAtPerf, attempt.site)
    // a retry (after a failed validation) arrived before everyone who queued meanwhile: it keeps its place
    const isHead = retry ? this.waiters.insertByArrival(waiter) : this.waiters.push(waiter)
    if (this.waitingCount > this.peakWaiting) this.peakWaiting = this.waitingCount
    this.metrics.pendingRequests(this.waitingCount)
    if (isHead) this.wakeDeadlines?.()
    this.fill()
    return Effect.onExit(restore(waiter.await), (exit) =>
      Effect.sync(() => {
        if (Exit.isSuccess(exit)) this.handOut(exit.value, attempt.startedAtPerf)
        else this.abandon(waiter)
      })
    )
  }

  /** A waiter gave up (interrupted or timed out): leave the queue, or pass on a connection it never saw. */
  private abandon(waiter: Waiter): void {
    if (!waiter.done) {
      waiter.done = true
      this.waiters.remove(waiter)
      this.metrics.pendingRequests(this.waitingCount)
    } else if (waiter.conn !== undefined) {
      const conn = waiter.conn
      waiter.conn = undefined
      this.release(conn)
    }
  }

  private checkout(conn: PooledConnection, startedAtPerf: number, site: string | undefined): PooledConnection {
    this.take(conn, site)
    return this.handOut(conn, startedAtPerf)
  }

  /** Takes a connection out of the pool, for the caller or for its validation first. */
  private take(conn: PooledConnection, site: string | undefined): void {
    conn.status = "active"
    conn.acquiredAt = this.now()
    conn.leakReported = false
    conn.acquisitionSite = site
    const active = this.all.size - this.idle.length
    if (active > this.peakActive) this.peakActive = active
  }

  /** Counts one successful acquisition, once the connection is the caller's. */
  private handOut(conn: PooledConnection, startedAtPerf: number): PooledConnection {
    const nowPerf = performance.now()
    conn.acquiredAtPerf = nowPerf
    const waited = nowPerf - startedAtPerf
    this.acquisitions++
    this.acquisitionTimeTotal += waited
    this.latencies.record(waited)
    this.metrics.acquired(waited, this.idle.length, this.all.size - this.idle.length)
    return conn
  }

  /** Hands a clean connection to the head waiter, or parks it as idle. */
  private offer(conn: PooledConnection): void {
    const waiter = this.waiters.shift()
    if (waiter !== undefined) {
      this.metrics.pendingRequests(this.waitingCount)
      // counted as an acquisition only once the waiter resumes with it: it may be interrupted meanwhile, and
      // then its use, by nobody, lasts from now until abandon() passes the connection on
      this.take(conn, waiter.site)
      conn.acquiredAtPerf = performance.now()
      waiter.conn = conn
      waiter.settle(Effect.succeed(conn))
      return
    }
    conn.status = "idle"
    conn.releasedAt = this.now()
    this.idle.push(conn)
    this.metrics.connections(this.idle.length, this.all.size - this.idle.length)
  }

  private usable(conn: PooledConnection): boolean {
    if (!conn.isUsable()) {
      this.close(conn, "broken")
      return false
    }
    if (this.now() >= conn.expiresAt) {
      this.close(conn, "lifetime")
      return false
    }
    return true
  }

  private validate(
    conn: PooledConnection,
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
    attempt: Attempt
  ): Effect.Effect<PooledConnection, AcquireTimeout | PoolClosed> {
    // Acquisition runs uninterruptibly: only the raced round trip may be interrupted, by its timeout or the
    // caller's. The round trip gets validationTimeout, or what is left of the caller's acquireTimeout. A
    // connection that does not answer is discarded, not cancelled: marked broken first, its query's canceler
    // returns at once instead of waiting up to cancelTimeout on the same dead network path.
    const limit = Math.max(0, Math.min(this.validationTimeoutMillis, attempt.deadline - this.now()))
    const roundTrip = restore(
      failAfter(Effect.interruptible(this.rawQuery(conn, "")), limit, () => {
        const error = new Error(`no answer to the validation round trip within ${Math.round(limit)} ms`)
        conn.broken ??= error
        return error
      })
    )
    return Effect.matchCauseEffect(roundTrip, {
      onSuccess: () => Effect.sync(() => this.handOut(conn, attempt.startedAtPerf)),
      onFailure: (cause) => {
        if (Cause.isInterruptedOnly(cause)) {
          // the caller gave up during the round trip, which was cancelled and settled: the connection answered
          if (conn.isUsable()) this.offer(conn)
          else this.close(conn, "validation")
          return Effect.failCause(cause as Cause.Cause<never>)
        }
        this.log("Warning", "connection failed validation; discarded", {
          connectionId: conn.id,
          error: this.redact(Cause.squash(cause))
        })
        conn.broken ??= Cause.squash(cause)
        this.close(conn, "validation")
        // the acquisition continues as if that connection had never been idle, with the time it has left
        return Effect.suspend(() =>
          this.closing
            ? Effect.fail(new PoolClosed({ poolName: this.name }))
            : this.takeIdleOrWait(restore, attempt, true)
        )
      }
    })
  }

  /** The failure of an acquisition whose deadline passed, counted and logged once. */
  private acquireTimedOut(attempt: Attempt, now: number): AcquireTimeout {
    this.acquireTimeouts++
    this.metrics.timedOut(performance.now() - attempt.startedAtPerf)
    const waited = Math.round(now - attempt.arrivedAt)
    const statistics = this.statistics()
    this.log("Warning", "timed out waiting for a connection", {
      waitedMillis: waited,
      active: statistics.active,
      total: statistics.total,
      waiting: statistics.waiting,
      state: statistics.state
    })
    const { acquireTimeout, maxSize } = this.config.settingNames
    return new AcquireTimeout({ waitedMillis: waited, statistics, settingNames: { maxSize, acquireTimeout } })
  }

  // ---------------------------------------------------------------------------------------------------------
  // release and reset
  // ---------------------------------------------------------------------------------------------------------

  /** Returns a connection; a reset it needs runs in the background. */
  release(conn: PooledConnection): void {
    const reset = this.settleRelease(conn)
    if (reset !== undefined) this.fork(reset)
  }

  /**
   * Returns a connection, waiting for the reset it needs (a ROLLBACK, DISCARD ALL): the caller's session
   * state — advisory locks, LISTEN, temp tables — is gone by the time its `withConnection` completes.
   */
  releaseEffect(conn: PooledConnection): Effect.Effect<void> {
    return Effect.suspend(() => this.settleRelease(conn) ?? Effect.void)
  }

  /** Completes a release synchronously, or returns the reset still to run (which must run uninterruptibly). */
  settleRelease(conn: PooledConnection): Effect.Effect<void> | undefined {
    if (conn.status !== "active") return
    this.metrics.used(performance.now() - conn.acquiredAtPerf)
    if (conn.leakReported) {
      this.log("Info", "connection suspected of leaking was returned", {
        connectionId: conn.id,
        heldMillis: Math.round(this.now() - conn.acquiredAt)
      })
    }
    if (this.closing) {
      this.close(conn, "shutdown")
      return
    }
    if (conn.inFlight > 0 || !conn.isUsable()) {
      this.close(conn, conn.inFlight > 0 ? "cancel" : "broken")
      return
    }
    if (this.config.reset === "always") conn.sessionDirty = true
    if (conn.transactionStatus !== "I" || conn.sessionDirty) return this.reset(conn)
    this.recycleOrOffer(conn)
    return
  }

  private recycleOrOffer(conn: PooledConnection): void {
    if (conn.queries >= this.config.maxQueries) return this.close(conn, "maxQueries")
    if (this.now() >= conn.expiresAt) return this.close(conn, "lifetime")
    this.offer(conn)
  }

  /** Rolls back an open transaction and discards session state, then re-runs `onConnect`. */
  private reset(conn: PooledConnection): Effect.Effect<void> {
    const rollback = conn.transactionStatus !== "I" ? this.rawQuery(conn, "ROLLBACK") : Effect.void
    const discard = conn.sessionDirty
      ? Effect.zipRight(this.rawQuery(conn, "DISCARD ALL"), this.onConnect?.(conn) ?? Effect.void)
      : Effect.void
    return Effect.zipRight(rollback, discard).pipe(
      // often runs inside a release finalizer: only the raced work may be interrupted by its timeout
      Effect.interruptible,
      (work) =>
        failAfter(
          work,
          this.config.validationTimeout,
          () => new Error(`the reset did not finish within ${Duration.format(this.config.validationTimeout)}`)
        ),
      Effect.matchCause({
        onSuccess: () => {
          conn.sessionDirty = false
          if (this.closing) return this.close(conn, "shutdown")
          if (conn.broken !== undefined || conn.transactionStatus !== "I") return this.close(conn, "reset")
          this.recycleOrOffer(conn)
        },
        onFailure: (cause) => {
          this.log("Warning", "connection could not be reset after use; discarded", {
            connectionId: conn.id,
            error: this.redact(Cause.squash(cause))
          })
          this.close(conn, "reset")
        }
      })
    )
  }

  /** An internal statement (validation, reset): no row mapping, bounded by the caller. */
  rawQuery(conn: PooledConnection, sql: string): Effect.Effect<void, unknown> {
    return Connection.runQuery(
      conn,
      sql,
      undefined,
      (err) => (err ? Effect.fail(err) : Effect.void),
      this.queryHooks,
      false
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
  // opening, closing, minimum size
  // ---------------------------------------------------------------------------------------------------------

  /** Opens connections for queued callers and up to minSize, unless we are backing off. */
  private fill(): void {
    if (this.closing || this.reconnecting || this.initFailed) return
    // after connections broke, one scout tests the server before the rest follow: a server that just died
    // sees one connection attempt, not maxSize of them
    if (this.suspect && this.pending > 0) return
    const minDeficit = this.config.minSize - this.all.size - this.pending
    while (
      (!this.suspect || this.pending === 0) &&
      this.all.size + this.pending < this.config.maxSize &&
      (this.pending < this.waitingCount + Math.max(0, minDeficit) || this.all.size + this.pending < this.config.minSize)
    ) {
      this.openInBackground()
    }
  }

  private openInBackground(): void {
    this.pending++
    // every exit settles `pending`: a defect (a hook that throws, a driver bug) or an interruption included
    this.fork(
      Effect.onExit(this.open(), (exit) =>
        Effect.sync(() => {
          this.pending--
          if (Exit.isSuccess(exit)) return this.onOpened(exit.value)
          const failure = this.openFailure(exit.cause)
          // only shutdown interrupts an open
          if (failure === undefined) return this.fill()
          this.onOpenFailed(failure)
        })
      )
    )
  }

  /** Why an open failed, defects included; `undefined` when it was only interrupted. */
  private openFailure(cause: Cause.Cause<Connection.ConnectFailure>): Connection.ConnectFailure | undefined {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) return failure.value
    if (Cause.isInterruptedOnly(cause)) return undefined
    const defect = Cause.squash(cause)
    this.log("Error", "a connection attempt died of a defect", { error: this.redact(defect) })
    return Connection.classifyConnectError(defect, this.config)
  }

  /**
   * Opens a connection and runs `onConnect` on it. The client is destroyed on every exit but success — a
   * failure, a defect, an interruption by shutdown or by a recovery that made this attempt moot — or its
   * socket and its backend would outlive the attempt.
   */
  private open(): Effect.Effect<PooledConnection, Connection.ConnectFailure> {
    const startedAtPerf = performance.now()
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        restore(Connection.connect(this.connectOptions, (client, cause) => this.onBroken(client, cause))),
        (client) =>
          Effect.onExit(restore(Effect.suspend(() => this.setUp(client))), (exit) =>
            Effect.sync(() => {
              if (Exit.isSuccess(exit)) this.metrics.created(performance.now() - startedAtPerf)
              else Connection.destroy(client)
            })
          )
      )
    )
  }

  /**
   * Wraps a fresh client and runs `onConnect`, bounded by connectTimeout of its own: it is part of opening a
   * connection, but a slow login must not eat the time of the hook's round trips (the worst attempt takes
   * two connectTimeouts), and a timeout then names the hook rather than the network.
   */
  private setUp(client: Pg.Client): Effect.Effect<PooledConnection, Connection.ConnectFailure> {
    const now = this.now()
    const lifetime = Duration.toMillis(this.config.maxLifetime)
    // up to -5 % jitter so connections opened together are not all recycled at the same instant
    const conn = new Connection.PooledConnection(
      this.nextId++,
      client,
      now,
      now + lifetime * (1 - Math.random() * 0.05)
    )
    this.byClient.set(client, conn)
    conn.trackTransactionStatus()
    if (this.onConnect === undefined) return Effect.succeed(conn)
    const onConnect = this.onConnect
    const timeout = this.config.connectTimeout
    let timedOut: Error | undefined
    const hook = failAfter(
      Effect.suspend(() => onConnect(conn)),
      timeout,
      () => {
        timedOut = new Error(
          `the onConnect hook did not finish within ${Duration.format(timeout)} (DB_POOL_CONNECT_TIMEOUT)`
        )
        // the connection is thrown away: the hook's interrupted query need not wait for the server
        conn.broken ??= timedOut
        return timedOut
      }
    )
    return Effect.matchCauseEffect(hook, {
      onFailure: (cause) => {
        const error = Cause.squash(cause)
        const failure =
          timedOut !== undefined && error === timedOut
            ? timedOut
            : new Error(`the onConnect hook failed: ${Connection.errorMessage(error)}`)
        return Effect.fail(this.setUpFailure(failure))
      },
      onSuccess: () => {
        // the socket may have died while the hook ran: such a connection never joins the pool
        if (!conn.isUsable()) {
          const broken = conn.broken ?? new Error("the connection closed while onConnect ran")
          return Effect.fail(
            this.setUpFailure(new Error(`the connection broke during onConnect: ${Connection.errorMessage(broken)}`))
          )
        }
        // what the hook sets is the connection's baseline, not state to reset after the first use
        conn.sessionDirty = false
        return Effect.succeed(conn)
      }
    })
  }

  /** A hook that fails fails that connection: retried with backoff like any failed open, never a rejection. */
  private setUpFailure(cause: Error): Connection.ConnectFailure {
    return {
      _tag: "ConnectFailure",
      cause,
      kind: "outage",
      code: undefined,
      message: cause.message,
      remedy: undefined,
      sessionLost: true,
      probeable: false,
      startingUp: false,
      goingAway: false
    }
  }

  private onOpened(conn: PooledConnection): void {
    const scout = this.suspect
    this.suspect = false
    this.created++
    this.all.add(conn)
    if (this.closing || this.initFailed) {
      // never offered: closed at once, and counted both created and closed
      conn.status = "active"
      return this.close(conn, "shutdown")
    }
    if (scout) {
      this.probationUntil = this.now() + survivalMillis
      // a scout starts a probation of its own: a backoff that ended long ago is not resumed
      if (!this.reconnecting) this.backoffResume = undefined
    }
    this.log("Debug", "connection opened", { connectionId: conn.id, total: this.all.size })
    this.recovered()
    this.offer(conn)
    this.fill()
  }

  private onOpenFailed(failure: Connection.ConnectFailure): void {
    this.noteFailure(failure)
    // eager init is done once the whole first wave has landed, if any of it succeeded
    if (this.everConnected && this.pending === 0) this.settleInit()
    this.startReconnecting(failure)
  }

  private noteFailure(failure: Connection.ConnectFailure): void {
    this.lastFailure = failure
    const message = redactText(failure.message, this.connectOptions.password)
    this.lastFailureText =
      failure.kind === "outage"
        ? message
        : `${message}${failure.code === undefined ? "" : ` (SQLSTATE ${failure.code})`} — ${failure.remedy}`
    this.lastError =
      failure.kind === "outage"
        ? message
        : `the server rejected the login (a configuration error, not an outage): ${this.lastFailureText}`
  }

  private onBroken(client: Pg.Client, cause: unknown): void {
    const conn = this.byClient.get(client)
    if (conn === undefined || conn.status === "closed") return
    conn.broken ??= cause
    // still opening (onConnect runs): that open fails by itself, and it never was a pool connection
    if (!this.all.has(conn)) return
    this.lastError = this.redact(cause)
    // an idle connection is evicted at once; a checked-out one when its holder releases it
    if (conn.status === "idle") {
      this.close(conn, "broken")
    }
  }

  private close(conn: PooledConnection, reason: CloseReason): void {
    if (conn.status === "closed") return
    if (conn.status === "idle") {
      const index = this.idle.indexOf(conn)
      if (index !== -1) this.idle.splice(index, 1)
    }
    conn.status = "closed"
    this.all.delete(conn)
    this.closed[reason]++
    if (reason === "broken" || reason === "validation") this.suspect = true
    Connection.destroy(conn.client)
    this.metrics.closed(reason, this.idle.length, this.all.size - this.idle.length)
    this.log(reason === "broken" || reason === "cancel" ? "Warning" : "Debug", "connection closed", {
      connectionId: conn.id,
      reason,
      ageMillis: Math.round(this.now() - conn.createdAt),
      queries: conn.queries,
      ...(conn.broken !== undefined ? { error: this.redact(conn.broken) } : {})
    })
    if (this.closing) {
      if (this.all.size - this.idle.length === 0) this.drained?.()
      return
    }
    if (reason === "broken" && this.diedYoung(conn)) {
      const failure = Connection.classifyConnectError(conn.broken, this.config)
      this.noteFailure(failure)
      return this.startReconnecting(failure, true)
    }
    this.updateState()
    this.fill()
  }

  /** A connection of a recovery still on probation broke: the recovery did not hold. */
  private diedYoung(conn: PooledConnection): boolean {
    const now = this.now()
    return now < this.probationUntil && now - conn.createdAt < survivalMillis
  }

  // ---------------------------------------------------------------------------------------------------------
  // reconnection
  // ---------------------------------------------------------------------------------------------------------

  /**
   * Enters the backoff after a failed open — or, with `resume`, after a recovery that did not last, where the
   * backoff goes on from where it stood instead of starting over.
   */
  private startReconnecting(failure: Connection.ConnectFailure, resume = false): void {
    if (this.closing || this.initFailed) return
    // a rejection fails eager init at once, even while the first wave's other attempts still run
    if (this.failInitIfDone(failure)) return
    if (this.reconnecting) return
    if (!resume) this.backoffResume = undefined
    this.reconnecting = true
    this.outageStartedAt = this.now()
    if (failure.kind === "rejected") {
      this.log("Error", "the database rejected the connection; retrying with backoff", {
        error: this.lastError,
        ...(failure.code === undefined ? {} : { code: failure.code })
      })
    } else if (resume) {
      this.log("Warning", "a connection broke right after the recovery; backing off again", { error: this.lastError })
    } else {
      this.log("Warning", "cannot open a database connection; reconnecting with backoff", { error: this.lastError })
    }
    this.updateState()
    this.reconnectFiber = this.fork(this.reconnectLoop(failure))
  }

  private recovered(): void {
    this.everConnected = true
    if (this.pending === 0) this.settleInit()
    if (!this.reconnecting) return this.updateState()
    this.reconnecting = false
    this.probationUntil = this.now() + survivalMillis
    const fiber = this.reconnectFiber
    this.reconnectFiber = undefined
    const downtime = Math.round(this.now() - (this.outageStartedAt ?? 0))
    this.outageStartedAt = undefined
    this.log("Info", "database connection recovered", { downtimeMillis: downtime })
    this.updateState()
    if (fiber !== undefined) this.fork(fiberInterrupt(fiber))
  }

  private reconnectLoop(initialFailure: Connection.ConnectFailure): Effect.Effect<void> {
    const self = this
    const reconnect = this.config.reconnect
    const exponential = Schedule.exponential(reconnect.initialDelay, reconnect.factor).pipe(
      Schedule.union(Schedule.spaced(reconnect.maxDelay))
    )
    const schedule = reconnect.jitter ? Schedule.jittered(exponential) : exponential
    const loop = Effect.gen(function* () {
      const resumed = self.backoffResume
      self.backoffResume = undefined
      let state = resumed?.state ?? schedule.initial
      let failure = initialFailure
      let attempt = resumed?.attempt ?? 1
      // consecutive failures of a server in transition (starting up, going away): its retries double from 100 ms
      let transientStreak = failure.startingUp || failure.goingAway ? 1 : 0
      // every failed attempt below checks eager init first, so what is logged as scheduled does happen
      while (!self.closing && self.reconnecting && !self.initFailed) {
        const now = self.now()
        const [next, , decision] = yield* schedule.step(now, undefined, state)
        state = next
        const delay = ScheduleDecision.isDone(decision)
          ? Duration.toMillis(reconnect.maxDelay)
          : Math.max(0, Intervals.start(decision.intervals) - now)
        self.log("Info", "reconnect attempt scheduled", { attempt: attempt + 1, delayMillis: delay })
        yield* self.backoff(delay, failure, transientStreak)
        if (self.closing || !self.reconnecting || self.initFailed) return
        attempt++
        self.reconnectAttempts++
        self.metrics.reconnectAttempt()
        const exit = yield* Effect.exit(self.open())
        if (Exit.isSuccess(exit)) {
          // this fiber is the reconnect loop: forget it first so recovery does not interrupt itself
          self.reconnectFiber = undefined
          self.backoffResume = { state, attempt }
          self.onOpened(exit.value)
          return
        }
        const failed = self.openFailure(exit.cause)
        if (failed === undefined) return
        failure = failed
        transientStreak = failure.startingUp || failure.goingAway ? transientStreak + 1 : 0
        self.noteFailure(failure)
        self.log("Warning", "reconnect attempt failed", { attempt, error: self.lastError })
        self.updateState()
        if (self.failInitIfDone(failure)) return
      }
    })
    // a defect must not end the loop with `reconnecting` set for good: nothing would open a connection again
    return Effect.catchAllCause(loop, (cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.void
      this.log("Error", "the reconnect loop died of a defect; restarting it", {
        error: this.redact(Cause.squash(cause))
      })
      return Effect.zipRight(Effect.sleep(reconnect.maxDelay), this.reconnectLoop(initialFailure))
    })
  }

  /**
   * Waits out one backoff step, but cuts it short when the server comes back: while the last failure was a
   * refused TCP connection, a cheap TCP probe runs on a short cadence, and the next full attempt starts as
   * soon as the port accepts. A server that accepts TCP but refuses sessions (too many connections, auth,
   * recovery) gets no such shortcut — the backoff governs — except one that says it is starting up or going
   * away (shutting down, or a reset on its Unix socket), which is retried on a short doubling cadence within the
   * step: its port still answers, so a probe cannot tell it restarted (a restart can take less than the probe's
   * period), while the next attempt can.
   */
  private backoff(delayMillis: number, failure: Connection.ConnectFailure, transientStreak: number) {
    const self = this
    return Effect.gen(function* () {
      const start = self.now()
      const deadline = start + delayMillis
      if (failure.startingUp || failure.goingAway) {
        yield* Effect.sleep(Math.min(delayMillis, 100 * 2 ** Math.min(transientStreak, 6)))
        return
      }
      while (!self.closing) {
        const remaining = deadline - self.now()
        if (remaining <= 0) return
        yield* Effect.sleep(Math.min(remaining, probeIntervalMillis))
        if (failure.probeable && remaining > probeIntervalMillis && (yield* self.probe())) return
      }
    })
  }

  /** The readiness probe (a TCP connect to the server's port); its latency, when it answered, for health. */
  private probe(): Effect.Effect<boolean> {
    return Effect.map(Connection.probeTcp(this.config.host, this.config.port), (latency) => {
      if (latency !== undefined) this.lastProbeLatencyMillis = latency
      return latency !== undefined
    })
  }

  // ---------------------------------------------------------------------------------------------------------
  // initialisation
  // ---------------------------------------------------------------------------------------------------------

  /** Opens the first connections. Eager: waits for one to succeed or the initial attempts to run out. */
  initialize(): Effect.Effect<void, DatabaseUnreachable | ConnectionRejected> {
    const self = this
    return Effect.gen(function* () {
      self.initStartedAt = self.now()
      self.log("Info", "pool starting", {
        host: self.config.host,
        port: self.config.port,
        database: self.config.database,
        minSize: self.config.minSize,
        maxSize: self.config.maxSize,
        init: self.config.init
      })
      if (self.config.init === "lazy") {
        self.loggedState = "degraded"
        self.openInitialWave()
        self.fork(self.healthProbeLoop())
        return
      }
      self.initOutcome = yield* Deferred.make<void, DatabaseUnreachable | ConnectionRejected>()
      self.openInitialWave()
      yield* Effect.interruptible(Deferred.await(self.initOutcome))
      // the first probe runs on a connection, so health reports the database reachable from the start
      self.fork(self.healthProbeLoop())
      self.log("Info", "pool ready", {
        total: self.all.size,
        elapsedMillis: Math.round(self.now() - self.initStartedAt)
      })
    })
  }

  private openInitialWave(): void {
    const count = Math.max(1, this.config.minSize)
    for (let i = 0; i < count; i++) this.openInBackground()
  }

  private settleInit(): void {
    if (this.initOutcome === undefined) return
    const outcome = this.initOutcome
    this.initOutcome = undefined
    Deferred.unsafeDone(outcome, Exit.void)
  }

  /**
   * Fails eager init when this failure ends it: at once for a rejection (retrying the same login cannot
   * help), after the initial attempts for an outage. Returns whether it did.
   */
  private failInitIfDone(failure: Connection.ConnectFailure): boolean {
    if (this.initOutcome === undefined) return false
    // the initial wave counts as one attempt however many connections it opened
    const attempts = this.initAttemptRounds()
    // a rejected login, a rejected certificate or a server without TLS will not change by retrying: fail at once
    if (failure.kind !== "rejected" && attempts < this.config.reconnect.initialAttempts) return false
    const outcome = this.initOutcome
    this.initOutcome = undefined
    this.initFailed = true
    const elapsedMillis = Math.round(this.now() - this.initStartedAt)
    const { database, host, port, user } = this.config
    const serverMessage = redactText(failure.message, this.connectOptions.password)
    const error =
      failure.kind === "rejected"
        ? new ConnectionRejected({
            host,
            port,
            database,
            user,
            code: failure.code,
            serverMessage,
            remedy: failure.remedy ?? "check DATABASE_URL",
            attempts,
            elapsedMillis
          })
        : new DatabaseUnreachable({ host, port, database, attempts, elapsedMillis, lastCause: serverMessage })
    this.log("Error", "pool initialisation failed", { attempts, elapsedMillis, error: error.message })
    Deferred.unsafeDone(outcome, Exit.fail(error))
    return true
  }

  private initAttemptRounds(): number {
    return 1 + this.reconnectAttempts
  }

  // ---------------------------------------------------------------------------------------------------------
  // background work: deadlines and housekeeping
  // ---------------------------------------------------------------------------------------------------------

  /**
   * Every acquisition has the same timeout and the queue is in arrival order, so deadlines grow along it: one
   * fiber sleeping until the head's deadline serves them all, instead of a timer per waiter. It is woken when
   * the head changes to an earlier deadline (a first waiter, or a retry put back at the front).
   */
  deadlineLoop(): Effect.Effect<never> {
    const wakeUp = Effect.async<void>((resume) => {
      const wake = () => {
        this.wakeDeadlines = undefined
        resume(Effect.void)
      }
      this.wakeDeadlines = wake
      return Effect.sync(() => {
        if (this.wakeDeadlines === wake) this.wakeDeadlines = undefined
      })
    })
    return Effect.suspend(() => {
      const head = this.waiters.head
      if (head === undefined) return wakeUp
      const now = this.now()
      if (head.deadline > now) return Effect.raceFirst(Effect.sleep(head.deadline - now), wakeUp)
      this.timeOut(head, now)
      return Effect.void
    }).pipe(Effect.forever)
  }

  private timeOut(waiter: Waiter, now: number): void {
    waiter.done = true
    this.waiters.remove(waiter)
    this.metrics.pendingRequests(this.waitingCount)
    waiter.settle(Effect.fail(this.acquireTimedOut(waiter, now)))
  }

  housekeeping(): Effect.Effect<never> {
    return Effect.sleep(housekeepingPeriodMillis).pipe(
      Effect.zipRight(Effect.sync(() => this.housekeep())),
      Effect.forever
    )
  }

  private housekeep(): void {
    if (this.closing) return
    const now = this.now()
    const maxIdle = Duration.toMillis(this.config.maxIdleTime)
    // oldest idle first (the stack's bottom), so the warm ones stay
    for (const conn of [...this.idle]) {
      if (!conn.isUsable()) this.close(conn, "broken")
      else if (now >= conn.expiresAt) this.close(conn, "lifetime")
      else if (now - conn.releasedAt >= maxIdle && this.all.size > this.config.minSize) this.close(conn, "idle")
    }
    if (this.leakThresholdMillis > 0) {
      for (const conn of this.all) {
        if (conn.status !== "active" || conn.leakReported) continue
        const held = now - conn.acquiredAt
        if (held < this.leakThresholdMillis) continue
        conn.leakReported = true
        this.leaks++
        this.metrics.leak()
        this.log("Warning", "connection held longer than the leak detection threshold", {
          connectionId: conn.id,
          heldMillis: held,
          thresholdMillis: this.leakThresholdMillis,
          acquiredAt: conn.acquisitionSite ?? "unknown (run inside a span to see where)"
        })
      }
    }
    // saturation and the minimum size change with time and traffic: the gauge follows within a tick
    this.updateState()
    this.fill()
  }

  // ---------------------------------------------------------------------------------------------------------
  // shutdown
  // ---------------------------------------------------------------------------------------------------------

  shutdown(): Effect.Effect<void> {
    const self = this
    return Effect.gen(function* () {
      if (self.closing) return
      const startedAt = self.now()
      self.closing = true
      const busyAtStart = self.all.size - self.idle.length
      const waitersAtStart = self.waitingCount
      self.log("Info", "pool shutting down", { active: busyAtStart, idle: self.idle.length, waiting: waitersAtStart })
      self.updateState()
      self.settleInit()
      const closedError = new PoolClosed({ poolName: self.name })
      for (let waiter = self.waiters.shift(); waiter !== undefined; waiter = self.waiters.shift()) {
        self.metrics.failed(performance.now() - waiter.startedAtPerf)
        waiter.done = true
        waiter.settle(Effect.fail(closedError))
      }
      self.metrics.pendingRequests(0)
      for (const conn of [...self.idle]) self.close(conn, "shutdown")
      let cancelled = 0
      if (self.all.size > 0) {
        const drained = Effect.async<void>((resume) => {
          self.drained = () => resume(Effect.void)
          if (self.all.size === 0) resume(Effect.void)
        })
        const finished = yield* drained.pipe(Effect.interruptible, Effect.timeoutOption(self.config.shutdownTimeout))
        if (Option.isNone(finished)) {
          // still busy after shutdownTimeout: cancel what runs, then cut the sockets
          const busy = [...self.all]
          cancelled = busy.length
          yield* Effect.forEach(busy, (conn) => self.cancelAndClose(conn), { concurrency: "unbounded", discard: true })
        }
      }
      self.log("Info", "pool shut down", {
        elapsedMillis: Math.round(self.now() - startedAt),
        activeAtStart: busyAtStart,
        waitersWoken: waitersAtStart,
        cancelledAfterTimeout: cancelled,
        connectionsCreated: self.created,
        acquisitions: self.acquisitions
      })
    })
  }

  private cancelAndClose(conn: PooledConnection): Effect.Effect<void> {
    const target = conn.cancelTarget()
    const cancel =
      conn.inFlight > 0 && target !== undefined
        ? Connection.sendCancelRequest(target).pipe(Effect.timeoutOption(1_000), Effect.interruptible)
        : Effect.void
    return Effect.zipRight(
      cancel,
      Effect.sync(() => {
        conn.broken ??= new Error("closed by pool shutdown")
        this.close(conn, "shutdown")
      })
    )
  }

  // ---------------------------------------------------------------------------------------------------------
  // state, statistics, logging
  // ---------------------------------------------------------------------------------------------------------

  get oldestWaiterMillis(): number {
    const head = this.waiters.head
    return head === undefined ? 0 : Math.round(this.now() - head.arrivedAt)
  }

  /** Sets the state gauge and logs a transition, from the same assessment as health and the statistics. */
  private updateState(): void {
    const { reason, status } = this.assess()
    if (status === this.loggedState) return
    const previous = this.loggedState
    this.loggedState = status
    this.metrics.state(status)
    // the first state is no transition; "pool shutting down" already says it, and a stale error would read as
    // an outage
    if (previous === undefined || this.closing) return
    if (this.quietStart) {
      this.quietStart = false
      if (status === "healthy") return
    }
    this.log(status === "healthy" ? "Info" : "Warning", `pool is ${status}`, { previous, reason })
  }

  private probeResult: { reachable: boolean; latencyMs: number | undefined; at: number | undefined } = {
    reachable: false,
    latencyMs: undefined,
    at: undefined
  }

  /** Health from pool state and the last background probe; see Health.ts for the rules. */
  health(): HealthStatus {
    const { reason, status } = this.assess()
    const statistics = this.statistics(status)
    return new HealthStatus(
      {
        status,
        reason: Option.fromNullable(reason),
        checkedAt: new Date(this.clock.unsafeCurrentTimeMillis()),
        database: new DatabaseReachability(
          {
            // a failed open is fresher evidence than the last probe (up to healthProbePeriodMillis old); a rejected
            // login came from a server that answered
            reachable:
              this.probeResult.reachable &&
              !(this.reconnecting && this.all.size === 0 && this.lastFailure?.kind !== "rejected"),
            latencyMs: Option.fromNullable(this.probeResult.latencyMs),
            probedAt: Option.fromNullable(this.probeResult.at === undefined ? undefined : new Date(this.probeResult.at))
          },
          true
        ),
        statistics
      },
      true
    )
  }

  /**
   * The background probe behind `health`: a round trip on an idle connection when one is free (never
   * waiting for one), otherwise evidence from the pool itself, or a TCP probe when it holds no connection.
   */
  /** The probe is not a caller: no acquisition or use-time figures, and the idle clock keeps running. */
  private returnFromProbe(conn: PooledConnection, releasedAt: number): void {
    if (this.closing) return this.close(conn, "shutdown")
    if (!conn.isUsable()) return this.close(conn, "broken")
    this.offer(conn)
    if (conn.status === "idle") conn.releasedAt = releasedAt
  }

  healthProbeLoop(): Effect.Effect<never> {
    return this.probeOnce().pipe(Effect.zipRight(Effect.sleep(healthProbePeriodMillis)), Effect.forever)
  }

  probeOnce(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.closing) return Effect.void
      const now = this.clock.unsafeCurrentTimeMillis()
      const nowMonotonic = this.now()
      if (this.idle.length > 0 && this.waitingCount === 0) {
        const conn = this.idle.pop()!
        if (!this.usable(conn)) return Effect.void
        // the probe must not make an idle connection look recently used, or it would never idle out
        const releasedAt = conn.releasedAt
        conn.status = "active"
        conn.acquiredAt = nowMonotonic
        conn.acquiredAtPerf = performance.now()
        this.metrics.connections(this.idle.length, this.all.size - this.idle.length)
        const startedAt = performance.now()
        return this.rawQuery(conn, "").pipe(
          (roundTrip) =>
            failAfter(
              roundTrip,
              this.config.validationTimeout,
              () => new Error(`no answer to the health probe within ${Duration.format(this.config.validationTimeout)}`)
            ),
          Effect.matchCause({
            onSuccess: () => {
              this.probeResult = { reachable: true, latencyMs: performance.now() - startedAt, at: now }
            },
            onFailure: (cause) => {
              conn.broken ??= Cause.squash(cause)
              this.probeResult = { reachable: false, latencyMs: this.probeResult.latencyMs, at: now }
            }
          }),
          Effect.ensuring(Effect.sync(() => this.returnFromProbe(conn, releasedAt)))
        )
      }
      if (this.all.size > 0) {
        this.probeResult = { ...this.probeResult, reachable: !this.reconnecting, at: now }
        return Effect.void
      }
      return Effect.map(this.probe(), (open) => {
        this.probeResult = {
          reachable: open && !this.reconnecting,
          latencyMs: open ? this.lastProbeLatencyMillis : this.probeResult.latencyMs,
          at: now
        }
      })
    })
  }

  /** The one assessment (the engine's rules, see Health.ts): health, the statistics and the gauge all read it. */
  private assess(): Assessment.Assessment {
    const lastFailure =
      this.lastError === undefined
        ? undefined
        : this.lastFailure?.kind === "rejected"
          ? { kind: "rejected", message: this.lastFailureText ?? this.lastError }
          : { kind: "outage", message: this.lastError }
    return Assessment.assess({
      target: `${this.config.host}:${this.config.port}`,
      closing: this.closing,
      reconnecting: this.reconnecting,
      lastFailure,
      everConnected: this.everConnected,
      total: this.all.size,
      busy: this.all.size - this.idle.length,
      minSize: this.config.minSize,
      maxSize: this.config.maxSize,
      waiting: this.waitingCount,
      oldestWaiterMillis: this.oldestWaiterMillis
    })
  }

  statistics(state: PoolState = this.assess().status): PoolStatistics {
    const total = this.all.size
    const idle = this.idle.length
    const [p95, p99] = this.latencies.percentiles()
    return new PoolStatistics(
      {
        poolName: this.name,
        total,
        idle,
        active: total - idle,
        pending: this.pending,
        waiting: this.waitingCount,
        minSize: this.config.minSize,
        maxSize: this.config.maxSize,
        peakActive: this.peakActive,
        peakWaiting: this.peakWaiting,
        acquisitions: this.acquisitions,
        acquisitionTimeAvgMs: this.acquisitions === 0 ? 0 : this.acquisitionTimeTotal / this.acquisitions,
        acquisitionTimeP95Ms: p95,
        acquisitionTimeP99Ms: p99,
        acquireTimeouts: this.acquireTimeouts,
        connectionsCreated: this.created,
        connectionsClosed: new ClosedByReason({ ...this.closed }, true),
        reconnectAttempts: this.reconnectAttempts,
        leaksSuspected: this.leaks,
        state,
        lastError: Option.fromNullable(this.lastError),
        upSince: new Date(this.startedAt)
        // built from typed fields: skipping Schema's re-validation makes a snapshot ~20× cheaper
      },
      true
    )
  }

  redact(cause: unknown): string {
    return redactText(Connection.errorMessage(cause), this.connectOptions.password)
  }

  log(level: "Debug" | "Info" | "Warning" | "Error", message: string, annotations: Record<string, unknown>) {
    const effect =
      level === "Debug"
        ? Effect.logDebug(message)
        : level === "Info"
          ? Effect.logInfo(message)
          : level === "Warning"
            ? Effect.logWarning(message)
            : Effect.logError(message)
    // the message is the event's name: every logger renders it, so no annotation repeats it
    this.fork(Effect.annotateLogs(effect, { pool: this.name, ...annotations }))
  }
}

const acquisitionSite = (span: Tracer.AnySpan | undefined): string | undefined => {
  if (span === undefined) return undefined
  const names: Array<string> = []
  let current: Tracer.AnySpan | undefined = span
  while (current !== undefined && names.length < 8) {
    names.push(current._tag === "Span" ? current.name : `external ${current.spanId}`)
    current = current._tag === "Span" && current.parent._tag === "Some" ? current.parent.value : undefined
  }
  const top = span
  const stack = top._tag === "Span" ? top.attributes.get("code.stacktrace") : undefined
  return names.join(" < ") + (typeof stack === "string" ? ` at ${stack}` : "")
}

const fiberInterrupt = (fiber: Fiber.RuntimeFiber<void, never>) =>
  Effect.flatMap(Effect.fiberId, (id) => fiber.interruptAsFork(id))

/**
 * Builds a pool in the current scope: background fibers live in it, and closing it shuts the pool down
 * gracefully (the wait for busy connections stays interruptible so its timeout can fire inside the
 * uninterruptible finalizer). The caller runs `initialize` once everything that `onConnect` needs exists.
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
      options.onConnect
    )
    yield* Effect.addFinalizer(() => pool.shutdown())
    fork(pool.deadlineLoop())
    fork(pool.housekeeping())
    return pool
  })
