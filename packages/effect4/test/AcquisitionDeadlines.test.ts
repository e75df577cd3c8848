/**
 * One deadline per acquisition, on a monotonic clock: failed validations spend the same acquireTimeout, an NTP step
 * of the wall clock neither stretches nor expires anything, and callers that give up leave the queue at once, the
 * others served in arrival order (issue 10, items 7, 9 and 10; the Effect 3 edition's test/Acquisition.test.ts).
 */
import { Db, PoolError } from "@effect-pg-pool/effect4"
import { FaultProxy } from "@effect-pg-pool/testkit/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Redacted } from "effect"
import { afterAll, beforeAll, vi } from "vitest"
import { dbLayer } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"
import { eventually, failureOf, hold, waitingIs } from "./utils/waits.js"

let server: TestServer
let proxy: FaultProxy.FaultProxy
beforeAll(async () => {
  server = await startServer()
  proxy = await FaultProxy.start(server)
})
afterAll(async () => {
  await proxy?.close()
  await server?.close()
})

/** Makes `Date.now` (the wall clock) jump by `offsetMillis` until the scope closes, as an NTP step does. */
const stepWallClock = (offsetMillis: number) => {
  const realNow = Date.now.bind(Date)
  return Effect.acquireRelease(
    Effect.sync(() => vi.spyOn(Date, "now").mockImplementation(() => realNow() + offsetMillis)),
    (spy) => Effect.sync(() => spy.mockRestore())
  )
}

describe("acquisition deadlines", () => {
  it.live("acquireTimeout bounds the whole acquisition: failed validations spend the same deadline", () =>
    Effect.gen(function* () {
      // both idle sessions go silent: each acquisition would validate them one after the other
      yield* eventually("both sessions idle", Db.statistics, (s) => s.idle === 2)
      proxy.blackhole()
      yield* Effect.sleep("100 millis")
      const startedAt = Date.now()
      const exit = yield* Effect.exit(Db.withConnection(() => Effect.void))
      const elapsed = Date.now() - startedAt
      const error = failureOf(exit)
      assert.instanceOf(error, PoolError.AcquireTimeout)
      const timeout = error as PoolError.AcquireTimeout
      // two validations (2 s each) and then a fresh 2.5 s wait would take 6.5 s
      assert.isBelow(elapsed, 4_500)
      assert.isAtLeast(timeout.waitedMillis, 2_400)
      assert.isBelow(Math.abs(timeout.waitedMillis - elapsed), 500)
    }).pipe(
      Effect.provide(
        dbLayer(server, {
          url: Redacted.make(proxy.url),
          minSize: 2,
          maxSize: 2,
          validateAfterIdle: "50 millis",
          validationTimeout: "2 seconds",
          acquireTimeout: "2500 millis",
          connectTimeout: "10 seconds"
        })
      ),
      Effect.ensuring(Effect.sync(() => proxy.restore()))
    )
  )

  it.live("a wall-clock step back does not stretch acquireTimeout", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const holder = yield* hold
        const waiter = yield* Effect.forkChild(Effect.exit(Db.withConnection(() => Effect.void)))
        yield* waitingIs(1)
        yield* stepWallClock(-3_600_000)
        const exit = yield* Fiber.join(waiter).pipe(Effect.timeout("5 seconds"))
        assert.instanceOf(failureOf(exit), PoolError.AcquireTimeout)
        yield* holder.release
      })
    ).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1, acquireTimeout: "1 second" })))
  )

  it.live("a wall-clock step forward does not expire idle connections", () =>
    Effect.scoped(
      Effect.gen(function* () {
        yield* eventually("both sessions open", Db.statistics, (s) => s.idle === 2)
        yield* stepWallClock(2 * 3_600_000)
        // housekeeping runs every second
        yield* Effect.sleep("1500 millis")
        const stats = yield* Db.statistics
        assert.strictEqual(stats.connectionsClosed.lifetime, 0)
        assert.strictEqual(stats.connectionsClosed.idle, 0)
        assert.strictEqual(stats.total, 2)
      })
    ).pipe(Effect.provide(dbLayer(server, { minSize: 2, maxSize: 2 })))
  )

  it.live("callers that give up leave the queue at once; the others are served in arrival order", () =>
    Effect.gen(function* () {
      const holder = yield* hold
      const order: Array<number> = []
      const waiters: Array<Fiber.Fiber<void, unknown>> = []
      for (let i = 0; i < 300; i++) {
        waiters.push(yield* Effect.forkChild(Db.withConnection(() => Effect.sync(() => void order.push(i)))))
        // arrival order is the order they queue in
        yield* waitingIs(i + 1)
      }
      // every other caller gives up, from the middle of the queue as much as from its ends
      yield* Fiber.interruptAll(waiters.filter((_, i) => i % 2 === 1))
      assert.strictEqual((yield* Db.statistics).waiting, 150)
      yield* holder.release
      yield* Fiber.joinAll(waiters.filter((_, i) => i % 2 === 0))
      assert.deepStrictEqual(
        order,
        Array.from({ length: 150 }, (_, i) => 2 * i)
      )
      assert.strictEqual((yield* Db.statistics).waiting, 0)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 1 })))
  )
})
