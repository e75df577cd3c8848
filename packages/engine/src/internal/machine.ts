/**
 * The state machine behind `Engine.make`. All bookkeeping is synchronous: one event in, its decisions out, in
 * the order the edition must carry them out.
 *
 * The acquire path reads top to bottom: `acquire` queues the acquisition and `pump` serves the head of the queue
 * while some session can serve it; a session that becomes free goes through `release` → `reset` → `recycle` →
 * `offer`, which parks it and pumps again, so a freed session goes straight to the head (no barging).
 *
 * @internal
 */
import * as Assessment from "../Assessment.js"
import type {
  AcquireError,
  AcquisitionId,
  Config,
  Decision,
  Engine,
  Event,
  Failure,
  Gauges,
  SessionFacts,
  SessionId
} from "../Engine.js"
import { IdTable } from "../IdTable.js"
import type { CloseReason, Snapshot } from "../Statistics.js"
import { LatencyWindow, noneClosed } from "../Statistics.js"
import { type Linked, WaiterQueue } from "../WaiterQueue.js"

/**
 * How long a session opened by a recovery (the reconnect loop's, or the scout after sessions broke) must live
 * before the recovery counts. A server that accepts the login and kills the session at once — a failover in
 * progress, a pooler, a `pg_terminate_backend` loop — does so within milliseconds, while a working session lives
 * minutes: one second is orders of magnitude from both, so a session lost that young resumes the backoff where it
 * stood instead of resetting it.
 */
const survivalMillis = 1_000
/** How many acquisition times are kept for the percentiles. */
const latencySamples = 1024
/** Lifetime jitter: up to −5 %, so sessions opened together are not all recycled at the same instant. */
const lifetimeJitter = 0.05

type Kind = "exclusive" | "statement"

class Acquisition implements Linked {
  prev: Linked | undefined = undefined
  next: Linked | undefined = undefined
  queued = false
  state: "waiting" | "validating" | "granted" | "done" = "waiting"
  session: Session | undefined = undefined
  grantedAt = 0
  leakReported = false
  /** Its index among its session's statements while it runs as one (`Statements`), else -1. */
  slot = -1
  constructor(
    readonly id: AcquisitionId,
    readonly kind: Kind,
    readonly arrivedAt: number,
    /** One deadline for the whole acquisition, validations and retries included. */
    readonly deadline: number,
    /** Its rank among all acquisitions requested: the order of shutdown's failures and of the leak warnings. */
    readonly order: number
  ) {}
}

/**
 * The statements a session runs: an array in which each knows its index, so that one leaves in O(1) by swapping
 * the last into its place. Not a `Set`: one added and deleted per statement churns its table into old-generation
 * garbage (see `IdTable`).
 */
class Statements {
  private readonly running: Array<Acquisition> = []

  get size(): number {
    return this.running.length
  }

  add(acquisition: Acquisition): void {
    acquisition.slot = this.running.length
    this.running.push(acquisition)
  }

  delete(acquisition: Acquisition): boolean {
    if (!this.has(acquisition)) return false
    const last = this.running.pop()!
    if (last !== acquisition) {
      this.running[acquisition.slot] = last
      last.slot = acquisition.slot
    }
    acquisition.slot = -1
    return true
  }

  has(acquisition: Acquisition): boolean {
    return acquisition.slot >= 0 && this.running[acquisition.slot] === acquisition
  }

  clear(): void {
    for (const acquisition of this.running) acquisition.slot = -1
    this.running.length = 0
  }

  [Symbol.iterator](): Iterator<Acquisition> {
    return this.running[Symbol.iterator]()
  }
}

class Session {
  /** opening → idle ⇄ held | shared | validating | resetting; closed sessions are forgotten. */
  state: "opening" | "idle" | "held" | "shared" | "validating" | "resetting" | "probing" = "opening"
  createdAt = 0
  expiresAt = Number.POSITIVE_INFINITY
  releasedAt = 0
  queries = 0
  dirty = false
  /** Why it must never be handed out again. */
  broken: string | undefined = undefined
  /** Evicted by its host's role change (`SessionEvicted`): its close counts as `roleChanged`, not as a failure. */
  roleChanged = false
  /** A reconnect attempt, whose failure continues the backoff instead of starting one. */
  reconnectAttempt = false
  holder: Acquisition | undefined = undefined
  readonly statements = new Statements()
  validatingFor: Acquisition | undefined = undefined
  /** While the health probe borrows it: when it was released, so that the probe does not make it look used. */
  probedReleasedAt = 0
  constructor(
    readonly id: SessionId,
    /** The refresh generation it was opened in: one opened before the last refresh is retired, never handed out. */
    readonly generation: number
  ) {}
}

const cleanFacts: SessionFacts = { transactionStatus: "I", dirty: false, broken: false, inFlight: 0, queries: 0 }

/** @internal */
export class Machine implements Engine {
  private out: Array<Decision> = []
  private now = 0

  private readonly sessions = new Map<SessionId, Session>()
  /** LIFO: the most recently used is handed out first, which keeps warm sessions warm. */
  private readonly idle: Array<Session> = []
  /** The acquisitions in flight (an `IdTable`: a `Map` churned by ever-growing ids makes old-generation garbage). */
  private readonly acquisitions = new IdTable<Acquisition>()
  private acquisitionsRequested = 0
  private readonly queue = new WaiterQueue<Acquisition>()
  private queuedStatements = 0
  private opening = 0
  private nextSessionId = 1
  /** Counts `RefreshRequested`: sessions of an older generation are retired. */
  private generation = 0

