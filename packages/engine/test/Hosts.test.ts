import { assert, describe, it } from "vitest"
import { Classify, Hosts } from "../src/index.js"

const h1 = { host: "h1", port: 5432 }
const h2 = { host: "h2", port: 5433 }
const h3 = { host: "h3", port: 5434 }

// a deterministic source of numbers in [0, 1) (an LCG), standing in for Math.random
const seeded = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}

// A server as a new session sees it: what it reports at startup, and what the check queries would return.
interface Server {
  readonly name: string
  readonly parameters: Record<string, string>
  readonly transactionReadOnly: "on" | "off"
  readonly inRecovery: "t" | "f"
}
const pg16 = (standby: boolean, defaultReadOnly: boolean): Server => ({
  name: `PG16 ${standby ? "standby" : "primary"}${defaultReadOnly ? " with default_transaction_read_only" : ""}`,
  parameters: {
    server_version: "16.4",
    in_hot_standby: standby ? "on" : "off",
    default_transaction_read_only: defaultReadOnly ? "on" : "off"
  },
  transactionReadOnly: standby || defaultReadOnly ? "on" : "off",
  inRecovery: standby ? "t" : "f"
})
const pg13 = (standby: boolean, defaultReadOnly: boolean): Server => ({
  name: `PG13 ${standby ? "standby" : "primary"}${defaultReadOnly ? " with default_transaction_read_only" : ""}`,
  parameters: { server_version: "13.9" },
  transactionReadOnly: standby || defaultReadOnly ? "on" : "off",
  inRecovery: standby ? "t" : "f"
})
const pg84: Server = {
  name: "PG8.4",
  parameters: { server_version: "8.4.22" },
  transactionReadOnly: "off",
  inRecovery: "f"
}

// libpq's CONNECTION_CHECK_TARGET loop, driven by the policy: the verdict and the queries it took
const connect = (require: Hosts.Requirement, server: Server) => {
  let observed = Hosts.observe(server.parameters)
  const asked: Array<string> = []
  for (;;) {
    const step = Hosts.check(require, observed)
    if (step._tag === "Match") return { verdict: "match", asked }
    if (step._tag === "Mismatch") return { verdict: step.reason, asked }
    asked.push(step.query)
    const value = step.query === "SHOW transaction_read_only" ? server.transactionReadOnly : server.inRecovery
    observed = Hosts.answer(observed, step.query, value)!
  }
}

