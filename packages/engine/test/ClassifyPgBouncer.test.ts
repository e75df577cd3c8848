// PgBouncer's own errors (SQLSTATE 08P01, as PgBouncer 1.18 sends them, measured in
// packages/effect3/test/PgBouncerFaults.test.ts): outages, never rejections, and which statements never ran.
import { assert, describe, it } from "vitest"
import { Classify } from "../src/index.js"

const error = (message: string, code = "08P01") => ({ code, message, severity: "FATAL" })

describe("PgBouncer's errors", () => {
  const cases: ReadonlyArray<readonly [string, Classify.PoolerErrorKind, boolean]> = [
    ["server login has been failing, try again later (server_login_retry)", "login-failing", true],
    ["pgbouncer cannot connect to server", "cannot-connect", true],
    ["query_wait_timeout", "query-wait-timeout", true],
    ["no more connections allowed (max_client_conn)", "max-client-conn", false],
    ["server conn crashed?", "server-crashed", false]
  ]

  it("are told apart by their message, and say whether the statement never reached a server", () => {
    for (const [message, kind, neverRan] of cases) {
      assert.strictEqual(Classify.poolerError(error(message)), kind, message)
      assert.strictEqual(Classify.neverReachedServer(kind), neverRan, message)
    }
  })

  it("at login are an outage to back off from, not a configuration error", () => {
    for (const [message] of cases) {
      const classified = Classify.classifyConnectError(error(message), { user: "app", database: "shop" })
      assert.strictEqual(classified.kind, "outage", message)
      assert.isUndefined(classified.remedy, message)
    }
  })

  it("on a session are an outage that loses the session", () => {
    for (const [message] of cases) {
      const classified = Classify.classifyError(error(message))
      assert.deepStrictEqual([classified.kind, classified.sessionLost], ["outage", true], message)
    }
  })

  it("leave PostgreSQL's own 08P01 (a refused startup message) a rejection, and other codes alone", () => {
    assert.isUndefined(Classify.poolerError(error("invalid startup packet layout")))
    assert.isUndefined(Classify.poolerError(error("query_wait_timeout", "57014")))
    assert.strictEqual(Classify.classifyConnectError(error("invalid startup packet layout")).kind, "rejected")
  })
})

describe("PgBouncer's refused startup parameter", () => {
  it("is a rejection whose remedy says to set it per role on the server", () => {
    const classified = Classify.classifyConnectError(error("unsupported startup parameter: statement_timeout"))
    assert.strictEqual(classified.kind, "rejected")
    assert.include(classified.remedy!, "ALTER ROLE")
    assert.include(classified.remedy!, "DB_POOL_STATEMENT_TIMEOUT")
  })
})