  private started = false
  private closing = false
  private shutdown:
    | {
        readonly startedAt: number
        readonly deadline: number
        readonly busy: number
        readonly waiters: number
        cancelled: number
      }
    | undefined = undefined
  private drained = false
  private armedAt: number | undefined = undefined
  private loggedState: Assessment.PoolState | undefined = undefined
  /** Eager start: "pool ready" announces the first healthy state, which is not logged as a transition. */
  private quietStart: boolean

  private initPending = false
  private initFailed = false
  private startedAt = 0
  private everConnected = false
  /** Sessions broke since the last successful open: open one at a time (a scout) until one succeeds. */
  private suspect = false
  private reconnecting = false
  private reconnectAttempt = 1
  private startingUpStreak = 0
  private outageStartedAt = 0
  /** Until then, a young session that breaks resumes the backoff instead of counting as a recovery. */
  private probationUntil = 0
  /**
   * The probation is a reconnect recovery's, whose failure goes on with the backoff where it stood; a scout's
   * (after sessions broke, no backoff running) starts the schedule over: a backoff that ended long ago is stale.
   */
  private probationResumes = false
  /** Shutdown closes the idle sessions one by one: it is drained once all of them are closed, not after the first. */
  private closingIdle = false
  private lastFailure: Failure | undefined = undefined

  // statistics
  private peakActive = 0
  private peakWaiting = 0
  private acquisitionCount = 0
  private acquisitionTimeTotal = 0
  private readonly latencies = new LatencyWindow(latencySamples)
  private acquireTimeouts = 0
  private created = 0
  private readonly closed = noneClosed()
  private reconnectAttempts = 0
  private leaks = 0

  constructor(readonly config: Config) {
    this.quietStart = config.init === "eager"
    this.facts = {
      target: config.target,
      closing: false,
      reconnecting: false,
      lastFailure: undefined,
      everConnected: false,
      total: 0,
      busy: 0,
      minSize: config.minSize,
      maxSize: config.maxSize,
      waiting: 0,
      oldestWaiterMillis: 0
    }
    const machine = this
    this.gauges = {
      get total() {
        return machine.total()
      },
      get idle() {
        return machine.idle.length
      },
      get opening() {
        return machine.opening
      },
      get waiting() {
        return machine.queue.size
      },
      get reconnecting() {
        return machine.reconnecting
      }
    }
  }

  readonly gauges: Gauges

  handle(event: Event): ReadonlyArray<Decision> {
    this.out = []
    this.now = event.now
    switch (event._tag) {
      case "Started":
        this.start()
        break
      case "AcquireRequested":
        this.acquire(event.acquisition, event.kind)
        break
      case "AcquireAbandoned":
        this.abandon(event.acquisition)
        break
      case "Released":
        this.release(event.acquisition, event.facts)
        break
      case "SessionOpened":
        this.opened(event.session, event.jitter)
        break
      case "OpenFailed":
        this.openFailed(event.session, event.failure)
        break
      case "SessionClosed":
        this.sessionClosed(event.session, event.failure)
        break
      case "SessionEvicted":
        this.evicted(event.session, event.reason)
        break
      case "ValidationResult":
        this.validated(event.session, event.ok, event.error)
        break
      case "ResetResult":
        this.resetDone(event.session, event.ok, event.error)
        break
      case "TimerDue":
        this.timerDue()
        break
      case "ReconnectDue":
        this.reconnectDue()
        break
      case "Tick":
        this.housekeep()
        break
      case "ProbeRequested":
        this.probe()
        break
      case "ShutdownRequested":
        this.startShutdown()
        break
      case "RefreshRequested":
        this.refresh()
        break
      default:
        return absurd(event)
    }
    this.armTimer()
    this.updateState()
    return this.out
  }

  // -------------------------------------------------------------------------------------------------------------
  // acquisition
  // -------------------------------------------------------------------------------------------------------------

  private acquire(id: AcquisitionId, kind: Kind): void {
    if (this.acquisitions.has(id)) {
      return this.log("Error", "an acquisition id was reused while still active; ignored", { acquisition: id })
    }
    if (this.closing) return this.emit({ _tag: "Fail", acquisition: id, error: closedError })
    const acquisition = new Acquisition(
      id,
      kind,
      this.now,
      this.now + this.config.acquireTimeout,
      this.acquisitionsRequested++
    )
    this.acquisitions.set(id, acquisition)
    // nobody waits: an exclusive acquisition takes an idle session at once, without joining the queue
    if (this.queue.size === 0 && kind === "exclusive" && this.now < acquisition.deadline) {
      const session = this.popIdle()
      if (session !== undefined) return this.take(acquisition, session)
    }
    this.enqueue(acquisition, false)
  }

  /**
   * Queues an acquisition — a retry after a failed validation at its place by arrival, ahead of everyone who
   * queued meanwhile — and serves the head while it can be served.
   */
  private enqueue(acquisition: Acquisition, retry: boolean): void {
    if (this.now >= acquisition.deadline) return this.timeOut(acquisition)
    acquisition.state = "waiting"
    acquisition.session = undefined
    if (retry) this.queue.insertByArrival(acquisition)
    else this.queue.push(acquisition)
    if (acquisition.kind === "statement") this.queuedStatements++
    this.pump()
    if (this.queue.size > this.peakWaiting) this.peakWaiting = this.queue.size
    if (acquisition.queued) this.fill()
  }

  private unqueue(acquisition: Acquisition): void {
    if (!acquisition.queued) return
    this.queue.remove(acquisition)
    if (acquisition.kind === "statement") this.queuedStatements--
  }

