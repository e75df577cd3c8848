import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Logger, Redacted, References, Schedule, Scope } from "effect"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, serverSessions, uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

/** A logger that keeps the messages and annotations of the pool's events. */
const capture = () => {
  const lines: Array<{ message: string; level: string; annotations: Record<string, unknown> }> = []
  const logger = Logger.make(({ fiber, logLevel, message }) => {
    const messages = Array.isArray(message) ? message : [message]
    lines.push({
      message: String(messages[0]),
      level: logLevel,
      annotations: { ...fiber.getRef(References.CurrentLogAnnotations) }
    })
  })
  return { lines, layer: Logger.layer([logger]) }
}

describe("lifecycle", () => {
  it.live("idle sessions above minSize close after maxIdleTime; minSize stays", () =>
    Effect.gen(function* () {
      let holders = 0
      const allHold = yield* Deferred.make<void>()
      yield* Effect.forEach(
        [1, 2, 3],
        () =>
          Db.withConnection(() =>
            Effect.andThen(
              Effect.sync(() => ++holders === 3 && Deferred.doneUnsafe(allHold, Effect.void)),
              Deferred.await(allHold)
            )
          ),
        { concurrency: 3 }
      )
      assert.strictEqual((yield* Db.statistics).total, 3)
      const stats = yield* Effect.repeat(Db.statistics, {
        until: (s) => s.total === 1,
        schedule: Schedule.spaced("100 millis")
      })
      assert.strictEqual(stats.connectionsClosed.idle, 2)
    }).pipe(Effect.provide(dbLayer(server, { minSize: 1, maxSize: 3, maxIdleTime: "300 millis" })))
  )

  it.live("a connection held past the leak threshold is logged once, counted, and logged again on return", () => {
    const { layer, lines } = capture()
    return Effect.gen(function* () {
      yield* Db.withConnection(() => Effect.sleep("1500 millis"))
      const stats = yield* Db.statistics
      assert.strictEqual(stats.leaksSuspected, 1)
      const messages = lines.map((line) => line.message)
      assert.strictEqual(
        messages.filter((m) => m === "connection held longer than the leak detection threshold").length,
        1
      )
      assert.include(messages, "connection suspected of leaking was returned")
    }).pipe(
      Effect.provide(
        Db.layer({ url: Redacted.make(server.url), minSize: 1, maxSize: 1, leakDetectionThreshold: "200 millis" }).pipe(
          Layer.provide(layer)
        )
      )
    )
  })

  it.live("shutdown waits shutdownTimeout for a holder, then cancels its statement and closes: it never hangs", () => {
    const name = uniqueAppName("shutdown-timeout")
    return Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        dbLayer(server, { minSize: 1, maxSize: 1, applicationName: name, shutdownTimeout: "300 millis" }),
        scope
      )
      const db = Context.get(context, Db.Db)
      const started = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(
        db.withConnection((sql) => Effect.andThen(Deferred.succeed(started, undefined), sql`SELECT pg_sleep(30)`))
      )
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.await(holder)
      assert.isTrue(Exit.isFailure(exit))
      const stats = yield* db.statistics
      assert.strictEqual(stats.total, 0)
      const left = yield* Effect.repeat(serverSessions(server, name), {
        until: (s) => s.length === 0,
        schedule: Schedule.spaced("50 millis")
      })
      assert.lengthOf(left, 0)
    })
  })
})
