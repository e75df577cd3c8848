/**
 * Several hosts on fake sessions and the fake clock: the engine's `SessionEvicted` (a session whose server no longer
 * serves the pool's target closes as `roleChanged`, not as a broken one), and a `Hosts.Table` driving the engine as
 * an edition does — a `prefer-standby` pool that fell back to the primary scouts for a standby and moves back to it,
 * and hosts that cannot report a promotion (PostgreSQL before 14) have their role checked again.
 */
import { assert, describe, it } from "vitest"
import { Classify, Hosts } from "../src/index.js"
import { config, Harness } from "./harness.js"

const h1 = { host: "h1", port: 5432 }
const h2 = { host: "h2", port: 5433 }
const primary: Hosts.Observed = { inHotStandby: false, readOnly: false }
const standby: Hosts.Observed = { inHotStandby: true, readOnly: true }
const pg16Primary = { server_version: "16.4", in_hot_standby: "off", default_transaction_read_only: "off" }
const pg16Standby = { server_version: "16.4", in_hot_standby: "on", default_transaction_read_only: "off" }
const pg13 = { server_version: "13.9" }
const refused = Classify.classifyConnectError({ code: "ECONNREFUSED", message: "connect ECONNREFUSED" })

const started = (overrides: Parameters<typeof config>[0] = {}) => {
  const h = new Harness(config(overrides))
  h.start()
  h.settle()
  return h
}

describe("SessionEvicted: a session whose server changed role", () => {
  it("idle: closes at once as roleChanged, with no backoff, no scout and no last error; a replacement opens", () => {
    const h = started({ minSize: 2, maxSize: 4 })
    const [first, second] = [...h.open]
    h.evicted(first!, "h1:5432 is in hot standby mode now, which target_session_attrs=read-write does not take")
    assert.isFalse(h.open.has(first!))
    assert.strictEqual(h.closedBy.roleChanged, 1)
    assert.strictEqual(h.closedBy.broken, 0)
    assert.isFalse(h.reconnectPending)
    assert.strictEqual(h.engine.statistics(h.now).lastError, undefined)
    assert.deepInclude(h.logs("connection evicted")[0]?.fields, { connectionId: first, reason: "role changed" })
    // not a scout: the second eviction's replacement opens beside the first one's
    h.evicted(second!, "h1:5432 is in hot standby mode now, which target_session_attrs=read-write does not take")
    assert.strictEqual(h.opening.size, 2)
    h.settle()
    assert.strictEqual(h.engine.statistics(h.now).state, "healthy")
  })

  it("busy: its holder keeps it, and it closes as roleChanged at release instead of being offered", () => {
    const h = started({ maxSize: 1 })
    const a = h.acquire()
    const held = h.sessionOf(a)
    const b = h.acquire()
    h.evicted(held, "a standby is up again")
    assert.isTrue(h.open.has(held), "the holder keeps its session")
    h.release(a)
    assert.isFalse(h.open.has(held))
    assert.strictEqual(h.closedBy.roleChanged, 1)
    assert.strictEqual(h.caller(b).state, "waiting", "the waiter gets a new session, not the evicted one")
    h.settle()
    assert.notStrictEqual(h.sessionOf(b), held)
  })

  it("while validating: the acquisition waits at its place for another session; counted roleChanged", () => {
    const h = started({ minSize: 1, maxSize: 2, validateAfterIdle: 0 })
    const [session] = [...h.open]
    h.advance(10)
    const a = h.acquire()
    assert.isTrue(h.validating.has(session!))
    h.evicted(session!, "a standby is up again")
    h.validated(session!, true)
    assert.strictEqual(h.closedBy.roleChanged, 1)
    assert.strictEqual(h.closedBy.validation, 0)
    h.settle()
    assert.notStrictEqual(h.sessionOf(a), session)
  })

  it("an unknown or opening session is ignored; a second eviction of the same session counts once", () => {
    const h = started({ minSize: 1, maxSize: 2 })
    const [session] = [...h.open]
    h.evicted(99, "gone")
    h.evicted(session!, "role changed")
    h.evicted(session!, "role changed")
    assert.strictEqual(h.closedBy.roleChanged, 1)
  })
})