  /** Serves the head of the queue while a session can: strictly FIFO, whatever the kinds. */
  private pump(): void {
    for (let head = this.queue.head; head !== undefined; head = this.queue.head) {
      const session = head.kind === "exclusive" ? this.popIdle() : this.freeSlot()
      if (session === undefined) return
      // popIdle took it off the idle list; an idle session that freeSlot chose is still on it
      if (head.kind === "statement" && session.state === "idle") removeFrom(this.idle, session)
      this.unqueue(head)
      this.take(head, session)
    }
  }

  /** The most recently used idle session that has not outlived its lifetime. */
  private popIdle(): Session | undefined {
    for (let session = this.idle.pop(); session !== undefined; session = this.idle.pop()) {
      if (this.now < session.expiresAt) return session
      this.close(session, "lifetime")
    }
    return undefined
  }

  /**
   * A statement slot on the busiest session that still has one (an idle one counts as load 0): statements fill a
   * session before the next takes any, as effect's Pool fills its items. Filling first batches more statements
   * into each socket write (the drivers cork what one tick submits: half the writes per statement of spreading
   * them, measured on the Effect 4 edition) and leaves idle sessions free for exclusive checkouts; the price is
   * that more statements queue behind a slow one on the same session (bound them with statementTimeout). Sessions
   * past their lifetime or query budget take no new statements: they drain and close.
   */
  private freeSlot(): Session | undefined {
    let best: Session | undefined
    for (const session of this.sessions.values()) {
      if (session.state !== "idle" && session.state !== "shared") continue
      if (session.statements.size >= this.config.capacity || !this.mayServe(session)) continue
      if (best === undefined || session.statements.size > best.statements.size) best = session
    }
    return best
  }

  private mayServe(session: Session): boolean {
    return (
      session.broken === undefined &&
      !this.retired(session) &&
      this.now < session.expiresAt &&
      session.queries < this.config.maxQueries
    )
  }

  /** Hands a session to an acquisition, validating it first when it idled longer than the skip window. */
  private take(acquisition: Acquisition, session: Session): void {
    if (session.state === "idle") {
      if (this.now - session.releasedAt > this.config.validateAfterIdle) {
        session.state = "validating"
        session.validatingFor = acquisition
        acquisition.state = "validating"
        acquisition.session = session
        this.countActive()
        return this.emit({
          _tag: "Validate",
          session: session.id,
          acquisition: acquisition.id,
          // the round trip gets validationTimeout, or what is left of the acquisition's own deadline
          timeoutAt: Math.min(this.now + this.config.validationTimeout, acquisition.deadline)
        })
      }
    }
    this.grant(acquisition, session)
  }

  private grant(acquisition: Acquisition, session: Session): void {
    if (acquisition.kind === "exclusive") {
      session.state = "held"
      session.holder = acquisition
    } else {
      session.state = "shared"
      session.statements.add(acquisition)
    }
    acquisition.state = "granted"
    acquisition.session = session
    acquisition.grantedAt = this.now
    const waited = this.now - acquisition.arrivedAt
    this.acquisitionCount++
    this.acquisitionTimeTotal += waited
    this.latencies.record(waited)
    this.countActive()
    this.emit({ _tag: "Grant", acquisition: acquisition.id, session: session.id })
    // a statement pipelined behind others: open another session while below maxSize, so the load spreads
    if (acquisition.kind === "statement" && session.statements.size > 1 && this.opening === 0) this.fill(1)
  }

  private validated(id: SessionId, ok: boolean, error: string | undefined): void {
    const session = this.sessions.get(id)
    if (session?.state === "probing") return this.probed(session, ok, error)
    if (session === undefined || session.state !== "validating") return
    const validatingFor = session.validatingFor
    session.validatingFor = undefined
    // undefined when the acquisition gave up during the round trip
    const acquisition = validatingFor?.state === "validating" ? validatingFor : undefined
    if (this.closing) return this.close(session, "shutdown")
    if (ok && session.broken === undefined && this.retired(session)) {
      // refreshed during the round trip: the acquisition waits, at its place, for a new session
      this.close(session, "refreshed")
      if (acquisition !== undefined) this.enqueue(acquisition, true)
      return
    }
    if (ok && session.broken === undefined) {
      if (acquisition !== undefined) {
        this.grant(acquisition, session)
        // a statement leaves the session's other slots free for the statements queued behind it
        return this.pump()
      }
      // the acquisition gave up during the round trip, which the session answered: it serves the next one
      return this.offer(session)
    }
    session.broken ??= error ?? "the validation round trip failed"
    this.log("Warning", "connection failed validation; discarded", { connectionId: id, error: session.broken })
    this.close(session, "validation")
    // the acquisition continues as if that session had never been idle, with the time it has left
    if (acquisition !== undefined) this.enqueue(acquisition, true)
  }

  /** An acquisition gave up: it leaves the queue, or passes on a session it never saw. */
  private abandon(id: AcquisitionId): void {
    const acquisition = this.acquisitions.get(id)
    if (acquisition === undefined) return
    switch (acquisition.state) {
      case "waiting":
        this.finish(acquisition)
        this.unqueue(acquisition)
        // the new head may be a statement that a free slot can serve
        return this.pump()
      case "validating":
        // the validation's outcome decides what becomes of the session
        return this.finish(acquisition)
      case "granted":
        // never an acquisition from the caller's point of view
        this.acquisitionCount--
        this.acquisitionTimeTotal -= acquisition.grantedAt - acquisition.arrivedAt
        return this.release(id, cleanFacts)
      case "done":
        return
    }
  }

  private finish(acquisition: Acquisition): void {
    acquisition.state = "done"
    this.acquisitions.delete(acquisition.id)
  }

  /** The acquisitions in flight, in the order they were requested. */
  private inFlight(): Array<Acquisition> {
    return this.acquisitions.values().sort(byOrder)
  }

