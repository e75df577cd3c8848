import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Schedule } from "effect"
import { afterAll, beforeAll } from "vitest"
import { dbLayer } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

describe("metrics", () => {
  it.live("the pool's figures are Effect metrics named db.client.connection.*, with the pool name", () =>
    Effect.gen(function* () {
      yield* Db.withConnection((sql) => sql`SELECT 1`)
      const ours = Effect.map(Metric.snapshot, (all) =>
        all.filter(
          (m) => (m.attributes as Record<string, unknown> | undefined)?.["db.client.connection.pool.name"] === "metered"
        )
      )
      // the connection-count gauges are refreshed once a second
      const snapshot = yield* Effect.repeat(ours, {
        until: (all) => all.some((m) => m.id === "db.client.connection.count"),
        schedule: Schedule.spaced("50 millis")
      })
      const find = (id: string, extra: Record<string, string> = {}) =>
        snapshot.find(
          (m) =>
            m.id === id &&
            Object.entries(extra).every(([k, v]) => (m.attributes as Record<string, unknown> | undefined)?.[k] === v)
        )
      const idle = find("db.client.connection.count", { "db.client.connection.state": "idle" })
      assert.isDefined(idle)
      assert.strictEqual((idle!.state as { value: number }).value, 2)
      assert.strictEqual((find("db.client.connection.max")!.state as { value: number }).value, 3)
      assert.strictEqual((find("db.client.connection.pool.state")!.state as { value: number }).value, 0)
      const wait = find("db.client.connection.wait_time")
      assert.strictEqual((wait!.state as { count: number }).count, 1)
      const created = find("db.client.connection.create_time")
      assert.strictEqual((created!.state as { count: number }).count, 2)
    }).pipe(Effect.provide(dbLayer(server, { name: "metered", minSize: 2, maxSize: 3 })))
  )
})
