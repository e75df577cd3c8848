/**
 * The pool as a sans-IO state machine: events in, decisions out. It never awaits, never sets a timer, never opens
 * a socket; it asks for those things and is told the results. Time is a monotonic number of milliseconds passed in
 * with each event, so a wall-clock step (NTP) moves nothing and tests drive time by writing numbers.
 *
 * An edition feeds it every event in order, from one thread of control, and carries out the decisions it returns
 * in the order returned. See the package README for how an adapter drives it.
 *
 * @since 0.1.0
 */
import type { PoolState } from "./Assessment.js"
import type * as Assessment from "./Assessment.js"
import * as machine from "./internal/machine.js"
import type { CloseReason, Snapshot } from "./Statistics.js"

/**
 * The pool's settings, durations in milliseconds.
 *
 * @example
 * ```ts
 * import { Engine } from "@effect-pg-pool/engine"
 *
 * const config: Engine.Config = { ...Engine.defaults, minSize: 0, maxSize: 4, target: "db:5432" }
 * const engine = Engine.make(config)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Config {
  readonly minSize: number
  readonly maxSize: number
  /**
   * Statement slots per session: 1 = every acquisition takes a whole session; k > 1 = an autocommit statement
   * takes one of a session's k slots (pipelining), exclusive checkouts still take a whole session.
   */
  readonly capacity: number
  readonly acquireTimeout: number
  /** A session idle longer than this is validated before it is handed out. */
  readonly validateAfterIdle: number
  readonly validationTimeout: number
  readonly maxLifetime: number
  /** Idle sessions above minSize are closed after this. */
  readonly maxIdleTime: number
  readonly maxQueries: number
  /** 0 disables leak detection. */
  readonly leakThreshold: number
  readonly shutdownTimeout: number
  /** Eager initialisation fails after this many rounds of attempts (a rejected login fails it at once). */
  readonly initialAttempts: number
  readonly init: "eager" | "lazy"
  /** Reset (discard session state) after every exclusive checkout, not only when a statement may have set some. */
  readonly resetAlways: boolean
  /** Where the pool connects (`host:port`), for the messages. */
  readonly target: string
  /**
   * What the "pool starting" log says about where the pool connects, in the edition's words (e.g. host, port and
   * database); `{ target }` when absent.
   */
  readonly startFields?: Readonly<Record<string, string | number | boolean>> | undefined
}

/**
 * The defaults of the design's configuration table.
 *
 * @example
 * ```ts
 * import { Engine } from "@effect-pg-pool/engine"
 *
 * const engine = Engine.make({ ...Engine.defaults, target: "localhost:5432" })
 * Engine.defaults.acquireTimeout // 30000
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults: Config = {
  minSize: 2,
  maxSize: 10,
  capacity: 1,
  acquireTimeout: 30_000,
  validateAfterIdle: 1_000,
  validationTimeout: 2_000,
  maxLifetime: 3_600_000,
  maxIdleTime: 60_000,
  maxQueries: 50_000,
  leakThreshold: 30_000,
  shutdownTimeout: 30_000,
  initialAttempts: 5,
  init: "eager",
  resetAlways: false,
  target: "localhost:5432"
}

/**
 * What a session reported when it was released: the edition reads them off its driver.
 *
 * @example
 * ```ts
 * import type { Engine } from "@effect-pg-pool/engine"
 *
 * // a caller that returned its session inside a transaction, after 3 statements
 * const facts: Engine.SessionFacts = { transactionStatus: "T", dirty: false, broken: false, inFlight: 0, queries: 3 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionFacts {
  /** ReadyForQuery status: I = idle, T = in a transaction, E = in a failed transaction. */
  readonly transactionStatus: "I" | "T" | "E"
  /** A statement may have left session state behind (see `Classify.mayLeaveSessionState`). */
  readonly dirty: boolean
  /** The socket errored or ended, or a cancellation failed. */
  readonly broken: boolean
  /** Statements still running (an interrupted one whose cancellation has not settled). */
  readonly inFlight: number
  /** Statements run during this checkout. */
  readonly queries: number
}

