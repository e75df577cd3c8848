import { assert, describe, it } from "vitest"
import { config, Harness } from "./harness.js"

const pool = (capacity: number, maxSize: number) => {
  const h = new Harness(config({ capacity, maxSize, validateAfterIdle: 1e9 }))
  h.start()
  h.settle()
  return h
}

describe("multiplexed statement slots", () => {
  it("statements fill the busiest session with a free slot first, opening another while below maxSize", () => {
    const h = pool(3, 2)
    const [first] = h.open
    const s1 = h.acquire("statement")
    assert.strictEqual(h.sessionOf(s1), first)
    // pipelined behind s1: a second session is opened for when the first is full
    const s2 = h.acquire("statement")
    assert.strictEqual(h.sessionOf(s2), first)
    assert.strictEqual(h.opening.size, 1)
    const second = h.lastOpened()
    h.opened(second)
    // the first still has a slot: it takes the statement, the idle second stays free
    const s3 = h.acquire("statement")
    assert.strictEqual(h.sessionOf(s3), first)
    const s4 = h.acquire("statement")
    assert.strictEqual(h.sessionOf(s4), second)
    const s5 = h.acquire("statement")
    assert.strictEqual(h.sessionOf(s5), second)
    // at maxSize nothing more opens; 6 slots, 5 used
    assert.strictEqual(h.opening.size, 0)
    h.acquire("statement")
    const s7 = h.acquire("statement")
    assert.strictEqual(h.caller(s7).state, "waiting")
    h.release(s1)
    assert.strictEqual(h.sessionOf(s7), first)
  })

  it("an idle session is left for an exclusive checkout while a busy one has slots", () => {
    const h = pool(4, 2)
    const [first] = h.open
    h.acquire("statement")
    h.acquire("statement")
    h.opened(h.lastOpened())
    const s3 = h.acquire("statement")
    assert.strictEqual(h.sessionOf(s3), first)
    const x = h.acquire("exclusive")
    assert.strictEqual(h.caller(x).state, "granted")
    assert.notStrictEqual(h.sessionOf(x), first)
  })

  it("a session with statements in flight is not handed out exclusively until they finish", () => {
    const h = pool(4, 1)
    const [session] = h.open
    const s1 = h.acquire("statement")
    const s2 = h.acquire("statement")
    const x = h.acquire("exclusive")
    assert.strictEqual(h.caller(x).state, "waiting")
    h.release(s1)
    assert.strictEqual(h.caller(x).state, "waiting")
    h.release(s2)
    assert.strictEqual(h.sessionOf(x), session)
  })

  it("stays strictly FIFO across kinds: a statement queued behind an exclusive waiter waits its turn", () => {
    const h = pool(4, 1)
    const s1 = h.acquire("statement")
    const x = h.acquire("exclusive")
    const s2 = h.acquire("statement")
    // a slot is free, but the exclusive waiter came first: new statements do not starve it
    assert.strictEqual(h.caller(s2).state, "waiting")
    h.release(s1)
    assert.strictEqual(h.caller(x).state, "granted")
    h.release(x)
    assert.strictEqual(h.caller(s2).state, "granted")
  })

  it("when the exclusive head gives up, the statements behind it take the free slots at once", () => {
    const h = pool(4, 1)
    h.acquire("statement")
    const x = h.acquire("exclusive")
    const s2 = h.acquire("statement")
    const s3 = h.acquire("statement")
    h.abandon(x)
    assert.strictEqual(h.caller(s2).state, "granted")
    assert.strictEqual(h.caller(s3).state, "granted")
  })

  it("a session that dies with statements in flight takes no new ones and closes when the last returns", () => {
    const h = pool(4, 1)
    const [session] = h.open
    const s1 = h.acquire("statement")
    const s2 = h.acquire("statement")
    h.died(session!)
    const s3 = h.acquire("statement")
    assert.strictEqual(h.caller(s3).state, "waiting")
    h.release(s1, { broken: true })
    h.release(s2, { broken: true })
    assert.strictEqual(h.closedBy.broken, 1)
    h.settle()
    assert.strictEqual(h.caller(s3).state, "granted")
  })

  it("a statement that may have left session state gets its session reset once its slots are empty", () => {
    const h = pool(4, 1)
    const s1 = h.acquire("statement")
    const s2 = h.acquire("statement")
    h.release(s1, { dirty: true })
    assert.isUndefined(h.last("Reset"))
    h.release(s2)
    assert.deepInclude(h.last("Reset"), { discard: true, rollback: false })
  })
})
