/**
 * A fake edition for the engine's tests: an injected clock, fake sessions whose opens, validations and resets
 * complete when the test says so, and a record of every decision. After every event it checks the engine's own
 * invariants and, from the outside, what a caller would see: no session granted twice, grants in arrival order,
 * no grant of a closed session, each acquisition resolved at most once.
 */
import { assert } from "vitest"
import { Engine, Statistics } from "../src/index.js"

type Event = Engine.Event
type Decision = Engine.Decision
type Input = Event extends infer E ? (E extends Event ? Omit<E, "now"> : never) : never

export const outage: Engine.Failure = {
  kind: "outage",
  message: "connect ECONNREFUSED",
  probeable: true,
  startingUp: false
}
export const rejected: Engine.Failure = {
  kind: "rejected",
  message: "password authentication failed",
  code: "28P01",
  probeable: false,
  startingUp: false
}
export const clean: Engine.SessionFacts = {
  transactionStatus: "I",
  dirty: false,
  broken: false,
  inFlight: 0,
  queries: 1
}

export const config = (overrides: Partial<Engine.Config> = {}): Engine.Config => ({
  ...Engine.defaults,
  minSize: 0,
  maxSize: 2,
  leakThreshold: 0,
  target: "db:5432",
  ...overrides
})

interface Caller {
  readonly id: Engine.AcquisitionId
  readonly kind: "exclusive" | "statement"
  readonly arrivedAt: number
  state: "waiting" | "validating" | "granted" | "failed" | "abandoned" | "released"
  session: Engine.SessionId | undefined
  error: Engine.AcquireError | undefined
}

export class Harness {
  now = 0
  readonly engine: Engine.Engine
  /** Every decision so far, in order. */
  readonly decisions: Array<Decision> = []
  readonly callers = new Map<Engine.AcquisitionId, Caller>()
  readonly opening = new Set<Engine.SessionId>()
  readonly open = new Set<Engine.SessionId>()
  /** Sessions being validated, for whom. */
  readonly validating = new Map<Engine.SessionId, Engine.AcquisitionId>()
  readonly resetting = new Set<Engine.SessionId>()
  /** Sessions the health probe borrowed. */
  readonly probing = new Set<Engine.SessionId>()
  probeAnswers: Array<Decision> = []
  /** The validation whose result is being handled. */
  private validatedFor: { readonly session: Engine.SessionId; readonly acquisition: Engine.AcquisitionId } | undefined
  readonly closedBy: Record<Statistics.CloseReason, number> = Statistics.noneClosed()
  timer: number | undefined = undefined
  reconnectPending = false
  drained = false
  initDone: Extract<Decision, { _tag: "InitDone" }> | undefined = undefined
  states: Array<string> = []
  /** Sessions open or opening at a refresh: never granted, validated or probed afterwards. */
  readonly retired = new Set<Engine.SessionId>()
  private nextAcquisition = 1
  private created = 0

  constructor(config: Engine.Config) {
    this.engine = Engine.make(config)
  }

  send(input: Input): ReadonlyArray<Decision> {
    const decisions = this.engine.handle({ ...input, now: this.now } as Event)
    for (const decision of decisions) this.apply(decision)
    this.decisions.push(...decisions)
    assert.deepStrictEqual(this.engine.violations(), [], `after ${input._tag}`)
    this.checkCounters()
    return decisions
  }

  start(): ReadonlyArray<Decision> {
    return this.send({ _tag: "Started" })
  }

  acquire(kind: "exclusive" | "statement" = "exclusive"): Engine.AcquisitionId {
    const id = this.nextAcquisition++
    this.callers.set(id, { id, kind, arrivedAt: this.now, state: "waiting", session: undefined, error: undefined })
    this.send({ _tag: "AcquireRequested", acquisition: id, kind })
    return id
  }

