import { assert, describe, it } from "vitest"
import { config, Harness, outage, rejected } from "./harness.js"

const started = (overrides: Parameters<typeof config>[0] = {}) => {
  const h = new Harness(config(overrides))
  h.start()
  h.settle()
  return h
}

describe("reset on release", () => {
  it("rolls back a session returned inside a transaction before anyone else gets it", () => {
    const h = started({ maxSize: 1 })
    const a = h.acquire()
    const b = h.acquire()
    const session = h.sessionOf(a)
    h.release(a, { transactionStatus: "T" })
    assert.deepInclude(h.last("Reset"), { session, rollback: true, discard: false })
    assert.strictEqual(h.caller(b).state, "waiting")
    h.reset(session)
    assert.strictEqual(h.sessionOf(b), session)
  })

  it("discards session state a statement may have left, and closes a session whose reset fails", () => {
    const h = started({ maxSize: 1 })
    const a = h.acquire()
    const session = h.sessionOf(a)
    h.release(a, { dirty: true })
    assert.deepInclude(h.last("Reset"), { session, rollback: false, discard: true })
    h.reset(session, false)
    assert.strictEqual(h.closedBy.reset, 1)
    assert.strictEqual(h.logs("connection could not be reset after use; discarded").length, 1)
  })

  it("resets after every exclusive checkout with resetAlways", () => {
    const h = started({ maxSize: 1, resetAlways: true })
    const a = h.acquire()
    h.release(a)
    assert.deepInclude(h.last("Reset"), { discard: true })
  })

  it("closes a session returned broken, or with a statement still in flight", () => {
    const h = started({ maxSize: 2 })
    const a = h.acquire()
    const b = h.acquire()
    h.settle()
    h.release(a, { broken: true })
    h.release(b, { inFlight: 1 })
    assert.strictEqual(h.closedBy.broken, 1)
    assert.strictEqual(h.closedBy.cancel, 1)
  })

  it("a session whose socket dies while idle is closed at once; while held, when it is released", () => {
    const h = started({ maxSize: 2 })
    const a = h.acquire()
    const b = h.acquire()
    h.settle()
    const idle = h.sessionOf(b)
    h.release(b)
    h.died(idle)
    assert.strictEqual(h.closedBy.broken, 1)
    h.died(h.sessionOf(a))
    assert.strictEqual(h.closedBy.broken, 1)
    h.release(a)
    assert.strictEqual(h.closedBy.broken, 2)
  })
})

describe("eviction", () => {
  it("closes a session at its lifetime, shortened by up to 5 % of jitter", () => {
    const h = new Harness(config({ maxSize: 2, maxLifetime: 10_000, maxIdleTime: 1e9 }))
    h.start()
    h.opened(h.lastOpened(), 1)
    const a = h.acquire()
    h.advance(9_500)
    // expired while held: closed on release, not offered
    h.release(a)
    assert.strictEqual(h.closedBy.lifetime, 1)
  })

  it("closes an expired idle session at housekeeping and skips it when acquiring", () => {
    const h = new Harness(config({ maxSize: 2, maxLifetime: 10_000, maxIdleTime: 1e9 }))
    h.start()
    h.opened(h.lastOpened(), 0)
    h.advance(10_000)
    h.tick()
    assert.strictEqual(h.closedBy.lifetime, 1)
  })

  it("closes idle sessions above minSize after maxIdleTime, oldest first, and keeps minSize", () => {
    const h = new Harness(config({ minSize: 1, maxSize: 3, maxIdleTime: 5_000, validateAfterIdle: 1e9 }))
    h.start()
    h.settle()
    const ids = [h.acquire(), h.acquire(), h.acquire()]
    h.settle()
    const sessions = ids.map((id) => h.sessionOf(id))
    for (const id of ids) h.release(id)
    h.advance(5_000)
    h.tick()
    assert.strictEqual(h.closedBy.idle, 2)
    assert.strictEqual(h.engine.statistics(h.now).total, 1)
    // the warmest (released last) stays
    assert.isTrue(h.open.has(sessions[2]!))
  })

  it("closes a session after maxQueries", () => {
    const h = started({ maxSize: 1, maxQueries: 10 })
    const a = h.acquire()
    h.release(a, { queries: 6 })
    const b = h.acquire()
    h.release(b, { queries: 4 })
    assert.strictEqual(h.closedBy.maxQueries, 1)
  })
})

