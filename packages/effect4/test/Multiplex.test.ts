import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { dbLayer } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

describe("multiplexing", () => {
  it.live("autocommit statements share one session's slots instead of queueing for it", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // four statements of 300 ms on one session with a 500 ms acquire timeout: queued one behind another the
      // third and fourth would time out; pipelined, each takes a slot at once
      const pids = yield* Effect.forEach(
        [1, 2, 3, 4],
        () => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid, pg_sleep(0.3)`,
        { concurrency: 4 }
      )
      assert.strictEqual(new Set(pids.map((rows) => rows[0]!.pid)).size, 1)
      const stats = yield* Db.statistics
      assert.strictEqual(stats.total, 1)
      assert.strictEqual(stats.acquireTimeouts, 0)
    }).pipe(
      Effect.provide(
        dbLayer(server, {
          minSize: 1,
          maxSize: 1,
          multiplex: true,
          multiplexConcurrency: 4,
          acquireTimeout: "500 millis"
        })
      )
    )
  )

  it.live("an exclusive checkout waits for the statements in flight, and statements behind it wait their turn", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // the server's clock says when each ran: the order the callers see their results in is not the order of work
      const at = "extract(epoch FROM clock_timestamp())::float8"
      const first = yield* Effect.forkChild(sql.unsafe<{ t: number }>(`SELECT ${at} AS t FROM pg_sleep(0.3)`))
      yield* Effect.repeat(Db.statistics, { until: (s) => s.active === 1 })
      const exclusive = yield* Effect.forkChild(
        Db.withConnection((conn) =>
          Effect.gen(function* () {
            const start = yield* conn.unsafe<{ t: number }>(`SELECT ${at} AS t`)
            const end = yield* conn.unsafe<{ t: number }>(`SELECT ${at} AS t FROM pg_sleep(0.1)`)
            return [start[0]!.t, end[0]!.t] as const
          })
        )
      )
      yield* Effect.repeat(Db.statistics, { until: (s) => s.waiting === 1 })
      const second = yield* Effect.forkChild(sql.unsafe<{ t: number }>(`SELECT ${at} AS t`))
      yield* Effect.repeat(Db.statistics, { until: (s) => s.waiting === 2 })
      const firstDone = (yield* Fiber.join(first))[0]!.t
      const [exclusiveStart, exclusiveEnd] = yield* Fiber.join(exclusive)
      const secondRan = (yield* Fiber.join(second))[0]!.t
      assert.isAtLeast(exclusiveStart, firstDone)
      assert.isAtLeast(secondRan, exclusiveEnd)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, multiplex: true, multiplexConcurrency: 4 })))
  )
})

describe("without multiplexing", () => {
  it.live("the same statements queue for the one session (the control of the test above)", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const results = yield* Effect.forEach([1, 2, 3, 4], () => Effect.exit(sql`SELECT pg_sleep(0.3)`), {
        concurrency: 4
      })
      assert.isAtLeast(results.filter((exit) => exit._tag === "Failure").length, 1)
      assert.isAtLeast((yield* Db.statistics).acquireTimeouts, 1)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, acquireTimeout: "500 millis" })))
  )
})
