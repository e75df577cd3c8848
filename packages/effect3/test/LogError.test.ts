import { assert, describe, it } from "@effect/vitest"
import { Cause } from "effect"
import * as Pg from "pg"
import { formatLogError } from "../src/internal/logError.js"

const password = "s3cr3t/pw"

const serverError = (message: string, code: string) =>
  Object.assign(new Pg.DatabaseError(message, 0, "error"), { code, severity: "ERROR" })

const refused = (address: string) =>
  Object.assign(new Error(`connect ECONNREFUSED ${address}:5432`), { code: "ECONNREFUSED" })

describe("formatLogError", () => {
  it("gives a server error its message and SQLSTATE", () => {
    assert.strictEqual(
      formatLogError(serverError("cannot execute LISTEN during recovery", "25006"), password),
      "cannot execute LISTEN during recovery (SQLSTATE 25006)"
    )
  })

  it("gives a system error its code once, and never calls it a SQLSTATE", () => {
    assert.strictEqual(formatLogError(refused("127.0.0.1"), password), "connect ECONNREFUSED 127.0.0.1:5432")
    const pipe = Object.assign(new Error("write failed"), { code: "EPIPE" })
    assert.strictEqual(formatLogError(pipe, password), "write failed (EPIPE)")
  })

  it("renders the inner errors of an AggregateError with an empty message", () => {
    const both = Object.assign(new AggregateError([refused("::1"), refused("127.0.0.1")], ""), {
      code: "ECONNREFUSED"
    })
    assert.strictEqual(
      formatLogError(both, password),
      "connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432"
    )
  })

  it("looks through the wrappers that say nothing themselves", () => {
    const failure = { _tag: "ConnectFailure", cause: serverError("too many connections", "53300"), probeable: false }
    assert.strictEqual(formatLogError(failure, password), "too many connections (SQLSTATE 53300)")
    const unknown = new Cause.UnknownException(serverError("permission denied", "42501"))
    assert.strictEqual(formatLogError(unknown, password), "permission denied (SQLSTATE 42501)")
  })

  it("adds a cause the message does not already quote", () => {
    const wrapped = new Error("the onConnect hook failed", { cause: serverError("boom", "P0001") })
    assert.strictEqual(formatLogError(wrapped, password), "the onConnect hook failed (cause: boom (SQLSTATE P0001))")
    const quoting = new Error("Failed to execute statement (SQLSTATE P0001): boom", {
      cause: serverError("boom", "P0001")
    })
    assert.strictEqual(formatLogError(quoting, password), "Failed to execute statement (SQLSTATE P0001): boom")
  })

  it("redacts the password, raw or in a URL", () => {
    const text = formatLogError(
      new Error(`auth failed for ${password} at postgres://app:${encodeURIComponent(password)}@db:5432/app`),
      password
    )
    assert.notInclude(text, password)
    assert.notInclude(text, encodeURIComponent(password))
    assert.include(text, "auth failed for ***")
  })

  it("never renders [object Object]", () => {
    const circular: Record<string, unknown> = {}
    circular.self = circular
    for (const value of [{}, { reason: "x" }, circular, Object.create(null), new Error(""), [1], null, undefined, 42]) {
      const text = formatLogError(value, password)
      assert.notInclude(text, "[object Object]")
      assert.notStrictEqual(text, "")
    }
    assert.strictEqual(formatLogError({ reason: "x" }, password), '{"reason":"x"}')
  })
})
