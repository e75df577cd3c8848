import { assert, describe, it } from "vitest"
import { Messages } from "../src/index.js"

const unreachable = {
  host: "db",
  port: 5432,
  database: "app",
  attempts: 5,
  elapsedMillis: 31_000,
  lastCause: "connect ECONNREFUSED 10.0.0.1:5432"
}

describe("DatabaseUnreachable's message", () => {
  it("says where, how many attempts over how long, and the last error", () => {
    const message = Messages.databaseUnreachable(unreachable)
    assert.include(message, "Could not connect to PostgreSQL at db:5432/app after 5 attempts over 31.0 s")
    assert.include(message, "last error: connect ECONNREFUSED 10.0.0.1:5432.")
    assert.include(Messages.databaseUnreachable({ ...unreachable, attempts: 1 }), "after 1 attempt over")
  })

  it("names DATABASE_URL and DB_POOL_INIT for a pool configured from the environment (and by default)", () => {
    const names = { url: "DATABASE_URL", init: "DB_POOL_INIT" }
    for (const message of [
      Messages.databaseUnreachable({ ...unreachable, settingNames: names }),
      Messages.databaseUnreachable(unreachable)
    ]) {
      assert.include(message, "that DATABASE_URL is right")
      assert.include(message, "or set DB_POOL_INIT=lazy to start without it")
    }
  })

  it("names the url and init options for a pool configured in code, never DATABASE_URL", () => {
    const message = Messages.databaseUnreachable({ ...unreachable, settingNames: { url: "url", init: "init" } })
    assert.notInclude(message, "DATABASE_URL")
    assert.include(message, "that the url option (or host, port and database) is right")
    assert.include(message, `or set init: "lazy" in the pool's options`)
  })

  it("names a Config key as it was written", () => {
    const message = Messages.databaseUnreachable({ ...unreachable, settingNames: { url: "PG_URL", init: "PG_INIT" } })
    assert.include(message, "that PG_URL is right")
    assert.include(message, "or set PG_INIT=lazy")
    assert.notInclude(message, "DATABASE_URL")
  })
})

describe("the other messages", () => {
  it("PoolConfigError lists every problem, with the count", () => {
    assert.strictEqual(
      Messages.poolConfigError([{ message: "a is wrong" }, { message: "b is wrong" }]),
      "Invalid database pool configuration (2 problems):\n  - a is wrong\n  - b is wrong"
    )
    assert.strictEqual(
      Messages.poolConfigError([{ message: "a is wrong" }]),
      "Invalid database pool configuration (1 problem):\n  - a is wrong"
    )
  })

  it("ConnectionRejected names the user, the database, the SQLSTATE when there is one, and the remedy", () => {
    const rejected = {
      host: "db",
      port: 5432,
      database: "shop",
      user: "app",
      code: "28P01" as string | undefined,
      serverMessage: 'password authentication failed for user "app"',
      remedy: 'check the password of user "app"',
      attempts: 1,
      elapsedMillis: 12
    }
    assert.strictEqual(
      Messages.connectionRejected(rejected),
      'PostgreSQL at db:5432 rejected the connection of user "app" to database "shop": password authentication ' +
        'failed for user "app" (SQLSTATE 28P01). This is a configuration error, not an outage, so the pool stopped ' +
        'after 1 attempt instead of retrying: check the password of user "app".'
    )
    assert.notInclude(Messages.connectionRejected({ ...rejected, code: undefined }), "SQLSTATE")
  })

  it("AcquireTimeout tells a saturated pool (with its remedy, as the settings were named) from a failing one", () => {
    const busy = { active: 4, total: 4, maxSize: 4, waiting: 7, state: "degraded", lastError: undefined } as const
    assert.strictEqual(
      Messages.acquireTimeout({ waitedMillis: 250, statistics: busy }),
      "Timed out after 250 ms waiting for a database connection: all 4 of 4 connections stayed busy (7 callers " +
        "waiting). Raise DB_POOL_MAX_SIZE, shorten transactions, or raise DB_POOL_ACQUIRE_TIMEOUT."
    )
    assert.include(
      Messages.acquireTimeout({
        waitedMillis: 250,
        statistics: busy,
        settingNames: { maxSize: "maxConnections", acquireTimeout: "acquireTimeout" }
      }),
      "Raise maxConnections, shorten transactions, or raise acquireTimeout."
    )
    const failing = { ...busy, active: 0, total: 1, state: "unhealthy", lastError: "connect ECONNREFUSED" } as const
    assert.strictEqual(
      Messages.acquireTimeout({ waitedMillis: 250, statistics: failing }),
      "Timed out after 250 ms waiting for a database connection: the pool is unhealthy (last error: connect " +
        "ECONNREFUSED); 1 of 4 connections open, 7 callers waiting. Check the database."
    )
    // an edition's statistics carry the last error as an Option
    const asOption = { ...failing, lastError: { _tag: "Some", value: "connect ECONNREFUSED" } } as const
    assert.strictEqual(
      Messages.acquireTimeout({ waitedMillis: 250, statistics: asOption }),
      Messages.acquireTimeout({ waitedMillis: 250, statistics: failing })
    )
    assert.notInclude(
      Messages.acquireTimeout({ waitedMillis: 250, statistics: { ...failing, lastError: { _tag: "None" } } }),
      "last error"
    )
  })

  it("PoolClosed names the pool", () => {
    assert.strictEqual(
      Messages.poolClosed("orders"),
      'The database pool "orders" is shutting down or closed and accepts no new work. ' +
        "Acquire connections only while the layer that provides it is alive."
    )
  })
})

describe("statements the protocol cannot carry", () => {
  it("refuses more than 65 535 parameters, with the count, the limit and the array-parameter fix", () => {
    assert.isUndefined(Messages.unsendable("SELECT 1", Messages.maxParameters))
    const message = Messages.unsendable("SELECT 1", 70_000)
    assert.include(message, "70000 parameters")
    assert.include(message, "at most 65535")
    assert.include(message, "= ANY(")
  })

  it("refuses a NUL in the text, at its 1-based character", () => {
    assert.isUndefined(Messages.unsendable("SELECT 'a'", 0))
    assert.include(Messages.unsendable("SELECT 'a\u0000b' AS t", 0), "NUL byte (\\0) at character 10")
  })

  it("says a COPY stream was not sent and what to stream instead", () => {
    assert.include(Messages.copyAsStream, "COPY cannot run as a stream")
    assert.include(Messages.copyAsStream, "stream the rows of the SELECT")
  })
})

it("a statement behind an open stream is refused with what to do", () => {
  assert.include(Messages.streamStillOpen, "a stream (cursor) is still open")
  assert.include(Messages.streamStillOpen, "consume or end the stream first")
})

describe("open failures", () => {
  it("a rejected login reads with its SQLSTATE and the remedy", () => {
    assert.strictEqual(
      Messages.rejectedLogin({
        message: "password authentication failed",
        code: "28P01",
        remedy: "check the password"
      }),
      "password authentication failed (SQLSTATE 28P01) — check the password"
    )
    assert.strictEqual(Messages.rejectedLogin({ message: "refused", code: undefined, remedy: undefined }), "refused")
  })

  it("a hung onConnect hook is named with the bound and the setting as written", () => {
    assert.strictEqual(
      Messages.onConnectTimeout(5_000),
      "the onConnect hook did not finish within 5s (DB_POOL_CONNECT_TIMEOUT)"
    )
    assert.include(Messages.onConnectTimeout(500, { connectTimeout: "connectTimeout" }), "500ms (connectTimeout)")
  })
})
