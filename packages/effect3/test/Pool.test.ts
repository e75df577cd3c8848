import { Reactivity } from "@effect/experimental"
import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
import { assert, it, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option, TestClock } from "effect"
import * as Db from "../src/Db.js"
import { AcquireTimeout } from "../src/PoolError.js"
import {
  adminClient,
  adminQuery,
  backendPids,
  eventually,
  makeDb,
  probed,
  realSleep,
  uniqueAppName,
  waitingIs
} from "./utils.js"

/** Holds one connection until the returned `release` is completed; reports its backend pid (utils' `hold` does not). */
const hold = (db: Db.Db.Service) =>
  Effect.gen(function* () {
    const acquired = yield* Deferred.make<number>()
    const release = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      db.withConnection((sql) =>
        Effect.flatMap(sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`, (rows) =>
          Effect.zipRight(Deferred.succeed(acquired, rows[0]!.pid), Deferred.await(release))
        )
      )
    )
    const pid = yield* Deferred.await(acquired)
    return { pid, release: Deferred.succeed(release, undefined), fiber }
  })

const pidOf = (db: Db.Db.Service) =>
  Effect.map(
    db.withConnection((sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`),
    (rows) => rows[0]!.pid
  )

it.layer(PgTestServer.layer, { timeout: 60_000 })("ConnectionPool", (it) => {
  it.scoped("hands connections to waiters in arrival order, re-acquirers queue behind", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1 })
      const order: Array<string> = []
      const holder = yield* hold(db)
      const waiters: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
      for (let i = 0; i < 120; i++) {
        waiters.push(yield* Effect.fork(db.withConnection(() => Effect.sync(() => order.push(`w${i}`)))))
        yield* waitingIs(db, i + 1)
      }
      // the holder releases and immediately asks again: it must not barge past the 120 queued waiters
      yield* holder.release
      yield* Fiber.join(holder.fiber)
      yield* db.withConnection(() => Effect.sync(() => order.push("again")))
      yield* Fiber.joinAll(waiters)
      assert.deepStrictEqual(order, [...Array.from({ length: 120 }, (_, i) => `w${i}`), "again"])
      const stats = yield* db.statistics
      assert.strictEqual(stats.waiting, 0)
      assert.strictEqual(stats.peakWaiting, 120)
      assert.strictEqual(stats.total, 1)
    })
  )

  it.scoped("fails a waiter after acquireTimeout with the pool's figures", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1, acquireTimeout: "2 seconds" })
      const holder = yield* hold(db)
      const waiter = yield* Effect.fork(db.withConnection(() => Effect.void))
      yield* waitingIs(db, 1)
      yield* TestClock.adjust("1999 millis")
      assert.isNull(yield* Fiber.poll(waiter).pipe(Effect.map(Option.getOrNull)))
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(waiter)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit)
        ? Option.getOrThrow(
            Exit.causeOption(exit).pipe(
              Option.flatMap((c) => (c._tag === "Fail" ? Option.some(c.error) : Option.none()))
            )
          )
        : undefined
      assert.instanceOf(error, AcquireTimeout)
      const timeout = error as AcquireTimeout
      assert.strictEqual(timeout.waitedMillis, 2000)
      assert.strictEqual(timeout.statistics.active, 1)
      assert.strictEqual(timeout.statistics.maxSize, 1)
      assert.include(timeout.message, "Timed out after 2000 ms waiting for a database connection")
      assert.include(timeout.message, "all 1 of 1 connections stayed busy")
      assert.include(timeout.message, "Raise maxSize, shorten transactions, or raise acquireTimeout.")
      const stats = yield* db.statistics
      assert.strictEqual(stats.acquireTimeouts, 1)
      assert.strictEqual(stats.waiting, 0)
      yield* holder.release
      yield* Fiber.join(holder.fiber)
      assert.strictEqual((yield* db.statistics).idle, 1)
    })
  )

  it.scoped("an interrupted waiter leaves the queue and the next one is served", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1 })
      const holder = yield* hold(db)
      const first = yield* Effect.fork(db.withConnection(() => Effect.succeed("first")))
      yield* waitingIs(db, 1)
      const second = yield* Effect.fork(db.withConnection(() => Effect.succeed("second")))
      yield* waitingIs(db, 2)
      yield* Fiber.interrupt(first)
      assert.strictEqual((yield* db.statistics).waiting, 1)
      yield* holder.release
      assert.strictEqual(yield* Fiber.join(second), "second")
      const stats = yield* db.statistics
      assert.deepStrictEqual([stats.total, stats.idle, stats.waiting], [1, 1, 0])
    })
  )

  it.scoped("never leaks a connection when waiters are interrupted as connections are handed over", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 0, maxSize: 3 })
      const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
      for (let i = 0; i < 300; i++) {
        fibers.push(yield* Effect.fork(db.withConnection((sql) => sql`SELECT 1`)))
      }
      // interrupt every other caller while hand-offs are in full swing
      for (let i = 0; i < fibers.length; i += 2) yield* Fiber.interruptFork(fibers[i]!)
      yield* Effect.forEach(fibers, Fiber.await, { discard: true })
      yield* eventually(
        "everything is back in the pool",
        Effect.map(db.statistics, (s) => s.active === 0 && s.waiting === 0 && s.pending === 0)
      )
      const stats = yield* db.statistics
      assert.isAtMost(stats.total, 3)
      assert.strictEqual(stats.idle, stats.total)
      // and the pool still works at full width
      yield* Effect.all(
        Array.from({ length: 10 }, () => db.sql`SELECT 1`),
        { concurrency: "unbounded" }
      )
    })
  )

  it.scoped("never hands out an idle connection whose backend was terminated", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("terminated")
      const db = yield* makeDb({ minSize: 2, maxSize: 2, applicationName })
      const admin = yield* adminClient
      const before = yield* backendPids(admin, applicationName)
      assert.strictEqual(before.length, 2)
      yield* adminQuery(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [
        applicationName
      ])
      yield* eventually(
        "the terminated backends are gone",
        Effect.map(db.statistics, (s) => s.connectionsClosed.broken === 2)
      )
      const pids = yield* Effect.all(
        Array.from({ length: 20 }, () => pidOf(db)),
        { concurrency: 2 }
      )
      for (const pid of pids) assert.notInclude(before, pid)
      yield* eventually(
        "the minimum is restored",
        Effect.map(db.statistics, (s) => s.total === 2)
      )
    })
  )

  it.scoped("restores minSize after connections die", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("min")
      const db = yield* makeDb({ minSize: 3, maxSize: 5, applicationName })
      const admin = yield* adminClient
      yield* adminQuery(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [
        applicationName
      ])
      yield* eventually(
        "three fresh connections",
        Effect.map(db.statistics, (s) => s.connectionsCreated === 6 && s.total === 3)
      )
      yield* eventually(
        "the server agrees",
        Effect.map(backendPids(admin, applicationName), (pids) => pids.length === 3)
      )
    })
  )

  it.scoped("recycles a connection past maxLifetime, only while idle", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1, maxLifetime: "10 seconds" })
      const first = yield* pidOf(db)
      const holder = yield* hold(db)
      assert.strictEqual(holder.pid, first)
      yield* TestClock.adjust("11 seconds")
      // still checked out: untouched
      assert.strictEqual((yield* db.statistics).connectionsClosed.lifetime, 0)
      yield* holder.release
      yield* Fiber.join(holder.fiber)
      yield* eventually(
        "recycled",
        Effect.map(db.statistics, (s) => s.connectionsClosed.lifetime === 1)
      )
      yield* eventually(
        "replaced",
        Effect.map(db.statistics, (s) => s.idle === 1)
      )
      assert.notStrictEqual(yield* pidOf(db), first)
    })
  )

  it.scoped("closes connections idle past maxIdleTime down to minSize", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 3, maxIdleTime: "5 seconds" })
      const holders = [yield* hold(db), yield* hold(db), yield* hold(db)]
      for (const h of holders) yield* h.release
      yield* Effect.forEach(holders, (h) => Fiber.join(h.fiber), { discard: true })
      assert.strictEqual((yield* db.statistics).idle, 3)
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual((yield* db.statistics).idle, 3)
      yield* TestClock.adjust("2 seconds")
      // the health probe may be borrowing the survivor for a moment
      yield* eventually(
        "the survivor is idle",
        Effect.map(db.statistics, (s) => s.idle === 1)
      )
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsClosed.idle, 2)
      assert.deepStrictEqual([stats.total, stats.idle], [1, 1])
    })
  )

  it.scoped("recycles a connection after maxQueries", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 0, maxSize: 1, maxQueries: 3 })
      const pids = [yield* pidOf(db), yield* pidOf(db), yield* pidOf(db), yield* pidOf(db)]
      assert.strictEqual(pids[0], pids[2])
      assert.notStrictEqual(pids[2], pids[3])
      assert.strictEqual((yield* db.statistics).connectionsClosed.maxQueries, 1)
    })
  )
})

