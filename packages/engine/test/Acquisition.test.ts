import { assert, describe, it } from "vitest"
import { config, Harness } from "./harness.js"

/** A started pool with `n` sessions open and idle. */
const withSessions = (n: number, overrides: Parameters<typeof config>[0] = {}) => {
  const h = new Harness(config({ maxSize: n, ...overrides }))
  h.start()
  h.settle()
  // the first wave opens max(1, minSize): open the rest by acquiring and releasing them
  const held = Array.from({ length: n }, () => h.acquire())
  h.settle()
  for (const id of held) h.release(id)
  return h
}

describe("acquisition", () => {
  it("hands a released session to the head waiter, never to its releasing holder re-acquiring at once", () => {
    const h = withSessions(1)
    const a = h.acquire()
    const session = h.sessionOf(a)
    const b = h.acquire()
    const c = h.acquire()
    h.release(a)
    const a2 = h.acquire()
    assert.strictEqual(h.sessionOf(b), session)
    assert.strictEqual(h.caller(a2).state, "waiting")
    h.release(b)
    assert.strictEqual(h.sessionOf(c), session)
    h.release(c)
    assert.strictEqual(h.sessionOf(a2), session)
  })

  it("takes the most recently used idle session first", () => {
    const h = withSessions(2)
    const a = h.acquire()
    const b = h.acquire()
    const sessionB = h.sessionOf(b)
    h.release(a)
    h.release(b)
    assert.strictEqual(h.sessionOf(h.acquire()), sessionB)
  })

  it("opens a session for a waiter when below maxSize, and the session goes to the head", () => {
    const h = new Harness(config({ maxSize: 3 }))
    h.start()
    h.settle()
    const a = h.acquire()
    const b = h.acquire()
    assert.strictEqual(h.engine.statistics(h.now).pending, 1)
    h.opened(h.lastOpened())
    assert.strictEqual(h.caller(b).state, "granted")
    assert.strictEqual(h.caller(a).state, "granted")
  })

  it("validates a session idle longer than the skip window before handing it out, and skips it otherwise", () => {
    const h = withSessions(1, { validateAfterIdle: 1_000 })
    h.advance(500)
    const a = h.acquire()
    assert.strictEqual(h.caller(a).state, "granted")
    h.release(a)
    h.advance(1_001)
    const b = h.acquire()
    assert.strictEqual(h.caller(b).state, "validating")
    const [session] = h.validating.keys()
    h.validated(session!)
    assert.strictEqual(h.sessionOf(b), session)
  })

  it("discards a session that fails validation and carries on with the next one, transparently", () => {
    const h = withSessions(2, { validateAfterIdle: 0 })
    h.advance(10)
    const a = h.acquire()
    const first = [...h.validating.keys()][0]!
    h.validated(first, false)
    assert.strictEqual(h.closedBy.validation, 1)
    const second = [...h.validating.keys()][0]!
    assert.notStrictEqual(second, first)
    h.validated(second)
    assert.strictEqual(h.sessionOf(a), second)
  })
})

