/**
 * A model-based property test: random sequences of acquire / release / abandon / session open, failure, death and
 * eviction (a role change) / validation and reset outcomes / time / housekeeping / reconnect steps / refresh /
 * shutdown, on random configurations. The
 * harness checks after every step the engine's invariants and what callers see (no session held twice, grants in
 * arrival order, counters equal to a recount); at the end, once everything outstanding has completed, every
 * acquisition must have been served or failed, and a shutdown must drain the pool.
 *
 * The seed is in the test's name; rerun one with FC_SEED=<seed>, more runs with FC_RUNS=<n>.
 */
import * as fc from "fast-check"
import { assert, describe, it } from "vitest"
import type { Engine } from "../src/index.js"
import { config, Harness, outage, rejected } from "./harness.js"

type Op =
  | { readonly op: "acquire"; readonly statement: boolean }
  | { readonly op: "release"; readonly pick: number; readonly facts: Partial<Engine.SessionFacts> }
  | { readonly op: "abandon"; readonly pick: number }
  | { readonly op: "opened"; readonly pick: number; readonly jitter: number }
  | { readonly op: "openFailed"; readonly pick: number; readonly rejected: boolean }
  | { readonly op: "died"; readonly pick: number }
  | { readonly op: "evicted"; readonly pick: number }
  | { readonly op: "validated"; readonly pick: number; readonly ok: boolean }
  | { readonly op: "reset"; readonly pick: number; readonly ok: boolean }
  | { readonly op: "advance"; readonly millis: number }
  | { readonly op: "tick" }
  | { readonly op: "probe" }
  | { readonly op: "probed"; readonly pick: number; readonly ok: boolean }
  | { readonly op: "reconnectDue" }
  | { readonly op: "shutdown" }
  | { readonly op: "refresh" }

const pick = fc.nat(1_000)

const factsArb: fc.Arbitrary<Partial<Engine.SessionFacts>> = fc.record({
  transactionStatus: fc.constantFrom<"I" | "T" | "E">("I", "I", "I", "T", "E"),
  dirty: fc.constantFrom(false, false, false, true),
  broken: fc.constantFrom(false, false, false, false, true),
  inFlight: fc.constantFrom(0, 0, 0, 0, 0, 0, 1),
  queries: fc.nat(3)
})

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("acquire" as const), statement: fc.boolean() }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant("release" as const), pick, facts: factsArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("abandon" as const), pick }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("opened" as const),
      pick,
      jitter: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
    })
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("openFailed" as const), pick, rejected: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("died" as const), pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("evicted" as const), pick }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("validated" as const), pick, ok: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("reset" as const), pick, ok: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant("advance" as const), millis: fc.constantFrom(1, 10, 100, 400, 1_500) })
  },
  { weight: 1, arbitrary: fc.constant({ op: "tick" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "probe" as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("probed" as const), pick, ok: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ op: "reconnectDue" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "shutdown" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "refresh" as const }) }
)

const configArb: fc.Arbitrary<Engine.Config> = fc
  .record({
    maxSize: fc.integer({ min: 1, max: 4 }),
    minSize: fc.integer({ min: 0, max: 2 }),
    capacity: fc.constantFrom(1, 1, 3),
    acquireTimeout: fc.constantFrom(100, 1_000),
    validateAfterIdle: fc.constantFrom(0, 50, 1e9),
    maxQueries: fc.constantFrom(3, 1e9),
    maxLifetime: fc.constantFrom(500, 1e9),
    maxIdleTime: fc.constantFrom(300, 1e9),
    leakThreshold: fc.constantFrom(0, 200),
    shutdownTimeout: fc.constantFrom(0, 500),
    initialAttempts: fc.constantFrom(1, 3),
    init: fc.constantFrom<"eager" | "lazy">("eager", "lazy"),
    resetAlways: fc.boolean()
  })
  .map((c) => config({ ...c, minSize: Math.min(c.minSize, c.maxSize) }))

const nth = <A>(items: Iterable<A>, n: number): A | undefined => {
  const all = [...items]
  return all.length === 0 ? undefined : all[n % all.length]
}

