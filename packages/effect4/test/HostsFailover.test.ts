/**
 * The failover drill on the real topology (the testkit's primary and streaming standby), Effect 4 edition: 100
 * callers writing through a read-write pool listed on both nodes; the primary is killed, the standby promoted. Only
 * the statements in flight at the kill fail, the pool writes on the new primary within one backoff step of the
 * promotion, and no session is left on the old role. The figures (failed calls, time to the first write on the new
 * primary) are printed for the README; none is asserted but the one-step bound.
 */
import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Logger } from "effect"
import { Reactivity } from "effect/reactivity"
import { afterAll, beforeAll } from "vitest"
import { eventually, type Pair, realSleep, startPair, urlOf } from "./utils/primaryStandby.js"

const callers = 100
const maxSize = 10
const multiplexConcurrency = 32

// each mode on a pair of its own: the drill promotes the standby for good
for (const multiplex of [false, true]) {
  describe(`failover under 100 callers${multiplex ? ", multiplexed" : ""}`, () => {
    let pair: Pair
    beforeAll(async () => {
      pair = await startPair()
    }, 120_000)
    afterAll(() => pair?.close())

    it.live(
      "kill the primary, promote the standby: only the calls in flight fail, the first write on the new primary " +
        "comes within one backoff step, and every session ends on the new primary",
      () =>
        Effect.gen(function* () {
          const db = yield* Db.make({
            url: urlOf(pair, [pair.primary, pair.standby], "read-write"),
            minSize: 5,
            maxSize,
            multiplex,
            multiplexConcurrency,
            acquireTimeout: "20 seconds",
            connectTimeout: "1 second",
            reconnect: { initialDelay: "200 millis", maxDelay: "1 second" }
          }).pipe(Effect.provide(Layer.merge(Reactivity.layer, Logger.layer([]))))
          yield* db.sql`CREATE TABLE IF NOT EXISTS failover_drill (n int)`
          yield* Effect.promise(() => pair.waitForReplay())

          const log: Array<{ readonly at: number; readonly ok: boolean; readonly port?: number }> = []
          let running = true
          const caller = Effect.gen(function* () {
            while (running) {
              const exit = yield* Effect.exit(
                db.sql<{ port: number }>`INSERT INTO failover_drill VALUES (1) RETURNING inet_server_port() AS port`
              )
              log.push(
                Exit.isSuccess(exit)
                  ? { at: performance.now(), ok: true, port: exit.value[0]!.port }
                  : { at: performance.now(), ok: false }
              )
              yield* realSleep(10)
            }
          })
          const fibers = yield* Effect.forEach(Array.from({ length: callers }), () => Effect.forkChild(caller))
          yield* realSleep(500)
          assert.isTrue(log.some((entry) => entry.ok && entry.port === pair.primary.port))

          const killedAt = performance.now()
          yield* Effect.promise(() => pair.primary.kill())
          yield* realSleep(300)
          yield* Effect.promise(() => pair.promote())
          const promotedAt = performance.now()
          yield* eventually(
            "a write succeeded on the new primary",
            Effect.sync(() => log.some((entry) => entry.ok && entry.port === pair.standby.port)),
            15_000
          )
          yield* realSleep(1_000)
          running = false
          yield* Fiber.joinAll(fibers)

          const firstOnNew = log.find((entry) => entry.ok && entry.port === pair.standby.port)!
          const failures = log.filter((entry) => !entry.ok)
          const afterRecovery = log.filter((entry) => entry.at > firstOnNew.at)
          // figures for the README (not asserted: no timed assertions for performance)
          process.stdout.write(
            `effect4 failover drill (${callers} callers, maxSize ${maxSize}${multiplex ? ", multiplexed" : ""}): ` +
              `${log.length} calls, ${failures.length} ` +
              `failed (all between the kill and the recovery); first write on the new primary ` +
              `${Math.round(firstOnNew.at - promotedAt)} ms after promotion, ${Math.round(firstOnNew.at - killedAt)} ms ` +
              `after the kill\n`
          )
          // only what was in flight at the kill: at most one statement per session (one per statement slot when
          // multiplexed), none of the queued callers
          assert.isAtMost(failures.length, multiplex ? maxSize * multiplexConcurrency : maxSize)
          assert.isTrue(failures.every((entry) => entry.at >= killedAt && entry.at <= firstOnNew.at))
          assert.isTrue(afterRecovery.every((entry) => entry.ok && entry.port === pair.standby.port))
          // within one backoff step (maxDelay 1 s) plus one connect attempt after the promotion completed
          assert.isBelow(firstOnNew.at - promotedAt, 1_000 + 1_000 + 500)
          // no session left on the old role: the old primary's host has none, the promoted one serves them all
          const stats = yield* db.statistics
          const [oldPrimary, newPrimary] = stats.hosts
          assert.deepStrictEqual(
            [oldPrimary!.port, oldPrimary!.up, oldPrimary!.sessions, oldPrimary!.failures > 0],
            [pair.primary.port, false, 0, true]
          )
          assert.deepStrictEqual(
            [newPrimary!.port, newPrimary!.role, newPrimary!.up, newPrimary!.sessions],
            [pair.standby.port, "primary", true, stats.total]
          )
          const roles = yield* Effect.all(
            Array.from({ length: stats.total }, () =>
              db.withConnection((sql) =>
                Effect.andThen(
                  realSleep(20),
                  sql<{
                    recovery: boolean
                    port: number
                  }>`SELECT pg_is_in_recovery() AS recovery, inet_server_port() AS port`
                )
              )
            ),
            { concurrency: "unbounded" }
          )
          for (const rows of roles) assert.deepStrictEqual(rows[0], { recovery: false, port: pair.standby.port })
        }).pipe(Effect.scoped),
      120_000
    )
  })
}