// real time: a silent connection is one whose socket stays open while nothing comes back, which only a real socket
// through the fault proxy can be
layer(FaultProxy.layer.pipe(Layer.provideMerge(PgTestServer.layer)), { timeout: 60_000, excludeTestServices: true })(
  "ConnectionPool validation",
  (it) => {
    it.scoped("validates a connection idle past the skip window and replaces a silent one transparently", () =>
      Effect.gen(function* () {
        const proxy = yield* FaultProxy.FaultProxy
        const db = yield* Db.make({
          url: proxy.url,
          minSize: 1,
          maxSize: 1,
          validateAfterIdle: "50 millis",
          validationTimeout: "300 millis"
        }).pipe(Effect.provide(Reactivity.layer))
        yield* probed(db)
        const first = yield* pidOf(db)
        yield* realSleep(100) // idle past the skip window: the next acquisition validates the connection
        // the socket stays open and nothing comes back: only the validation round trip can tell
        yield* proxy.blackhole
        const next = yield* Effect.fork(pidOf(db))
        yield* eventually(
          "the silent connection failed validation",
          Effect.map(db.statistics, (s) => s.connectionsClosed.validation === 1)
        )
        yield* proxy.restore
        const second = yield* Fiber.join(next)
        assert.notStrictEqual(second, first)
        const stats = yield* db.statistics
        assert.strictEqual(stats.connectionsClosed.validation, 1)
        assert.strictEqual(stats.connectionsClosed.broken, 0)
        assert.strictEqual(stats.acquireTimeouts, 0)
      })
    )
  }
)