const run = (h: Harness, op: Op): void => {
  const callers = [...h.callers.values()]
  switch (op.op) {
    case "acquire":
      h.acquire(op.statement ? "statement" : "exclusive")
      return
    case "release": {
      const caller = nth(
        callers.filter((c) => c.state === "granted"),
        op.pick
      )
      // a statement slot runs in autocommit: it never ends inside a transaction
      if (caller !== undefined) {
        h.release(caller.id, caller.kind === "statement" ? { ...op.facts, transactionStatus: "I" } : op.facts)
      }
      return
    }
    case "abandon": {
      const caller = nth(
        callers.filter((c) => c.state === "waiting" || c.state === "validating" || c.state === "granted"),
        op.pick
      )
      if (caller !== undefined) h.abandon(caller.id)
      return
    }
    case "opened": {
      const session = nth(h.opening, op.pick)
      if (session !== undefined) h.opened(session, op.jitter)
      return
    }
    case "openFailed": {
      const session = nth(h.opening, op.pick)
      if (session !== undefined) h.openFailed(session, op.rejected ? rejected : outage)
      return
    }
    case "died": {
      const session = nth(h.open, op.pick)
      if (session !== undefined) h.died(session)
      return
    }
    case "evicted": {
      const session = nth(h.open, op.pick)
      if (session !== undefined) h.evicted(session, "its server changed role")
      return
    }
    case "validated": {
      const session = nth(h.validating.keys(), op.pick)
      if (session !== undefined) h.validated(session, op.ok)
      return
    }
    case "reset": {
      const session = nth(h.resetting, op.pick)
      if (session !== undefined) h.reset(session, op.ok)
      return
    }
    case "advance":
      h.advance(op.millis)
      return
    case "tick":
      h.tick()
      return
    case "probe":
      h.probe()
      return
    case "probed": {
      const session = nth(h.probing, op.pick)
      if (session !== undefined) h.probed(session, op.ok)
      return
    }
    case "reconnectDue":
      if (h.reconnectPending) h.reconnectDue()
      return
    case "shutdown":
      h.shutdown()
      return
    case "refresh":
      h.refresh()
      return
  }
}

/** Completes everything outstanding, successfully, and returns every session, until nobody waits. */
const quiesce = (h: Harness): void => {
  for (let round = 0; round < 100; round++) {
    h.settle()
    for (const caller of h.callers.values()) if (caller.state === "granted") h.release(caller.id)
    h.settle()
    if (h.reconnectPending) {
      h.reconnectDue()
      continue
    }
    const unresolved = [...h.callers.values()].some(
      (c) => c.state === "waiting" || c.state === "validating" || c.state === "granted"
    )
    if (!unresolved && h.opening.size + h.validating.size + h.resetting.size + h.probing.size === 0) return
    h.advance(h.engine.config.acquireTimeout)
    h.tick()
  }
  assert.fail("the pool never quiesced")
}

const seed = process.env.FC_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FC_SEED)
const numRuns = process.env.FC_RUNS === undefined ? 500 : Number(process.env.FC_RUNS)

describe("model", () => {
  it(`random event sequences keep every invariant, serve or fail every acquisition, and drain (seed ${seed})`, () => {
    fc.assert(
      fc.property(configArb, fc.array(opArb, { maxLength: 150, size: "max" }), (cfg, ops) => {
        const h = new Harness(cfg)
        h.start()
        for (const op of ops) run(h, op)
        quiesce(h)
        for (const caller of h.callers.values()) {
          assert.include(["released", "failed", "abandoned"], caller.state, `acquisition ${caller.id} never resolved`)
        }
        const statistics = h.engine.statistics(h.now)
        assert.strictEqual(statistics.waiting, 0)
        assert.strictEqual(statistics.active, 0)
        h.shutdown()
        h.settle()
        h.advance(cfg.shutdownTimeout)
        assert.isTrue(h.drained, "shutdown never drained")
        assert.strictEqual(h.open.size, 0, "sessions left open after shutdown")
      }),
      { seed, numRuns }
    )
  }, 600_000)
})