  release(id: Engine.AcquisitionId, facts: Partial<Engine.SessionFacts> = {}): ReadonlyArray<Decision> {
    const caller = this.callers.get(id)!
    assert.strictEqual(caller.state, "granted", `acquisition ${id} releases what it does not hold`)
    caller.state = "released"
    return this.send({ _tag: "Released", acquisition: id, facts: { ...clean, ...facts } })
  }

  abandon(id: Engine.AcquisitionId): ReadonlyArray<Decision> {
    const caller = this.callers.get(id)!
    if (caller.state === "waiting" || caller.state === "validating" || caller.state === "granted") {
      caller.state = "abandoned"
    }
    return this.send({ _tag: "AcquireAbandoned", acquisition: id })
  }

  opened(session: Engine.SessionId, jitter = 0): ReadonlyArray<Decision> {
    assert.isTrue(this.opening.delete(session), `session ${session} was not opening`)
    this.open.add(session)
    this.created++
    return this.send({ _tag: "SessionOpened", session, jitter })
  }

  openFailed(session: Engine.SessionId, failure: Engine.Failure = outage): ReadonlyArray<Decision> {
    assert.isTrue(this.opening.delete(session), `session ${session} was not opening`)
    return this.send({ _tag: "OpenFailed", session, failure })
  }

  died(session: Engine.SessionId): ReadonlyArray<Decision> {
    return this.send({
      _tag: "SessionClosed",
      session,
      failure: { kind: "outage", message: "Connection terminated unexpectedly", probeable: false, startingUp: false }
    })
  }

  /** The session's server no longer serves the pool's target (the edition's `Hosts.Table` said so). */
  evicted(session: Engine.SessionId, reason: string): ReadonlyArray<Decision> {
    return this.send({ _tag: "SessionEvicted", session, reason })
  }

  validated(session: Engine.SessionId, ok = true): ReadonlyArray<Decision> {
    const id = this.validating.get(session)
    assert.isDefined(id, `session ${session} was not validating`)
    this.validating.delete(session)
    this.validatedFor = { session, acquisition: id! }
    try {
      return this.send({ _tag: "ValidationResult", session, ok, error: ok ? undefined : "no answer" })
    } finally {
      this.validatedFor = undefined
    }
  }

  probe(): ReadonlyArray<Decision> {
    return this.send({ _tag: "ProbeRequested" })
  }

  probed(session: Engine.SessionId, ok = true): ReadonlyArray<Decision> {
    assert.isTrue(this.probing.delete(session), `session ${session} was not probed`)
    return this.send({ _tag: "ValidationResult", session, ok, error: ok ? undefined : "no answer" })
  }

  reset(session: Engine.SessionId, ok = true): ReadonlyArray<Decision> {
    assert.isTrue(this.resetting.delete(session), `session ${session} was not resetting`)
    return this.send({ _tag: "ResetResult", session, ok })
  }

  /** Moves the clock; the timer fires if it comes due on the way. */
  advance(millis: number): void {
    const target = this.now + millis
    while (this.timer !== undefined && this.timer <= target) {
      this.now = Math.max(this.now, this.timer)
      this.timer = undefined
      this.send({ _tag: "TimerDue" })
    }
    this.now = target
  }

  tick(): ReadonlyArray<Decision> {
    return this.send({ _tag: "Tick" })
  }

  reconnectDue(): ReadonlyArray<Decision> {
    assert.isTrue(this.reconnectPending, "no reconnect was scheduled")
    this.reconnectPending = false
    return this.send({ _tag: "ReconnectDue" })
  }

  refresh(): ReadonlyArray<Decision> {
    for (const session of [...this.open, ...this.opening]) this.retired.add(session)
    return this.send({ _tag: "RefreshRequested" })
  }

  shutdown(): ReadonlyArray<Decision> {
    return this.send({ _tag: "ShutdownRequested" })
  }

  caller(id: Engine.AcquisitionId): Caller {
    return this.callers.get(id)!
  }