describe("Hosts.check: target_session_attrs as libpq checks it", () => {
  const SHOW = "SHOW transaction_read_only"
  const RECOVERY = "SELECT pg_catalog.pg_is_in_recovery()"
  // libpq docs: read-write = not in hot standby and default_transaction_read_only off; read-only = the opposite;
  // primary = not in hot standby; standby = in hot standby. libpq's messages on a mismatch.
  const RO = "session is read-only"
  const NOT_RO = "session is not read-only"
  const HOT = "server is in hot standby mode"
  const NOT_HOT = "server is not in hot standby mode"
  const table: ReadonlyArray<
    readonly [Server, Record<Hosts.Requirement, string>, Partial<Record<Hosts.Requirement, ReadonlyArray<string>>>]
  > = [
    [
      pg16(false, false),
      { any: "match", "read-write": "match", "read-only": NOT_RO, primary: "match", standby: NOT_HOT },
      {}
    ],
    [
      pg16(false, true),
      { any: "match", "read-write": RO, "read-only": "match", primary: "match", standby: NOT_HOT },
      {}
    ],
    [pg16(true, false), { any: "match", "read-write": RO, "read-only": "match", primary: HOT, standby: "match" }, {}],
    [
      pg13(false, false),
      { any: "match", "read-write": "match", "read-only": NOT_RO, primary: "match", standby: NOT_HOT },
      { "read-write": [SHOW], "read-only": [SHOW], primary: [RECOVERY], standby: [RECOVERY] }
    ],
    [
      pg13(false, true),
      { any: "match", "read-write": RO, "read-only": "match", primary: "match", standby: NOT_HOT },
      { "read-write": [SHOW], "read-only": [SHOW], primary: [RECOVERY], standby: [RECOVERY] }
    ],
    [
      pg13(true, false),
      { any: "match", "read-write": RO, "read-only": "match", primary: HOT, standby: "match" },
      { "read-write": [SHOW], "read-only": [SHOW], primary: [RECOVERY], standby: [RECOVERY] }
    ],
    // before 9.0 there is no standby mode, so libpq does not ask pg_is_in_recovery() (the function is missing)
    [
      pg84,
      { any: "match", "read-write": "match", "read-only": NOT_RO, primary: "match", standby: NOT_HOT },
      { "read-write": [SHOW], "read-only": [SHOW] }
    ]
  ]
  for (const [server, verdicts, queries] of table) {
    it(`${server.name}: the verdict for each target, and the queries asked (none when ParameterStatus told)`, () => {
      for (const require of Object.keys(verdicts) as Array<Hosts.Requirement>) {
        const result = connect(require, server)
        assert.deepStrictEqual(result, { verdict: verdicts[require], asked: [...(queries[require] ?? [])] }, require)
      }
    })
  }

  it("asks SHOW transaction_read_only unless both in_hot_standby and default_transaction_read_only were reported", () => {
    const onlyOne = Hosts.observe({ in_hot_standby: "off" })
    assert.deepStrictEqual(Hosts.check("read-write", onlyOne), { _tag: "Ask", query: "SHOW transaction_read_only" })
    // in_hot_standby alone is enough for primary / standby
    assert.deepStrictEqual(Hosts.check("primary", onlyOne), { _tag: "Match" })
  })

  it("a failed check query gives no answer: the try moves on to the next host", () => {
    assert.strictEqual(Hosts.answer(Hosts.unknown, "SHOW transaction_read_only", undefined), undefined)
  })

  it("compares answers by prefix as libpq does, and a read-write session is known to be on a primary", () => {
    assert.deepStrictEqual(Hosts.answer(Hosts.unknown, "SHOW transaction_read_only", "on"), {
      inHotStandby: undefined,
      readOnly: true
    })
    assert.deepStrictEqual(Hosts.answer(Hosts.unknown, "SHOW transaction_read_only", "off"), {
      inHotStandby: false,
      readOnly: false
    })
    assert.deepStrictEqual(Hosts.answer(Hosts.unknown, "SELECT pg_catalog.pg_is_in_recovery()", "true"), {
      inHotStandby: true,
      readOnly: true
    })
    assert.strictEqual(Hosts.roleOf({ inHotStandby: undefined, readOnly: true }), "read-only")
    assert.strictEqual(Hosts.roleOf({ inHotStandby: false, readOnly: false }), "primary")
    assert.strictEqual(Hosts.roleOf(Hosts.unknown), "unknown")
  })
})

describe("Hosts.attempts: the order libpq tries the hosts in", () => {
  const names = (attempts: ReadonlyArray<Hosts.Attempt>) => attempts.map((a) => `${a.host.host}:${a.require}`)

  it("disable: as listed, each once for the target", () => {
    assert.deepStrictEqual(names(Hosts.attempts([h1, h2, h3], "read-write", "disable", seeded(1))), [
      "h1:read-write",
      "h2:read-write",
      "h3:read-write"
    ])
  })

  it("prefer-standby: every host for standby, then every host again for any, in the same order", () => {
    assert.deepStrictEqual(names(Hosts.attempts([h1, h2], "prefer-standby", "disable", seeded(1))), [
      "h1:standby",
      "h2:standby",
      "h1:any",
      "h2:any"
    ])
    const shuffled = Hosts.attempts([h1, h2, h3], "prefer-standby", "random", seeded(7))
    assert.deepStrictEqual(
      shuffled.slice(0, 3).map((a) => a.index),
      shuffled.slice(3).map((a) => a.index)
    )
  })

  it("random: libpq's inside-out Fisher-Yates, each host swapping with one at or before it", () => {
    // i=1: j = floor(0.9 * 2) = 1 (stays); i=2: j = floor(0.1 * 3) = 0 (swaps with the first)
    const draws = [0.9, 0.1]
    assert.deepStrictEqual(
      Hosts.shuffle(["a", "b", "c"], () => draws.shift()!),
      ["c", "b", "a"]
    )
    // a source that returns 1 (out of range) still gives a permutation
    assert.deepStrictEqual(Hosts.shuffle(["a", "b"], () => 1).sort(), ["a", "b"])
  })

  it("random: every order of three hosts comes out about as often (6000 draws, fixed seed)", () => {
    const counts = new Map<string, number>()
    const random = seeded(42)
    for (let i = 0; i < 6000; i++) {
      const order = Hosts.attempts([h1, h2, h3], "any", "random", random)
        .map((a) => a.host.host)
        .join(",")
      counts.set(order, (counts.get(order) ?? 0) + 1)
    }
    assert.strictEqual(counts.size, 6)
    for (const [order, count] of counts) assert.isTrue(count > 850 && count < 1150, `${order}: ${count}`)
  })
})