  private timerDue(): void {
    // the timer fired and is gone: whatever is still due must be armed again, even at the same instant (a timer
    // that fires early, by the host's rounding, would otherwise never fire again)
    this.armedAt = undefined
    for (let head = this.queue.head; head !== undefined && head.deadline <= this.now; head = this.queue.head) {
      this.timeOut(head)
    }
    this.pump()
    const shutdown = this.shutdown
    if (shutdown !== undefined && !this.drained && this.now >= shutdown.deadline) this.cutShutdown()
  }

  private timeOut(acquisition: Acquisition): void {
    this.unqueue(acquisition)
    this.finish(acquisition)
    this.acquireTimeouts++
    const waitedMillis = Math.round(this.now - acquisition.arrivedAt)
    const statistics = this.statistics(this.now)
    this.log("Warning", "timed out waiting for a connection", {
      acquisition: acquisition.id,
      waitedMillis,
      active: statistics.active,
      total: statistics.total,
      waiting: statistics.waiting,
      state: statistics.state
    })
    this.emit({ _tag: "Fail", acquisition: acquisition.id, error: { _tag: "Timeout", waitedMillis, statistics } })
  }

  /** One timer: every acquisition has the same timeout and the queue is in arrival order, so the head's is next. */
  private armTimer(): void {
    const at =
      this.shutdown !== undefined ? (this.drained ? undefined : this.shutdown.deadline) : this.queue.head?.deadline
    if (at === this.armedAt) return
    this.armedAt = at
    this.emit({ _tag: "ArmTimer", at })
  }

  // -------------------------------------------------------------------------------------------------------------
  // release and reset
  // -------------------------------------------------------------------------------------------------------------

  private release(id: AcquisitionId, facts: SessionFacts): void {
    const acquisition = this.acquisitions.get(id)
    // a second release, or one after shutdown cut the session: nothing to do
    if (acquisition === undefined || acquisition.state !== "granted") return
    const session = acquisition.session!
    this.finish(acquisition)
    if (acquisition.leakReported) {
      this.log("Info", "connection suspected of leaking was returned", {
        connectionId: session.id,
        acquisition: id,
        heldMillis: Math.round(this.now - acquisition.grantedAt)
      })
    }
    session.queries += facts.queries
    if (facts.broken) session.broken ??= "the session broke while in use"
    if (facts.dirty) session.dirty = true
    if (acquisition.kind === "statement") {
      session.statements.delete(acquisition)
      if (session.statements.size > 0) {
        if (facts.inFlight > 0) session.broken ??= "a statement's cancellation did not settle"
        // a slot is free: the head of the queue may be a statement
        return this.pump()
      }
    } else {
      session.holder = undefined
      if (this.config.resetAlways) session.dirty = true
    }
    if (this.closing) return this.close(session, "shutdown")
    if (facts.inFlight > 0) return this.close(session, "cancel")
    if (session.broken !== undefined) return this.close(session, "broken")
    // no reset for a session that closes anyway: closing it ends whatever transaction it was in
    if (this.retired(session)) return this.close(session, "refreshed")
    if (facts.transactionStatus !== "I" || session.dirty) {
      session.state = "resetting"
      return this.emit({
        _tag: "Reset",
        session: session.id,
        rollback: facts.transactionStatus !== "I",
        discard: session.dirty,
        timeoutAt: this.now + this.config.validationTimeout
      })
    }
    this.recycle(session)
  }

  private resetDone(id: SessionId, ok: boolean, error: string | undefined): void {
    const session = this.sessions.get(id)
    if (session === undefined || session.state !== "resetting") return
    if (this.closing) return this.close(session, "shutdown")
    if (!ok || session.broken !== undefined) {
      this.log("Warning", "connection could not be reset after use; discarded", {
        connectionId: id,
        error: error ?? session.broken ?? "the reset failed"
      })
      return this.close(session, "reset")
    }
    session.dirty = false
    this.recycle(session)
  }

  private recycle(session: Session): void {
    if (session.queries >= this.config.maxQueries) return this.close(session, "maxQueries")
    if (this.now >= session.expiresAt) return this.close(session, "lifetime")
    this.offer(session)
  }

  /** Parks a clean session and serves the queue: the head gets it at once. */
  private offer(session: Session): void {
    // opened, validated, reset or probed across a refresh: retired instead of offered
    if (this.retired(session)) return this.close(session, "refreshed")
    session.state = "idle"
    session.releasedAt = this.now
    this.idle.push(session)
    this.pump()
  }

  // -------------------------------------------------------------------------------------------------------------
  // opening, closing, minimum size
  // -------------------------------------------------------------------------------------------------------------

  private start(): void {
    if (this.started || this.closing) return
    this.started = true
    this.startedAt = this.now
    this.initPending = this.config.init === "eager"
    this.log("Info", "pool starting", {
      ...(this.config.startFields ?? { target: this.config.target }),
      minSize: this.config.minSize,
      maxSize: this.config.maxSize,
      init: this.config.init
    })
    const count = Math.max(1, this.config.minSize)
    for (let i = 0; i < count && this.sessions.size < this.config.maxSize; i++) this.open()
    this.fill()
  }

