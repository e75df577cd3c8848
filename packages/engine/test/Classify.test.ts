import { assert, describe, it } from "vitest"
import { Classify } from "../src/index.js"

const target = { user: "app", database: "shop" }

describe("classifyConnectError", () => {
  it("tells a rejected login (a configuration error) from an outage, by SQLSTATE and error class", () => {
    const cases: ReadonlyArray<readonly [unknown, "outage" | "rejected"]> = [
      [{ code: "ECONNREFUSED", message: "connect ECONNREFUSED 127.0.0.1:5432" }, "outage"],
      [{ code: "57P03", message: "the database system is starting up" }, "outage"],
      [{ code: "53300", message: "sorry, too many clients already" }, "outage"],
      [{ code: "28P01", message: "password authentication failed for user" }, "rejected"],
      [{ code: "28000", message: "no pg_hba.conf entry" }, "rejected"],
      [{ code: "3D000", message: 'database "shop" does not exist' }, "rejected"],
      [{ code: "42704", message: 'unrecognized configuration parameter "x"' }, "rejected"],
      [{ code: "DEPTH_ZERO_SELF_SIGNED_CERT", message: "self-signed certificate" }, "rejected"],
      [new Error("SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string"), "rejected"],
      [new Error("Connection terminated unexpectedly"), "outage"]
    ]
    for (const [cause, kind] of cases) assert.strictEqual(Classify.classifyConnectError(cause, target).kind, kind)
  })

  it("a rejection's remedy names the connection setting as the configuration wrote it", () => {
    const cause = { code: "3D000", message: 'database "shop" does not exist' }
    const remedy = (url: string | undefined) =>
      Classify.classifyConnectError(cause, { ...target, settingNames: { url } }).remedy
    assert.strictEqual(
      remedy("DATABASE_URL"),
      'create the database (CREATE DATABASE "shop") or fix its name in DATABASE_URL'
    )
    assert.strictEqual(remedy("url"), 'create the database (CREATE DATABASE "shop") or fix its name in the url option')
    assert.strictEqual(
      remedy("APP_DB_URL"),
      'create the database (CREATE DATABASE "shop") or fix its name in APP_DB_URL'
    )
    assert.strictEqual(
      remedy(undefined),
      'create the database (CREATE DATABASE "shop") or fix its name in DATABASE_URL'
    )
  })

  it("names what to fix for a rejection, and marks what a TCP probe can watch", () => {
    const wrongPassword = Classify.classifyConnectError(
      { code: "28P01", message: "password authentication failed" },
      target
    )
    assert.strictEqual(wrongPassword.remedy, 'check the password of user "app" in DATABASE_URL (or PGPASSWORD)')
    assert.isTrue(Classify.classifyConnectError({ code: "ECONNREFUSED", message: "refused" }).probeable)
    // a Unix socket whose server is down has no socket file: the probe watches for it
    assert.isTrue(
      Classify.classifyConnectError({ code: "ENOENT", message: "connect ENOENT /tmp/.s.PGSQL.5432" }).probeable
    )
    assert.isFalse(Classify.classifyConnectError({ code: "ECONNRESET", message: "reset" }).probeable)
    assert.isTrue(
      Classify.classifyConnectError({ code: "57P03", message: "the database system is starting up" }).startingUp
    )
    // a server on its way down: probed, but only a port seen closed and then open again means it is back
    const shuttingDown = Classify.classifyConnectError({
      code: "57P03",
      message: "the database system is shutting down"
    })
    assert.deepStrictEqual(
      [shuttingDown.goingAway, shuttingDown.probeable, shuttingDown.startingUp],
      [true, false, false]
    )
    assert.isFalse(
      Classify.classifyConnectError({ code: "57P03", message: "the database system is starting up" }).goingAway
    )
  })

  it("reads the first inner error of an AggregateError (localhost on ::1 and 127.0.0.1), and its text", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED ::1:5432"), { code: "ECONNREFUSED" })
    const both = new AggregateError([refused, new Error("connect ECONNREFUSED 127.0.0.1:5432")], "")
    const failure = Classify.classifyConnectError(both)
    assert.strictEqual(failure.code, "ECONNREFUSED")
    assert.strictEqual(failure.message, "connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432")
  })
})

describe("classifyError", () => {
  it("classifies errors on an established session: outage, fatal-session, statement", () => {
    const cases: ReadonlyArray<readonly [unknown, Classify.FailureKind, boolean]> = [
      [{ code: "ECONNRESET", message: "read ECONNRESET" }, "outage", true],
      [{ code: "08006", severity: "FATAL", message: "connection failure" }, "outage", true],
      [
        { code: "57P01", severity: "FATAL", message: "terminating connection due to administrator command" },
        "outage",
        true
      ],
      [{ code: "25P03", severity: "FATAL", message: "idle-in-transaction timeout" }, "fatal-session", true],
      [{ code: "XX000", severity: "PANIC", message: "internal error" }, "fatal-session", true],
      [{ code: "23505", severity: "ERROR", message: "duplicate key value" }, "statement", false],
      [{ code: "57014", severity: "ERROR", message: "canceling statement due to user request" }, "statement", false]
    ]
    for (const [cause, kind, sessionLost] of cases) {
      const classified = Classify.classifyError(cause)
      assert.deepStrictEqual([classified.kind, classified.sessionLost], [kind, sessionLost], JSON.stringify(cause))
    }
    assert.strictEqual(Classify.classifyError(new Error("received invalid response: 5a"), true).kind, "fatal-session")
  })
})