describe("minimum size", () => {
  it("opens minSize sessions at start and reopens one that closes", () => {
    const h = new Harness(config({ minSize: 2, maxSize: 4 }))
    h.start()
    assert.strictEqual(h.opening.size, 2)
    h.settle()
    const [first] = h.open
    h.died(first!)
    assert.strictEqual(h.opening.size, 1)
  })

  it("after sessions broke, one scout tests the server before the rest follow", () => {
    const h = new Harness(config({ minSize: 3, maxSize: 3 }))
    h.start()
    h.settle()
    for (const session of [...h.open]) h.died(session)
    assert.strictEqual(h.opening.size, 1)
    h.advance(2_000)
    h.opened(h.lastOpened())
    assert.strictEqual(h.opening.size, 2)
  })
})

describe("leaks", () => {
  it("logs a session held past the threshold once, counts it, and logs again when it returns", () => {
    const h = started({ maxSize: 1, leakThreshold: 5_000 })
    const a = h.acquire()
    h.advance(4_999)
    h.tick()
    assert.strictEqual(h.engine.statistics(h.now).leaksSuspected, 0)
    h.advance(1)
    h.tick()
    h.advance(10_000)
    h.tick()
    const warnings = h.logs("connection held longer than the leak detection threshold")
    assert.strictEqual(warnings.length, 1)
    assert.strictEqual(warnings[0]!.fields.acquisition, a)
    assert.strictEqual(h.engine.statistics(h.now).leaksSuspected, 1)
    h.release(a)
    assert.strictEqual(h.logs("connection suspected of leaking was returned")[0]!.fields.heldMillis, 15_000)
  })
})

describe("shutdown", () => {
  it("fails waiters and new acquisitions, closes idle sessions, waits for busy ones, then is drained", () => {
    const h = started({ maxSize: 2 })
    const a = h.acquire()
    const b = h.acquire()
    h.settle()
    h.release(b)
    const c = h.acquire()
    const d = h.acquire()
    h.shutdown()
    assert.deepStrictEqual(h.caller(d).error, { _tag: "Closed" })
    assert.strictEqual(h.closedBy.shutdown, 0)
    assert.isFalse(h.drained)
    const e = h.acquire()
    assert.deepStrictEqual(h.caller(e).error, { _tag: "Closed" })
    h.release(a)
    h.release(c)
    assert.strictEqual(h.closedBy.shutdown, 2)
    assert.isTrue(h.drained)
    assert.strictEqual(h.engine.assess(h.now).status, "unhealthy")
    assert.isUndefined(h.timer)
  })

  it("an idle pool is drained at once", () => {
    const h = started({ minSize: 2 })
    h.shutdown()
    assert.isTrue(h.drained)
    assert.strictEqual(h.closedBy.shutdown, 2)
  })

  it("after shutdownTimeout, cancels and closes what still runs", () => {
    const h = started({ maxSize: 1, shutdownTimeout: 3_000 })
    const a = h.acquire()
    const session = h.sessionOf(a)
    h.shutdown()
    assert.strictEqual(h.timer, h.now + 3_000)
    h.advance(3_000)
    assert.deepInclude(h.last("Close"), { session, reason: "shutdown", cancelFirst: true })
    assert.isTrue(h.drained)
    assert.strictEqual(h.logs("pool shut down")[0]!.fields.cancelledAfterTimeout, 1)
  })

  it("a session opened, validated or reset during shutdown is closed", () => {
    const h = started({ maxSize: 3, validateAfterIdle: 0 })
    const a = h.acquire()
    const b = h.acquire()
    h.settle()
    const sb = h.sessionOf(b)
    h.release(b, { transactionStatus: "E" })
    h.advance(5)
    h.release(a)
    h.advance(5)
    const c = h.acquire()
    h.acquire()
    h.acquire()
    assert.strictEqual(h.caller(c).state, "validating")
    h.shutdown()
    h.settle()
    assert.isFalse(h.open.has(sb))
    assert.strictEqual(h.open.size, 0)
    assert.isTrue(h.drained)
  })
})