describe("Hosts.afterFailure: which failures move on to the next host", () => {
  const classify = (cause: object) => Classify.classifyConnectError(cause, { user: "app", database: "shop" })
  const cases: ReadonlyArray<readonly [string, object, boolean, "next-host" | "stop"]> = [
    ["connection refused", { code: "ECONNREFUSED", message: "connect ECONNREFUSED 10.0.0.1:5432" }, false, "next-host"],
    ["no such host", { code: "ENOTFOUND", message: "getaddrinfo ENOTFOUND h1" }, false, "next-host"],
    ["the connect timeout", { message: "timeout expired" }, false, "next-host"],
    ["57P03 starting up", { code: "57P03", message: "the database system is starting up" }, true, "next-host"],
    ["57P03 shutting down", { code: "57P03", message: "the database system is shutting down" }, true, "next-host"],
    ["a connection dropped during startup", { code: "ECONNRESET", message: "read ECONNRESET" }, false, "next-host"],
    ["a wrong password", { code: "28P01", message: "password authentication failed" }, true, "stop"],
    ["no such database", { code: "3D000", message: 'database "shop" does not exist' }, true, "stop"],
    ["too many connections", { code: "53300", message: "sorry, too many clients already" }, true, "stop"],
    ["a TLS certificate error", { code: "DEPTH_ZERO_SELF_SIGNED_CERT", message: "self-signed" }, false, "stop"]
  ]
  for (const [name, cause, answered, expected] of cases) {
    it(`${name}: ${expected}`, () => {
      assert.strictEqual(Hosts.afterFailure(classify(cause), answered), expected)
    })
  }
})

describe("Hosts.summarize: one failure that says per host what happened", () => {
  const refused = Classify.classifyConnectError({ code: "ECONNREFUSED", message: "connect ECONNREFUSED 10.0.0.1:5432" })

  it("names each host and its outcome; no host matching is an outage, retried with backoff", () => {
    const failure = Hosts.summarize(
      [
        { _tag: "Failed", attempt: { host: h1, index: 0, require: "read-write" }, failure: refused, answered: false },
        {
          _tag: "Mismatch",
          attempt: { host: h2, index: 1, require: "read-write" },
          reason: "session is read-only",
          observed: { inHotStandby: false, readOnly: true }
        }
      ],
      "read-write"
    )
    assert.strictEqual(
      failure.message,
      "no host gave a session for target_session_attrs=read-write (2 hosts tried): h1:5432: connect ECONNREFUSED " +
        "10.0.0.1:5432; h2:5433: session is read-only (read-write)"
    )
    assert.strictEqual(failure.kind, "outage")
    // h2 answers: a TCP probe would end the backoff step at once, while h2 is still a standby
    assert.isFalse(failure.probeable)
  })

  it("every host refused: probeable", () => {
    const failure = Hosts.summarize(
      [
        { _tag: "Failed", attempt: { host: h1, index: 0, require: "any" }, failure: refused, answered: false },
        { _tag: "Failed", attempt: { host: h2, index: 1, require: "any" }, failure: refused, answered: false }
      ],
      "any"
    )
    assert.isTrue(failure.probeable)
    assert.isFalse(failure.goingAway)
  })

  it("a rejected login ends the attempt as a rejection, with the remedy", () => {
    const wrongPassword = Classify.classifyConnectError(
      { code: "28P01", message: 'password authentication failed for user "app"' },
      { user: "app", database: "shop" }
    )
    const failure = Hosts.summarize(
      [
        { _tag: "Failed", attempt: { host: h1, index: 0, require: "any" }, failure: refused, answered: false },
        { _tag: "Failed", attempt: { host: h2, index: 1, require: "any" }, failure: wrongPassword, answered: true }
      ],
      "any"
    )
    assert.strictEqual(failure.kind, "rejected")
    assert.strictEqual(failure.code, "28P01")
    assert.strictEqual(failure.remedy, wrongPassword.remedy)
    assert.match(failure.message, /^h2:5433 refused the login, so no further host was tried/)
  })
})