/**
 * An edition in miniature: the engine's sessions placed on hosts by a `Hosts.Table`, each open reaching the first
 * host of the table's order that is up in the wanted role, and the scouts the table asks for.
 */
class TwoHosts {
  readonly h: Harness
  readonly table: Hosts.Table
  /** What each host is now: up in a role, or down. */
  readonly servers: Array<{ up: boolean; observed: Hosts.Observed; parameters: Record<string, string> }> = [
    { up: true, observed: primary, parameters: pg16Primary },
    { up: true, observed: standby, parameters: pg16Standby }
  ]
  scouts = 0
  /** Sessions placed on a host, forgotten by the table once the engine closed them. */
  private readonly placed = new Set<number>()

  constructor(target: Hosts.TargetSessionAttrs, minSize: number) {
    this.h = new Harness(config({ minSize, maxSize: 4 }))
    this.table = new Hosts.Table({ ...Hosts.tableDefaults, hosts: [h1, h2], target })
  }

  /** Opens every session the engine asked for, as the driver would. */
  openAll(): void {
    this.forgetClosed()
    for (const session of [...this.h.opening]) {
      const attempts = this.table.attempts(this.h.now, Math.random)
      const outcomes: Array<Hosts.Outcome> = []
      const reached = attempts.find((attempt) => {
        const server = this.servers[attempt.index]!
        if (!server.up) {
          outcomes.push({ _tag: "Failed", attempt, failure: refused, answered: false })
          return false
        }
        if (Hosts.stillMatches(attempt.require, server.observed)) return true
        outcomes.push({ _tag: "Mismatch", attempt, reason: "wrong role", observed: server.observed })
        return false
      })
      if (reached === undefined) {
        this.evict(this.table.record(this.h.now, outcomes))
        this.h.openFailed(session, refused)
        continue
      }
      this.h.opened(session)
      this.placed.add(session)
      const server = this.servers[reached.index]!
      this.evict([
        ...this.table.record(this.h.now, outcomes),
        ...this.table.opened(this.h.now, session, reached.index, server.observed, server.parameters)
      ])
    }
  }

  /** One housekeeping tick: the engine's, then the scouts the table asks for, each a throwaway connection. */
  tick(): void {
    this.h.tick()
    this.forgetClosed()
    for (const attempts of [this.table.recheck(this.h.now), ...this.table.roleChecks(this.h.now).map((a) => [a])]) {
      if (attempts.length === 0) continue
      this.scouts++
      const outcomes: Array<Hosts.Outcome> = []
      const reached = attempts.find((attempt) => {
        const server = this.servers[attempt.index]!
        if (!server.up) {
          outcomes.push({ _tag: "Failed", attempt, failure: refused, answered: false })
          return false
        }
        if (Hosts.stillMatches(attempt.require, server.observed)) return true
        outcomes.push({ _tag: "Mismatch", attempt, reason: "wrong role", observed: server.observed })
        return false
      })
      this.evict(this.table.record(this.h.now, outcomes))
      if (reached !== undefined) {
        this.evict(this.table.scouted(this.h.now, reached.index, this.servers[reached.index]!.observed))
      }
    }
    this.openAll()
  }

  evict(evictions: ReadonlyArray<Hosts.Eviction>): void {
    for (const eviction of evictions) this.h.evicted(eviction.session, eviction.reason)
    this.forgetClosed()
  }

  private forgetClosed(): void {
    for (const session of [...this.placed]) {
      if (this.h.open.has(session)) continue
      this.placed.delete(session)
      this.table.closed(session)
    }
  }

  /** Sessions per host: h1's, h2's. */
  placement(): [number, number] {
    const health = this.table.health(this.h.now)
    return [health[0]!.sessions, health[1]!.sessions]
  }
}