describe("reconnection", () => {
  it("backs off after a failed open, attempts once per step, and recovers when a session opens", () => {
    const h = new Harness(config({ minSize: 1, init: "lazy" }))
    h.start()
    h.openFailed(h.lastOpened())
    assert.deepInclude(h.last("ScheduleReconnect"), { attempt: 2, restart: true })
    const a = h.acquire()
    // no open while backing off: the attempts are the backoff's
    assert.strictEqual(h.opening.size, 0)
    h.advance(1_000)
    h.reconnectDue()
    assert.strictEqual(h.opening.size, 1)
    h.openFailed(h.lastOpened())
    assert.deepInclude(h.last("ScheduleReconnect"), { attempt: 3, restart: false })
    h.advance(2_000)
    h.reconnectDue()
    h.opened(h.lastOpened())
    assert.strictEqual(h.caller(a).state, "granted")
    assert.isFalse(h.reconnectPending)
    assert.strictEqual(h.logs("database connection recovered")[0]!.fields.downtimeMillis, 3_000)
    assert.strictEqual(h.engine.statistics(h.now).reconnectAttempts, 2)
  })

  it("a session of a recovery that dies young resumes the backoff instead of restarting it", () => {
    const h = new Harness(config({ minSize: 1, init: "lazy" }))
    h.start()
    h.openFailed(h.lastOpened())
    h.advance(1_000)
    h.reconnectDue()
    h.opened(h.lastOpened())
    h.advance(200)
    h.died([...h.open][0]!)
    assert.deepInclude(h.last("ScheduleReconnect"), { attempt: 3, restart: false })
    assert.strictEqual(h.logs("a connection broke right after the recovery; backing off again").length, 1)
  })

  it("a session that lived past its probation counts as recovered: its loss starts over", () => {
    const h = new Harness(config({ minSize: 1, init: "lazy" }))
    h.start()
    h.openFailed(h.lastOpened())
    h.advance(1_000)
    h.reconnectDue()
    h.opened(h.lastOpened())
    h.advance(1_000)
    h.died([...h.open][0]!)
    // a scout, not a reconnect
    assert.strictEqual(h.opening.size, 1)
    assert.isFalse(h.reconnectPending)
  })
})

describe("initialisation", () => {
  it("eager: done once the first wave has landed with a success", () => {
    const h = new Harness(config({ minSize: 2, maxSize: 2 }))
    h.start()
    const [first, second] = h.opening
    h.opened(first!)
    assert.isUndefined(h.initDone)
    h.openFailed(second!)
    assert.deepStrictEqual(h.initDone, { _tag: "InitDone", error: undefined })
  })

  it("eager: fails after the initial attempts, the first wave counting as one", () => {
    const h = new Harness(config({ minSize: 2, maxSize: 2, initialAttempts: 3 }))
    h.start()
    for (const session of [...h.opening]) h.openFailed(session)
    for (let i = 0; i < 2; i++) {
      assert.isUndefined(h.initDone)
      h.reconnectDue()
      h.openFailed(h.lastOpened())
    }
    assert.strictEqual(h.initDone?.error?.attempts, 3)
    assert.isFalse(h.reconnectPending)
    // nothing more is opened for a pool about to be torn down
    h.acquire()
    assert.strictEqual(h.opening.size, 0)
  })

  it("eager: a rejected login fails at once", () => {
    const h = new Harness(config({ minSize: 2, maxSize: 2 }))
    h.start()
    h.openFailed(h.lastOpened(), rejected)
    assert.strictEqual(h.initDone?.error?.failure.kind, "rejected")
    h.openFailed(h.lastOpened(), outage)
  })
})

