/**
 * Error mapping: the ports of @effect/sql-pg's `test/SqlErrorClassification.test.ts` and
 * `test/TransactionAcquire.test.ts`. Upstream feeds SQLSTATEs to the classifier through a fake pg pool; here a real
 * server raises them (`RAISE ... USING ERRCODE`, or the real failure), so the drop-in's whole path from the wire to
 * `SqlError.reason` is under test.
 *
 * Left out: "uses unknown for ... non-string ... constraints" — the wire carries the constraint as text, so a
 * number cannot arrive from a server (the missing and blank cases are kept).
 */
import { PgClient } from "@effect/sql-pg"
import type * as Vitest from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import { TestClock } from "effect/testing"
import * as Net from "node:net"
import * as PgServer from "../../support/PgServer.js"
import { clientOn, type MakeLayer } from "./MakeLayer.js"

const reasonOf = <A, R>(effect: Effect.Effect<A, SqlError.SqlError, R>) =>
  Effect.map(Effect.flip(effect), (error) => error.reason)

const raise = (code: string, options = "") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    reasonOf(
      sql.unsafe(`DO $$ BEGIN RAISE EXCEPTION 'raised %', '${code}' USING ERRCODE = '${code}'${options}; END $$`)
    )
  )

const assertUniqueViolation = (reason: SqlError.SqlErrorReason, constraint: string) => {
  assert.strictEqual(reason._tag, "UniqueViolation")
  if (reason._tag === "UniqueViolation") {
    assert.strictEqual(reason.constraint, constraint)
  }
}

// A port that nothing listens on: bound, then closed.
const closedPort = Effect.callback<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 1
    server.close(() => resume(Effect.succeed(port)))
  })
})

export const suite = (it: Vitest.Vitest.MethodsNonLive<PgServer.PgServer>, makeLayer: MakeLayer) => {
  it.layer(clientOn(makeLayer), { timeout: "30 seconds" })("PgClient SqlError classification", (it) => {
    it.effect("checks 42501 before generic 42*", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE ROLE dropin_reader NOLOGIN`
        yield* sql`CREATE TABLE dropin_secret (x int)`
        const authorization = yield* reasonOf(
          sql.withTransaction(Effect.andThen(sql`SET LOCAL ROLE dropin_reader`, sql`SELECT x FROM dropin_secret`))
        )
        assert.strictEqual(authorization._tag, "AuthorizationError")

        const syntax = yield* reasonOf(sql`SELECT x FROM dropin_no_such_table`)
        assert.strictEqual(syntax._tag, "SqlSyntaxError")
      })
    )

    it.effect("falls back to UnknownError for unmapped SQLSTATE", () =>
      Effect.gen(function* () {
        const reason = yield* raise("ZZZZZ")
        assert.strictEqual(reason._tag, "UnknownError")
      })
    )

    it.effect("classifies 23505 as UniqueViolation and trims the constraint name", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE users (email text CONSTRAINT users_email_key UNIQUE)`
        yield* sql`INSERT INTO users ${sql.insert({ email: "a@example.com" })}`
        const real = yield* reasonOf(sql`INSERT INTO users ${sql.insert({ email: "a@example.com" })}`)
        assertUniqueViolation(real, "users_email_key")

        const padded = yield* raise("23505", ", CONSTRAINT = '  users_email_key  '")
        assertUniqueViolation(padded, "users_email_key")
      })
    )

    it.effect("uses unknown for missing or blank unique violation constraints", () =>
      Effect.gen(function* () {
        const missing = yield* raise("23505")
        assertUniqueViolation(missing, "unknown")

        const blank = yield* raise("23505", ", CONSTRAINT = '   '")
        assertUniqueViolation(blank, "unknown")
      })
    )

    it.effect("keeps non-unique integrity constraints classified as ConstraintError", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE accounts (id int PRIMARY KEY)`
        yield* sql`CREATE TABLE orders (user_id int CONSTRAINT orders_user_id_fkey REFERENCES accounts (id))`
        const reason = yield* reasonOf(sql`INSERT INTO orders (user_id) VALUES (1)`)
        assert.strictEqual(reason._tag, "ConstraintError")
      })
    )

    // The rest of 4.0.5's table (internal/sqlError.ts classifySqlState).
    it.effect("classifies deadlock, serialization, lock and connection SQLSTATEs", () =>
      Effect.gen(function* () {
        assert.strictEqual((yield* raise("40P01"))._tag, "DeadlockError")
        assert.strictEqual((yield* raise("40001"))._tag, "SerializationError")
        assert.strictEqual((yield* raise("55P03"))._tag, "LockTimeoutError")
        assert.strictEqual((yield* raise("08006"))._tag, "ConnectionError")
        assert.strictEqual((yield* raise("28000"))._tag, "AuthenticationError")
      })
    )

    it.effect("a statement_timeout is a StatementTimeoutError", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const reason = yield* reasonOf(
          sql.withTransaction(Effect.andThen(sql`SET LOCAL statement_timeout = '20ms'`, sql`SELECT pg_sleep(5)`))
        )
        assert.strictEqual(reason._tag, "StatementTimeoutError")
      }).pipe(TestClock.withLive)
    )

    it.effect("the client stays usable after each failure", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* Effect.forEach(["ZZZZZ", "23505", "40P01", "08006"], (code) => raise(code))
        const rows = yield* sql<{ one: number }>`SELECT 1 AS one`
        assert.deepStrictEqual(rows, [{ one: 1 }])
      })
    )
  })

  // PgClient.layer connects lazily: the failure surfaces at the first statement. A drop-in may fail its build
  // instead, but with the same SqlError.
  it.effect("a wrong password is an AuthenticationError", () =>
    Effect.gen(function* () {
      const server = yield* PgServer.PgServer
      const url = new URL(Redacted.value(server.url))
      url.password = "not-the-password"
      const error = yield* Effect.flip(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
          Effect.provide(makeLayer({ url: Redacted.make(url.toString()) }))
        )
      )
      assert.isTrue(SqlError.isSqlError(error), `expected a SqlError, got ${String(error)}`)
      assert.strictEqual((error as SqlError.SqlError).reason._tag, "AuthenticationError")
    }).pipe(TestClock.withLive)
  )

  // Upstream: "withTransaction surfaces acquire failures instead of defecting" (a pool whose connect fails with
  // 08006). Here nothing listens on the port.
  it.effect("withTransaction surfaces acquire failures instead of defecting", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const error = yield* Effect.flip(
        Effect.flatMap(PgClient.PgClient, (sql) => sql.withTransaction(sql`SELECT 1`)).pipe(
          Effect.provide(makeLayer({ host: "127.0.0.1", port, username: "postgres", connectTimeout: "2 seconds" }))
        )
      )
      assert.isTrue(SqlError.isSqlError(error), `expected a SqlError, got ${String(error)}`)
      assert.strictEqual((error as SqlError.SqlError).reason._tag, "ConnectionError")
    }).pipe(TestClock.withLive)
  )
}
