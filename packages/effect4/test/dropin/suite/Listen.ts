/**
 * LISTEN/NOTIFY beyond upstream's two tests (ClientIntegration.ts): order, channels that need quoting, the channel
 * length limit, and UNLISTEN when the listener's scope closes.
 */
import { PgClient } from "@effect/sql-pg"
import type * as Vitest from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { TestClock } from "effect/testing"
import type * as PgServer from "../../support/PgServer.js"
import { clientOn, type MakeLayer } from "./MakeLayer.js"

const within = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.timeoutOrElse({
      duration: "3 seconds",
      orElse: () => Effect.die(new Error("listener did not receive notification in time"))
    }),
    TestClock.withLive
  )

export const suite = (it: Vitest.Vitest.MethodsNonLive<PgServer.PgServer>, makeLayer: MakeLayer) => {
  it.layer(clientOn(makeLayer), { timeout: "30 seconds" })("PgClient listen/notify", (it) => {
    it.effect("notifications arrive in order, with the sender's process id", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const notifications = yield* sql.listen("ordered")
        for (const payload of ["1", "2", "3"]) yield* sql.notify("ordered", payload)
        const received = yield* within(
          Effect.all([Queue.take(notifications), Queue.take(notifications), Queue.take(notifications)])
        )
        assert.deepStrictEqual(
          received.map((n) => n.payload),
          ["1", "2", "3"]
        )
        for (const n of received) assert.isAbove(n.processId, 0)
      })
    )

    it.effect("a channel name that needs quoting", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const channel = `Mixed Case "quoted" channel`
        const notifications = yield* sql.listen(channel)
        yield* sql.notify(channel, "hello")
        const notification = yield* within(Queue.take(notifications))
        assert.deepStrictEqual([notification.channel, notification.payload], [channel, "hello"])
      })
    )

    it.effect("a channel longer than 63 bytes fails typed", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const error = yield* Effect.flip(sql.notify("x".repeat(64), "payload"))
        assert.strictEqual(error.reason._tag, "UnknownError")
        assert.strictEqual(error.message, "PostgreSQL channel names must not exceed 63 UTF-8 bytes")
      })
    )

    it.effect("closing the listener's scope stops listening on the server", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const listening = sql<{ count: number }>`
          SELECT count(*)::int AS count FROM pg_stat_activity WHERE query LIKE 'LISTEN%scoped_channel%'`
        yield* Effect.scoped(
          Effect.gen(function* () {
            const notifications = yield* sql.listen("scoped_channel")
            yield* sql.notify("scoped_channel", "inside")
            assert.strictEqual((yield* within(Queue.take(notifications))).payload, "inside")
          })
        )
        // The session went back to the pool after UNLISTEN: its last statement is no longer the LISTEN.
        assert.deepStrictEqual(yield* listening, [{ count: 0 }])
      })
    )
  })
}
