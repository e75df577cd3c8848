/**
 * The adapter between the engine and Effect 4: one engine per pool, one `dispatch` that is its only caller, and an
 * `execute` that carries out each decision (fibers for the I/O, one timer fiber, the reconnect fiber). The engine
 * decides; this module only does what it is told and reports what happened.
 *
 * @internal
 */
import { Classify, Engine, Hosts, Messages } from "@effect-pg-pool/engine"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as LogLevel from "effect/LogLevel"
import * as References from "effect/References"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { ConnectionError, SqlError } from "effect/sql/SqlError"
import type * as Tracer from "effect/Tracer"
import * as Net from "node:net"
import { DatabaseReachability, HealthStatus } from "../Health.js"
import type { PoolConfig } from "../PoolConfig.js"
import { AcquireTimeout, ConnectionRejected, DatabaseUnreachable, PoolClosed } from "../PoolError.js"
import { ClosedByReason, HostStatistics, PoolStatistics } from "../PoolStatistics.js"
import { redactText } from "./config.js"
import * as MultiHost from "./hosts.js"
import type { Metrics } from "./metrics.js"
import * as Driver from "./session.js"
import * as Tls from "./tls.js"

/** What a holder reports when it gives its grant back. @internal */

/** A failed `onConnect` hook: the session it ran on is lost, the open counts as failed, the pool retries. */
class OnConnectFailed {
  readonly classified: Classify.Classified
  constructor(cause: unknown) {
    const message = `the onConnect hook failed: ${Classify.errorMessage(cause)}`
    this.classified = {
      kind: "outage",
      code: undefined,
      message,
      sessionLost: true,
      remedy: undefined,
      probeable: false,
      startingUp: false,
      goingAway: false
    }
  }
}

export type Facts = Engine.SessionFacts

/** A granted acquisition: the session (whole, or one statement slot of it). @internal */
export interface Grant extends Site {
  readonly acquisition: Engine.AcquisitionId
  readonly session: Driver.Session
  readonly grantedAt: number
}

/** Where an acquisition was made: the caller's span and stack frame, kept only while leak detection is on. @internal */
export interface Site {
  readonly span: Tracer.AnySpan | undefined
  readonly frame: References.StackFrame | undefined
}

/**
 * Where a grant lands: set when the engine grants — at once, or later to a queued caller, before it resumes —
 * and cleared when a queued caller gives up (the engine takes back a grant it did not see). Whoever holds it
 * releases what it holds on every exit, so a grant is never lost in between. @internal
 */
export interface Holder {
  grant: Grant | undefined
}

/** @internal */
export interface Pool {
  readonly config: PoolConfig
  /**
   * Asks for a session (whole, or one statement slot) into `holder`. What the engine grants at once is in
   * `holder` when this returns undefined — no Deferred, no suspension, nothing more than the engine's step;
   * otherwise it returns the wait, as interruptible as its caller (a caller that gives up leaves the queue, and a
   * grant it did not see goes back to the engine with `AcquireAbandoned`). `fiber` is the caller's, for the
   * acquisition site that leak logs name (read only when leak detection is on).
   */
  readonly acquire: (
    kind: "exclusive" | "statement",
    fiber: Fiber.Fiber<unknown, unknown>,
    holder: Holder
  ) => Effect.Effect<void, AcquireTimeout | PoolClosed> | undefined
  readonly release: (grant: Grant, facts: Facts) => void
  readonly statistics: () => PoolStatistics
  readonly health: () => HealthStatus
  /** Retires every session opened until now: idle ones at once, busy ones at release (engine's `RefreshRequested`). */
  readonly refresh: () => void
  /**
   * Opens a session outside the pool (the LISTEN connection) where the pool's would go: with several hosts or a
   * `targetSessionAttrs`, on a host that matches it.
   */
  readonly openDedicated: (id: number) => Effect.Effect<Driver.Session, SqlError>
  /** Starts the pool; eager mode waits for the first sessions (or fails after the initial attempts). */
  readonly initialize: Effect.Effect<void, DatabaseUnreachable | ConnectionRejected>
}

/** @internal */
export interface Options {
  readonly config: PoolConfig
  readonly open: Driver.OpenOptions
  readonly metrics: Metrics
  /** Runs on every new session before its first use, and again after a session-state reset. */
  readonly onConnect?: ((session: Driver.Session) => Effect.Effect<void, unknown>) | undefined
}

/** A caller queued in the engine, resumed through its Deferred. */
interface Waiter extends Site {
  readonly deferred: Deferred.Deferred<void, AcquireTimeout | PoolClosed>
  readonly holder: Holder
  readonly arrivedAt: number
}

