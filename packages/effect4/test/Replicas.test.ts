/**
 * Read replicas, Effect 4 edition, on the real topology (the testkit's primary and streaming standby): with
 * `replicas: true` a second, read-only pool (`<name>-replicas`, target `prefer-standby`) serves `Db.readOnly` and the
 * `Db.ReadOnlyClient` from the standby while `SqlClient` stays on the primary; with the standby down reads fall back
 * to the primary, and once it is back they move to it again (the fallback's recheck).
 */
import { Db, Health } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option, Queue } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import { eventually, type Pair, startPair, urlOf } from "./utils/primaryStandby.js"

let pair: Pair
beforeAll(async () => {
  pair = await startPair()
}, 120_000)
afterAll(() => pair?.close())

const portOf = (sql: Db.Service["sql"]) =>
  Effect.map(sql<{ port: number }>`SELECT inet_server_port() AS port`, (rows) => rows[0]!.port)

describe("read replicas", () => {
  it.live("reads go to the standby, writes stay on the primary; the standby down and back", () =>
    Effect.gen(function* () {
      const db = yield* Db.Db
      const { primary, standby } = pair
      assert.strictEqual(yield* Effect.flatMap(SqlClient.SqlClient, (sql) => portOf(sql as never)), primary.port)
      assert.strictEqual(yield* portOf(db.sql), primary.port)
      assert.strictEqual(yield* Db.readOnly(portOf), standby.port)
      assert.strictEqual(yield* Effect.flatMap(Db.ReadOnlyClient, portOf), standby.port)
      // LISTEN through the read-only client goes to the primary: a standby cannot LISTEN
      const readOnlySql = yield* Db.ReadOnlyClient
      const heard = yield* Effect.scoped(
        Effect.gen(function* () {
          const queue = yield* readOnlySql.listen("replicas_test")
          yield* db.sql.notify("replicas_test", "hello")
          return yield* Queue.take(queue)
        })
      )
      assert.strictEqual(heard.payload, "hello")
      const replicaStats = Option.getOrThrow(yield* Db.replicaStatistics)
      assert.strictEqual(replicaStats.poolName, "default-replicas")
      assert.deepStrictEqual(
        replicaStats.hosts.map((h) => [h.port, h.role]),
        [
          [primary.port, "primary"],
          [standby.port, "standby"]
        ]
      )
      const health = yield* Db.health
      assert.strictEqual(health.status, "healthy")
      assert.strictEqual(Option.getOrThrow(health.replicas).statistics.poolName, "default-replicas")
      assert.strictEqual(Health.encode(health).replicas?.status, "healthy")

      // the standby goes down: reads fall back to the primary, writes never notice
      yield* Effect.promise(() => standby.stop({ mode: "fast" }))
      yield* eventually(
        "reads fall back to the primary",
        Effect.map(Effect.exit(Db.readOnly(portOf)), (exit) => exit._tag === "Success" && exit.value === primary.port),
        15_000
      )
      assert.strictEqual(yield* portOf(db.sql), primary.port)
      // the replicas' sessions default to read-only transactions: a write fails on the fallback primary too
      const write = yield* Effect.exit(Db.readOnly((sql) => sql`CREATE TABLE replica_write_probe (n int)`))
      assert.isTrue(write._tag === "Failure" && String(write.cause).includes("read-only transaction"), String(write))
      // and it comes back: the fallback's recheck finds it, and reads move back
      yield* Effect.promise(() => standby.start())
      yield* eventually(
        "reads are on the standby again",
        Effect.map(Effect.exit(Db.readOnly(portOf)), (exit) => exit._tag === "Success" && exit.value === standby.port),
        20_000
      )
      const after = Option.getOrThrow(yield* Db.replicaStatistics)
      assert.isAtLeast(after.connectionsClosed.roleChanged, 1, "the fallback sessions were evicted")
      // a refresh (a rotated password, a DNS failover) retires the sessions of both pools
      yield* Db.refresh
      yield* eventually(
        "both pools retired their sessions",
        Effect.map(
          Effect.all([Db.statistics, Db.replicaStatistics]),
          ([primaryStats, replicaStats]) =>
            primaryStats.connectionsClosed.refreshed >= 1 &&
            Option.getOrThrow(replicaStats).connectionsClosed.refreshed >= 1
        )
      )
    }).pipe(
      Effect.provide(
        Layer.unwrap(
          Effect.sync(() =>
            Db.layer({
              url: urlOf(pair, [pair.primary, pair.standby], "read-write"),
              replicas: true,
              minSize: 1,
              maxSize: 2,
              acquireTimeout: "10 seconds",
              connectTimeout: "1 second",
              reconnect: { initialDelay: "100 millis", maxDelay: "500 millis" }
            }).pipe(Layer.provide(Logger.layer([])))
          )
        )
      )
    )
  )
})