  /**
   * Opens sessions for queued acquisitions and up to minSize, unless backing off; `extra` more to spread
   * pipelined statements. After sessions broke, one scout tests the server before the rest follow: a server that
   * just died sees one connection attempt, not maxSize of them.
   */
  private fill(extra = 0): void {
    if (!this.started || this.closing || this.reconnecting || this.initFailed) return
    if (this.suspect && this.opening > 0) return
    const { capacity, maxSize, minSize } = this.config
    const total = this.total()
    const demand = this.queue.size - this.queuedStatements + Math.ceil(this.queuedStatements / capacity) + extra
    const minDeficit = Math.max(0, minSize - total - this.opening)
    while (
      (!this.suspect || this.opening === 0) &&
      total + this.opening < maxSize &&
      (this.opening < demand + minDeficit || total + this.opening < minSize)
    ) {
      this.open()
    }
  }

  private open(reconnectAttempt = false): void {
    const session = new Session(this.nextSessionId++, this.generation)
    session.reconnectAttempt = reconnectAttempt
    this.sessions.set(session.id, session)
    this.opening++
    this.emit({ _tag: "Open", session: session.id })
  }

  private opened(id: SessionId, jitter: number): void {
    const session = this.sessions.get(id)
    if (session === undefined || session.state !== "opening") return
    this.opening--
    this.created++
    session.createdAt = this.now
    session.releasedAt = this.now
    session.expiresAt = this.now + this.config.maxLifetime * (1 - lifetimeJitter * clamp01(jitter))
    // no longer opening; offered below, or (never offered) closed at once and counted both created and closed
    session.state = "idle"
    if (this.closing || this.initFailed) return this.close(session, "shutdown")
    const scout = this.suspect
    this.suspect = false
    if (scout) {
      this.probationUntil = this.now + survivalMillis
      if (!this.reconnecting) this.probationResumes = false
    }
    this.log("Debug", "connection opened", { connectionId: id, total: this.total() })
    this.recovered()
    this.offer(session)
    this.fill()
  }

  private openFailed(id: SessionId, failure: Failure): void {
    const session = this.sessions.get(id)
    if (session === undefined || session.state !== "opening") return
    this.opening--
    this.sessions.delete(id)
    // an attempt that lost the race to a recovery (the edition may report its interruption) changes nothing, not
    // even the last error the statistics show
    const moot = session.reconnectAttempt && !this.reconnecting
    if (!moot) this.lastFailure = failure
    if (this.closing || this.initFailed) return
    // eager init is done once the whole first wave has landed, if any of it succeeded
    if (this.everConnected && this.opening === 0) this.settleInit()
    if (session.reconnectAttempt) return moot ? this.fill() : this.reconnectFailed(failure)
    this.startReconnecting(failure, false)
  }

  private sessionClosed(id: SessionId, failure: Failure): void {
    const session = this.sessions.get(id)
    // still opening: that open fails by itself, and it never was a pool session
    if (session === undefined || session.state === "opening") return
    session.broken ??= failure.message
    this.lastFailure = failure
    // an idle session is evicted at once; one in use when its holder releases it, or its round trip ends
    if (session.state === "idle") this.close(session, "broken")
  }

  /**
   * Hosts: the session's server no longer serves the pool's target. Never handed out again, like a broken one, but
   * the server is fine: its close counts as `roleChanged`, and nothing backs off or scouts.
   */
  private evicted(id: SessionId, reason: string): void {
    const session = this.sessions.get(id)
    if (session === undefined || session.state === "opening" || session.roleChanged) return
    session.roleChanged = true
    session.broken ??= reason
    this.log("Info", "connection evicted", { connectionId: id, reason: "role changed", error: reason })
    if (session.state === "idle") this.close(session, "roleChanged")
  }

  private close(session: Session, requested: CloseReason, cancelFirst = false): void {
    // an evicted session closes for its role change, whichever path (release, validation, probe, reset) closes it
    const reason =
      session.roleChanged && (requested === "broken" || requested === "validation" || requested === "reset")
        ? "roleChanged"
        : requested
    if (session.state === "idle") removeFrom(this.idle, session)
    this.sessions.delete(session.id)
    this.closed[reason]++
    if (reason === "broken" || reason === "validation") this.suspect = true
    this.emit({ _tag: "Close", session: session.id, reason, cancelFirst })
    this.log(reason === "broken" || reason === "cancel" ? "Warning" : "Debug", "connection closed", {
      connectionId: session.id,
      reason,
      ageMillis: Math.round(this.now - session.createdAt),
      queries: session.queries,
      error: session.broken
    })
    if (this.closing) return this.closingIdle ? undefined : this.checkDrained()
    if (reason === "broken" && this.now < this.probationUntil && this.now - session.createdAt < survivalMillis) {
      // a session of a recovery still on probation broke: the recovery did not hold
      return this.startReconnecting(
        this.lastFailure ?? { kind: "outage", message: session.broken!, probeable: false, startingUp: false },
        true,
        !this.probationResumes
      )
    }
    this.fill()
  }

  // -------------------------------------------------------------------------------------------------------------
  // reconnection and initialisation
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Enters the backoff after a failed open — or, with `resume`, after a recovery that did not last, where the
   * backoff goes on from where it stood instead of starting over.
   */
  private startReconnecting(failure: Failure, resume: boolean, restart = !resume): void {
    if (this.closing || this.initFailed) return
    // a rejection fails eager init at once, even while the first wave's other attempts still run
    if (this.failInitIfDone(failure)) return
    if (this.reconnecting) return
    this.reconnecting = true
    this.outageStartedAt = this.now
    if (restart) this.reconnectAttempt = 1
    this.startingUpStreak = failure.startingUp ? 1 : 0
    if (failure.kind === "rejected") {
      this.log("Error", "the database rejected the connection; retrying with backoff", {
        error: failure.message,
        code: failure.code
      })
    } else if (resume) {
      this.log("Warning", "a connection broke right after the recovery; backing off again", { error: failure.message })
    } else {
      this.log("Warning", "cannot open a database connection; reconnecting with backoff", { error: failure.message })
    }
    this.scheduleReconnect(failure, restart)
  }

