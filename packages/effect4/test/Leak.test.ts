import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Metric, Redacted, References } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import { afterAll, beforeAll } from "vitest"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

const leakMessage = "connection held longer than the leak detection threshold"

/** A logger that keeps the messages and annotations of the pool's events. */
const capture = () => {
  const lines: Array<{ message: string; annotations: Record<string, unknown> }> = []
  const logger = Logger.make(({ fiber, message }) => {
    const messages = Array.isArray(message) ? message : [message]
    lines.push({ message: String(messages[0]), annotations: { ...fiber.getRef(References.CurrentLogAnnotations) } })
  })
  return { lines, layer: Logger.layer([logger]) }
}

const pool = (name: string, layer: Layer.Layer<never>) =>
  Db.layer({
    url: Redacted.make(server.url),
    name,
    minSize: 1,
    maxSize: 2,
    leakDetectionThreshold: "200 millis"
  }).pipe(Layer.provide(layer))

describe("leak detection", () => {
  it.live("the leak log names where the connection was acquired (the caller's spans), and the leak is counted", () => {
    const { layer, lines } = capture()
    return Effect.gen(function* () {
      yield* Db.withConnection(() => Effect.sleep("1500 millis")).pipe(Effect.withSpan("checkout-held-by-report-job"))
      const leaks = lines.filter((line) => line.message === leakMessage)
      assert.strictEqual(leaks.length, 1)
      assert.include(String(leaks[0]!.annotations.acquiredAt), "checkout-held-by-report-job")
      assert.strictEqual((yield* Db.statistics).leaksSuspected, 1)
      const counted = (yield* Metric.snapshot).find(
        (m) =>
          m.id === "db.client.connection.leaks" &&
          (m.attributes as Record<string, unknown> | undefined)?.["db.client.connection.pool.name"] === "leak-site"
      )
      assert.strictEqual((counted?.state as { count: number } | undefined)?.count, 1)
    }).pipe(Effect.provide(pool("leak-site", layer)))
  })

  it.live("a statement held past the threshold is named by its caller's span too", () => {
    const { layer, lines } = capture()
    return Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`SELECT pg_sleep(1.5)`.pipe(Effect.withSpan("slow-nightly-report"), Effect.withSpan("report-job"))
      const leaks = lines.filter((line) => line.message === leakMessage)
      assert.strictEqual(leaks.length, 1)
      const site = String(leaks[0]!.annotations.acquiredAt)
      assert.include(site, "slow-nightly-report")
      assert.include(site, "report-job")
    }).pipe(Effect.provide(pool("leak-site-statement", layer)))
  })
})
