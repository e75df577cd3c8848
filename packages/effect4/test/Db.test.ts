import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Redacted } from "effect"
import { afterAll, beforeAll } from "vitest"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

const quiet = Logger.layer([])
const dbLayer = (options: Db.DbOptions = {}) =>
  Db.layer({ url: Redacted.make(server.url), ...options }).pipe(Layer.provide(quiet))

describe("Db", () => {
  it.live("serves withConnection on one session for the whole callback", () =>
    Effect.gen(function* () {
      const pids = yield* Db.withConnection((sql) =>
        Effect.gen(function* () {
          const a = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
          const b = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
          return [a[0]!.pid, b[0]!.pid]
        })
      )
      assert.strictEqual(pids[0], pids[1])
      const stats = yield* Db.statistics
      assert.strictEqual(stats.acquisitions, 1)
      assert.strictEqual(stats.active, 0)
    }).pipe(Effect.provide(dbLayer({ minSize: 1, maxSize: 2 })))
  )
})