/** The leak log's `acquiredAt`: the span names outwards (as the Effect 3 edition writes them), then the location. */
const describeSite = (site: Site | undefined): string => {
  const names: Array<string> = []
  let span = site?.span
  while (span !== undefined && names.length < 8) {
    names.push(span._tag === "Span" ? span.name : `external ${span.spanId}`)
    span = span._tag === "Span" && span.parent._tag === "Some" ? span.parent.value : undefined
  }
  let location: string | undefined
  for (let frame = site?.frame; frame !== undefined && location === undefined; frame = frame.parent) {
    location = frame.stack()?.split("\n")[0]?.trim().replace(/^at /, "")
  }
  if (names.length === 0 && location === undefined) return "unknown (run inside a span to see where)"
  return names.join(" < ") + (location === undefined ? "" : ` at ${location}`)
}

const leakMessage = "connection held longer than the leak detection threshold"

const housekeepingMillis = 1_000
const probeEveryMillis = 5_000
const tcpProbeEveryMillis = 100
const startingUpBaseMillis = 50

/** The error behind a `SqlError` (its reason's cause: a Node socket error, or the server's fields). */
const causeOf = (error: unknown): unknown => {
  const reason = (error as any)?.reason
  if (reason !== undefined) return reason.cause ?? reason
  return error
}