describe("abandonment", () => {
  it("a waiter that gives up leaves the queue at once and the next one is served", () => {
    const h = withSessions(1)
    const a = h.acquire()
    const b = h.acquire()
    const c = h.acquire()
    h.abandon(b)
    assert.strictEqual(h.engine.statistics(h.now).waiting, 1)
    h.release(a)
    assert.strictEqual(h.caller(c).state, "granted")
  })

  it("a session granted to a waiter that gave up at the same instant goes to the next waiter", () => {
    const h = withSessions(1)
    const a = h.acquire()
    const b = h.acquire()
    const c = h.acquire()
    h.release(a)
    const session = h.sessionOf(b)
    h.abandon(b)
    assert.strictEqual(h.sessionOf(c), session)
    // never an acquisition from b's point of view
    assert.strictEqual(
      h.engine.statistics(h.now).acquisitions,
      h.decisions.filter((d) => d._tag === "Grant").length - 1
    )
  })

  it("a session opened for a waiter that gave up goes idle, never leaks", () => {
    const h = new Harness(config({ maxSize: 1 }))
    h.start()
    const a = h.acquire()
    h.abandon(a)
    h.settle()
    const statistics = h.engine.statistics(h.now)
    assert.strictEqual(statistics.idle, 1)
    assert.strictEqual(statistics.active, 0)
  })

  it("an acquisition that gives up during validation: a session that answers serves the next one", () => {
    const h = withSessions(1, { validateAfterIdle: 0 })
    h.advance(10)
    const a = h.acquire()
    const b = h.acquire()
    const [session] = h.validating.keys()
    h.abandon(a)
    h.validated(session!)
    assert.strictEqual(h.sessionOf(b), session)
  })

  it("an acquisition that gives up during validation: a session that fails is closed, nobody retries", () => {
    const h = withSessions(1, { validateAfterIdle: 0 })
    h.advance(10)
    const a = h.acquire()
    const [session] = h.validating.keys()
    h.abandon(a)
    h.validated(session!, false)
    assert.strictEqual(h.closedBy.validation, 1)
    assert.strictEqual(h.engine.statistics(h.now).waiting, 0)
  })

  it("abandoning after release, or twice, changes nothing", () => {
    const h = withSessions(1)
    const a = h.acquire()
    h.release(a)
    const before = h.engine.statistics(h.now)
    assert.deepStrictEqual(
      h.abandon(a).filter((d) => d._tag !== "Log"),
      []
    )
    assert.deepStrictEqual(h.engine.statistics(h.now), before)
  })
})

describe("deadlines", () => {
  it("fails a waiter at its deadline with the figures, and arms one timer: the head's", () => {
    const h = withSessions(1, { acquireTimeout: 1_000 })
    h.acquire()
    h.advance(100)
    const b = h.acquire()
    assert.strictEqual(h.timer, 1_100 + (h.now - 100))
    h.advance(200)
    h.acquire()
    const arms = h.decisions.filter((d) => d._tag === "ArmTimer").length
    h.advance(1_000)
    const error = h.caller(b).error
    assert.strictEqual(error?._tag, "Timeout")
    if (error?._tag === "Timeout") {
      assert.strictEqual(error.waitedMillis, 1_000)
      assert.strictEqual(error.statistics.active, 1)
    }
    // re-armed for the next head; once that one timed out too, nothing is left to arm (a timer that fired is gone)
    assert.strictEqual(h.decisions.filter((d) => d._tag === "ArmTimer").length, arms + 1)
    assert.isUndefined(h.timer)
    assert.strictEqual(h.engine.statistics(h.now).acquireTimeouts, 2)
  })

  it("a timer that fires early is armed again for the same deadline", () => {
    const h = withSessions(1, { acquireTimeout: 1_000 })
    h.acquire()
    const b = h.acquire()
    const due = h.timer!
    h.timer = undefined
    h.now = due - 0.5
    h.send({ _tag: "TimerDue" })
    assert.strictEqual(h.timer, due)
    h.advance(1)
    assert.strictEqual(h.caller(b).error?._tag, "Timeout")
  })

  it("one deadline bounds the whole acquisition, across failed validations", () => {
    const h = withSessions(2, { acquireTimeout: 1_000, validateAfterIdle: 0, validationTimeout: 700 })
    h.advance(10)
    const start = h.now
    const a = h.acquire()
    const validate = h.last("Validate")
    // the round trip gets validationTimeout, or what is left of the deadline
    assert.strictEqual(validate?.timeoutAt, start + 700)
    h.advance(700)
    h.validated([...h.validating.keys()][0]!, false)
    const second = h.last("Validate")
    assert.strictEqual(second?.timeoutAt, start + 1_000)
    h.advance(300)
    h.validated([...h.validating.keys()][0]!, false)
    const error = h.caller(a).error
    assert.strictEqual(error?._tag === "Timeout" && error.waitedMillis, 1_000)
  })

  it("a retry after a failed validation keeps its place by arrival, ahead of those who queued meanwhile", () => {
    const h = withSessions(1, { validateAfterIdle: 0, maxSize: 2 })
    h.advance(10)
    const a = h.acquire()
    const [session] = h.validating.keys()
    h.advance(5)
    const b = h.acquire()
    h.validated(session!, false)
    // both wait for the one session being opened: a first
    h.opened(h.lastOpened())
    assert.strictEqual(h.caller(a).state, "granted")
    assert.strictEqual(h.caller(b).state, "waiting")
  })
})
