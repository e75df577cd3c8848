/**
 * A server restart, as code written for `PgClient.layer` meets it: a statement fails typed while the server is
 * down, and statements succeed again once it is back, with no new layer. Each part runs on a server of its own, so
 * that stopping it leaves the rest of the suite alone.
 *
 * While the server is down, PgClient.layer fails a statement at once (its connect is refused); a pool that waits for
 * the server fails it by its acquire timeout (ours: 30 s by default). Both are a `SqlError`; the bound is above 30 s.
 */
import type * as Vitest from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import { TestClock } from "effect/testing"
import * as PgServer from "../../support/PgServer.js"
import { clientOn, type MakeLayer } from "./MakeLayer.js"

const selectOne = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ one: number }>`SELECT 1 AS one`)

const within = <A, E, R>(seconds: number, what: string, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.timeoutOrElse({ duration: `${seconds} seconds`, orElse: () => Effect.die(new Error(what)) }))

// One failure is allowed while the pool learns that its sessions died with the old server.
const backAgain = within(20, "no statement succeeded after the restart", Effect.retry(selectOne, { times: 1 })).pipe(
  Effect.andThen(Effect.all([selectOne, selectOne, selectOne], { concurrency: "unbounded" }))
)

export const suite = (it: Vitest.Vitest.MethodsNonLive<PgServer.PgServer>, makeLayer: MakeLayer) => {
  it.layer(clientOn(makeLayer).pipe(Layer.provideMerge(PgServer.layer)), { timeout: "60 seconds" })(
    "PgClient across a server stop",
    (it) => {
      it.effect(
        "a statement fails typed while the server is down, and statements succeed once it is back",
        () =>
          Effect.gen(function* () {
            const server = yield* PgServer.PgServer
            assert.deepStrictEqual(yield* selectOne, [{ one: 1 }])

            yield* server.stop("fast")
            const down = yield* within(
              45,
              "a statement on a stopped server neither failed nor succeeded",
              Effect.flip(selectOne)
            )
            assert.isTrue(SqlError.isSqlError(down), `expected a SqlError, got ${String(down)}`)

            yield* server.start
            assert.deepStrictEqual(yield* backAgain, [[{ one: 1 }], [{ one: 1 }], [{ one: 1 }]])
          }).pipe(TestClock.withLive),
        90_000
      )
    }
  )

  it.layer(clientOn(makeLayer).pipe(Layer.provideMerge(PgServer.layer)), { timeout: "60 seconds" })(
    "PgClient across a server crash",
    (it) => {
      it.effect("statements succeed again after a crash stop and a restart", () =>
        Effect.gen(function* () {
          const server = yield* PgServer.PgServer
          assert.deepStrictEqual(yield* selectOne, [{ one: 1 }])
          yield* server.stop("immediate")
          yield* server.start
          assert.deepStrictEqual(yield* backAgain, [[{ one: 1 }], [{ one: 1 }], [{ one: 1 }]])
        }).pipe(TestClock.withLive)
      )
    }
  )
}