// real time: the event loop itself is blocked, which a TestClock cannot stand in for
layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("ConnectionPool in real time", (it) => {
  it.scoped("a blocked event loop does not make a validation whose answer arrived look timed out", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({
        minSize: 1,
        maxSize: 1,
        validateAfterIdle: "50 millis",
        validationTimeout: "200 millis"
      })
      const admin = yield* adminClient
      const first = yield* pidOf(db)
      yield* realSleep(100) // idle past the skip window: the next acquisition validates the connection
      // Resumed from a socket read (the poll phase of the event loop), so that after the block below the loop
      // runs its timers before it reads sockets again: the order in which a stall hurts.
      yield* adminQuery(admin, "SELECT 1")
      const next = yield* Effect.fork(pidOf(db))
      // microtask hops only, so no I/O is read: until the validation round trip has been written
      while ((yield* db.statistics).active === 0) yield* Effect.yieldNow()
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
      // a long synchronous task: the answer arrives meanwhile and waits, unread, while the deadline passes
      const blockedUntil = Date.now() + 400
      while (Date.now() < blockedUntil) {}
      // the expired timer runs first; the pool must read the socket before it gives up on the connection
      assert.strictEqual(yield* Fiber.join(next), first)
      const statistics = yield* db.statistics
      assert.strictEqual(statistics.connectionsClosed.validation, 0)
      assert.strictEqual(statistics.connectionsCreated, 1)
    })
  )
})