describe("what the edition reads", () => {
  it("gauges follow the live counts without a snapshot", () => {
    const h = new Harness(config({ minSize: 1, maxSize: 1, init: "lazy" }))
    const { gauges } = h.engine
    h.start()
    assert.deepStrictEqual([gauges.total, gauges.idle, gauges.opening, gauges.waiting], [0, 0, 1, 0])
    h.settle()
    const a = h.acquire()
    const b = h.acquire()
    assert.deepStrictEqual([gauges.total, gauges.idle, gauges.opening, gauges.waiting], [1, 0, 0, 1])
    h.release(a)
    assert.deepStrictEqual([gauges.total, gauges.idle, gauges.waiting], [1, 0, 0])
    h.release(b, { broken: true })
    assert.isFalse(gauges.reconnecting)
    h.openFailed(h.lastOpened())
    assert.isTrue(gauges.reconnecting)
  })

  it("the pool starting log names where it connects in the edition's words when given", () => {
    const h = new Harness(config({ startFields: { host: "db", port: 5432, database: "shop" } }))
    h.start()
    assert.deepInclude(h.logs("pool starting")[0]!.fields, { host: "db", port: 5432, database: "shop" })
    assert.notProperty(h.logs("pool starting")[0]!.fields, "target")
    const plain = new Harness(config())
    plain.start()
    assert.deepInclude(plain.logs("pool starting")[0]!.fields, { target: "db:5432" })
  })

  it("a reconnect attempt that lost the race to a recovery leaves the last error as it was", () => {
    const h = new Harness(config({ minSize: 2, maxSize: 2, init: "lazy" }))
    h.start()
    const [first, second] = [...h.opening]
    h.openFailed(first!)
    h.advance(1_000)
    h.reconnectDue()
    const attempt = h.lastOpened()
    h.opened(second!)
    // the recovery made the attempt moot: the edition interrupts it and reports it failed
    h.openFailed(attempt, { kind: "outage", message: "interrupted", probeable: false, startingUp: false })
    assert.strictEqual(h.engine.statistics(h.now).lastError, outage.message)
    assert.strictEqual(h.opening.size, 1)
  })
})

describe("shutdown's last word", () => {
  it("closing several idle sessions, the pool is drained after the last one, and says so last", () => {
    const h = started({ minSize: 3, maxSize: 3 })
    const decisions = h.shutdown()
    const tags = decisions.map((d) => (d._tag === "Log" ? d.message : d._tag))
    assert.strictEqual(tags.filter((tag) => tag === "Close").length, 3)
    assert.strictEqual(tags.indexOf("Drained"), tags.lastIndexOf("Close") + 3)
    const logs = decisions.filter((d) => d._tag === "Log")
    assert.strictEqual(logs.at(-1)!.message, "pool shut down")
  })
})

describe("a scout's probation", () => {
  it("a scout that dies young backs off from the schedule's start: the backoff that ended long ago is stale", () => {
    const h = new Harness(config({ minSize: 1, maxSize: 1, init: "lazy" }))
    h.start()
    h.openFailed(h.lastOpened())
    h.advance(1_000)
    h.reconnectDue()
    h.opened(h.lastOpened())
    // the recovery holds past its probation; later the server kills the session, and the scout that replaces it
    h.advance(5_000)
    h.died([...h.open][0]!)
    h.opened(h.lastOpened())
    h.advance(200)
    h.died([...h.open].at(-1)!)
    assert.deepInclude(h.last("ScheduleReconnect"), { attempt: 2, restart: true })
    assert.strictEqual(h.logs("a connection broke right after the recovery; backing off again").length, 1)
  })
})
