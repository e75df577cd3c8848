import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Schedule } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, serverSessions, uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

/** The statements the server runs for that application_name right now. */
const running = (applicationName: string) =>
  Effect.map(serverSessions(server, applicationName), (rows) =>
    rows.filter((row) => row.state === "active" && row.query.includes("pg_sleep"))
  )

/** Polls until `check` holds (the server's view lags the client's by a round trip). */
const eventually = <A, R>(effect: Effect.Effect<A, unknown, R>, check: (a: A) => boolean) =>
  Effect.repeat(effect, { until: check, schedule: Schedule.spaced("50 millis") }).pipe(Effect.timeout("5 seconds"))

const backendPid = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return (yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)[0]!.pid
})

describe("queryTimeout", () => {
  for (const multiplex of [false, true]) {
    it.live(
      `bounds a statement, cancels it on the server and fails it naming the option (multiplex: ${multiplex})`,
      () => {
        const applicationName = uniqueAppName(`query-timeout-${multiplex}`)
        return Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const started = Date.now()
          const error: SqlError = yield* Effect.flip(sql`SELECT pg_sleep(30)`)
          assert.isBelow(Date.now() - started, 5_000)
          assert.strictEqual(error.reason._tag, "StatementTimeoutError")
          assert.include(error.message, "queryTimeout")
          assert.include(error.message, "DB_POOL_QUERY_TIMEOUT")
          // cancelled on the server, not left running there
          assert.lengthOf(yield* eventually(running(applicationName), (rows) => rows.length === 0), 0)
          // and the session serves the next statement
          assert.deepStrictEqual(yield* sql<{ n: number }>`SELECT 1::int AS n`, [{ n: 1 }])
          // a statement within the bound is not affected
          yield* sql`SELECT pg_sleep(0.05)`
        }).pipe(
          Effect.provide(
            dbLayer(server, { minSize: 1, maxSize: 1, applicationName, queryTimeout: "300 millis", multiplex })
          )
        )
      }
    )
  }
})

describe("cancelTimeout", () => {
  it.live(
    "an interrupted statement whose cancel does not land within cancelTimeout costs its session, not the caller",
    () => {
      const applicationName = uniqueAppName("cancel-timeout")
      return Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const pid = yield* backendPid
        const fiber = yield* Effect.forkChild(sql`SELECT pg_sleep(30)`)
        yield* eventually(running(applicationName), (rows) => rows.length === 1)
        // a backend that cannot act on the cancel: suspended (the test server runs on this machine)
        process.kill(pid, "SIGSTOP")
        const started = Date.now()
        const exit = yield* Fiber.interrupt(fiber).pipe(
          Effect.andThen(Fiber.await(fiber)),
          Effect.ensuring(Effect.sync(() => process.kill(pid, "SIGCONT")))
        )
        const elapsed = Date.now() - started
        assert.isTrue(Exit.hasInterrupts(exit))
        assert.isAtLeast(elapsed, 150)
        assert.isBelow(elapsed, 2_000)
        yield* eventually(Db.statistics, (s) => s.connectionsClosed.cancel === 1)
        assert.notStrictEqual(yield* backendPid, pid)
      }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, applicationName, cancelTimeout: "300 millis" })))
    }
  )

  it.live(
    "a statement past queryTimeout whose cancel does not land fails within cancelTimeout, its session closed",
    () => {
      const applicationName = uniqueAppName("query-cancel-timeout")
      return Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const pid = yield* backendPid
        const fiber = yield* Effect.forkChild(Effect.flip(sql`SELECT pg_sleep(30)`))
        yield* eventually(running(applicationName), (rows) => rows.length === 1)
        process.kill(pid, "SIGSTOP")
        const started = Date.now()
        const error = yield* Fiber.join(fiber).pipe(Effect.ensuring(Effect.sync(() => process.kill(pid, "SIGCONT"))))
        // queryTimeout (1 s from the start) plus at most cancelTimeout, not PgConnection's own 5 s drain
        assert.isBelow(Date.now() - started, 2_500)
        assert.include(error.message, "queryTimeout")
        yield* eventually(Db.statistics, (s) => s.connectionsClosed.cancel === 1)
        assert.notStrictEqual(yield* backendPid, pid)
      }).pipe(
        Effect.provide(
          dbLayer(server, {
            minSize: 1,
            maxSize: 1,
            applicationName,
            queryTimeout: "1 second",
            cancelTimeout: "300 millis"
          })
        )
      )
    }
  )
})