  /** The session granted to an acquisition (asserting it was). */
  sessionOf(id: Engine.AcquisitionId): Engine.SessionId {
    const caller = this.caller(id)
    assert.strictEqual(caller.state, "granted", `acquisition ${id} is ${caller.state}`)
    return caller.session!
  }

  lastOpened(): Engine.SessionId {
    return Math.max(...this.opening)
  }

  logs(message: string): Array<Extract<Decision, { _tag: "Log" }>> {
    return this.decisions.filter(
      (d): d is Extract<Decision, { _tag: "Log" }> => d._tag === "Log" && d.message === message
    )
  }

  /** The last decision of a kind. */
  last<T extends Decision["_tag"]>(tag: T): Extract<Decision, { _tag: T }> | undefined {
    for (let i = this.decisions.length - 1; i >= 0; i--) {
      const decision = this.decisions[i]!
      if (decision._tag === tag) return decision as Extract<Decision, { _tag: T }>
    }
    return undefined
  }

  /** Opens, validates and resets everything outstanding, successfully, until nothing is left. */
  settle(): void {
    for (let round = 0; round < 1_000; round++) {
      const [opening] = this.opening
      if (opening !== undefined) {
        this.opened(opening)
        continue
      }
      const [validating] = this.validating.keys()
      if (validating !== undefined) {
        this.validated(validating)
        continue
      }
      const [resetting] = this.resetting
      if (resetting !== undefined) {
        this.reset(resetting)
        continue
      }
      const [probing] = this.probing
      if (probing !== undefined) {
        this.probed(probing)
        continue
      }
      return
    }
    assert.fail("the engine never settled")
  }

  private apply(decision: Decision): void {
    switch (decision._tag) {
      case "Grant": {
        const caller = this.callers.get(decision.acquisition)!
        assert.isDefined(caller, `grant to unknown acquisition ${decision.acquisition}`)
        assert.include(["waiting", "validating"], caller.state, `acquisition ${caller.id} granted twice`)
        assert.isTrue(this.open.has(decision.session), `granted session ${decision.session} is not open`)
        assert.isFalse(this.retired.has(decision.session), `granted session ${decision.session} was refreshed`)
        assert.isFalse(this.resetting.has(decision.session), `granted session ${decision.session} is being reset`)
        assert.isFalse(this.probing.has(decision.session), `granted session ${decision.session} is being probed`)
        const validatingFor = this.validating.get(decision.session)
        assert.isTrue(validatingFor === undefined || validatingFor === caller.id, "granted while validated for another")
        if (caller.state === "waiting") this.assertArrivalOrder(caller)
        const holders = [...this.callers.values()].filter(
          (c) => c.state === "granted" && c.session === decision.session
        )
        if (caller.kind === "exclusive") {
          assert.deepStrictEqual(
            holders.map((c) => c.id),
            [],
            `session ${decision.session} granted twice`
          )
        } else {
          assert.isTrue(
            holders.every((c) => c.kind === "statement"),
            `session ${decision.session} held exclusively got a statement`
          )
          assert.isAtMost(holders.length + 1, this.engine.config.capacity, "more statements than slots")
        }
        caller.state = "granted"
        caller.session = decision.session
        this.validating.delete(decision.session)
        return
      }
      case "Fail": {
        const caller = this.callers.get(decision.acquisition)
        if (caller === undefined) return
        assert.include(["waiting", "validating"], caller.state, `acquisition ${caller.id} failed after ${caller.state}`)
        caller.state = "failed"
        caller.error = decision.error
        return
      }
      case "Open":
        this.opening.add(decision.session)
        return
      case "Validate": {
        assert.isFalse(this.retired.has(decision.session), `validated session ${decision.session} was refreshed`)
        const caller = this.callers.get(decision.acquisition)!
        assert.strictEqual(caller.state, "waiting")
        this.assertArrivalOrder(caller)
        this.assertFree(decision.session)
        caller.state = "validating"
        this.validating.set(decision.session, caller.id)
        return
      }
      case "Reset":
        this.assertFree(decision.session)
        this.resetting.add(decision.session)
        return
      case "Close":
        assert.isTrue(this.open.delete(decision.session), `closed session ${decision.session} was not open`)
        if (this.validatedFor?.session === decision.session) {
          // a failed validation puts its acquisition back in the queue, at its place
          const caller = this.callers.get(this.validatedFor.acquisition)!
          if (caller.state === "validating") caller.state = "waiting"
        }
        this.validating.delete(decision.session)
        this.resetting.delete(decision.session)
        this.probing.delete(decision.session)
        this.closedBy[decision.reason]++
        // a cut session's holders see their statements fail; their release is then a no-op
        for (const caller of this.callers.values()) {
          if (caller.state === "granted" && caller.session === decision.session) {
            assert.isTrue(
              decision.reason === "shutdown" && decision.cancelFirst,
              `session ${decision.session} closed (${decision.reason}) under its holder ${caller.id}`
            )
            caller.state = "released"
          }
        }
        return
      case "ArmTimer":
        this.timer = decision.at
        return
      case "ScheduleReconnect":
        this.reconnectPending = true
        return
      case "CancelReconnect":
        this.reconnectPending = false
        return
      case "InitDone":
        assert.isUndefined(this.initDone, "init settled twice")
        this.initDone = decision
        return
      case "StateChanged":
        this.states.push(decision.to)
        return
      case "Log":
        assert.notInclude(JSON.stringify(decision.fields), "[object Object]")
        return
      case "ProbeSession":
        assert.isFalse(this.retired.has(decision.session), `probed session ${decision.session} was refreshed`)
        this.assertFree(decision.session)
        this.probing.add(decision.session)
        this.probeAnswers.push(decision)
        return
      case "ProbeAnswered":
      case "ProbeTcp":
        this.probeAnswers.push(decision)
        return
      case "Drained":
        assert.isFalse(this.drained, "drained twice")
        this.drained = true
        return
    }
  }

