/**
 * `RefreshRequested` on fake sessions: every session opened before it is retired — idle ones at once, busy ones on
 * release, opening and validating ones when their round trip ends — and no caller fails or loses its place.
 */
import { assert, describe, it } from "vitest"
import { config, Harness } from "./harness.js"

const started = (overrides: Parameters<typeof config>[0] = {}) => {
  const h = new Harness(config(overrides))
  h.start()
  h.settle()
  return h
}

describe("refresh", () => {
  it("closes the idle sessions at once and opens replacements up to minSize", () => {
    const h = started({ minSize: 2, maxSize: 4 })
    const before = [...h.open]
    assert.strictEqual(before.length, 2)
    h.refresh()
    assert.strictEqual(h.closedBy.refreshed, 2)
    for (const session of before) assert.isFalse(h.open.has(session))
    assert.strictEqual(h.opening.size, 2, "replacements for minSize")
    assert.deepInclude(h.logs("pool refreshed")[0]?.fields, { closedIdle: 2, retiredBusy: 0, retiredOpening: 0 })
    h.settle()
    assert.strictEqual(h.engine.statistics(h.now).connectionsClosed.refreshed, 2)
    assert.strictEqual(h.open.size, 2)
  })

  it("a busy session keeps its holder until release, is then closed instead of offered, even to a waiter", () => {
    const h = started({ maxSize: 1 })
    const a = h.acquire()
    const held = h.sessionOf(a)
    const b = h.acquire()
    h.refresh()
    assert.isTrue(h.open.has(held), "the holder keeps its session")
    assert.deepInclude(h.logs("pool refreshed")[0]?.fields, { closedIdle: 0, retiredBusy: 1 })
    h.release(a)
    assert.isFalse(h.open.has(held))
    assert.strictEqual(h.closedBy.refreshed, 1)
    // the waiter is served by a new session, not the retired one
    assert.strictEqual(h.caller(b).state, "waiting")
    h.settle()
    assert.notStrictEqual(h.sessionOf(b), held)
  })

  it("a session released inside a transaction is closed without a reset", () => {
    const h = started({ maxSize: 1 })
    const a = h.acquire()
    h.refresh()
    h.release(a, { transactionStatus: "T", dirty: true })
    assert.isUndefined(h.last("Reset"))
    assert.strictEqual(h.closedBy.refreshed, 1)
  })

  it("waiters keep their place and deadline, and none fails", () => {
    const h = started({ maxSize: 2, acquireTimeout: 1_000 })
    const a = h.acquire()
    const b = h.acquire()
    h.settle()
    const waiters = [h.acquire(), h.acquire(), h.acquire()]
    h.advance(100)
    h.refresh()
    h.release(a)
    h.release(b)
    h.settle()
    // served in arrival order (the harness asserts it on every grant) by sessions opened after the refresh
    assert.strictEqual(h.sessionOf(waiters[0]!) > 2 && h.sessionOf(waiters[1]!) > 2, true)
    h.release(waiters[0]!)
    h.settle()
    assert.strictEqual(h.caller(waiters[2]!).state, "granted")
    assert.isFalse(h.decisions.some((d) => d._tag === "Fail"))
    // the deadline is the one set at arrival: a waiter nobody serves times out acquireTimeout after it came
    const late = started({ maxSize: 1, acquireTimeout: 1_000 })
    const holder = late.acquire()
    const waiter = late.acquire()
    late.advance(600)
    late.refresh()
    late.advance(400)
    assert.strictEqual(late.caller(waiter).state, "failed")
    assert.strictEqual(late.caller(holder).state, "granted")
  })

  it("a session still opening at the refresh is retired once open; a validation in flight does not grant", () => {
    const h = new Harness(config({ minSize: 0, maxSize: 2, validateAfterIdle: 0 }))
    h.start()
    h.settle()
    const first = h.acquire()
    h.settle()
    const idle = h.sessionOf(first)
    h.release(first)
    h.advance(10)
    const validatedFor = h.acquire()
    assert.isTrue(h.validating.has(idle))
    const opening = h.acquire()
    const openingSession = h.lastOpened()
    h.refresh()
    h.validated(idle)
    assert.isFalse(h.open.has(idle), "validated across the refresh: closed, not granted")
    assert.strictEqual(h.caller(validatedFor).state, "waiting")
    h.opened(openingSession)
    assert.isFalse(h.open.has(openingSession), "opened across the refresh: closed, not offered")
    h.settle()
    assert.strictEqual(h.caller(validatedFor).state, "granted")
    assert.strictEqual(h.caller(opening).state, "granted")
    assert.strictEqual(h.closedBy.refreshed, 2)
    assert.strictEqual(h.engine.statistics(h.now).connectionsClosed.broken, 0)
  })

  it("statement slots: a retired shared session takes no new statement and closes after its last one", () => {
    const h = started({ minSize: 1, maxSize: 1, capacity: 3 })
    const s1 = h.acquire("statement")
    const shared = h.sessionOf(s1)
    h.refresh()
    const s2 = h.acquire("statement")
    assert.strictEqual(h.caller(s2).state, "waiting", "no slot on a retired session")
    h.release(s1)
    assert.isFalse(h.open.has(shared))
    h.settle()
    assert.notStrictEqual(h.sessionOf(s2), shared)
  })

  it("is ignored before start and while shutting down", () => {
    const h = new Harness(config({ minSize: 1 }))
    h.refresh()
    assert.deepStrictEqual(h.logs("pool refreshed"), [])
    h.start()
    h.settle()
    h.shutdown()
    h.refresh()
    assert.deepStrictEqual(h.logs("pool refreshed"), [])
    assert.strictEqual(h.closedBy.refreshed, 0)
  })
})
