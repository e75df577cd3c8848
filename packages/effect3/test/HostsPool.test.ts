/**
 * The Effect 3 pool on several hosts, on the real topology (the testkit's primary and streaming standby): a
 * read-write pool that skips the standby, and the failover drill — the primary killed under load, the standby
 * promoted, the pool on the new primary within one backoff step, only the calls of the outage failing.
 */
import { Reactivity } from "@effect/experimental"
import { PrimaryStandby } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Logger, LogLevel, Option, Redacted, Schema } from "effect"
import * as Db from "../src/Db.js"
import * as PoolStatistics from "../src/PoolStatistics.js"
import { eventually, realSleep } from "./utils.js"

const urlOf = (
  pair: PrimaryStandby.PrimaryStandby.Service,
  order: "primary-first" | "standby-first",
  target: string
) => {
  const nodes = order === "primary-first" ? [pair.primary, pair.standby] : [pair.standby, pair.primary]
  const hosts = nodes.map((node) => `${node.host}:${node.port}`).join(",")
  const password = encodeURIComponent(Redacted.value(pair.primary.password))
  return `postgres://${pair.primary.user}:${password}@${hosts}/${pair.primary.database}?target_session_attrs=${target}`
}

const makeDb = (url: string, options: Omit<Db.DbOptions, "url"> = {}) =>
  Db.make({ url, ...options }).pipe(
    Effect.provide(Reactivity.layer),
    Effect.provide(Logger.minimumLogLevel(LogLevel.Error))
  )

const serverPort0 = (sql: Db.Db.Service["sql"]) =>
  Effect.map(sql<{ port: number }>`SELECT inet_server_port() AS port`, (rows) => rows[0]!.port)

const serverPort = (db: Db.Db.Service) =>
  Effect.map(db.sql<{ port: number }>`SELECT inet_server_port() AS port`, (rows) => rows[0]!.port)