/**
 * A classified failure to open a session, or of a session (see `Classify`); its message already redacted.
 *
 * @example
 * ```ts
 * import type { Engine } from "@effect-pg-pool/engine"
 *
 * const refused: Engine.Failure = {
 *   kind: "outage",
 *   message: "connect ECONNREFUSED 10.0.0.5:5432",
 *   probeable: true,
 *   startingUp: false
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure {
  readonly kind: "outage" | "rejected" | "fatal-session" | "statement"
  readonly message: string
  readonly code?: string | undefined
  /** Nothing listens on the port: a cheap TCP probe may cut the backoff short. */
  readonly probeable: boolean
  /** The server said it is starting up: retried on a short cadence within the backoff step. */
  readonly startingUp: boolean
}

/**
 * The edition's name for an acquisition (one call to acquire) and the engine's name for a session.
 *
 * @example
 * ```ts
 * import type { Engine } from "@effect-pg-pool/engine"
 *
 * const acquisitions = new Map<Engine.AcquisitionId, { readonly site: string }>()
 * acquisitions.set(1, { site: "handler /users" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type AcquisitionId = number

/**
 * The engine's name for a session, given in `Open` and used by every event and decision about it.
 *
 * @example
 * ```ts
 * import type { Engine } from "@effect-pg-pool/engine"
 *
 * // the edition's answer to { _tag: "Open", session }
 * const opened = (session: Engine.SessionId, now: number): Engine.Event => ({
 *   _tag: "SessionOpened",
 *   now,
 *   session,
 *   jitter: Math.random()
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type SessionId = number

/**
 * Everything that can happen to a pool. `now` is monotonic milliseconds.
 *
 * - `Started`: the edition's layer is built; opens the first sessions (and, eager, waits for `InitDone`).
 * - `AcquireRequested` / `AcquireAbandoned`: a caller wants a session (a whole one, or a statement slot), or gave up
 *   (interrupted) — at any step: queued, validating, or granted before it saw the grant.
 * - `Released`: the holder of a grant is done with it.
 * - `SessionOpened` / `OpenFailed`: the outcome of an `Open`; `jitter` in [0, 1) shortens its lifetime by up to 5 %.
 * - `SessionClosed`: the session's socket died (error, end) on its own.
 * - `SessionEvicted`: the session's server no longer serves the pool's target (the edition's `Hosts.Table` said
 *   so: a promotion, a demotion, a `prefer-standby` fallback that ended). Idle, it closes at once; busy, at its
 *   release; counted `roleChanged`. Not a failure: no backoff, no scout, no last error.
 * - `ValidationResult` / `ResetResult`: the outcome of a `Validate` / `Reset`.
 * - `TimerDue`: the timer last armed is due. `ReconnectDue`: the backoff step asked for has passed.
 * - `Tick`: housekeeping, about once a second (lifetimes, idle times, leaks, minimum size).
 * - `ProbeRequested`: the background health probe is due (every few seconds).
 * - `ShutdownRequested`: the scope closes.
 * - `RefreshRequested`: retire every session opened before it (a credential rotation, a DNS failover): idle ones
 *   close at once, busy ones when released, opening ones once open; replacements open as usual and no caller fails.
 *
 * @example
 * ```ts
 * import { Engine } from "@effect-pg-pool/engine"
 *
 * const engine = Engine.make({ ...Engine.defaults, minSize: 0 })
 * engine.handle({ _tag: "Started", now: 0 })
 * const decisions = engine.handle({ _tag: "AcquireRequested", now: 1, acquisition: 1, kind: "exclusive" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Event =
  | { readonly _tag: "Started"; readonly now: number }
  | {
      readonly _tag: "AcquireRequested"
      readonly now: number
      readonly acquisition: AcquisitionId
      readonly kind: "exclusive" | "statement"
    }
  | { readonly _tag: "AcquireAbandoned"; readonly now: number; readonly acquisition: AcquisitionId }
  | {
      readonly _tag: "Released"
      readonly now: number
      readonly acquisition: AcquisitionId
      readonly facts: SessionFacts
    }
  | { readonly _tag: "SessionOpened"; readonly now: number; readonly session: SessionId; readonly jitter: number }
  | { readonly _tag: "OpenFailed"; readonly now: number; readonly session: SessionId; readonly failure: Failure }
  | { readonly _tag: "SessionClosed"; readonly now: number; readonly session: SessionId; readonly failure: Failure }
  | { readonly _tag: "SessionEvicted"; readonly now: number; readonly session: SessionId; readonly reason: string }
  | {
      readonly _tag: "ValidationResult"
      readonly now: number
      readonly session: SessionId
      readonly ok: boolean
      readonly error?: string | undefined
    }
  | {
      readonly _tag: "ResetResult"
      readonly now: number
      readonly session: SessionId
      /** The reset ran and left the session idle (transaction status I). */
      readonly ok: boolean
      readonly error?: string | undefined
    }
  | { readonly _tag: "TimerDue"; readonly now: number }
  | { readonly _tag: "ReconnectDue"; readonly now: number }
  | { readonly _tag: "Tick"; readonly now: number }
  | { readonly _tag: "ProbeRequested"; readonly now: number }
  | { readonly _tag: "ShutdownRequested"; readonly now: number }
  | { readonly _tag: "RefreshRequested"; readonly now: number }

