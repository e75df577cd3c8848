/**
 * A server on a Unix socket (the Effect 3 edition's test/Acquisition.test.ts): the readiness probe on the socket
 * cuts a reconnect backoff short after a restart, and an interrupted query is cancelled through that socket.
 */
import { Db } from "@effect-pg-pool/effect4"
import { TestServer } from "@effect-pg-pool/testkit/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Logger, Option } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { serverSessions, uniqueAppName } from "./utils/pools.js"
import { eventually } from "./utils/waits.js"

let server: TestServer.EmbeddedServer
beforeAll(async () => {
  server = await TestServer.startEmbedded({ unixSocket: true })
})
afterAll(() => server?.close())

const unixPool = (options: Db.DbOptions) =>
  Db.layer({
    host: server.socketDir!,
    port: server.port,
    user: server.user,
    password: server.password,
    database: server.database,
    minSize: 1,
    maxSize: 1,
    ...options
  }).pipe(Layer.provide(Logger.layer([])))

describe("a server on a Unix socket", () => {
  it.live("after a restart, the readiness probe on the socket cuts the backoff short", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`SELECT 1`
      yield* Effect.promise(() => server.stop({ mode: "immediate" }))
      yield* eventually("the pool sees the outage", Db.statistics, (s) => s.total === 0, 10_000)
      // the replacement fails while the server is down: the pool backs off, 20 s for the first step
      yield* eventually("the pool reconnects with backoff", Db.statistics, (s) => s.state === "unhealthy", 10_000)
      // only a failure that says nothing listens (no socket file, refused) is probed: name it if the probe did not
      const backedOffAfter = Option.getOrElse((yield* Db.statistics).lastError, () => "no error")
      yield* Effect.promise(() => server.start())
      const startedAt = Date.now()
      yield* sql`SELECT 1`
      // the first backoff step is 20 s: only the probe can have noticed the socket again
      assert.isBelow(Date.now() - startedAt, 10_000, `the backoff began after: ${backedOffAfter}`)
    }).pipe(
      Effect.provide(
        unixPool({
          applicationName: uniqueAppName("unix-probe"),
          reconnect: { initialDelay: "20 seconds", maxDelay: "20 seconds" }
        })
      )
    )
  )

  it.live("an interrupted query on a Unix-socket connection is cancelled through that socket", () => {
    const applicationName = uniqueAppName("unix-cancel")
    const running = Effect.map(
      serverSessions(server, applicationName),
      (rows) => rows.filter((r) => r.state === "active").length
    )
    return Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // no client address: the session came over the socket, not TCP
      const [own] = yield* sql<{ addr: string | null }>`
        SELECT client_addr::text AS addr FROM pg_stat_activity WHERE pid = pg_backend_pid()`
      assert.isNull(own!.addr)
      const fiber = yield* Effect.forkChild(sql`SELECT pg_sleep(30)`)
      yield* eventually("the query runs", running, (n) => n === 1)
      yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(fiber)))
      yield* eventually("the query is cancelled", running, (n) => n === 0, 3_000)
      const stats = yield* Db.statistics
      assert.strictEqual(stats.connectionsClosed.cancel, 0)
      assert.strictEqual(stats.connectionsCreated, 1)
    }).pipe(Effect.provide(unixPool({ applicationName })))
  })
})
