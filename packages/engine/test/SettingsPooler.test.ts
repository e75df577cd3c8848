// The `pooler` setting: what sits between the pool and the server (PgBouncer's pool_mode), from code and from
// DB_POOL_POOLER, and the one combination it rules out.
import { assert, describe, it } from "vitest"
import { Settings } from "../src/index.js"

const ok = (result: Settings.Result<Settings.TlsParams>): Settings.Settings => {
  if (!result.ok) assert.fail(result.issues.map((issue) => issue.message).join("\n"))
  return result.settings
}

const messages = (result: Settings.Result<Settings.TlsParams>): ReadonlyArray<string> => {
  if (result.ok) return assert.fail("expected issues, got settings")
  return result.issues.map((issue) => issue.message)
}

describe("pooler", () => {
  it("defaults to none: a direct connection", () => {
    assert.strictEqual(ok(Settings.resolve({ url: "postgres://db" })).pooler, "none")
  })

  it("takes none, session or transaction from code and from DB_POOL_POOLER, in any case", () => {
    assert.strictEqual(ok(Settings.resolve({ url: "postgres://db", pooler: "transaction" })).pooler, "transaction")
    const fromEnv = ok(Settings.fromEnv({ DATABASE_URL: "postgres://db", DB_POOL_POOLER: "Session" }))
    assert.strictEqual(fromEnv.pooler, "session")
    assert.strictEqual(fromEnv.settingNames.pooler, "DB_POOL_POOLER")
  })

  it("refuses anything else, naming the variable and PgBouncer's modes", () => {
    assert.deepStrictEqual(messages(Settings.fromEnv({ DATABASE_URL: "postgres://db", DB_POOL_POOLER: "pgbouncer" })), [
      "DB_POOL_POOLER (pgbouncer) must be none, session or transaction: say what is between the pool and the server: none, or PgBouncer's pool_mode (session or transaction)"
    ])
  })

  it("refuses reset: always behind a transaction pooler, where DISCARD ALL would run on another server connection", () => {
    assert.deepStrictEqual(
      messages(
        Settings.fromEnv({ DATABASE_URL: "postgres://db", DB_POOL_POOLER: "transaction", DB_POOL_RESET: "always" })
      ),
      [
        "DB_POOL_RESET (always) cannot be honoured with DB_POOL_POOLER (transaction): behind a transaction pooler no session state survives a statement, and DISCARD ALL would run on another server connection; remove DB_POOL_RESET, or use PgBouncer in session mode (DB_POOL_POOLER=session)"
      ]
    )
    assert.strictEqual(
      ok(Settings.resolve({ url: "postgres://db", pooler: "session", reset: "always" })).reset,
      "always"
    )
  })
})

describe("statementTimeout behind a pooler", () => {
  it("is refused: PgBouncer refuses the startup parameter pg sends it as", () => {
    assert.deepStrictEqual(
      messages(
        Settings.fromEnv({
          DATABASE_URL: "postgres://db",
          DB_POOL_POOLER: "session",
          DB_POOL_STATEMENT_TIMEOUT: "30s"
        })
      ),
      [
        "DB_POOL_STATEMENT_TIMEOUT (30s) cannot be sent through PgBouncer (DB_POOL_POOLER=session): it refuses the startup parameter. Set it per role on the server (ALTER ROLE … SET statement_timeout = …) and remove DB_POOL_STATEMENT_TIMEOUT"
      ]
    )
    assert.strictEqual(ok(Settings.resolve({ url: "postgres://db", statementTimeout: "30s" })).statementTimeout, 30_000)
  })
})
