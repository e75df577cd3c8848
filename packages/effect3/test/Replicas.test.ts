/**
 * Read replicas on the real topology (the testkit's primary and streaming standby): `Db.readOnly` and the
 * `Db.ReadOnlyClient` client on the standby while `SqlClient` stays on the primary, the replicas' own statistics, health
 * and metrics; the standby killed (reads fall back to the primary) and back (reads return to it within one recheck,
 * the fallback sessions closed as `roleChanged`).
 */
import { Reactivity } from "@effect/experimental"
import * as SqlClient from "@effect/sql/SqlClient"
import { PrimaryStandby } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Logger, LogLevel, Metric, Option, Redacted, Schema } from "effect"
import * as Db from "../src/Db.js"
import * as Health from "../src/Health.js"
import { eventually } from "./utils.js"

const urlOf = (pair: PrimaryStandby.PrimaryStandby.Service) => {
  const hosts = [pair.primary, pair.standby].map((node) => `${node.host}:${node.port}`).join(",")
  const password = encodeURIComponent(Redacted.value(pair.primary.password))
  return `postgres://${pair.primary.user}:${password}@${hosts}/${pair.primary.database}?target_session_attrs=read-write`
}

const makeDb = (options: Db.DbOptions) =>
  Db.make(options).pipe(Effect.provide(Reactivity.layer), Effect.provide(Logger.minimumLogLevel(LogLevel.Error)))

const portOf = (sql: Db.Db.Service["sql"]) =>
  Effect.map(sql<{ port: number }>`SELECT inet_server_port() AS port`, (rows) => rows[0]!.port)

const replicasOf = (db: Db.Db.Service) => Option.getOrThrowWith(db.replicas, () => new Error("no replicas configured"))