  /** The edition logs "reconnect attempt scheduled" once its schedule has chosen the delay. */
  private scheduleReconnect(failure: Failure, restart: boolean): void {
    this.emit({
      _tag: "ScheduleReconnect",
      attempt: this.reconnectAttempt + 1,
      restart,
      failure,
      startingUpStreak: this.startingUpStreak
    })
  }

  private reconnectDue(): void {
    if (this.closing || !this.reconnecting || this.initFailed) return
    // one attempt at a time: a second step that ends while one runs adds nothing
    for (const session of this.sessions.values()) if (session.reconnectAttempt && session.state === "opening") return
    // every slot is taken by sessions still opening: their outcome decides, the backoff waits one more step
    if (this.sessions.size >= this.config.maxSize) return this.scheduleReconnect(this.lastFailure!, false)
    this.reconnectAttempt++
    this.reconnectAttempts++
    this.open(true)
  }

  private reconnectFailed(failure: Failure): void {
    this.startingUpStreak = failure.startingUp ? this.startingUpStreak + 1 : 0
    this.log("Warning", "reconnect attempt failed", { attempt: this.reconnectAttempt, error: failure.message })
    if (this.failInitIfDone(failure)) return
    this.scheduleReconnect(failure, false)
  }

  private recovered(): void {
    this.everConnected = true
    if (this.opening === 0) this.settleInit()
    if (!this.reconnecting) return
    this.reconnecting = false
    this.probationUntil = this.now + survivalMillis
    this.probationResumes = true
    this.emit({ _tag: "CancelReconnect" })
    this.log("Info", "database connection recovered", { downtimeMillis: Math.round(this.now - this.outageStartedAt) })
  }

  private settleInit(): void {
    if (!this.initPending) return
    this.initPending = false
    this.emit({ _tag: "InitDone", error: undefined })
    this.log("Info", "pool ready", { total: this.total(), elapsedMillis: Math.round(this.now - this.startedAt) })
  }

  /**
   * Fails eager init when this failure ends it: at once for a rejection (retrying the same login cannot help),
   * after the initial attempts for an outage (the first wave counts as one attempt however many it opened).
   */
  private failInitIfDone(failure: Failure): boolean {
    if (!this.initPending) return false
    const attempts = 1 + this.reconnectAttempts
    if (failure.kind !== "rejected" && attempts < this.config.initialAttempts) return false
    this.initPending = false
    this.initFailed = true
    const elapsedMillis = Math.round(this.now - this.startedAt)
    this.log("Error", "pool initialisation failed", { attempts, elapsedMillis, error: failure.message })
    if (this.reconnecting) this.emit({ _tag: "CancelReconnect" })
    this.emit({ _tag: "InitDone", error: { attempts, elapsedMillis, failure } })
    return true
  }

  // -------------------------------------------------------------------------------------------------------------
  // housekeeping
  // -------------------------------------------------------------------------------------------------------------

  private housekeep(): void {
    if (this.closing) return
    const { leakThreshold, maxIdleTime, minSize } = this.config
    // oldest idle first (the stack's bottom), so the warm ones stay
    for (const session of [...this.idle]) {
      if (this.now >= session.expiresAt) this.close(session, "lifetime")
      else if (this.now - session.releasedAt >= maxIdleTime && this.total() > minSize) this.close(session, "idle")
    }
    if (leakThreshold > 0) {
      for (const acquisition of this.inFlight()) {
        if (acquisition.state !== "granted" || acquisition.leakReported) continue
        const held = this.now - acquisition.grantedAt
        if (held < leakThreshold) continue
        acquisition.leakReported = true
        this.leaks++
        this.log("Warning", "connection held longer than the leak detection threshold", {
          connectionId: acquisition.session!.id,
          acquisition: acquisition.id,
          heldMillis: Math.round(held),
          thresholdMillis: leakThreshold
        })
      }
    }
    this.fill()
  }

  // -------------------------------------------------------------------------------------------------------------
  // the health probe
  // -------------------------------------------------------------------------------------------------------------

  /**
   * A round trip on an idle session when one is free and nobody waits (never waiting for one); otherwise the
   * pool's own evidence while it holds sessions, or a TCP probe when it holds none.
   */
  private probe(): void {
    if (this.closing) return
    if (this.queue.size === 0) {
      const session = this.popIdle()
      if (session !== undefined) {
        session.state = "probing"
        session.probedReleasedAt = session.releasedAt
        return this.emit({
          _tag: "ProbeSession",
          session: session.id,
          timeoutAt: this.now + this.config.validationTimeout
        })
      }
    }
    if (this.total() > 0) return this.emit({ _tag: "ProbeAnswered", reachable: !this.reconnecting })
    this.emit({ _tag: "ProbeTcp" })
  }

  /** The probe is not a caller: no acquisition figures, and the idle clock keeps running. */
  private probed(session: Session, ok: boolean, error: string | undefined): void {
    if (this.closing) return this.close(session, "shutdown")
    if (!ok || session.broken !== undefined) {
      session.broken ??= error ?? "no answer to the health probe"
      return this.close(session, "broken")
    }
    this.offer(session)
    if (session.state === "idle") session.releasedAt = session.probedReleasedAt
  }

  // -------------------------------------------------------------------------------------------------------------
  // refresh: after a credential rotation or a DNS failover, every session opened before it is retired — idle ones
  // close at once, busy ones when released (instead of being offered), opening ones once open — and replacements
  // open as usual (minSize, queued demand); waiting callers keep their place and deadline, nobody fails
  // -------------------------------------------------------------------------------------------------------------

