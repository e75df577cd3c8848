import { Db } from "@effect-pg-pool/effect4"
import { FaultProxy } from "@effect-pg-pool/testkit/core"
import { assert, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Redacted, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { dbLayer, serverSessions, uniqueAppName } from "./utils/pools.js"
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

/** mulberry32: the soak's choices from one seed, printed in the test name to replay it. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000)

for (const multiplex of [false, true]) {
  it.live(
    `chaos (seed ${seed}, multiplex ${multiplex}): 100 callers under faults and interruptions — every call settles, typed; no leak after`,
    () => {
      const name = uniqueAppName(`chaos-${multiplex}`)
      const random = prng(seed + (multiplex ? 1 : 0))
      return Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const outcomes = { ok: 0, typed: 0, interrupted: 0, hung: 0, defects: [] as Array<string> }
        const operation = (choice: number) =>
          choice < 0.4
            ? sql`SELECT pg_sleep(${random() * 0.05})`
            : choice < 0.7
              ? Db.withConnection((conn) => Effect.andThen(conn`SET statement_timeout = 5000`, conn`SELECT 1`))
              : sql.withTransaction(Effect.andThen(sql`SELECT 1`, sql`SELECT pg_sleep(${random() * 0.03})`))
        const caller = Effect.gen(function* () {
          for (let i = 0; i < 15; i++) {
            const choice = random()
            const deadline = random() < 0.3 ? 20 + random() * 200 : 10_000
            const exit = yield* Effect.exit(
              operation(choice).pipe(
                Effect.timeout(deadline),
                // a call that does not settle within 20 s hangs: the soak fails
                Effect.timeoutOrElse({ duration: 20_000, orElse: () => Effect.sync(() => outcomes.hung++) })
              )
            )
            if (Exit.isSuccess(exit)) outcomes.ok++
            else if (Cause.hasDies(exit.cause)) outcomes.defects.push(Cause.pretty(exit.cause))
            else if (Cause.hasFails(exit.cause)) outcomes.typed++
            else outcomes.interrupted++
          }
        })
        const callers = yield* Effect.forkChild(
          Effect.all(
            Array.from({ length: 100 }, () => caller),
            { concurrency: "unbounded" }
          )
        )
        const faults = [
          () => proxy.blackhole(),
          () => proxy.resetAll(),
          () => proxy.refuse(),
          () => proxy.latency(30),
          () => proxy.restore()
        ]
        for (let i = 0; i < 8; i++) {
          faults[Math.floor(random() * faults.length)]!()
          yield* Effect.sleep(150 + random() * 350)
          proxy.restore()
          yield* Effect.sleep(100 + random() * 200)
        }
        proxy.restore()
        yield* Fiber.join(callers)
        assert.deepStrictEqual(outcomes.defects, [])
        assert.strictEqual(outcomes.hung, 0)
        assert.isAbove(outcomes.ok, 0)
        // quiescence: nothing held, nothing waiting; the pool's sessions are the server's
        const stats = yield* Effect.repeat(Db.statistics, {
          until: (s) => s.active === 0 && s.waiting === 0 && s.pending === 0,
          schedule: Schedule.spaced("50 millis")
        })
        assert.strictEqual(stats.total, stats.idle)
        assert.isAtMost(stats.total, 5)
        const rows = yield* sql<{ one: number }>`SELECT 1 AS one`.pipe(
          Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 })
        )
        assert.strictEqual(rows[0]!.one, 1)
        const settled = yield* Effect.repeat(Effect.all([Db.statistics, serverSessions(server, name)]), {
          until: ([s, sessions]) => s.active === 0 && sessions.length === s.total,
          schedule: Schedule.spaced("100 millis")
        })
        assert.strictEqual(settled[1].length, settled[0].total)
      }).pipe(
        Effect.ensuring(Effect.sync(() => proxy.restore())),
        Effect.provide(
          dbLayer(server, {
            url: Redacted.make(proxy.url),
            applicationName: name,
            minSize: 2,
            maxSize: 5,
            acquireTimeout: "2 seconds",
            connectTimeout: "1 second",
            validationTimeout: "500 millis",
            shutdownTimeout: "2 seconds",
            multiplex,
            multiplexConcurrency: 8
          })
        )
      )
    },
    120_000
  )
}
