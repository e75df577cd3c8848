// The decisions behind a pooler: what transaction mode refuses, and what it leaves alone.
import { assert, describe, it } from "vitest"
import { Pooler } from "../src/index.js"

describe("Pooler", () => {
  const refused: ReadonlyArray<readonly [string, string]> = [
    ["SET statement_timeout = 1234", "SET"],
    ["set search_path = app", "SET"],
    ["SET SESSION work_mem = '64MB'", "SET"],
    ["/* hint */ RESET ALL", "RESET"],
    ["PREPARE s AS SELECT 1", "PREPARE"],
    ["DEALLOCATE s", "DEALLOCATE"],
    ["DISCARD ALL", "DISCARD"],
    ["LOAD 'auto_explain'", "LOAD"],
    ["UNLISTEN ch", "UNLISTEN"]
  ]
  const allowed = [
    "SELECT 1",
    "SET LOCAL statement_timeout = 1234",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "UPDATE t SET a = 1",
    "BEGIN",
    "COMMIT",
    "SELECT pg_advisory_xact_lock(1)",
    "INSERT INTO t VALUES ($1)"
  ]

  it("in transaction mode refuses statements that exist to change the session, naming the keyword and the setting", () => {
    for (const [sql, keyword] of refused) {
      const message = Pooler.statementRefusal("transaction", sql, "DB_POOL_POOLER")
      assert.isDefined(message, sql)
      assert.isTrue(message!.startsWith(`${keyword} would change`), message)
      assert.include(message!, "DB_POOL_POOLER=transaction")
      assert.include(message!, "SET LOCAL")
    }
  })

  it("never shows the statement's text, which may hold a secret", () => {
    const message = Pooler.statementRefusal("transaction", "SET app.api_key = 'hunter2-secret'", "pooler")
    assert.notInclude(message!, "hunter2")
    assert.notInclude(message!, "api_key")
  })

  it("in transaction mode lets statements and transaction-scoped settings through", () => {
    for (const sql of allowed) assert.isUndefined(Pooler.statementRefusal("transaction", sql, "pooler"), sql)
  })

  it("refuses LISTEN in transaction mode only, saying to listen on a direct connection", () => {
    const message = Pooler.statementRefusal("transaction", 'LISTEN "events"', "pooler")
    assert.strictEqual(message, Pooler.listenRefusal("transaction", "pooler"))
    assert.match(message!, /^LISTEN cannot work behind PgBouncer in transaction mode \(pooler=transaction\)/)
    assert.include(message!, "direct connection")
    assert.isUndefined(Pooler.listenRefusal("session", "pooler"))
    assert.isUndefined(Pooler.listenRefusal("none", "pooler"))
  })

  it("changes nothing directly or in session mode", () => {
    for (const mode of ["none", "session"] as const) {
      for (const [sql] of refused) assert.isUndefined(Pooler.statementRefusal(mode, sql, "pooler"), `${mode}: ${sql}`)
      assert.isTrue(Pooler.mayDiscard(mode))
    }
    assert.isFalse(Pooler.mayDiscard("transaction"))
  })
})
