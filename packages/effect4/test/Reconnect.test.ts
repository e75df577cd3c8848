import { Db, PoolError } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Logger, Option, Redacted, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import * as Net from "node:net"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

/** A port nothing listens on. */
const freePort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const listener = Net.createServer()
      listener.listen(0, "127.0.0.1", () => {
        const port = (listener.address() as Net.AddressInfo).port
        listener.close(() => resolve(port))
      })
    })
)

describe("reconnection", () => {
  it.live("a caller waiting through a server restart is served once it is back, and the pool is healthy again", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`SELECT 1`
      yield* Effect.promise(() => server.stop({ mode: "fast" }))
      // the pool sees its sessions die with the server (their sockets close), without a statement to find out
      yield* Effect.repeat(Db.statistics, { until: (s) => s.total === 0 })
      const waiting = yield* Effect.forkChild(Db.withConnection((conn) => conn<{ one: number }>`SELECT 1 AS one`))
      const down = yield* Db.health
      assert.notStrictEqual(down.status, "healthy")
      yield* Effect.promise(() => server.start())
      const rows = yield* Fiber.join(waiting)
      assert.strictEqual(rows[0]!.one, 1)
      const stats = yield* Effect.repeat(Db.statistics, { until: (s) => s.state === "healthy" })
      assert.isAtLeast(stats.connectionsClosed.broken, 1)
      assert.isAtLeast(stats.reconnectAttempts, 1)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 2, acquireTimeout: "20 seconds" })))
  )
})

describe("dead sessions", () => {
  it.live("a session the server terminates is dropped at once, with no statement to find out, and replaced", () => {
    const name = uniqueAppName("terminated")
    return Effect.gen(function* () {
      const before = yield* Db.withConnection((sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)
      yield* Effect.provide(
        Db.withConnection((sql) => sql`SELECT pg_terminate_backend(${before[0]!.pid})`),
        dbLayer(server, { minSize: 0, maxSize: 1, applicationName: "e4-observer" })
      )
      // the driver watches the socket: the pool learns of the death without using the session
      const stats = yield* Effect.repeat(Db.statistics, {
        until: (s) => s.connectionsClosed.broken === 1,
        schedule: Schedule.spaced("10 millis")
      })
      assert.strictEqual(stats.connectionsClosed.validation, 0)
      // learnt from the socket's close (the health probe, every 5 s, would find it too, but leaves no such error)
      assert.deepStrictEqual(stats.lastError, Option.some("the server closed the connection"))
      const after = yield* Db.withConnection((sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)
      assert.notStrictEqual(after[0]!.pid, before[0]!.pid)
    }).pipe(
      Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, applicationName: name, validateAfterIdle: "1 hour" }))
    )
  })
})

describe("initialisation", () => {
  it.live("an eager start fails with DatabaseUnreachable after its attempts, password redacted", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const exit = yield* Effect.exit(
        Effect.provide(
          Db.statistics,
          Db.layer({
            url: Redacted.make(`postgres://app:hunter2secret@127.0.0.1:${port}/app`),
            reconnect: { initialDelay: "20 millis", maxDelay: "40 millis", initialAttempts: 2 }
          }).pipe(Layer.provide(Logger.layer([])))
        )
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
      assert.instanceOf(error, PoolError.DatabaseUnreachable)
      const message = (error as PoolError.DatabaseUnreachable).message
      assert.include(message, `127.0.0.1:${port}/app after 2 attempts`)
      assert.include(message, "ECONNREFUSED")
      assert.notInclude(message, "hunter2secret")
    })
  )

  it.live("a wrong password is ConnectionRejected at once, naming the user and what to fix", () =>
    Effect.gen(function* () {
      const url = new URL(server.url)
      url.password = "not-the-password"
      const exit = yield* Effect.exit(Effect.provide(Db.statistics, dbLayer(server, { url: Redacted.make(url.href) })))
      const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
      assert.instanceOf(error, PoolError.ConnectionRejected)
      const rejected = error as PoolError.ConnectionRejected
      assert.strictEqual(rejected.code, "28P01")
      assert.strictEqual(rejected.attempts, 1)
      assert.notInclude(rejected.message, "not-the-password")
    })
  )

  it.live(
    "a lazy start builds at once (degraded while connecting), unhealthy once it cannot connect, and says why",
    () =>
      Effect.gen(function* () {
        const port = yield* freePort
        const [first, health] = yield* Effect.provide(
          Effect.all([
            Db.health,
            Effect.repeat(Db.health, { until: (h) => h.status === "unhealthy", schedule: Schedule.spaced("20 millis") })
          ]),
          Db.layer({ url: `postgres://app@127.0.0.1:${port}/app`, init: "lazy" }).pipe(Layer.provide(Logger.layer([])))
        )
        assert.strictEqual(first.status, "degraded")
        assert.include(
          Option.getOrElse(health.reason, () => ""),
          `cannot connect to 127.0.0.1:${port}`
        )
      })
  )
})