  private refresh(): void {
    if (!this.started || this.closing) return
    this.generation++
    let busy = 0
    for (const session of this.sessions.values()) if (session.state !== "opening" && session.state !== "idle") busy++
    const idle = this.idle.length
    this.log("Info", "pool refreshed", { closedIdle: idle, retiredBusy: busy, retiredOpening: this.opening })
    // each close opens a replacement when minSize or a waiter asks for one
    for (const session of [...this.idle]) this.close(session, "refreshed")
    this.fill()
  }

  private retired(session: Session): boolean {
    return session.generation !== this.generation
  }

  // -------------------------------------------------------------------------------------------------------------
  // shutdown: draining (new acquisitions fail, waiters are woken, idle sessions close, busy ones are awaited up to
  // shutdownTimeout), then cut (what still runs is cancelled and closed), then drained
  // -------------------------------------------------------------------------------------------------------------

  private startShutdown(): void {
    if (this.closing) return
    this.closing = true
    const busy = this.busy()
    const waiters = this.queue.size
    this.shutdown = {
      startedAt: this.now,
      deadline: this.now + this.config.shutdownTimeout,
      busy,
      waiters,
      cancelled: 0
    }
    this.log("Info", "pool shutting down", { active: busy, idle: this.idle.length, waiting: waiters })
    this.settleInit()
    if (this.reconnecting) this.emit({ _tag: "CancelReconnect" })
    for (const acquisition of this.inFlight()) {
      if (acquisition.state !== "waiting" && acquisition.state !== "validating") continue
      this.unqueue(acquisition)
      this.finish(acquisition)
      this.emit({ _tag: "Fail", acquisition: acquisition.id, error: closedError })
    }
    this.closingIdle = true
    for (const session of [...this.idle]) this.close(session, "shutdown")
    this.closingIdle = false
    this.checkDrained()
  }

  private cutShutdown(): void {
    const busy = [...this.sessions.values()].filter((session) => session.state !== "opening")
    this.shutdown!.cancelled = busy.length
    for (const session of busy) {
      // their holders see their statements fail; a release after this is a no-op
      for (const acquisition of [session.holder, ...session.statements]) if (acquisition) this.finish(acquisition)
      session.holder = undefined
      session.statements.clear()
      session.broken ??= "closed by pool shutdown"
      this.close(session, "shutdown", true)
    }
  }

  private checkDrained(): void {
    const shutdown = this.shutdown
    if (shutdown === undefined || this.drained || this.busy() > 0) return
    this.drained = true
    this.log("Info", "pool shut down", {
      elapsedMillis: Math.round(this.now - shutdown.startedAt),
      activeAtStart: shutdown.busy,
      waitersWoken: shutdown.waiters,
      cancelledAfterTimeout: shutdown.cancelled,
      connectionsCreated: this.created,
      acquisitions: this.acquisitionCount
    })
    this.emit({ _tag: "Drained" })
  }

  // -------------------------------------------------------------------------------------------------------------
  // state, statistics
  // -------------------------------------------------------------------------------------------------------------

  /** Open sessions: those still opening do not count. */
  private total(): number {
    return this.sessions.size - this.opening
  }

  private busy(): number {
    return this.total() - this.idle.length
  }

  private countActive(): void {
    const active = this.busy()
    if (active > this.peakActive) this.peakActive = active
  }

  assess(now: number): Assessment.Assessment {
    // refilled, not rebuilt: the state is assessed after every event, and a healthy one allocates nothing
    const facts = this.facts
    const head = this.queue.head
    facts.closing = this.closing
    facts.reconnecting = this.reconnecting
    facts.lastFailure = this.lastFailure
    facts.everConnected = this.everConnected
    facts.total = this.total()
    facts.busy = this.busy()
    facts.waiting = this.queue.size
    facts.oldestWaiterMillis = head === undefined ? 0 : now - head.arrivedAt
    return Assessment.assess(facts)
  }

  private readonly facts: { -readonly [K in keyof Assessment.Facts]: Assessment.Facts[K] }

  private updateState(): void {
    const { reason, status } = this.assess(this.now)
    if (status === this.loggedState) return
    const from = this.loggedState
    this.loggedState = status
    this.emit({ _tag: "StateChanged", from, to: status, reason })
    // the first state is no transition; "pool shutting down" already says it
    if (from === undefined || this.closing) return
    if (this.quietStart) {
      this.quietStart = false
      if (status === "healthy") return
    }
    this.log(status === "healthy" ? "Info" : "Warning", `pool is ${status}`, { previous: from, reason })
  }

  statistics(now: number): Snapshot {
    const total = this.total()
    const idle = this.idle.length
    const [p95, p99] = this.latencies.percentiles()
    return {
      total,
      idle,
      active: total - idle,
      pending: this.opening,
      waiting: this.queue.size,
      minSize: this.config.minSize,
      maxSize: this.config.maxSize,
      peakActive: this.peakActive,
      peakWaiting: this.peakWaiting,
      acquisitions: this.acquisitionCount,
      acquisitionTimeAvgMs: this.acquisitionCount === 0 ? 0 : this.acquisitionTimeTotal / this.acquisitionCount,
      acquisitionTimeP95Ms: p95,
      acquisitionTimeP99Ms: p99,
      acquireTimeouts: this.acquireTimeouts,
      connectionsCreated: this.created,
      connectionsClosed: { ...this.closed },
      reconnectAttempts: this.reconnectAttempts,
      leaksSuspected: this.leaks,
      state: this.assess(now).status,
      lastError: this.lastFailure?.message
    }
  }

  private emit(decision: Decision): void {
    this.out.push(decision)
  }