/**
 * Why an acquisition failed: its deadline passed (with the figures at that instant), or the pool closed.
 *
 * @example
 * ```ts
 * import type { Engine } from "@effect-pg-pool/engine"
 *
 * const message = (error: Engine.AcquireError) =>
 *   error._tag === "Closed" ? "pool closed" : `waited ${error.waitedMillis} ms, ${error.statistics.waiting} waiting`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type AcquireError =
  | { readonly _tag: "Timeout"; readonly waitedMillis: number; readonly statistics: Snapshot }
  | { readonly _tag: "Closed" }

/**
 * Everything a pool can ask its edition to do, in the order to do it.
 *
 * - `Grant`: hand session S to acquisition A (a whole session, or one statement slot of it).
 * - `Fail`: fail acquisition A.
 * - `Open`: open a new session named S; answer with `SessionOpened` or `OpenFailed`.
 * - `Validate`: one cheap round trip on S, given up at `timeoutAt`; answer with `ValidationResult`.
 * - `Reset`: ROLLBACK (`rollback`) and/or DISCARD ALL plus the connect hook (`discard`), given up at `timeoutAt`;
 *   answer with `ResetResult`.
 * - `Close`: close S (after a CancelRequest for what it runs, when `cancelFirst`). The engine has forgotten S.
 * - `ArmTimer`: keep one timer, due at `at` (monotonic), or none; answer with `TimerDue`. A timer that fired is
 *   gone: the engine arms it again when something is still due.
 * - `ScheduleReconnect`: wait one backoff step (restarting the schedule when `restart`), then send `ReconnectDue`;
 *   `CancelReconnect`: stop waiting, the pool recovered or closes.
 * - `InitDone`: eager initialisation succeeded (`error` undefined) or failed.
 * - `StateChanged`: the assessment's status changed (the gauge; the log is a separate `Log`).
 * - `Log`: a lifecycle event with structured fields.
 * - `ProbeSession`: the health probe's round trip on idle session S, given up at `timeoutAt`; answer with
 *   `ValidationResult`. `ProbeAnswered`: no session is free, the pool's own evidence answers. `ProbeTcp`: the pool
 *   holds no session: probe the server's port.
 * - `Drained`: shutdown is complete: every session is closed or being closed.
 *
 * @example
 * ```ts
 * import type { Engine } from "@effect-pg-pool/engine"
 *
 * const describe = (decision: Engine.Decision): string =>
 *   decision._tag === "Grant" ? `session ${decision.session} to ${decision.acquisition}` : decision._tag
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Decision =
  | { readonly _tag: "Grant"; readonly acquisition: AcquisitionId; readonly session: SessionId }
  | { readonly _tag: "Fail"; readonly acquisition: AcquisitionId; readonly error: AcquireError }
  | { readonly _tag: "Open"; readonly session: SessionId }
  | {
      readonly _tag: "Validate"
      readonly session: SessionId
      readonly acquisition: AcquisitionId
      readonly timeoutAt: number
    }
  | {
      readonly _tag: "Reset"
      readonly session: SessionId
      readonly rollback: boolean
      readonly discard: boolean
      readonly timeoutAt: number
    }
  | { readonly _tag: "Close"; readonly session: SessionId; readonly reason: CloseReason; readonly cancelFirst: boolean }
  | { readonly _tag: "ArmTimer"; readonly at: number | undefined }
  | {
      readonly _tag: "ScheduleReconnect"
      /** The number of the attempt that follows the wait (the first open was attempt 1). */
      readonly attempt: number
      readonly restart: boolean
      readonly failure: Failure
      /** How many failures in a row said the server is starting up. */
      readonly startingUpStreak: number
    }
  | { readonly _tag: "CancelReconnect" }
  | {
      readonly _tag: "InitDone"
      readonly error:
        | { readonly attempts: number; readonly elapsedMillis: number; readonly failure: Failure }
        | undefined
    }
  | {
      readonly _tag: "StateChanged"
      readonly from: PoolState | undefined
      readonly to: PoolState
      readonly reason: string | undefined
    }
  | {
      readonly _tag: "Log"
      readonly level: "Debug" | "Info" | "Warning" | "Error"
      readonly message: string
      readonly fields: Readonly<Record<string, string | number | boolean | undefined>>
    }
  | { readonly _tag: "ProbeSession"; readonly session: SessionId; readonly timeoutAt: number }
  | { readonly _tag: "ProbeAnswered"; readonly reachable: boolean }
  | { readonly _tag: "ProbeTcp" }
  | { readonly _tag: "Drained" }

