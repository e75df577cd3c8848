/**
 * `withTransaction` as code written for `PgClient.layer` relies on it: one session, rollback on failure and on
 * interruption, nested calls as savepoints, a COMMIT that PostgreSQL answers with ROLLBACK failing, `afterCommit`,
 * and transactions on a pool of one waiting for each other (the behaviour upstream's "serializes transactions that
 * share one pg.Client" checks on a fake client).
 */
import type * as Vitest from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option, Ref } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import type * as PgServer from "../../support/PgServer.js"
import { clientOn, type MakeLayer } from "./MakeLayer.js"

const names = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ name: string }>`SELECT name FROM ${sql(table)} ORDER BY name`, (rows) =>
      rows.map((row) => row.name)
    )
  )

export const suite = (it: Vitest.Vitest.MethodsNonLive<PgServer.PgServer>, makeLayer: MakeLayer) => {
  it.layer(clientOn(makeLayer), { timeout: "30 seconds" })("PgClient withTransaction", (it) => {
    it.effect("statements of a transaction share one session and one transaction", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const seen = yield* sql.withTransaction(
          Effect.all(
            [1, 2, 3].map(
              () => sql<{ pid: number; xid: string }>`SELECT pg_backend_pid() AS pid, txid_current()::text AS xid`
            ),
            { concurrency: "unbounded" }
          )
        )
        const [first, ...rest] = seen.map(([row]) => row)
        for (const row of rest) assert.deepStrictEqual(row, first)
      })
    )

    it.effect("commits on success, rolls back on failure", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE tx_basic (name text)`
        yield* sql.withTransaction(sql`INSERT INTO tx_basic VALUES ('kept')`)
        const failed = yield* Effect.flip(
          sql.withTransaction(Effect.andThen(sql`INSERT INTO tx_basic VALUES ('dropped')`, Effect.fail("boom")))
        )
        assert.strictEqual(failed, "boom")
        assert.deepStrictEqual(yield* names("tx_basic"), ["kept"])
      })
    )

    it.effect("nested withTransaction is a savepoint: an inner failure rolls back to it, the outer commits", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE tx_nested (name text)`
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO tx_nested VALUES ('outer')`
            yield* sql.withTransaction(sql`INSERT INTO tx_nested VALUES ('inner ok')`)
            const inner = yield* Effect.flip(
              sql.withTransaction(
                Effect.gen(function* () {
                  yield* sql`INSERT INTO tx_nested VALUES ('inner rolled back')`
                  yield* sql.withTransaction(sql`INSERT INTO tx_nested VALUES ('innermost')`)
                  return yield* Effect.fail("inner failure")
                })
              )
            )
            assert.strictEqual(inner, "inner failure")
            yield* sql`INSERT INTO tx_nested VALUES ('outer after')`
          })
        )
        assert.deepStrictEqual(yield* names("tx_nested"), ["inner ok", "outer", "outer after"])
      })
    )

    it.effect("a failed statement caught inside rolls back to its savepoint and the transaction goes on", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE tx_recover (name text PRIMARY KEY)`
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO tx_recover VALUES ('a')`
            const duplicate = yield* Effect.flip(sql.withTransaction(sql`INSERT INTO tx_recover VALUES ('a')`))
            assert.strictEqual(duplicate.reason._tag, "UniqueViolation")
            yield* sql`INSERT INTO tx_recover VALUES ('b')`
          })
        )
        assert.deepStrictEqual(yield* names("tx_recover"), ["a", "b"])
      })
    )

    it.effect("a COMMIT answered by ROLLBACK fails the transaction", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE tx_aborted (name text PRIMARY KEY)`
        const error = yield* Effect.flip(
          sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO tx_aborted VALUES ('a')`
              // Caught without a savepoint: the transaction is aborted, and PostgreSQL answers COMMIT with ROLLBACK.
              yield* Effect.ignore(sql`INSERT INTO tx_aborted VALUES ('a')`)
            })
          )
        )
        assert.strictEqual(error._tag, "SqlError")
        assert.strictEqual(error.reason._tag, "UnknownError")
        assert.strictEqual(error.message, "PgClient: COMMIT rolled back an aborted transaction")
        assert.deepStrictEqual(yield* names("tx_aborted"), [])
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      })
    )

    it.effect("interrupting a transaction rolls it back and the client stays usable", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE tx_interrupted (name text)`
        const inserted = yield* Deferred.make<void>()
        const fiber = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO tx_interrupted VALUES ('never committed')`
              yield* Deferred.succeed(inserted, undefined)
              yield* sql`SELECT pg_sleep(30)`
            })
          )
          .pipe(Effect.forkScoped)
        yield* Deferred.await(inserted)
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* names("tx_interrupted"), [])
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      }).pipe(TestClock.withLive)
    )

    it.effect("afterCommit runs after COMMIT, and not after a rollback", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const log = yield* Ref.make<ReadonlyArray<string>>([])
        yield* sql.withTransaction(
          Effect.andThen(
            sql.afterCommit(Ref.update(log, (entries) => [...entries, "committed"])),
            Ref.update(log, (entries) => [...entries, "body"])
          )
        )
        yield* Effect.ignore(
          sql.withTransaction(
            Effect.andThen(
              sql.afterCommit(Ref.update(log, (entries) => [...entries, "rolled back"])),
              Effect.fail("no")
            )
          )
        )
        assert.deepStrictEqual(yield* Ref.get(log), ["body", "committed"])
      })
    )
  })

  it.layer(clientOn(makeLayer, { maxConnections: 1 }), { timeout: "30 seconds" })(
    "PgClient withTransaction on one connection",
    (it) => {
      it.effect("a second transaction begins only after the first ends", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const firstBodyStarted = yield* Deferred.make<void>()
          const releaseFirstBody = yield* Deferred.make<void>()
          const secondBodyStarted = yield* Deferred.make<void>()

          const first = yield* sql
            .withTransaction(
              Effect.gen(function* () {
                yield* Deferred.succeed(firstBodyStarted, undefined)
                yield* Deferred.await(releaseFirstBody)
              })
            )
            .pipe(Effect.forkScoped)
          yield* Deferred.await(firstBodyStarted)
          const second = yield* sql
            .withTransaction(Deferred.succeed(secondBodyStarted, undefined))
            .pipe(Effect.forkScoped)

          const overlap = yield* Deferred.await(secondBodyStarted).pipe(Effect.timeoutOption("100 millis"))
          yield* Deferred.succeed(releaseFirstBody, undefined)
          yield* Fiber.join(first)
          yield* Fiber.join(second)

          assert.isTrue(Option.isNone(overlap))
        }).pipe(TestClock.withLive)
      )
    }
  )
}