/** @internal */
export const make = (options: Options): Effect.Effect<Pool, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { config, metrics } = options
    // The pool keeps real time even when it is built under a TestClock (@effect/vitest's it.layer): its sockets,
    // timeouts and backoff are real, and code tested on PgClient.layer, which keeps no timers, must not hang here.
    const clock = Clock.Clock.defaultValue()
    // the same monotonic time, without the bigint of clock.monotonicTimeNanosUnsafe: it is read a few times per statement
    const now = () => performance.now()
    const run = yield* Effect.provideService(FiberSet.makeRuntime<never>(), Clock.Clock, clock)
    // the runtime above fixes its fibers' references here, so a line below this level is dropped by the fiber `log`
    // would fork for it: not forking saves that fiber (0.3–2.5 ms each for the first ones, at a cold start)
    const minimumLogLevel = yield* References.MinimumLogLevel
    const password = config.password === undefined ? undefined : Redacted.value(config.password)
    const redact = (text: string) => redactText(text, password)
    const millis = (d: Duration.Duration) => Duration.toMillis(d)
    // every host, in the order given (libpq's list)
    const target = config.hosts.map(Hosts.hostLabel).join(",")
    const engine = Engine.make({
      minSize: config.minSize,
      maxSize: config.maxSize,
      capacity: config.multiplex ? config.multiplexConcurrency : 1,
      acquireTimeout: millis(config.acquireTimeout),
      validateAfterIdle: millis(config.validateAfterIdle),
      validationTimeout: millis(config.validationTimeout),
      maxLifetime: millis(config.maxLifetime),
      maxIdleTime: millis(config.maxIdleTime),
      maxQueries: config.maxQueries,
      leakThreshold: millis(config.leakDetectionThreshold),
      shutdownTimeout: millis(config.shutdownTimeout),
      initialAttempts: config.reconnect.initialAttempts,
      init: config.init,
      resetAlways: config.reset === "always",
      target
    })
    const startedAtWall = clock.currentTimeMillisUnsafe()
    // per-host state when the pool has several hosts or a target_session_attrs: routing, health, evictions
    const hosts =
      config.hosts.length > 1 || config.targetSessionAttrs !== "any" || config.loadBalanceHosts !== "disable"
        ? new Hosts.Table({
            ...Hosts.tableDefaults,
            hosts: config.hosts,
            target: config.targetSessionAttrs,
            loadBalance: config.loadBalanceHosts
          })
        : undefined

    const sessions = new Map<Engine.SessionId, Driver.Session>()
    const waiters = new Map<Engine.AcquisitionId, Waiter>()
    // what the engine decided for the acquisition `acquire` is requesting on this stack, read when its dispatch returns
    let requesting: Engine.AcquisitionId | undefined
    let grantedNow: Driver.Session | undefined
    let refusedNow: AcquireTimeout | PoolClosed | undefined
    // the grants held, by acquisition, for the site a leak log names: kept only while leak detection is on
    const held = millis(config.leakDetectionThreshold) > 0 ? new Map<Engine.AcquisitionId, Grant>() : undefined
    const closing = new Set<Fiber.Fiber<void>>()
    let nextAcquisition = 1
    let timer: Fiber.Fiber<void> | undefined
    let reconnect: Fiber.Fiber<void> | undefined
    let reconnectStep:
      | ((now: number, input: unknown) => Effect.Effect<[unknown, Duration.Duration], unknown>)
      | undefined
    let reachability = new DatabaseReachability({
      reachable: false,
      latencyMs: Option.none(),
      probedAt: Option.none()
    })
    const init = Deferred.makeUnsafe<void, DatabaseUnreachable | ConnectionRejected>()
    const drained = Deferred.makeUnsafe<void>()

    const failure = (classified: Classify.Classified): Engine.Failure => ({
      kind: classified.kind,
      // a rejection says what to fix, in the statistics and health as in the error
      message: redact(classified.kind === "rejected" ? Messages.rejectedLogin(classified) : classified.message),
      code: classified.code,
      probeable: classified.probeable,
      startingUp: classified.startingUp
    })

    /** Per host, from the hosts table; none for a single-host pool. */
    const hostStatistics = (): ReadonlyArray<HostStatistics> =>
      hosts === undefined
        ? []
        : hosts.health(now()).map(
            (health) =>
              new HostStatistics(
                {
                  host: health.host.host,
                  port: health.host.port,
                  role: health.role,
                  up: health.up,
                  sessions: health.sessions,
                  failures: health.failures,
                  lastError: Option.fromUndefinedOr(
                    health.lastFailure === undefined ? undefined : redact(health.lastFailure)
                  )
                },
                { disableChecks: true }
              )
          )

    const toStatistics = (snapshot: ReturnType<Engine.Engine["statistics"]>) =>
      new PoolStatistics(
        {
          poolName: config.name,
          total: snapshot.total,
          idle: snapshot.idle,
          active: snapshot.active,
          pending: snapshot.pending,
          waiting: snapshot.waiting,
          minSize: snapshot.minSize,
          maxSize: snapshot.maxSize,
          peakActive: snapshot.peakActive,
          peakWaiting: snapshot.peakWaiting,
          acquisitions: snapshot.acquisitions,
          acquisitionTimeAvgMs: snapshot.acquisitionTimeAvgMs,
          acquisitionTimeP95Ms: snapshot.acquisitionTimeP95Ms,
          acquisitionTimeP99Ms: snapshot.acquisitionTimeP99Ms,
          acquireTimeouts: snapshot.acquireTimeouts,
          connectionsCreated: snapshot.connectionsCreated,
          connectionsClosed: new ClosedByReason(snapshot.connectionsClosed, { disableChecks: true }),
          reconnectAttempts: snapshot.reconnectAttempts,
          leaksSuspected: snapshot.leaksSuspected,
          state: snapshot.state,
          lastError: Option.fromUndefinedOr(snapshot.lastError),
          upSince: new Date(startedAtWall),
          hosts: hostStatistics()
        },
        { disableChecks: true }
      )

    // ---------------------------------------------------------------------------------------------------------
    // dispatch: the one caller of engine.handle; events raised while carrying out decisions queue behind
    // ---------------------------------------------------------------------------------------------------------
    const pending: Array<Engine.Event> = []
    // Effect 4 may resume a fiber inside `Deferred.doneUnsafe`, on this very stack: callers are resumed once the
    // engine has handled every queued event, so a resumed caller never sees the engine halfway through a step
    const resumptions: Array<() => void> = []
    let dispatching = false
    const dispatch = (event: Engine.Event): void => {
      if (dispatching) {
        pending.push(event)
        return
      }
      dispatching = true
      try {
        for (let next: Engine.Event | undefined = event; next !== undefined; next = pending.shift()) {
          for (const decision of engine.handle(next)) execute(decision)
        }
      } finally {
        dispatching = false
      }
      for (let resume = resumptions.shift(); resume !== undefined; resume = resumptions.shift()) resume()
    }

    const log = (level: Engine.Decision & { _tag: "Log" }) => {
      if (level.message === leakMessage) metrics.leak()
      const logLevel = level.level === "Warning" ? "Warn" : level.level
      if (LogLevel.isLessThan(logLevel, minimumLogLevel)) return
      const annotations: Record<string, unknown> = { pool: config.name }
      for (const [key, value] of Object.entries(level.fields)) {
        if (value !== undefined) annotations[key] = typeof value === "string" ? redact(value) : value
      }
      if (level.message === leakMessage) {
        annotations.acquiredAt = describeSite(held?.get(level.fields.acquisition as Engine.AcquisitionId))
      }
      run(Effect.logWithLevel(logLevel)(redact(level.message)).pipe(Effect.annotateLogs(annotations)))
    }

    const probeHost = (
      host: string,
      port: number
    ): Effect.Effect<{ readonly reachable: boolean; readonly latencyMs: number }> =>
      Effect.callback((resume) => {
        const started = now()
        const socket = host.startsWith("/")
          ? Net.connect({ path: `${host}/.s.PGSQL.${port}` })
          : Net.connect({ host, port })
        const done = (reachable: boolean) => {
          socket.destroy()
          resume(Effect.succeed({ reachable, latencyMs: now() - started }))
        }
        socket.setTimeout(1_000, () => done(false))
        socket.once("connect", () => done(true))
        socket.once("error", () => done(false))
        return Effect.sync(() => socket.destroy())
      })
    // several hosts: the database is reachable when any of them listens (the fastest answer's latency)
    const tcpProbe =
      config.hosts.length > 1
        ? Effect.map(
            Effect.forEach(config.hosts, (h) => probeHost(h.host, h.port), { concurrency: "unbounded" }),
            (probes) => {
              const up = probes.filter((p) => p.reachable).sort((a, b) => a.latencyMs - b.latencyMs)
              return up[0] ?? probes[0]!
            }
          )
        : probeHost(config.host, config.port)

    const baseSchedule = Schedule.exponential(config.reconnect.initialDelay, config.reconnect.factor)
    const schedule = config.reconnect.jitter ? Schedule.jittered(baseSchedule) : baseSchedule

    const waitReconnect = (decision: Engine.Decision & { _tag: "ScheduleReconnect" }) =>
      Effect.gen(function* () {
        if (decision.restart || reconnectStep === undefined) {
          reconnectStep = (yield* Schedule.toStep(schedule)) as any
        }
        const [, delay] = yield* reconnectStep!(clock.currentTimeMillisUnsafe(), undefined).pipe(
          Effect.orElseSucceed(() => [undefined, config.reconnect.maxDelay] as [unknown, Duration.Duration])
        )
        let delayMillis = Math.min(Duration.toMillis(delay), millis(config.reconnect.maxDelay))
        if (decision.failure.startingUp) {
          delayMillis = Math.min(delayMillis, startingUpBaseMillis * 2 ** Math.min(decision.startingUpStreak, 5))
        }
        metrics.reconnect()
        yield* Effect.logInfo("reconnect attempt scheduled").pipe(
          Effect.annotateLogs({
            pool: config.name,
            attempt: decision.attempt,
            delayMillis: Math.round(delayMillis),
            error: decision.failure.message
          })
        )
        const sleep = Effect.sleep(Duration.millis(delayMillis))
        if (decision.failure.probeable) {
          // nothing listened on the port: the step ends early once it answers again
          const untilOpen = Effect.gen(function* () {
            while (true) {
              const probe = yield* tcpProbe
              if (probe.reachable) return
              yield* Effect.sleep(Duration.millis(tcpProbeEveryMillis))
            }
          })
          yield* Effect.raceFirst(sleep, untilOpen)
        } else {
          yield* sleep
        }
        reconnect = undefined
        dispatch({ _tag: "ReconnectDue", now: now() })
      })

    // given up at timeoutAt without waiting for the round trip's interruption: on a silent socket that lasts as long
    // as the socket does, and the acquisition's deadline would wait with it (the session is closed on a timeout)
    const bounded = <A, E>(effect: Effect.Effect<A, E>, timeoutAt: number) =>
      Effect.flatMap(Effect.forkDetach(Effect.exit(effect)), (fiber) =>
        Effect.timeoutOption(
          Effect.flatMap(Fiber.join(fiber), (exit) => exit),
          Duration.millis(Math.max(0, timeoutAt - now()))
        )
      )

    /**
     * Sessions on a host that no longer serves the pool's target: the engine evicts them as it does a session whose
     * socket died — an idle one at once, one in use when its holder releases it — and none is handed out again.
     */
    const evict = (evictions: ReadonlyArray<Hosts.Eviction>): void => {
      for (const { reason, session: id } of evictions) {
        if (!sessions.has(id)) continue
        // not a failure: no backoff, no last error; counted roleChanged
        dispatch({ _tag: "SessionEvicted", now: now(), session: id, reason: redact(reason) })
      }
    }

    /**
     * One session: on the one host, or (several hosts or a target) on the first that gives one of the target's role
     * in the table's order; what each try came to goes to the table. `reached` hears which host it is on.
     */
    const connect = (
      id: number,
      onClosed: (error: unknown) => void,
      reached: (reached: MultiHost.Reached) => void
    ): Effect.Effect<Driver.Session, MultiHost.HostsFailure | Tls.TlsRejected | SqlError> => {
      // TLS as sslmode says: allow and prefer fall back to the other transport (internal/tls.ts)
      const negotiated = (open: Driver.OpenOptions) =>
        Tls.negotiate(
          open.sslmode ?? (open.ssl === false ? "disable" : "require"),
          open.ssl === true ? {} : open.ssl,
          MultiHost.causeOf,
          (ssl) => Driver.open(id, { ...open, ssl }, now, onClosed)
        )
      if (hosts === undefined) return negotiated(options.open)
      const open = (host: Hosts.Host) =>
        negotiated({ ...options.open, host: host.host, port: host.port, path: undefined, watchParameters: true })
      return MultiHost.connectAny(
        hosts.attempts(now(), Math.random),
        config.targetSessionAttrs,
        open,
        (cause) => (Tls.isTlsRejected(cause) ? cause.classified : Classify.classifyConnectError(cause, config)),
        options.open.connectTimeoutMillis
      ).pipe(
        Effect.tapError((failed) => Effect.sync(() => evict(hosts.record(now(), failed.outcomes)))),
        Effect.map((result) => {
          reached(result)
          return result.session
        })
      )
    }

    /**
     * A session opened on one of several hosts: the table learns which host and role, and hears every later
     * ParameterStatus on it (a promotion, a reload), so that sessions whose server changed role are evicted.
     */
    const hostOpened = (id: Engine.SessionId, session: Driver.Session, reached: MultiHost.Reached): void => {
      const table = hosts!
      const evicted = [
        ...table.record(now(), reached.outcomes),
        ...table.opened(now(), id, reached.attempt.index, reached.observed, session.parameters)
      ]
      session.onParameterStatus = (name, value) => {
        if (sessions.get(id) === session) evict(table.reported(now(), id, { [name]: value }))
      }
      evict(evicted)
    }

    /**
     * The scouts the table asks for on each housekeeping tick: a `prefer-standby` pool on its fallback looks for a
     * standby again (`recheck`), and hosts whose sessions cannot report a role change (no `in_hot_standby`: a TLS
     * session, PostgreSQL before 14) have their role checked (`roleChecks`). Each is a throwaway session: what it
     * finds goes to the table, whose evictions follow.
     */
    let scouts = 0
    const scout = (table: Hosts.Table): void => {
      for (const attempt of [...table.recheck(now()), ...table.roleChecks(now())]) {
        const id = -1_000_000 - ++scouts
        const open = (host: Hosts.Host) =>
          Tls.negotiate(
            options.open.sslmode ?? (options.open.ssl === false ? "disable" : "require"),
            options.open.ssl === true ? {} : options.open.ssl,
            MultiHost.causeOf,
            (ssl) =>
              Driver.open(
                id,
                { ...options.open, ssl, host: host.host, port: host.port, path: undefined, watchParameters: true },
                now,
                () => undefined
              )
          )
        run(
          MultiHost.connectAny(
            [attempt],
            config.targetSessionAttrs,
            open,
            (cause) => (Tls.isTlsRejected(cause) ? cause.classified : Classify.classifyConnectError(cause, config)),
            options.open.connectTimeoutMillis
          ).pipe(
            Effect.matchEffect({
              onFailure: (failed) => Effect.sync(() => evict(table.record(now(), failed.outcomes))),
              onSuccess: (reached) =>
                Effect.andThen(
                  Effect.sync(() => evict(table.scouted(now(), reached.attempt.index, reached.observed))),
                  reached.session.close(false)
                )
            })
          )
        )
      }
    }

    const openFailure = (error: unknown): Engine.Failure =>
      error instanceof OnConnectFailed
        ? failure(error.classified)
        : (error as MultiHost.HostsFailure)?._tag === "HostsFailure"
          ? failure((error as MultiHost.HostsFailure).failure)
          : Tls.isTlsRejected(error)
            ? failure(error.classified)
            : failure(Classify.classifyConnectError(MultiHost.causeOf(error), config))

    const openSession = (id: Engine.SessionId) => {
      const started = now()
      let reached: MultiHost.Reached | undefined
      return connect(
        id,
        (error) => {
          const session = sessions.get(id)
          if (session === undefined) return
          dispatch({
            _tag: "SessionClosed",
            now: now(),
            session: id,
            failure: failure(Classify.classifyError(causeOf(error)))
          })
        },
        (r) => {
          reached = r
        }
      ).pipe(
        // a failing hook fails this session (closed, reported as a failed open), not the pool; it is bounded by
        // connectTimeout as the login is (a hung hook would keep the session opening for good)
        Effect.flatMap((session) => {
          const onConnect = options.onConnect
          return onConnect === undefined
            ? Effect.succeed(session)
            : Effect.suspend(() => onConnect(session)).pipe(
                Effect.timeoutOrElse({
                  duration: config.connectTimeout,
                  orElse: () =>
                    Effect.fail(
                      new Error(
                        Messages.onConnectTimeout(Duration.toMillis(config.connectTimeout), config.settingNames)
                      )
                    )
                }),
                Effect.as(session),
                Effect.tapCause(() => session.close(false)),
                // whatever the hook's statement failed with (a syntax error's 42601 included), it failed this session,
                // not the login: an outage of that open, retried with backoff, never a rejection (as in Effect 3)
                Effect.catchCause((cause) =>
                  Cause.hasInterruptsOnly(cause)
                    ? Effect.failCause(cause)
                    : Effect.fail(new OnConnectFailed(Cause.squash(cause)))
                )
              )
        }),
        // a defect (a hook or the driver that throws) is a failed open too: it must not wedge `pending`
        Effect.catchDefect((defect) => Effect.fail(defect)),
        Effect.matchEffect({
          onFailure: (error) =>
            Effect.sync(() => {
              if (reached !== undefined && hosts !== undefined) evict(hosts.record(now(), reached.outcomes))
              const failed = openFailure(error)
              dispatch({ _tag: "OpenFailed", now: now(), session: id, failure: failed })
              // with no session left, a failed open is the latest word on the database: an older probe's
              // "reachable" is stale (a rejected login still reached it)
              if (failed.kind === "outage" && engine.statistics(now()).total === 0) {
                reachability = new DatabaseReachability({ ...reachability, reachable: false })
              }
            }),
          onSuccess: (session) =>
            Effect.sync(() => {
              metrics.created((now() - started) / 1000)
              // a session that opens proves the database reachable: health must not show an older failed probe
              reachability = new DatabaseReachability({
                reachable: true,
                latencyMs: Option.none(),
                probedAt: Option.some(new Date(clock.currentTimeMillisUnsafe()))
              })
              sessions.set(id, session)
              // the table knows the session's host before the engine hands it out (or completes the start-up)
              if (reached !== undefined) hostOpened(id, session, reached)
              dispatch({ _tag: "SessionOpened", now: now(), session: id, jitter: Math.random() })
              if (session.closed && sessions.has(id)) {
                dispatch({
                  _tag: "SessionClosed",
                  now: now(),
                  session: id,
                  failure: failure(Classify.classifyError(new Error("the connection closed as it opened")))
                })
              }
            })
        })
      )
    }

    /** The LISTEN connection's open: where the pool's sessions go, a `SqlError` as the listener expects. */
    const openDedicated = (id: number): Effect.Effect<Driver.Session, SqlError> =>
      connect(
        id,
        () => undefined,
        () => undefined
      ).pipe(
        Effect.mapError((error) => {
          if (error._tag !== "HostsFailure" && error._tag !== "TlsRejected") return error
          const message = redact(error._tag === "HostsFailure" ? error.failure.message : error.classified.message)
          return new SqlError({
            reason: new ConnectionError({ cause: new Error(message), message, operation: "connect" })
          })
        })
      )

    let timerAt = 0
    let timerWanted: number | undefined
    const armTimer = (at: number) => {
      timerAt = at
      timer = run(
        Effect.andThen(
          Effect.sleep(Duration.millis(Math.max(0, at - now()))),
          Effect.sync(() => {
            timer = undefined
            const wanted = timerWanted
            if (wanted === undefined) return
            // moved later meanwhile (a timer a little early, by the host's rounding, is the engine's to re-arm)
            if (wanted - now() > 1) return armTimer(wanted)
            dispatch({ _tag: "TimerDue", now: now() })
          })
        )
      )
    }

    const execute = (decision: Engine.Decision): void => {
      switch (decision._tag) {
        case "Grant": {
          const session = sessions.get(decision.session)
          if (session === undefined) return
          // the acquisition being requested on this stack: `acquire` returns it when its dispatch does
          if (decision.acquisition === requesting) {
            grantedNow = session
            return
          }
          const waiter = waiters.get(decision.acquisition)
          if (waiter === undefined) return
          waiters.delete(decision.acquisition)
          const grantedAt = now()
          metrics.waited((grantedAt - waiter.arrivedAt) / 1000)
          const grant: Grant = {
            acquisition: decision.acquisition,
            session,
            grantedAt,
            span: waiter.span,
            frame: waiter.frame
          }
          held?.set(decision.acquisition, grant)
          // the caller's from now on, even if it is interrupted before it resumes
          waiter.holder.grant = grant
          resumptions.push(() => Deferred.doneUnsafe(waiter.deferred, Effect.void))
          return
        }
        case "Fail": {
          const requested = decision.acquisition === requesting
          const waiter = requested ? undefined : waiters.get(decision.acquisition)
          if (waiter !== undefined) waiters.delete(decision.acquisition)
          else if (!requested) return
          const error = decision.error
          const failure =
            error._tag === "Timeout"
              ? new AcquireTimeout({
                  waitedMillis: error.waitedMillis,
                  statistics: toStatistics(error.statistics),
                  settingNames: {
                    maxSize: config.settingNames.maxSize,
                    acquireTimeout: config.settingNames.acquireTimeout
                  }
                })
              : new PoolClosed({ poolName: config.name })
          if (error._tag === "Timeout") metrics.timedOut()
          // a wait that ended in failure is a wait too: timed out, or woken by shutdown
          if (error._tag === "Timeout" || waiter !== undefined) {
            metrics.waited(waiter === undefined ? 0 : (now() - waiter.arrivedAt) / 1000)
          }
          if (waiter === undefined) refusedNow = failure
          else resumptions.push(() => Deferred.doneUnsafe(waiter.deferred, Effect.fail(failure)))
          return
        }
        case "Open":
          run(openSession(decision.session))
          return
        case "Validate":
        case "ProbeSession": {
          const session = sessions.get(decision.session)
          if (session === undefined) return
          const started = now()
          run(
            bounded(session.ping, decision.timeoutAt).pipe(
              Effect.match({
                onFailure: (error) => ({ ok: false, error: redact(Classify.errorMessage(causeOf(error))) }),
                onSuccess: (result) =>
                  Option.isSome(result)
                    ? { ok: true, error: undefined }
                    : { ok: false, error: "the validation round trip timed out" }
              }),
              Effect.flatMap(({ error, ok }) =>
                Effect.sync(() => {
                  if (decision._tag === "ProbeSession") {
                    reachability = new DatabaseReachability({
                      reachable: ok,
                      latencyMs: ok ? Option.some(now() - started) : Option.none(),
                      probedAt: Option.some(new Date(clock.currentTimeMillisUnsafe()))
                    })
                  }
                  dispatch({ _tag: "ValidationResult", now: now(), session: decision.session, ok, error })
                })
              )
            )
          )
          return
        }
        case "Reset": {
          const session = sessions.get(decision.session)
          if (session === undefined) return
          run(
            bounded(
              Effect.andThen(
                session.reset(decision.rollback, decision.discard),
                decision.discard && options.onConnect !== undefined ? options.onConnect(session) : Effect.void
              ),
              decision.timeoutAt
            ).pipe(
              Effect.match({
                onFailure: (error) => ({ ok: false, error: redact(Classify.errorMessage(causeOf(error))) }),
                onSuccess: (result) =>
                  Option.isSome(result) && session.status === "I" && !session.closed && !session.broken
                    ? { ok: true, error: undefined }
                    : { ok: false, error: "the reset timed out" }
              }),
              Effect.flatMap(({ error, ok }) =>
                Effect.sync(() => dispatch({ _tag: "ResetResult", now: now(), session: decision.session, ok, error }))
              )
            )
          )
          return
        }
        case "Close": {
          const session = sessions.get(decision.session)
          sessions.delete(decision.session)
          hosts?.closed(decision.session)
          metrics.closed(decision.reason)
          if (session !== undefined) {
            // a close runs to its end (the CancelRequest, then Terminate): shutdown waits for it rather than cut it
            const fiber = run(Effect.uninterruptible(session.close(decision.cancelFirst)))
            closing.add(fiber)
            fiber.addObserver(() => closing.delete(fiber))
          }
          return
        }
        case "ArmTimer": {
          // The engine moves its one timer to the queue's head whenever the head changes, which under load is once
          // per queued statement: a fiber per move would cost more than the statement. The armed one stays unless
          // the engine wants an earlier instant; at a later one it sleeps on, and with nothing wanted it ends idle.
          timerWanted = decision.at
          const at = decision.at
          if (at === undefined || (timer !== undefined && timerAt <= at)) return
          if (timer !== undefined) timer.interruptUnsafe()
          armTimer(at)
          return
        }
        case "ScheduleReconnect":
          if (reconnect !== undefined) reconnect.interruptUnsafe()
          reconnect = run(waitReconnect(decision))
          return
        case "CancelReconnect":
          if (reconnect !== undefined) reconnect.interruptUnsafe()
          reconnect = undefined
          reconnectStep = undefined
          return
        case "InitDone": {
          const error = decision.error
          if (error === undefined) {
            // as a grant: the starting fiber resumes once the engine's step is done
            resumptions.push(() => Deferred.doneUnsafe(init, Effect.void))
            return
          }
          const classified = error.failure
          Deferred.doneUnsafe(
            init,
            Effect.fail(
              classified.kind === "rejected"
                ? new ConnectionRejected({
                    host: config.host,
                    port: config.port,
                    database: config.database,
                    user: config.user,
                    code: classified.code,
                    serverMessage: classified.message,
                    remedy:
                      Classify.classifyConnectError({ code: classified.code, message: classified.message }, config)
                        .remedy ?? "check the connection settings",
                    attempts: error.attempts,
                    elapsedMillis: error.elapsedMillis
                  })
                : new DatabaseUnreachable({
                    host: config.host,
                    port: config.port,
                    database: config.database,
                    attempts: error.attempts,
                    elapsedMillis: error.elapsedMillis,
                    lastCause: classified.message,
                    settingNames: { url: config.settingNames.url, init: config.settingNames.init }
                  })
            )
          )
          return
        }
        case "StateChanged":
          metrics.state(decision.to)
          return
        case "Log":
          log(decision)
          return
        case "ProbeAnswered":
          reachability = new DatabaseReachability({
            reachable: decision.reachable,
            latencyMs: Option.none(),
            probedAt: Option.some(new Date(clock.currentTimeMillisUnsafe()))
          })
          return
        case "ProbeTcp":
          run(
            Effect.flatMap(tcpProbe, (probe) =>
              Effect.sync(() => {
                reachability = new DatabaseReachability({
                  reachable: probe.reachable,
                  latencyMs: probe.reachable ? Option.some(probe.latencyMs) : Option.none(),
                  probedAt: Option.some(new Date(clock.currentTimeMillisUnsafe()))
                })
              })
            )
          )
          return
        case "Drained":
          Deferred.doneUnsafe(drained, Effect.void)
          return
      }
    }

    // A grant the engine makes at once is the caller's when `acquire`'s dispatch returns: no Deferred, no
    // suspension. Only a queued caller waits, as interruptible as it is: one that gives up leaves the queue, and a
    // grant it did not see goes back to the engine with `AcquireAbandoned`; a statement run by a finalizer
    // (uninterruptible) waits. Callers must not wrap it in `acquireRelease`'s acquire, which is uninterruptible: see
    // client.ts.
    const acquire = (
      kind: "exclusive" | "statement",
      fiber: Fiber.Fiber<unknown, unknown>,
      holder: Holder
    ): Effect.Effect<void, AcquireTimeout | PoolClosed> | undefined => {
      const acquisition = nextAcquisition++
      const arrivedAt = now()
      const span = held === undefined ? undefined : fiber.cache.span
      const frame = held === undefined ? undefined : fiber.cache.stackFrame
      // callers resumed inside this dispatch may request in turn: theirs are nested, and these are restored
      const outer = requesting
      const outerGranted = grantedNow
      const outerRefused = refusedNow
      requesting = acquisition
      grantedNow = undefined
      refusedNow = undefined
      dispatch({ _tag: "AcquireRequested", now: arrivedAt, acquisition, kind })
      const session = grantedNow as Driver.Session | undefined
      const refused = refusedNow as AcquireTimeout | PoolClosed | undefined
      requesting = outer
      grantedNow = outerGranted
      refusedNow = outerRefused
      if (session !== undefined) {
        metrics.waited(0)
        const grant: Grant = { acquisition, session, grantedAt: arrivedAt, span, frame }
        held?.set(acquisition, grant)
        holder.grant = grant
        return undefined
      }
      if (refused !== undefined) return Effect.fail(refused)
      const deferred = Deferred.makeUnsafe<void, AcquireTimeout | PoolClosed>()
      waiters.set(acquisition, { deferred, holder, arrivedAt, span, frame })
      return Effect.onInterrupt(Deferred.await(deferred), () =>
        Effect.sync(() => {
          waiters.delete(acquisition)
          held?.delete(acquisition)
          holder.grant = undefined
          dispatch({ _tag: "AcquireAbandoned", now: now(), acquisition })
        })
      )
    }

    /** The connection-count gauges from the engine's statistics. */
    const sampleCounts = () => {
      const s = engine.statistics(now())
      metrics.counts(s.idle, s.active, s.waiting)
    }

    const release = (grant: Grant, facts: Facts): void => {
      const at = now()
      metrics.used((at - grant.grantedAt) / 1000)
      held?.delete(grant.acquisition)
      dispatch({ _tag: "Released", now: at, acquisition: grant.acquisition, facts })
    }

    const initialize = Effect.gen(function* () {
      dispatch({ _tag: "Started", now: now() })
      run(
        Effect.forever(
          Effect.andThen(
            Effect.sleep(Duration.millis(housekeepingMillis)),
            Effect.sync(() => {
              dispatch({ _tag: "Tick", now: now() })
              if (hosts !== undefined) scout(hosts)
              // the connection-count gauges, once a second: a snapshot per event would cost more than the event
              sampleCounts()
            })
          )
        )
      )
      run(
        Effect.forever(
          Effect.andThen(
            Effect.sleep(Duration.millis(probeEveryMillis)),
            Effect.sync(() => dispatch({ _tag: "ProbeRequested", now: now() }))
          )
        )
      )
      if (config.init === "eager") yield* Deferred.await(init)
    })

    // graceful shutdown with the scope: registered after the fiber set, so it runs before the set is interrupted
    // the sampler stops with the pool: the gauges are also read when shutdown wakes the waiters and when it is done
    yield* Effect.addFinalizer(() =>
      Effect.andThen(
        Effect.sync(() => {
          dispatch({ _tag: "ShutdownRequested", now: now() })
          sampleCounts()
        }),
        Effect.interruptible(
          Effect.andThen(
            Deferred.await(drained),
            Effect.suspend(() => Fiber.awaitAll([...closing]))
          )
        )
      ).pipe(Effect.ensuring(Effect.sync(sampleCounts)))
    )

    return {
      config,
      acquire,
      release,
      statistics: () => toStatistics(engine.statistics(now())),
      health: () => {
        const assessment = engine.assess(now())
        return new HealthStatus(
          {
            status: assessment.status,
            reason: Option.fromUndefinedOr(assessment.reason),
            checkedAt: new Date(clock.currentTimeMillisUnsafe()),
            database: reachability,
            statistics: toStatistics(engine.statistics(now()))
          },
          { disableChecks: true }
        )
      },
      refresh: () => dispatch({ _tag: "RefreshRequested", now: now() }),
      openDedicated,
      initialize
    } satisfies Pool
  })
