import { assert, describe, it } from "vitest"
import * as MockScript from "../src/MockScript.js"

describe("MockScript", () => {
  it("normalize collapses whitespace outside quotes only", () => {
    assert.strictEqual(
      MockScript.normalize("  SELECT *\n\t FROM \"my  table\"  WHERE a = 'x  y' "),
      "SELECT * FROM \"my  table\" WHERE a = 'x  y'"
    )
  })

  it("matches by normalized text, pattern or predicate", () => {
    const sql = "SELECT * FROM users WHERE id = $1"
    assert.isTrue(MockScript.matches("FROM users\n   WHERE", sql, [1]))
    assert.isFalse(MockScript.matches("FROM orders", sql, [1]))
    assert.isTrue(MockScript.matches(/^SELECT/, sql, [1]))
    assert.isTrue(MockScript.matches((_, params) => params[0] === 1, sql, [1]))
  })

  it("builtin recognizes transaction control, savepoints and pg_notify, nothing else", () => {
    assert.deepStrictEqual(MockScript.builtin("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", []), { _tag: "Begin" })
    assert.deepStrictEqual(MockScript.builtin("end", []), { _tag: "Commit" })
    assert.deepStrictEqual(MockScript.builtin("ROLLBACK WORK TO SAVEPOINT sp1", []), {
      _tag: "RollbackTo",
      name: "sp1"
    })
    assert.deepStrictEqual(MockScript.builtin("ABORT", []), { _tag: "Rollback" })
    assert.deepStrictEqual(MockScript.builtin("SAVEPOINT sp2", []), { _tag: "Savepoint", name: "sp2" })
    assert.deepStrictEqual(MockScript.builtin("RELEASE sp2", []), { _tag: "Release", name: "sp2" })
    assert.deepStrictEqual(MockScript.builtin("SELECT pg_notify($1, $2)", ["jobs", null]), {
      _tag: "Notify",
      channel: "jobs",
      payload: ""
    })
    assert.isUndefined(MockScript.builtin("SELECT pg_notify('jobs', 'x')", []))
    assert.isUndefined(MockScript.builtin("BEGINNING", []))
  })

  it("a transaction holds notifications until COMMIT, drops them on ROLLBACK and ROLLBACK TO", () => {
    const tx = new MockScript.Transaction()
    const notify = (payload: string) => ({ _tag: "Notify", channel: "c", payload }) as const
    assert.deepStrictEqual(tx.apply(notify("outside")), [notify("outside")])
    tx.apply({ _tag: "Begin" })
    assert.deepStrictEqual(tx.apply(notify("a")), [])
    tx.apply({ _tag: "Savepoint", name: "sp" })
    tx.apply(notify("b"))
    tx.apply({ _tag: "RollbackTo", name: "sp" })
    tx.apply(notify("c"))
    tx.apply({ _tag: "Release", name: "sp" })
    assert.deepStrictEqual(tx.apply({ _tag: "Commit" }), [notify("a"), notify("c")])
    tx.apply({ _tag: "Begin" })
    tx.apply(notify("d"))
    assert.deepStrictEqual(tx.apply({ _tag: "Rollback" }), [])
    assert.deepStrictEqual(tx.apply({ _tag: "Commit" }), [])
  })

  it("show writes bigints, dates, byte arrays and matchers as a reader wants them", () => {
    assert.strictEqual(
      MockScript.show([1n, new Date(0), new Uint8Array(3), /^x/i, "a", null]),
      '[1n, 1970-01-01T00:00:00.000Z, <3 bytes>, /^x/i, "a", null]'
    )
    assert.strictEqual(
      MockScript.show(() => true),
      "a predicate"
    )
  })

  it("unmatchedMessage lists the statement, its params and the script", () => {
    const message = MockScript.unmatchedMessage(
      "SELECT $1",
      [1n, new Uint8Array(2)],
      [
        { response: { matcher: "FROM users", times: 2 }, used: 1 },
        { response: { matcher: undefined, times: Number.POSITIVE_INFINITY }, used: 3 }
      ]
    )
    assert.include(message, "  SELECT $1\n  params: [1n, <2 bytes>]\n")
    assert.include(message, '  1. "FROM users" (used 1 of 2 times)\n')
    assert.include(message, "  2. any statement (respondWith without a matcher)\n")
    assert.include(MockScript.unmatchedMessage("SELECT 1", [], []), "No responses are scripted.")
  })
})