  private log(
    level: "Debug" | "Info" | "Warning" | "Error",
    message: string,
    fields: Record<string, string | number | boolean | undefined>
  ): void {
    this.emit({ _tag: "Log", level, message, fields })
  }

  // -------------------------------------------------------------------------------------------------------------
  // invariants
  // -------------------------------------------------------------------------------------------------------------

  violations(): ReadonlyArray<string> {
    const problems: Array<string> = []
    const check = (ok: boolean, problem: () => string) => {
      if (!ok) problems.push(problem())
    }
    const { capacity, maxSize } = this.config
    let opening = 0
    let idle = 0
    for (const session of this.sessions.values()) {
      const at = `session ${session.id} (${session.state})`
      if (session.state === "opening") opening++
      if (session.state === "idle") idle++
      check(session.state === "idle" || !this.idle.includes(session), () => `${at} is in the idle list`)
      check((session.state === "held") === (session.holder !== undefined), () => `${at}: holder and state disagree`)
      check(
        session.state === "shared" ? session.statements.size >= 1 : session.statements.size === 0,
        () => `${at} runs ${session.statements.size} statements`
      )
      check(session.statements.size <= capacity, () => `${at} runs more statements than its capacity ${capacity}`)
      check(
        (session.state === "validating") === (session.validatingFor !== undefined),
        () => `${at}: validation and state disagree`
      )
      for (const acquisition of [session.holder, ...session.statements]) {
        if (acquisition === undefined) continue
        check(
          acquisition.state === "granted" && acquisition.session === session && this.acquisitions.has(acquisition.id),
          () => `${at} is held by acquisition ${acquisition.id} (${acquisition.state}), which does not hold it`
        )
      }
    }
    check(opening === this.opening, () => `opening: counted ${this.opening}, recounted ${opening}`)
    check(idle === this.idle.length, () => `idle: listed ${this.idle.length}, in state idle ${idle}`)
    check(new Set(this.idle).size === this.idle.length, () => "a session is listed idle twice")
    check(
      this.idle.every((session) => this.sessions.get(session.id) === session),
      () => "a closed session is listed idle"
    )
    check(
      this.idle.every((session) => !this.retired(session)),
      () => "a session opened before the last refresh is listed idle"
    )
    check(
      this.sessions.size <= maxSize,
      () => `${this.sessions.size} sessions open or opening, above maxSize ${maxSize}`
    )
    const closedTotal = Object.values(this.closed).reduce((a, b) => a + b, 0)
    check(
      this.created === closedTotal + this.total(),
      () => `created ${this.created} ≠ closed ${closedTotal} + open ${this.total()}`
    )

    let granted = 0
    for (const acquisition of this.acquisitions.values()) {
      const at = `acquisition ${acquisition.id} (${acquisition.state})`
      check(acquisition.state !== "done", () => `${at} is done but still tracked`)
      check(acquisition.queued === (acquisition.state === "waiting"), () => `${at}: queued and state disagree`)
      if (acquisition.state === "granted") {
        granted++
        const session = acquisition.session
        check(
          session !== undefined &&
            this.sessions.get(session.id) === session &&
            (session.holder === acquisition || session.statements.has(acquisition)),
          () => `${at} holds a session that does not list it`
        )
      }
      if (acquisition.state === "validating") {
        check(acquisition.session?.validatingFor === acquisition, () => `${at}: its session validates another`)
      }
    }
    let holders = 0
    for (const session of this.sessions.values()) holders += (session.holder ? 1 : 0) + session.statements.size
    check(granted === holders, () => `${granted} granted acquisitions, ${holders} holders recounted`)

    let queued = 0
    let statements = 0
    let previous: Acquisition | undefined
    for (const acquisition of this.queue) {
      queued++
      if (acquisition.kind === "statement") statements++
      check(this.acquisitions.get(acquisition.id) === acquisition, () => `queued ${acquisition.id} is not tracked`)
      if (previous !== undefined) {
        check(
          previous.arrivedAt <= acquisition.arrivedAt && previous.deadline <= acquisition.deadline,
          () => `the queue is out of arrival order at ${previous!.id} → ${acquisition.id}`
        )
      }
      previous = acquisition
    }
    check(queued === this.queue.size, () => `queue: size ${this.queue.size}, recounted ${queued}`)
    check(statements === this.queuedStatements, () => `queued statements: ${this.queuedStatements} ≠ ${statements}`)
    const head = this.queue.head
    if (head !== undefined) {
      check(!this.closing, () => "acquisitions wait in a closing pool")
      // no barging: nothing free may sit beside a waiting head
      const servable =
        head.kind === "exclusive"
          ? this.idle.some((session) => this.now < session.expiresAt)
          : [...this.sessions.values()].some(
              (s) => (s.state === "idle" || s.state === "shared") && s.statements.size < capacity && this.mayServe(s)
            )
      check(!servable, () => `acquisition ${head.id} (${head.kind}) waits while a session could serve it`)
    }
    if (this.shutdown === undefined) {
      check(
        this.armedAt === head?.deadline,
        () => `the timer is armed at ${this.armedAt}, the head is due ${head?.deadline}`
      )
    }
    return problems
  }
}

const closedError: AcquireError = { _tag: "Closed" }

const removeFrom = <A>(array: Array<A>, item: A): void => {
  const index = array.lastIndexOf(item)
  if (index !== -1) array.splice(index, 1)
}

const clamp01 = (x: number): number => Math.min(Math.max(x, 0), 1)

const byOrder = (a: Acquisition, b: Acquisition): number => a.order - b.order

const absurd = (event: never): never => {
  throw new Error(`unknown engine event: ${JSON.stringify(event)}`)
}