layer(PrimaryStandby.layer(), { timeout: "120 seconds", excludeTestServices: true })("read replicas", (it) => {
  it.scoped(
    "reads go to the standby through Db.readOnly and Db.ReadOnlyClient, SqlClient stays on the primary; the replicas have " +
      "their own statistics, health section and metrics",
    () =>
      Effect.gen(function* () {
        const pair = yield* PrimaryStandby.PrimaryStandby
        const db = yield* makeDb({ url: urlOf(pair), name: "routing", minSize: 1, maxSize: 2, replicas: true })
        assert.strictEqual(yield* portOf(db.sql), pair.primary.port)
        assert.strictEqual(yield* db.readOnly((sql) => portOf(sql)), pair.standby.port)
        // the tags, as a program sees them
        const viaTags = yield* Effect.all([
          Effect.flatMap(Db.ReadOnlyClient, (sql) => portOf(sql)),
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            Effect.map(sql<{ port: number }>`SELECT inet_server_port() AS port`, (rows) => rows[0]!.port)
          ),
          Db.readOnly((sql) => portOf(sql))
        ]).pipe(
          Effect.provideService(Db.Db, db),
          Effect.provideService(Db.ReadOnlyClient, db.readOnlySql),
          Effect.provideService(SqlClient.SqlClient, db.sql)
        )
        assert.deepStrictEqual(viaTags, [pair.standby.port, pair.primary.port, pair.standby.port])
        // a write through the read-only client fails on the standby
        const write = yield* Effect.either(db.readOnly((sql) => sql`CREATE TABLE replicas_write_refused (n int)`))
        assert.isTrue(write._tag === "Left" && /read-only transaction/.test(String(write.left)))

        const replicas = replicasOf(db)
        const stats = yield* replicas.statistics
        assert.strictEqual(stats.poolName, "routing-replicas")
        assert.strictEqual(stats.maxSize, 2)
        assert.isAtLeast(stats.acquisitions, 3)
        assert.deepStrictEqual(
          stats.hosts.map((h) => [h.port, h.role, h.sessions > 0]),
          [
            [pair.primary.port, "primary", false],
            [pair.standby.port, "standby", true]
          ]
        )
        assert.deepStrictEqual(
          yield* Effect.map(
            Db.replicaStatistics,
            Option.map((s) => s.poolName)
          ).pipe(Effect.provideService(Db.Db, db)),
          Option.some("routing-replicas")
        )
        assert.strictEqual((yield* db.statistics).poolName, "routing")

        const health = yield* db.health
        assert.strictEqual(health.status, "healthy")
        const section = Option.getOrThrow(health.replicas)
        assert.strictEqual(section.status, "healthy")
        assert.strictEqual(section.statistics.poolName, "routing-replicas")
        assert.strictEqual(
          JSON.stringify(Health.encode(health)),
          JSON.stringify(Schema.encodeSync(Health.HealthStatus)(health))
        )

        // the replicas' metrics carry their pool name
        const pools = (yield* Metric.snapshot)
          .filter((pair) => pair.metricKey.name === "db.client.connection.count")
          .flatMap((pair) => pair.metricKey.tags.filter((tag) => tag.key === "db.client.connection.pool.name"))
          .map((tag) => tag.value)
        assert.includeMembers(pools, ["routing", "routing-replicas"])
      })
  )

  it.scoped(
    "replicas that cannot connect do not stop the start: the primary serves, health is degraded naming the " +
      "replicas, a read times out with AcquireTimeout",
    () =>
      Effect.gen(function* () {
        const pair = yield* PrimaryStandby.PrimaryStandby
        const db = yield* makeDb({
          url: urlOf(pair),
          name: "unreachable",
          minSize: 1,
          maxSize: 1,
          acquireTimeout: "500 millis",
          connectTimeout: "300 millis",
          reconnect: { initialAttempts: 1 },
          replicaHosts: "127.0.0.1:1",
          replicaTargetSessionAttrs: "any"
        })
        assert.strictEqual(yield* portOf(db.sql), pair.primary.port)
        const read = yield* Effect.either(db.readOnly((sql) => portOf(sql)))
        assert.isTrue(read._tag === "Left" && read.left._tag === "AcquireTimeout", String(read))
        const health = yield* db.health
        assert.strictEqual(health.status, "degraded")
        assert.match(
          Option.getOrElse(health.reason, () => ""),
          /^the read replicas \(unreachable-replicas\) are /
        )
        assert.notStrictEqual(Option.getOrThrow(health.replicas).status, "healthy")
      })
  )

  it.scoped(
    "the standby killed: reads fall back to the primary; the standby back: reads return to it within one recheck, " +
      "the fallback sessions closed as roleChanged",
    () =>
      Effect.gen(function* () {
        const pair = yield* PrimaryStandby.PrimaryStandby
        const db = yield* makeDb({
          url: urlOf(pair),
          name: "fallback",
          minSize: 2,
          maxSize: 2,
          replicas: true,
          connectTimeout: "1 second",
          reconnect: { initialDelay: "100 millis", maxDelay: "500 millis" }
        })
        const readPort = db.readOnly((sql) => portOf(sql))
        assert.strictEqual(yield* readPort, pair.standby.port)

        yield* pair.standby.kill
        yield* eventually(
          "a read succeeded on the primary",
          Effect.map(Effect.either(readPort), (port) => port._tag === "Right" && port.right === pair.primary.port),
          20_000
        )
        // on the fallback, every read succeeds
        for (let i = 0; i < 10; i++) assert.strictEqual(yield* readPort, pair.primary.port)
        // a write through the read-only pool fails on the fallback primary too (default_transaction_read_only)
        const write = yield* Effect.either(db.readOnly((sql) => sql`CREATE TABLE replicas_fallback_write (n int)`))
        assert.isTrue(write._tag === "Left" && /read-only transaction/.test(String(write.left)), String(write))
        const onFallback = yield* replicasOf(db).statistics
        assert.strictEqual(onFallback.hosts[1]!.up, false)
        assert.strictEqual(onFallback.connectionsClosed.roleChanged, 0)

        yield* pair.standby.start
        const backAt = performance.now()
        yield* eventually(
          "every replica session is on the standby again",
          Effect.map(
            replicasOf(db).statistics,
            (stats) => stats.hosts[0]!.sessions === 0 && stats.hosts[1]!.sessions > 0
          ),
          30_000
        )
        const movedAfterMillis = performance.now() - backAt
        process.stdout.write(
          `read replicas: back on the standby ${Math.round(movedAfterMillis)} ms after it restarted\n`
        )
        for (let i = 0; i < 10; i++) assert.strictEqual(yield* readPort, pair.standby.port)
        const after = yield* replicasOf(db).statistics
        assert.isAtLeast(after.connectionsClosed.roleChanged, 1)
        // the primary pool never moved
        assert.strictEqual(yield* portOf(db.sql), pair.primary.port)
      })
  )
})