/**
 * The figures an edition's gauges follow, read after every event: cheap (no snapshot is built) and live (the same
 * object reads the engine's current counts).
 *
 * @example
 * ```ts
 * import { Engine } from "@effect-pg-pool/engine"
 *
 * const engine = Engine.make({ ...Engine.defaults, minSize: 0 })
 * const { gauges } = engine
 * engine.handle({ _tag: "Started", now: 0 })
 * gauges.opening // 1
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Gauges {
  /** Open sessions (those still opening do not count). */
  readonly total: number
  readonly idle: number
  /** Sessions being opened. */
  readonly opening: number
  /** Acquisitions queued. */
  readonly waiting: number
  /** Backing off after a failed open: what the pool says about the database's reachability. */
  readonly reconnecting: boolean
}

/**
 * A pool's state machine.
 *
 * @example
 * ```ts
 * import { Engine } from "@effect-pg-pool/engine"
 *
 * const engine: Engine.Engine = Engine.make({ ...Engine.defaults, minSize: 1 })
 * const decisions = engine.handle({ _tag: "Started", now: 0 }) // Log "pool starting", Open { session: 1 }, …
 * engine.violations() // []
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Engine {
  readonly config: Config
  /** The live counts behind the gauges. */
  readonly gauges: Gauges
  /** Takes one event, returns the decisions it leads to, in order. Never throws, never blocks. */
  handle(event: Event): ReadonlyArray<Decision>
  /** The figures at `now`, state included (the same assessment as `assess`). */
  statistics(now: number): Snapshot
  /** The one assessment at `now`: health, statistics, the gauge and the logs all use it. */
  assess(now: number): Assessment.Assessment
  /** Every broken invariant, described; empty when all hold. Tests call it after every step. */
  violations(): ReadonlyArray<string>
}

/**
 * A new pool, not started: send `Started` once the edition is ready to open sessions.
 *
 * @example
 * ```ts
 * import { Engine } from "@effect-pg-pool/engine"
 *
 * const engine = Engine.make({ ...Engine.defaults, minSize: 0, maxSize: 2, capacity: 8 })
 * engine.handle({ _tag: "Started", now: performance.now() })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: Config): Engine => new machine.Machine(config)