describe("prefer-standby: fallback to the primary and back (fake sessions, fake clock)", () => {
  it("with the standby down, serves from the primary; once the standby is back, a scout finds it within one recheck and every session moves there", () => {
    const pool = new TwoHosts("prefer-standby", 2)
    pool.servers[1]!.up = false
    pool.h.start()
    pool.openAll()
    assert.deepStrictEqual(pool.placement(), [2, 0], "the fallback: both sessions on the primary")
    const a = pool.h.acquire()
    assert.isTrue(pool.h.open.has(pool.h.sessionOf(a)))
    pool.h.release(a)

    // the standby is still down: scouts back off (500 ms, doubling), the sessions stay on the primary
    for (let i = 0; i < 8; i++) {
      pool.h.advance(1_000)
      pool.tick()
    }
    const scoutsWhileDown = pool.scouts
    assert.isAbove(scoutsWhileDown, 0, "the pool looked for a standby while on the fallback")
    assert.isAtMost(scoutsWhileDown, 2, "at most one scout per recheck interval (5 s)")
    assert.deepStrictEqual(pool.placement(), [2, 0])
    assert.strictEqual(pool.h.closedBy.roleChanged, 0)

    // the standby is back: the next recheck's scout reaches it, the fallback sessions are evicted and reopen there
    pool.servers[1]!.up = true
    const backAt = pool.h.now
    while (pool.placement()[1] < 2 && pool.h.now - backAt < 60_000) {
      pool.h.advance(1_000)
      pool.tick()
    }
    // within one recheck interval and a tick (the standby's own backoff, a few seconds here, ended before)
    assert.isAtMost(pool.h.now - backAt, Hosts.tableDefaults.recheckIntervalMillis + 1_000)
    assert.deepStrictEqual(pool.placement(), [0, 2], "every session on the standby")
    assert.strictEqual(pool.h.closedBy.roleChanged, 2)
    assert.strictEqual(pool.h.closedBy.broken, 0)
    const scoutsAfter = pool.scouts
    for (let i = 0; i < 20; i++) {
      pool.h.advance(1_000)
      pool.tick()
    }
    assert.strictEqual(pool.scouts, scoutsAfter, "off the fallback: no more scouts")
  })

  it("a busy fallback session keeps its holder and moves at release", () => {
    const pool = new TwoHosts("prefer-standby", 1)
    pool.servers[1]!.up = false
    pool.h.start()
    pool.openAll()
    const a = pool.h.acquire()
    const held = pool.h.sessionOf(a)
    pool.servers[1]!.up = true
    pool.h.advance(6_000)
    pool.tick()
    assert.isTrue(pool.h.open.has(held), "still held")
    pool.h.release(a)
    pool.openAll()
    assert.isFalse(pool.h.open.has(held))
    assert.deepStrictEqual(pool.placement(), [0, 1])
  })

  it("a read-write pool never scouts", () => {
    const pool = new TwoHosts("read-write", 2)
    pool.h.start()
    pool.openAll()
    for (let i = 0; i < 60; i++) {
      pool.h.advance(1_000)
      pool.tick()
    }
    assert.strictEqual(pool.scouts, 0)
  })
})

describe("before PostgreSQL 14: no in_hot_standby, so the role is checked again", () => {
  it("a read-write pool on a PG13 primary checks its role every roleCheckInterval; a demotion found evicts", () => {
    const pool = new TwoHosts("read-write", 2)
    pool.servers[0]!.parameters = pg13
    pool.h.start()
    pool.openAll()
    assert.deepStrictEqual(pool.placement(), [2, 0])
    pool.h.advance(Hosts.tableDefaults.roleCheckIntervalMillis - 1_000)
    pool.tick()
    assert.strictEqual(pool.scouts, 0, "not before the interval")
    pool.h.advance(1_000)
    pool.tick()
    assert.strictEqual(pool.scouts, 1, "one check of h1")
    pool.h.advance(1_000)
    pool.tick()
    assert.strictEqual(pool.scouts, 1, "once per interval")
    // h1 was demoted and h2 promoted, silently
    pool.servers[0]!.observed = standby
    pool.servers[1]!.observed = primary
    pool.h.advance(Hosts.tableDefaults.roleCheckIntervalMillis)
    pool.tick()
    assert.strictEqual(pool.h.closedBy.roleChanged, 2)
    assert.deepStrictEqual(pool.placement(), [0, 2])
  })

  it("hosts that report in_hot_standby (PostgreSQL 14+) are never checked again", () => {
    const pool = new TwoHosts("read-write", 2)
    pool.h.start()
    pool.openAll()
    pool.h.advance(10 * Hosts.tableDefaults.roleCheckIntervalMillis)
    pool.tick()
    assert.strictEqual(pool.scouts, 0)
  })
})
