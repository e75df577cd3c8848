/**
 * Interruption as code written for `PgClient.layer` relies on it: cleanup statements in the finalizers of an
 * interrupted fiber still run (effect's own PersistedQueue releases its row locks that way), and an interrupted
 * statement is cancelled on the server.
 */
import type * as Vitest from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import type * as PgServer from "../../support/PgServer.js"
import { clientOn, type MakeLayer } from "./MakeLayer.js"

const values = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ x: number }>`SELECT x FROM ${sql(table)} ORDER BY x`, (rows) => rows.map((row) => row.x))
  )

export const suite = (it: Vitest.Vitest.MethodsNonLive<PgServer.PgServer>, makeLayer: MakeLayer) => {
  it.layer(clientOn(makeLayer), { timeout: "30 seconds" })("PgClient interruption", (it) => {
    it.effect("a statement in the finalizer of an interrupted fiber runs", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE interrupted_finalizer (x int)`
        const started = yield* Deferred.make<void>()
        const fiber = yield* Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.ensuring(Effect.orDie(sql`INSERT INTO interrupted_finalizer VALUES (1)`)),
          Effect.forkScoped
        )
        yield* Deferred.await(started)
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* values("interrupted_finalizer"), [1])
      })
    )

    it.effect("acquireRelease's release runs its statement when the fiber is interrupted", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE interrupted_release (x int)`
        const acquired = yield* Deferred.make<void>()
        const fiber = yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Effect.acquireRelease(sql`INSERT INTO interrupted_release VALUES (1)`, () =>
              Effect.orDie(sql`INSERT INTO interrupted_release VALUES (2)`)
            )
            yield* Deferred.succeed(acquired, undefined)
            return yield* Effect.never
          })
        ).pipe(Effect.forkScoped)
        yield* Deferred.await(acquired)
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* values("interrupted_release"), [1, 2])
      })
    )

    it.effect("an interrupted statement is cancelled on the server, and the client stays usable", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const sleeping = sql<{ count: number }>`
          SELECT count(*)::int AS count FROM pg_stat_activity
          WHERE state = 'active' AND query = 'SELECT pg_sleep(30) /* interrupted */'`.pipe(
          Effect.map(([row]) => row.count)
        )
        const fiber = yield* sql`SELECT pg_sleep(30) /* interrupted */`.pipe(Effect.forkScoped)
        yield* sleeping.pipe(Effect.repeat({ until: (n) => n === 1, schedule: Schedule.spaced("10 millis") }))
        yield* Fiber.interrupt(fiber)
        const left = yield* sleeping.pipe(
          Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("10 millis") }),
          Effect.timeoutOrElse({ duration: "3 seconds", orElse: () => sleeping })
        )
        assert.strictEqual(left, 0)
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      }).pipe(TestClock.withLive)
    )
  })
}
