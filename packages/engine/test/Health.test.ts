import { assert, describe, it } from "vitest"
import { Assessment, Statistics } from "../src/index.js"
import { config, Harness, rejected } from "./harness.js"

const facts: Assessment.Facts = {
  target: "db:5432",
  closing: false,
  reconnecting: false,
  lastFailure: undefined,
  everConnected: true,
  total: 2,
  busy: 0,
  minSize: 2,
  maxSize: 4,
  waiting: 0,
  oldestWaiterMillis: 0
}

describe("assessment rules", () => {
  it("applies the rules in order, first match wins", () => {
    const cases: ReadonlyArray<readonly [Partial<Assessment.Facts>, Assessment.PoolState, string | undefined]> = [
      [{}, "healthy", undefined],
      [{ closing: true, reconnecting: true }, "unhealthy", "the pool is shut down or shutting down"],
      [
        { reconnecting: true, total: 0, lastFailure: { kind: "outage", message: "ECONNREFUSED" } },
        "unhealthy",
        "cannot connect to db:5432: ECONNREFUSED; retrying with backoff"
      ],
      [
        { reconnecting: true, total: 1, lastFailure: { kind: "outage", message: "ECONNREFUSED" } },
        "degraded",
        "reconnecting to db:5432 after: ECONNREFUSED; 1 connections still serve"
      ],
      [{ everConnected: false, total: 0 }, "degraded", "connecting to db:5432"],
      [{ total: 1 }, "degraded", "1 of the minimum 2 connections open"],
      [
        { waiting: 3, oldestWaiterMillis: 1_001, busy: 2 },
        "degraded",
        "saturated: 3 callers waiting, the oldest for 1001 ms; all 2 of 4 connections busy"
      ],
      [{ waiting: 3, oldestWaiterMillis: 1_000 }, "healthy", undefined]
    ]
    for (const [overrides, status, reason] of cases) {
      assert.deepStrictEqual(
        Assessment.assess({ ...facts, ...overrides }),
        { status, reason },
        JSON.stringify(overrides)
      )
    }
  })

  it("words a rejected login as a configuration error, not an outage", () => {
    const assessment = Assessment.assess({
      ...facts,
      reconnecting: true,
      total: 0,
      lastFailure: { kind: "rejected", message: "password authentication failed" }
    })
    assert.strictEqual(assessment.status, "unhealthy")
    assert.match(assessment.reason!, /a configuration error, not an outage\): password authentication failed/)
  })
})

describe("one assessment for health, statistics, the gauge and the logs", () => {
  it("a saturated pool is degraded in the assessment, the statistics and the state changes alike", () => {
    const h = new Harness(config({ minSize: 1, maxSize: 1 }))
    h.start()
    h.settle()
    assert.deepStrictEqual(h.states, ["degraded", "healthy"])
    h.acquire()
    h.acquire()
    h.advance(1_001)
    h.tick()
    assert.strictEqual(h.engine.assess(h.now).status, "degraded")
    assert.strictEqual(h.engine.statistics(h.now).state, "degraded")
    assert.deepStrictEqual(h.states, ["degraded", "healthy", "degraded"])
    // the first state is no transition, nor is an eager start's first healthy state ("pool ready" says it); each
    // later one is logged once
    assert.strictEqual(h.logs("pool is degraded").length, 1)
    assert.strictEqual(h.logs("pool is healthy").length, 0)
    assert.strictEqual(h.logs("pool ready").length, 1)
  })

  it("goes unhealthy when it cannot connect and has no session, and healthy again on recovery", () => {
    const h = new Harness(config({ minSize: 1, init: "lazy" }))
    h.start()
    h.openFailed(h.lastOpened(), rejected)
    assert.strictEqual(h.engine.assess(h.now).status, "unhealthy")
    h.reconnectDue()
    h.opened(h.lastOpened())
    assert.deepStrictEqual(h.states, ["degraded", "unhealthy", "healthy"])
    // a lazy start logs its recovery like any other
    assert.strictEqual(h.logs("pool is healthy").length, 1)
    assert.strictEqual(h.engine.statistics(h.now).lastError, "password authentication failed")
  })
})

describe("statistics", () => {
  it("counts acquisitions, their average and percentiles, peaks and timeouts", () => {
    const h = new Harness(config({ minSize: 1, maxSize: 1, acquireTimeout: 1_000 }))
    h.start()
    h.settle()
    const a = h.acquire()
    const b = h.acquire()
    h.advance(40)
    h.release(a)
    h.acquire()
    h.advance(1_000)
    h.release(b)
    const s = h.engine.statistics(h.now)
    assert.deepInclude(s, { acquisitions: 2, acquisitionTimeAvgMs: 20, acquisitionTimeP99Ms: 40, acquireTimeouts: 1 })
    assert.deepInclude(s, { peakActive: 1, peakWaiting: 1, total: 1, idle: 1, active: 0, waiting: 0 })
  })
})

describe("LatencyWindow", () => {
  it("gives p95 and p99 of the last samples only, zeros before the first", () => {
    const window = new Statistics.LatencyWindow(100)
    assert.deepStrictEqual(window.percentiles(), [0, 0])
    for (let ms = 1; ms <= 100; ms++) window.record(ms)
    assert.deepStrictEqual(window.percentiles(), [96, 100])
    // 100 newer samples of 1 ms push every older one out of the window
    for (let i = 0; i < 100; i++) window.record(1)
    assert.deepStrictEqual(window.percentiles(), [1, 1])
  })
})

describe("the health probe", () => {
  it("borrows a free idle session for a round trip without making it look recently used", () => {
    const h = new Harness(config({ minSize: 0, maxSize: 1, maxIdleTime: 1_000, validateAfterIdle: 1e9 }))
    h.start()
    h.settle()
    const [session] = h.open
    h.advance(600)
    h.probe()
    assert.deepInclude(h.probeAnswers.at(-1), { _tag: "ProbeSession", session })
    // a caller arriving meanwhile waits for it, and gets it when the probe returns it
    const a = h.acquire()
    h.probed(session!)
    assert.strictEqual(h.sessionOf(a), session)
    h.release(a)
    h.advance(600)
    h.probe()
    h.probed(session!)
    // the idle clock kept running from the release at 600, not from the probe at 1200
    h.advance(400)
    h.tick()
    assert.strictEqual(h.closedBy.idle, 1)
  })

  it("answers from the pool when no session is free, probes the port when it holds none", () => {
    const h = new Harness(config({ minSize: 1, maxSize: 1, init: "lazy" }))
    h.start()
    h.probe()
    assert.deepStrictEqual(h.probeAnswers.at(-1), { _tag: "ProbeTcp" })
    h.opened(h.lastOpened())
    const a = h.acquire()
    h.probe()
    assert.deepStrictEqual(h.probeAnswers.at(-1), { _tag: "ProbeAnswered", reachable: true })
    h.release(a)
  })

  it("a session that fails the probe is closed as broken", () => {
    const h = new Harness(config({ minSize: 1, maxSize: 1 }))
    h.start()
    h.settle()
    const [session] = h.open
    h.probe()
    h.probed(session!, false)
    assert.strictEqual(h.closedBy.broken, 1)
  })
})