describe("Hosts.Table: per-host health, routing and evictions (fake clock)", () => {
  const primary: Hosts.Observed = { inHotStandby: false, readOnly: false }
  const standby: Hosts.Observed = { inHotStandby: true, readOnly: true }
  const table = (target: Hosts.TargetSessionAttrs, hosts = [h1, h2, h3]) =>
    new Hosts.Table({ ...Hosts.tableDefaults, hosts, target })
  const order = (t: Hosts.Table, now: number) => t.attempts(now, seeded(1)).map((a) => a.host.host)
  const refused = Classify.classifyConnectError({ code: "ECONNREFUSED", message: "connect ECONNREFUSED" })

  it("a failed host backs off, doubling per failure up to the max, and goes last in the order meanwhile", () => {
    const t = new Hosts.Table({ ...Hosts.tableDefaults, hosts: [h1, h2], target: "any", hostBackoffMaxMillis: 3_000 })
    t.failed(0, 0, refused)
    assert.strictEqual(t.health(0)[0]!.retryAt, 500)
    assert.deepStrictEqual(order(t, 100), ["h2", "h1"])
    assert.deepStrictEqual(order(t, 500), ["h1", "h2"])
    t.failed(600, 0, refused)
    t.failed(1_700, 0, refused)
    t.failed(3_800, 0, refused)
    assert.deepStrictEqual(
      [t.health(3_800)[0]!.failures, t.health(3_800)[0]!.retryAt, t.health(3_800)[0]!.up],
      [4, 6_800, false]
    )
    t.opened(7_000, 1, 0, primary)
    assert.deepStrictEqual([t.health(7_000)[0]!.failures, t.health(7_000)[0]!.up], [0, true])
    assert.strictEqual(t.health(7_000)[0]!.lastFailure, "connect ECONNREFUSED")
  })

  it("a host seen in the wrong role is tried after the others, but still tried", () => {
    const t = table("read-write")
    t.mismatched(0, 0, standby)
    assert.deepStrictEqual(order(t, 0), ["h2", "h3", "h1"])
    assert.strictEqual(t.health(0)[0]!.role, "standby")
  })

  it("evicts every session on a primary that turned standby (in_hot_standby reported on one of them)", () => {
    const t = table("read-write")
    t.opened(0, 1, 0, primary, { in_hot_standby: "off", default_transaction_read_only: "off" })
    t.opened(0, 2, 0, primary, { in_hot_standby: "off", default_transaction_read_only: "off" })
    t.opened(0, 3, 1, primary, { in_hot_standby: "off", default_transaction_read_only: "off" })
    const evicted = t.reported(10, 2, { in_hot_standby: "on" })
    assert.deepStrictEqual(evicted.map((e) => e.session).sort(), [1, 2])
    assert.strictEqual(
      evicted[0]!.reason,
      "h1:5432 is in hot standby mode now, which target_session_attrs=read-write does not take"
    )
    assert.strictEqual(t.roleOf(3), "primary")
    assert.deepStrictEqual(t.reported(20, 1, { in_hot_standby: "on" }), [], "each session is evicted once")
  })

  it("evicts the sessions of a standby pool on a standby that was promoted, and keeps a read-write pool's", () => {
    const startup = { in_hot_standby: "on", default_transaction_read_only: "off" }
    const standbys = table("standby")
    standbys.opened(0, 1, 1, standby, startup)
    assert.deepStrictEqual(
      standbys.reported(5, 1, { in_hot_standby: "off" }).map((e) => e.session),
      [1]
    )
    assert.strictEqual(standbys.roleOf(1), "primary")
    const writers = table("read-write")
    writers.mismatched(0, 1, standby)
    writers.opened(6, 7, 1, primary, { in_hot_standby: "off", default_transaction_read_only: "off" })
    assert.deepStrictEqual(writers.reported(7, 7, { in_hot_standby: "off" }), [])
  })

  it("default_transaction_read_only on one session judges that session alone, and a reset back to off is no eviction", () => {
    const t = table("read-write")
    const startup = { in_hot_standby: "off", default_transaction_read_only: "off" }
    t.opened(0, 1, 0, primary, startup)
    t.opened(0, 2, 0, primary, startup)
    assert.deepStrictEqual(
      t.reported(10, 1, { default_transaction_read_only: "on" }).map((e) => e.session),
      [1]
    )
    assert.deepStrictEqual(t.reported(20, 1, { default_transaction_read_only: "off" }), [])
    assert.strictEqual(t.roleOf(2), "primary")
  })

  it("a fresh session that finds its server read-only evicts the older sessions there (ALTER SYSTEM + reload)", () => {
    const t = table("any", [h1, h2])
    const writers = table("read-write", [h1, h2])
    for (const pool of [t, writers]) pool.opened(0, 1, 0, primary)
    assert.deepStrictEqual(t.mismatched(50, 0, { inHotStandby: false, readOnly: true }), [])
    assert.deepStrictEqual(
      writers.mismatched(50, 0, { inHotStandby: false, readOnly: true }).map((e) => e.session),
      [1]
    )
  })

  it("closed sessions are forgotten", () => {
    const t = table("read-write")
    t.opened(0, 1, 0, primary)
    t.closed(1)
    assert.strictEqual(t.hostOf(1), undefined)
    assert.deepStrictEqual(t.reported(1, 1, { in_hot_standby: "on" }), [])
    assert.strictEqual(t.health(1)[0]!.sessions, 0)
  })

  describe("a read-only client (prefer-standby): standbys first, the primary as fallback", () => {
    it("routes to the standbys known up first, the primary last", () => {
      const t = table("prefer-standby")
      t.opened(0, 1, 0, primary)
      t.opened(0, 2, 2, standby)
      assert.deepStrictEqual(order(t, 0), ["h2", "h3", "h1", "h2", "h3", "h1"])
      assert.deepStrictEqual(
        t.attempts(0, seeded(1)).map((a) => a.require),
        ["standby", "standby", "standby", "any", "any", "any"]
      )
    })

    it("with every standby down, the fallback primary is tried first in the any pass", () => {
      const t = table("prefer-standby", [h1, h2])
      t.mismatched(0, 0, primary)
      t.failed(0, 1, refused)
      assert.deepStrictEqual(
        t.attempts(10, seeded(1)).map((a) => `${a.host.host}:${a.require}`),
        ["h1:standby", "h2:standby", "h1:any", "h2:any"]
      )
    })

    it("on the fallback, looks again for a standby once per interval, and a standby back evicts the fallback", () => {
      const t = table("prefer-standby", [h1, h2])
      t.opened(0, 1, 0, primary)
      t.failed(0, 1, refused)
      assert.deepStrictEqual(t.recheck(100), [], "h2 is still backing off")
      assert.deepStrictEqual(
        t.recheck(600).map((a) => `${a.host.host}:${a.require}`),
        ["h2:standby"]
      )
      assert.deepStrictEqual(t.recheck(700), [], "once per recheck interval")
      const evicted = t.opened(800, 2, 1, standby)
      assert.deepStrictEqual(
        evicted.map((e) => e.session),
        [1]
      )
      assert.match(evicted[0]!.reason, /a standby is up again \(h2:5433\)/)
      assert.deepStrictEqual(t.recheck(10_000), [], "no longer on the fallback")
    })

    it("a read-write pool never rechecks: it moves only when its sessions fail", () => {
      const t = table("read-write")
      t.opened(0, 1, 1, primary)
      assert.deepStrictEqual(t.recheck(60_000), [])
    })
  })
})

describe("Hosts.Table.record: a connect attempt's outcomes", () => {
  it("backs off the hosts that failed and records the role of those that mismatched", () => {
    const t = new Hosts.Table({ ...Hosts.tableDefaults, hosts: [h1, h2, h3], target: "read-write" })
    const refused = Classify.classifyConnectError({ code: "ECONNREFUSED", message: "connect ECONNREFUSED" })
    t.record(0, [
      { _tag: "Failed", attempt: { host: h1, index: 0, require: "read-write" }, failure: refused, answered: false },
      {
        _tag: "Mismatch",
        attempt: { host: h2, index: 1, require: "read-write" },
        reason: "session is read-only",
        observed: { inHotStandby: true, readOnly: true }
      }
    ])
    assert.deepStrictEqual(
      t.health(0).map((h) => [h.label, h.role, h.up]),
      [
        ["h1:5432", "unknown", false],
        ["h2:5433", "standby", true],
        ["h3:5434", "unknown", true]
      ]
    )
    assert.deepStrictEqual(
      t.attempts(0, Math.random).map((a) => a.host.host),
      ["h3", "h2", "h1"]
    )
  })
})