// a fresh pair per suite: the drill promotes the standby for good
layer(PrimaryStandby.layer(), { timeout: "120 seconds", excludeTestServices: true })(
  "a read-write pool on a primary and a standby",
  (it) => {
    it.scoped("with the standby listed first, every session is on the primary", () =>
      Effect.gen(function* () {
        const pair = yield* PrimaryStandby.PrimaryStandby
        const db = yield* makeDb(urlOf(pair, "standby-first", "read-write"), { minSize: 3, maxSize: 3 })
        const ports = yield* Effect.all(
          Array.from({ length: 3 }, () => db.withConnection((sql) => Effect.zipLeft(sql`SELECT 1`, realSleep(50)))),
          { concurrency: "unbounded" }
        ).pipe(Effect.zipRight(serverPort(db)))
        assert.strictEqual(ports, pair.primary.port)
        const rows = yield* db.sql<{ transaction_read_only: string }>`SHOW transaction_read_only`
        assert.strictEqual(rows[0]!.transaction_read_only, "off")
      })
    )

    it.scoped(
      "failover: the primary is killed under 20 callers, the standby promoted; the pool serves from the new " +
        "primary within one backoff step, and no call fails once it does",
      () =>
        Effect.gen(function* () {
          const pair = yield* PrimaryStandby.PrimaryStandby
          const db = yield* makeDb(urlOf(pair, "primary-first", "read-write"), {
            minSize: 5,
            maxSize: 10,
            acquireTimeout: "2 seconds",
            connectTimeout: "1 second",
            reconnect: { initialDelay: "200 millis", maxDelay: "1 second" }
          })
          assert.strictEqual(yield* serverPort(db), pair.primary.port)
          yield* db.sql`CREATE TABLE IF NOT EXISTS failover_drill (n int)`
          yield* pair.waitForReplay()

          const log: Array<{ readonly at: number; readonly ok: boolean; readonly port?: number }> = []
          let running = true
          const caller = Effect.gen(function* () {
            while (running) {
              const result = yield* Effect.either(
                db.sql<{ port: number }>`INSERT INTO failover_drill VALUES (1) RETURNING inet_server_port() AS port`
              )
              log.push(
                result._tag === "Right"
                  ? { at: performance.now(), ok: true, port: result.right[0]!.port }
                  : { at: performance.now(), ok: false }
              )
              yield* realSleep(10)
            }
          })
          const callers = yield* Effect.forkAll(Array.from({ length: 20 }, () => caller))
          yield* realSleep(300)

          const killedAt = performance.now()
          yield* pair.primary.kill
          yield* realSleep(300)
          yield* pair.promote
          const promotedAt = performance.now()
          yield* eventually(
            "a write succeeded on the new primary",
            Effect.sync(() => log.some((entry) => entry.ok && entry.port === pair.standby.port)),
            15_000
          )
          yield* realSleep(500)
          running = false
          yield* Fiber.join(callers)

          const firstOnNew = log.find((entry) => entry.ok && entry.port === pair.standby.port)!
          const failures = log.filter((entry) => !entry.ok)
          const afterRecovery = log.filter((entry) => entry.at > firstOnNew.at)
          // figures for the README (not asserted: no timed assertions for performance)
          process.stdout.write(
            `failover drill: ${log.length} calls, ${failures.length} failed (all between the kill and the ` +
              `recovery); first write on the new primary ${Math.round(firstOnNew.at - promotedAt)} ms after ` +
              `promotion, ${Math.round(firstOnNew.at - killedAt)} ms after the kill\n`
          )
          assert.isTrue(failures.every((entry) => entry.at >= killedAt && entry.at <= firstOnNew.at + 2_000))
          assert.isTrue(afterRecovery.every((entry) => !entry.ok || entry.port === pair.standby.port))
          assert.deepStrictEqual(
            afterRecovery.filter((entry) => entry.at > firstOnNew.at + 2_000 && !entry.ok),
            []
          )
          // within one backoff step (maxDelay 1 s) plus one connect attempt after the promotion completed
          assert.isBelow(firstOnNew.at - promotedAt, 1_000 + 1_000 + 500)
          const stats = yield* db.statistics
          assert.isAtMost(stats.total, 10)
          // per host: the old primary down after its failures, the promoted standby serving every session
          const [oldPrimary, newPrimary] = stats.hosts
          assert.deepStrictEqual(
            [oldPrimary!.port, oldPrimary!.up, oldPrimary!.sessions, oldPrimary!.failures > 0],
            [pair.primary.port, false, 0, true]
          )
          assert.isTrue(Option.isSome(oldPrimary!.lastError))
          assert.deepStrictEqual(
            [newPrimary!.port, newPrimary!.role, newPrimary!.up, newPrimary!.sessions],
            [pair.standby.port, "primary", true, stats.total]
          )
          // the hand-written encoder agrees with the schema's for the per-host part too
          assert.strictEqual(
            JSON.stringify(PoolStatistics.encode(stats)),
            JSON.stringify(Schema.encodeSync(PoolStatistics.PoolStatistics)(stats))
          )
        })
    )
  }
)

layer(PrimaryStandby.layer(), { timeout: "120 seconds", excludeTestServices: true })(
  "a standby pool when its standby is promoted",
  (it) => {
    it.scoped(
      "each session learns of the promotion with its next statement, which succeeds, and is evicted at its release",
      () =>
        Effect.gen(function* () {
          const pair = yield* PrimaryStandby.PrimaryStandby
          const db = yield* makeDb(urlOf(pair, "primary-first", "standby"), { minSize: 2, maxSize: 2 })
          assert.strictEqual(yield* serverPort(db), pair.standby.port)
          yield* eventually(
            "both sessions are open",
            Effect.map(db.statistics, (stats) => stats.total === 2)
          )
          yield* pair.promote
          // two callers at once take both sessions: each statement runs on the promoted node and succeeds
          const ports = yield* Effect.all(
            Array.from({ length: 2 }, () =>
              db.withConnection((sql) => Effect.zipLeft(serverPort0(sql), realSleep(50)))
            ),
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual(ports, [pair.standby.port, pair.standby.port])
          yield* eventually(
            "both sessions were evicted",
            Effect.map(
              db.statistics,
              (stats) => stats.connectionsClosed.roleChanged === 2 && stats.connectionsClosed.broken === 0
            )
          )
        })
    )
  }
)