  /** A session about to be validated, reset or probed: open, and nobody else's. */
  private assertFree(session: Engine.SessionId): void {
    assert.isTrue(this.open.has(session), `session ${session} is not open`)
    const busy = this.resetting.has(session) || this.probing.has(session) || this.validating.has(session)
    assert.isFalse(busy, `session ${session} is already busy`)
    const holders = [...this.callers.values()].filter((c) => c.state === "granted" && c.session === session)
    assert.deepStrictEqual(
      holders.map((c) => c.id),
      [],
      `session ${session} is held`
    )
  }

  /** Nobody who arrived earlier may still wait in the queue when a later arrival is served. */
  private assertArrivalOrder(served: Caller): void {
    for (const other of this.callers.values()) {
      if (other.state === "waiting" && other.id !== served.id && other.arrivedAt < served.arrivedAt) {
        assert.fail(
          `acquisition ${served.id} (arrived ${served.arrivedAt}) served before ${other.id} (${other.arrivedAt})`
        )
      }
    }
  }

  private checkCounters(): void {
    const statistics = this.engine.statistics(this.now)
    const closed = Object.values(this.closedBy).reduce((a, b) => a + b, 0)
    assert.strictEqual(statistics.total, this.open.size, "total ≠ sessions open")
    assert.strictEqual(statistics.pending, this.opening.size, "pending ≠ sessions opening")
    assert.strictEqual(statistics.connectionsCreated, this.created, "created ≠ sessions opened")
    assert.deepStrictEqual(statistics.connectionsClosed, this.closedBy, "closed by reason ≠ recount")
    assert.strictEqual(statistics.total, this.created - closed)
    const waiting = [...this.callers.values()].filter((c) => c.state === "waiting").length
    assert.strictEqual(statistics.waiting, waiting, "waiting ≠ callers waiting")
    const holding = [...this.callers.values()].filter((c) => c.state === "granted")
    const held = new Set(holding.map((c) => c.session))
    assert.isAtMost(held.size, statistics.active, "fewer sessions active than held")
  }
}
