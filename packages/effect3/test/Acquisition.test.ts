import { Reactivity } from "@effect/experimental"
import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { vi } from "vitest"
import * as Db from "../src/Db.js"
import { AcquireTimeout } from "../src/PoolError.js"
import {
  activeQueries,
  adminClient,
  eventually,
  failureOf,
  hold,
  makeDb,
  probed,
  realSleep,
  uniqueAppName,
  waitingIs
} from "./utils.js"

/** Makes `Date.now` (the wall clock) jump by `offsetMillis` until the test's scope closes, as an NTP step does. */
const stepWallClock = (offsetMillis: number) => {
  const realNow = Date.now.bind(Date)
  return Effect.acquireRelease(
    Effect.sync(() => vi.spyOn(Date, "now").mockImplementation(() => realNow() + offsetMillis)),
    (spy) => Effect.sync(() => spy.mockRestore())
  )
}

const Env = FaultProxy.layer.pipe(Layer.provideMerge(PgTestServer.layer))

layer(Env, { timeout: 60_000, excludeTestServices: true })("acquisition deadlines", (it) => {
  it.scoped("acquireTimeout bounds the whole acquisition: failed validations spend the same deadline", () =>
    Effect.gen(function* () {
      const proxy = yield* FaultProxy.FaultProxy
      const db = yield* Db.make({
        url: proxy.url,
        minSize: 2,
        maxSize: 2,
        validateAfterIdle: "50 millis",
        validationTimeout: "2 seconds",
        acquireTimeout: "2500 millis",
        connectTimeout: "10 seconds"
      }).pipe(Effect.provide(Reactivity.layer), Effect.tap(probed))
      yield* Effect.ensuring(
        Effect.gen(function* () {
          // both idle connections go silent: each acquisition would validate them one after the other
          yield* proxy.blackhole
          yield* realSleep(100)
          const startedAt = Date.now()
          const exit = yield* Effect.exit(db.withConnection(() => Effect.void))
          const elapsed = Date.now() - startedAt
          const error = failureOf(exit)
          assert.instanceOf(error, AcquireTimeout)
          // two validations (2 s each) and then a fresh 2.5 s wait would take 6.5 s
          assert.isBelow(elapsed, 4_500)
          assert.isAtLeast(error.waitedMillis, 2_400)
          assert.isBelow(Math.abs(error.waitedMillis - elapsed), 500)
        }),
        proxy.restore
      )
    })
  )

  it.scoped("a wall-clock step back does not stretch acquireTimeout", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1, acquireTimeout: "1 second" })
      const holder = yield* hold(db)
      const waiter = yield* Effect.fork(Effect.exit(db.withConnection(() => Effect.void)))
      yield* waitingIs(db, 1)
      yield* stepWallClock(-3_600_000)
      const exit = yield* Fiber.join(waiter).pipe(Effect.timeout("5 seconds"))
      assert.instanceOf(failureOf(exit), AcquireTimeout)
      yield* holder.release
    })
  )

  it.scoped("a wall-clock step forward does not expire idle connections", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 2, maxSize: 2 })
      yield* probed(db)
      yield* stepWallClock(2 * 3_600_000)
      // housekeeping runs every second
      yield* realSleep(1_500)
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsClosed.lifetime, 0)
      assert.strictEqual(stats.connectionsClosed.idle, 0)
      assert.strictEqual(stats.total, 2)
    })
  )

  it.scoped("callers that give up leave the queue at once; the others are served in arrival order", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1 })
      const holder = yield* hold(db)
      const order: Array<number> = []
      const waiters: Array<Fiber.RuntimeFiber<void, unknown>> = []
      for (let i = 0; i < 300; i++) {
        waiters.push(yield* Effect.fork(db.withConnection(() => Effect.sync(() => void order.push(i)))))
      }
      yield* waitingIs(db, 300)
      // every other caller gives up, from the middle of the queue as much as from its ends
      yield* Fiber.interruptAll(waiters.filter((_, i) => i % 2 === 1))
      assert.strictEqual((yield* db.statistics).waiting, 150)
      yield* holder.release
      yield* Fiber.joinAll(waiters.filter((_, i) => i % 2 === 0))
      assert.deepStrictEqual(
        order,
        Array.from({ length: 150 }, (_, i) => 2 * i)
      )
      assert.strictEqual((yield* db.statistics).waiting, 0)
    })
  )
})

// A server on a Unix socket (its directory writable by the server's own user, which may not be ours)
const socketDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "epp-sock-"))
Fs.chmodSync(socketDir, 0o777)
const UnixServer = PgTestServer.layerEmbedded({ settings: { unix_socket_directories: socketDir } })

const unixPool = (options: Partial<Db.DbOptions> & { readonly applicationName: string }) =>
  Effect.flatMap(PgTestServer.PgTestServer, (server) =>
    Db.make({
      host: socketDir,
      port: server.port,
      user: server.user,
      password: server.password,
      database: server.database,
      minSize: 1,
      maxSize: 1,
      ...options
    }).pipe(Effect.provide(Reactivity.layer))
  )

layer(UnixServer, { timeout: 60_000, excludeTestServices: true })("a server on a Unix socket", (it) => {
  it.scoped("after a restart, the readiness probe on the socket cuts the backoff short", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const db = yield* unixPool({
        applicationName: uniqueAppName("unix-probe"),
        reconnect: { initialDelay: "20 seconds", maxDelay: "20 seconds" }
      })
      yield* db.sql`SELECT 1`
      yield* server.stop({ mode: "immediate" })
      yield* eventually(
        "the pool sees the outage",
        Effect.map(db.statistics, (s) => s.total === 0),
        10_000
      )
      // the replacement fails while the server is down: the pool backs off, 20 s for the first step
      yield* eventually(
        "the pool reconnects with backoff",
        Effect.map(db.statistics, (s) => s.state === "unhealthy"),
        10_000
      )
      // only a failure that says nothing listens (no socket file, refused) is probed: name it if the probe did not
      const backedOffAfter = Option.getOrElse((yield* db.statistics).lastError, () => "no error")
      yield* server.start
      const startedAt = Date.now()
      yield* db.sql`SELECT 1`
      // the first backoff step is 20 s: only the probe can have noticed the socket again
      assert.isBelow(Date.now() - startedAt, 10_000, `the backoff began after: ${backedOffAfter}`)
    })
  )

  it.scoped("an interrupted query on a Unix-socket connection is cancelled through that socket", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("unix-cancel")
      const db = yield* unixPool({ applicationName })
      const admin = yield* adminClient
      const running = () => activeQueries(admin, applicationName)
      const fiber = yield* Effect.fork(db.sql`SELECT pg_sleep(30)`)
      yield* eventually(
        "the query runs",
        Effect.map(running(), (n) => n === 1)
      )
      assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(fiber)))
      assert.strictEqual(yield* running(), 0)
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsClosed.cancel, 0)
      assert.strictEqual(stats.connectionsCreated, 1)
    })
  )
})
