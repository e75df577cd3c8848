import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import {
  activeQueries,
  adminClient,
  adminQuery,
  backendPids,
  eventually,
  makeDb,
  realSleep,
  uniqueAppName
} from "./utils.js"

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("the pool with pipeline on", (it) => {
  it.scoped("200 concurrent statements on 2 connections: each its own result, several in flight per connection", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("pipeline-pool")
      const db = yield* makeDb({ minSize: 2, maxSize: 2, pipeline: 16, applicationName })
      const admin = yield* adminClient
      const results = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        (i) => db.sql<{ n: number; pid: number }>`SELECT ${i}::int AS n, pg_backend_pid() AS pid`,
        { concurrency: "unbounded" }
      )
      for (const [i, rows] of results.entries()) assert.strictEqual(rows[0]!.n, i)
      assert.isAtMost(new Set(results.map((rows) => rows[0]!.pid)).size, 2)
      assert.isAtMost((yield* backendPids(admin, applicationName)).length, 2)
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsCreated, 2)
      // statements handed their slots back: nothing checked out, nobody waiting
      yield* eventually(
        "the pool is idle",
        Effect.map(db.statistics, (s) => s.active === 0 && s.waiting === 0)
      )
    })
  )

  it.scoped("a failing statement fails alone; transactions and session state still take a whole connection", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1, pipeline: 8 })
      const [ok, failed] = yield* Effect.all(
        [Effect.exit(db.sql`SELECT 1 AS n`), Effect.exit(db.sql`SELECT 1 / 0 AS n`)],
        { concurrency: "unbounded" }
      )
      assert.isTrue(Exit.isSuccess(ok))
      assert.isTrue(Exit.isFailure(failed))
      if (Exit.isFailure(failed)) assert.match(String(failed.cause), /SQLSTATE 22012/)
      yield* db.sql`DROP TABLE IF EXISTS pipeline_pool_tx`
      yield* db.sql`CREATE TABLE pipeline_pool_tx (id int)`
      // concurrent pipelined statements while a transaction holds the only connection: they wait for it, and
      // none of them runs inside it
      const tx = yield* Effect.fork(
        db.sql.withTransaction(
          Effect.gen(function* () {
            yield* db.sql`INSERT INTO pipeline_pool_tx VALUES (1)`
            yield* realSleep(100)
            return yield* Effect.fail("rolled back" as const)
          })
        )
      )
      yield* realSleep(20)
      const counts = yield* Effect.forEach(
        Array.from({ length: 10 }, () => 0),
        () => db.sql<{ n: number }>`SELECT count(*)::int AS n FROM pipeline_pool_tx`,
        { concurrency: "unbounded" }
      )
      assert.isTrue(Exit.isFailure(yield* Fiber.await(tx)))
      for (const rows of counts) assert.strictEqual(rows[0]!.n, 0)
      // SET is not pipelined: it takes the connection, and the reset clears it afterwards
      yield* db.sql`SET search_path = nowhere`
      const path = yield* db.sql<{ search_path: string }>`SHOW search_path`
      assert.strictEqual(path[0]!.search_path, '"$user", public')
    })
  )

  it.scoped("statements beyond one per connection are granted slots at once: nobody waits while slots are free", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("pipeline-pool-slots")
      const db = yield* makeDb({ minSize: 1, maxSize: 1, pipeline: 16, applicationName })
      const fibers = yield* Effect.forEach(
        Array.from({ length: 10 }, () => 0),
        () => Effect.fork(db.sql`SELECT pg_sleep(0.05)`)
      )
      yield* realSleep(20)
      const during = yield* db.statistics
      yield* Fiber.joinAll(fibers)
      // ten statements on one connection: granted, written, none queued behind another caller
      assert.strictEqual(during.waiting, 0)
      assert.strictEqual((yield* db.statistics).connectionsCreated, 1)
    })
  )

  it.scoped("an interrupted pipelined statement is not cancelled and its slot comes back", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("pipeline-pool-interrupt")
      const db = yield* makeDb({ minSize: 1, maxSize: 1, pipeline: 4, applicationName })
      const admin = yield* adminClient
      const slow = yield* Effect.fork(db.sql`SELECT pg_sleep(0.4)`)
      yield* eventually(
        "the sleep runs",
        Effect.map(activeQueries(admin, applicationName), (n) => n === 1)
      )
      yield* Fiber.interrupt(slow)
      // still running on the server: abandoned, never cancelled
      assert.strictEqual(yield* activeQueries(admin, applicationName), 1)
      const rows = yield* db.sql<{ n: number }>`SELECT 2 AS n`
      assert.strictEqual(rows[0]!.n, 2)
      yield* eventually(
        "the slot is back",
        Effect.map(db.statistics, (s) => s.active === 0)
      )
      const stats = yield* db.statistics
      assert.strictEqual(stats.connectionsCreated, 1)
      assert.strictEqual(stats.connectionsClosed.cancel, 0)
      yield* adminQuery(admin, "SELECT 1")
    })
  )
})
