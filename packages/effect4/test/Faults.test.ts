import { Db, PoolError } from "@effect-pg-pool/effect4"
import { FaultProxy } from "@effect-pg-pool/testkit/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option, Redacted, Schedule } from "effect"
import { afterAll, beforeAll } from "vitest"
import { dbLayer } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

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

const errorOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined

describe("faults", () => {
  it.live(
    "behind a blackhole a caller fails with AcquireTimeout instead of hanging, and is served once it clears",
    () =>
      Effect.gen(function* () {
        yield* Db.withConnection((sql) => sql`SELECT 1`)
        proxy.blackhole()
        // the idle session is validated (validateAfterIdle 0): the check hangs, the caller's deadline ends it
        const exit = yield* Effect.exit(Db.withConnection((sql) => sql`SELECT 1`))
        assert.instanceOf(errorOf(exit), PoolError.AcquireTimeout)
        proxy.restore()
        const rows = yield* Db.withConnection((sql) => sql<{ one: number }>`SELECT 1 AS one`).pipe(
          Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 })
        )
        assert.strictEqual(rows[0]!.one, 1)
      }).pipe(
        Effect.ensuring(Effect.sync(() => proxy.restore())),
        Effect.provide(
          dbLayer(server, {
            url: Redacted.make(proxy.url),
            minSize: 1,
            maxSize: 1,
            acquireTimeout: "1500 millis",
            validateAfterIdle: 0,
            validationTimeout: "500 millis",
            connectTimeout: "1 second"
          })
        )
      )
  )

  it.live("when every socket is reset, the pool drops its sessions and serves again with new ones", () =>
    Effect.gen(function* () {
      yield* Db.withConnection((sql) => sql`SELECT 1`)
      proxy.resetAll()
      yield* Effect.repeat(Db.statistics, {
        until: (s) => s.connectionsClosed.broken >= 1,
        schedule: Schedule.spaced("10 millis")
      })
      const rows = yield* Db.withConnection((sql) => sql<{ one: number }>`SELECT 1 AS one`)
      assert.strictEqual(rows[0]!.one, 1)
      const stats = yield* Db.statistics
      assert.strictEqual(stats.active, 0)
      assert.isAtLeast(stats.connectionsCreated, 2)
    }).pipe(Effect.provide(dbLayer(server, { url: Redacted.make(proxy.url), minSize: 1, maxSize: 2 })))
  )
})
