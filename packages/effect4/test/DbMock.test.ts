// Ported from the Effect 3 edition's DbMock.test.ts: the same script, record, transactions, listen/notify and
// health, through the Effect 4 edition's client; the failures are @effect/sql-pg 4's classified SqlErrors.
import { Db, DbMock } from "@effect-pg-pool/effect4"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option, Queue, Stream, String as Str, Tracer } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

// What a user would test through the mock: a repository written against SqlClient only.
interface User {
  readonly id: number
  readonly name: string
}

const UserRepo = {
  findById: (id: number) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<User>`
        SELECT id, name
        FROM users
        WHERE id = ${id}
      `
      return Option.fromUndefinedOr(rows[0])
    }),
  insert: (name: string) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly id: number }>`INSERT INTO users ${sql.insert({ name })} RETURNING id`
      return rows[0]!.id
    })
}

const summary = (queries: ReadonlyArray<DbMock.RecordedQuery>) => queries.map((q) => `${q.connection}: ${q.sql}`)

/** The server's fields a scripted failure carries, as @effect/sql-pg 4 puts them on the reason's cause. */
const causeOf = (error: SqlError.SqlError) => (error.reason as { readonly cause: any }).cause

describe("DbMock", () => {
  it.effect("answers a repository's queries from the script and records them", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* UserRepo.findById(1), Option.some({ id: 1, name: "Ann" }))
      assert.deepStrictEqual(yield* UserRepo.findById(2), Option.none())
      assert.strictEqual(yield* UserRepo.insert("Bob"), 7)
      const queries = yield* DbMock.queries
      assert.deepStrictEqual(
        queries.map(({ kind, params, sql }) => ({ sql, params, kind })),
        [
          { sql: "SELECT id, name FROM users WHERE id = $1", params: [1], kind: "execute" },
          { sql: "SELECT id, name FROM users WHERE id = $1", params: [2], kind: "execute" },
          { sql: 'INSERT INTO users ("name") VALUES ($1) RETURNING id', params: ["Bob"], kind: "execute" }
        ]
      )
      yield* DbMock.clear
      assert.deepStrictEqual(yield* DbMock.queries, [])
    }).pipe(
      Effect.provide(
        DbMock.layer({
          responses: [
            DbMock.respondWith(/FROM users WHERE id = \$1/, (_sql, [id]) => (id === 1 ? [{ id: 1, name: "Ann" }] : [])),
            DbMock.respond(/^INSERT INTO users/i, [{ id: 7 }])
          ]
        })
      )
    )
  )

  it.effect("fails scripted statements with the SqlError production would raise", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(UserRepo.insert("Ann"))
      assert.strictEqual(error._tag, "SqlError")
      assert.strictEqual(error.reason._tag, "UniqueViolation")
      assert.strictEqual(error.message, "PgConnection: Query failed")
      const cause = causeOf(error)
      assert.strictEqual(cause.message, 'duplicate key value violates unique constraint "users_name_key"')
      assert.deepStrictEqual([cause.code, cause.constraint, cause.severity], ["23505", "users_name_key", "ERROR"])
      assert.strictEqual((error.reason as { readonly constraint: string }).constraint, "users_name_key")
      // the failed statement is recorded too
      assert.deepStrictEqual(
        (yield* DbMock.queries).map((q) => q.params),
        [["Ann"]]
      )
      const lost = yield* Effect.flip(UserRepo.findById(1))
      assert.strictEqual(lost.reason._tag, "ConnectionError")
      // a SqlError of the test's own, as the Effect 4 edition's fail took it first
      const own = yield* Effect.flip(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DELETE FROM orders`))
      assert.strictEqual(own.reason._tag, "SerializationError")
    }).pipe(
      Effect.provide(
        DbMock.layer({
          responses: [
            DbMock.fail("INSERT INTO users", 'duplicate key value violates unique constraint "users_name_key"', {
              code: "23505",
              constraint: "users_name_key"
            }),
            DbMock.fail("FROM users", "terminating connection due to administrator command", { code: "08006" }),
            DbMock.fail("DELETE", DbMock.sqlError("could not serialize access", { code: "40001" }))
          ]
        })
      )
    )
  )

  it.effect("fails an unmatched statement with its SQL, its parameters and the script", () =>
    Effect.gen(function* () {
      const touchesOrders = (sql: string) => sql.includes("orders")
      yield* DbMock.script(
        DbMock.respond("DELETE FROM users", [], { times: 1 }),
        DbMock.respond(touchesOrders, []),
        DbMock.respond((_sql, params) => params.length > 3, []),
        DbMock.respondWith(() => Effect.fail(DbMock.sqlError("unreachable")), { times: 0 })
      )
      const error = yield* Effect.flip(UserRepo.findById(42))
      assert.strictEqual(error._tag, "SqlError")
      assert.strictEqual(
        error.message,
        [
          "DbMock: no scripted response matches this statement:",
          "  SELECT id, name FROM users WHERE id = $1",
          "  params: [42]",
          "Scripted responses, first match wins:",
          "  1. /FROM orders/",
          '  2. "DELETE FROM users" (used 0 of 1 times)',
          "  3. touchesOrders(sql, params)",
          "  4. a predicate",
          "  5. any statement (respondWith without a matcher) (used 0 of 0 times)",
          "Script one with DbMock.respond(matcher, rows) in DbMock.layer({ responses }) or DbMock.script(...), " +
            'or pass onUnmatched: "empty" to answer every unmatched statement with no rows.'
        ].join("\n")
      )
    }).pipe(Effect.provide(DbMock.layer({ responses: [DbMock.respond(/FROM orders/, [])] })))
  )

  it.effect("answers unmatched statements with no rows when asked to", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* UserRepo.findById(1), Option.none())
      const error = yield* Effect.flip(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT broken`))
      assert.strictEqual(causeOf(error).message, "boom")
    }).pipe(Effect.provide(DbMock.layer({ onUnmatched: "empty", responses: [DbMock.fail("SELECT broken", "boom")] })))
  )

  it.effect("collapses whitespace outside quoted literals and identifiers only", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`
        SELECT  'a  b' AS "x  y",
                ${1} AS n
      `
      assert.deepStrictEqual(
        (yield* DbMock.queries).map((q) => q.sql),
        [`SELECT 'a  b' AS "x  y", $1 AS n`]
      )
    }).pipe(Effect.provide(DbMock.layer({ onUnmatched: "empty" })))
  )

  it.effect("uses limited responses in script order, then falls through to later ones", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const next = Effect.map(sql<{ readonly n: number }>`SELECT n FROM counter`, (rows) => rows[0]!.n)
      const seen = [yield* next, yield* next, yield* next]
      // appended responses answer only what nothing earlier matches: the reusable 3 shadows this one
      yield* DbMock.script(DbMock.respond("SELECT n FROM counter", [{ n: 99 }]))
      seen.push(yield* next, yield* next)
      assert.deepStrictEqual(seen, [1, 2, 2, 3, 3])
    }).pipe(
      Effect.provide(
        DbMock.layer({
          responses: [
            DbMock.respond("SELECT n FROM counter", [{ n: 1 }], { times: 1 }),
            DbMock.respond("SELECT n FROM counter", [{ n: 2 }], { times: 2 }),
            DbMock.respond("SELECT n FROM counter", [{ n: 3 }])
          ]
        })
      )
    )
  )

  it.effect("restarts limited responses in every layer built from the same script", () => {
    const responses = [DbMock.respond("SELECT 1", [{ one: 1 }], { times: 1 })]
    const once = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
      Effect.provide(DbMock.layer({ responses }))
    )
    return Effect.gen(function* () {
      assert.deepStrictEqual(yield* once, [{ one: 1 }])
      assert.deepStrictEqual(yield* once, [{ one: 1 }])
    })
  })

  it.effect("records transactions, savepoints and rollbacks on one connection", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const nested = sql.withTransaction(
        Effect.andThen(sql`UPDATE users SET name = ${"Bo"} WHERE id = ${7}`, Effect.fail("abandon" as const))
      )
      yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* UserRepo.insert("Bob")
          yield* Effect.flip(nested)
        })
      )
      yield* UserRepo.findById(7)
      const failed = yield* Effect.flip(sql.withTransaction(Effect.andThen(UserRepo.insert("Cy"), Effect.fail("no"))))
      assert.strictEqual(failed, "no")
      assert.deepStrictEqual(summary(yield* DbMock.queries), [
        "1: BEGIN",
        '1: INSERT INTO users ("name") VALUES ($1) RETURNING id',
        "1: SAVEPOINT effect_sql_1",
        "1: UPDATE users SET name = $1 WHERE id = $2",
        "1: ROLLBACK TO SAVEPOINT effect_sql_1",
        "1: RELEASE SAVEPOINT effect_sql_1",
        "1: COMMIT",
        "2: SELECT id, name FROM users WHERE id = $1",
        "3: BEGIN",
        '3: INSERT INTO users ("name") VALUES ($1) RETURNING id',
        "3: ROLLBACK"
      ])
      // COMMIT goes as `raw`: the client checks its answer for an aborted transaction
      assert.deepStrictEqual(
        (yield* DbMock.queries).filter((q) => q.kind === "raw").map((q) => q.sql),
        ["COMMIT"]
      )
    }).pipe(
      Effect.provide(
        DbMock.layer({
          responses: [DbMock.respond("INSERT INTO users", [{ id: 7 }]), DbMock.respondWith(() => [])]
        })
      )
    )
  )

  it.effect("fails a transaction whose COMMIT is scripted to fail", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const exit = yield* Effect.exit(sql.withTransaction(UserRepo.insert("Ann")))
      // as on the real pool, a failed COMMIT is a typed failure
      assert.isTrue(Exit.isFailure(exit) && Cause.hasFails(exit.cause) && !Cause.hasDies(exit.cause))
      const error = Exit.isFailure(exit) ? (Cause.squash(exit.cause) as SqlError.SqlError) : undefined
      assert.strictEqual(error?.reason._tag, "SerializationError")
      assert.deepStrictEqual(summary(yield* DbMock.queries), [
        "1: BEGIN",
        '1: INSERT INTO users ("name") VALUES ($1) RETURNING id',
        "1: COMMIT"
      ])
    }).pipe(
      Effect.provide(
        DbMock.layer({
          responses: [
            DbMock.respond("INSERT INTO users", [{ id: 1 }]),
            DbMock.fail(/^COMMIT$/, "could not serialize access due to concurrent update", { code: "40001" })
          ]
        })
      )
    )
  )

  it.effect("pins Db.withConnection statements to one connection", () =>
    Effect.gen(function* () {
      const rows = yield* Db.withConnection((sql) =>
        Effect.gen(function* () {
          yield* sql`SET statement_timeout = 1000`
          yield* sql.withTransaction(sql`SELECT ${1}::int AS n`)
          return yield* sql`SELECT ${1}::int AS n`
        })
      )
      assert.deepStrictEqual(rows, [{ n: 1 }])
      const sql = yield* PgClient.PgClient
      yield* sql`SELECT ${1}::int AS n`
      assert.deepStrictEqual(summary(yield* DbMock.queries), [
        "1: SET statement_timeout = 1000",
        "1: BEGIN",
        "1: SELECT $1::int AS n",
        "1: COMMIT",
        "1: SELECT $1::int AS n",
        "2: SELECT $1::int AS n"
      ])
    }).pipe(
      Effect.provide(
        DbMock.layer({
          responses: [DbMock.respond("SET statement_timeout", []), DbMock.respond("::int AS n", [{ n: 1 }])]
        })
      )
    )
  )

  // as the real client's pinned clients: a Db.withConnection client's statements, streams and transactions stay on
  // its connection even inside a transaction the pooled client opened on another one
  it.effect("keeps a pinned client's statements on its connection inside another client's transaction", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`SELECT ${1}::int AS n`
          yield* Db.withConnection((pinned) =>
            Effect.gen(function* () {
              yield* pinned`SELECT ${2}::int AS n`
              yield* Stream.runDrain(pinned`SELECT ${3}::int AS n`.stream)
              yield* pinned.withTransaction(pinned`SELECT ${4}::int AS n`)
            })
          )
        })
      )
      assert.deepStrictEqual(summary(yield* DbMock.queries), [
        "1: BEGIN",
        "1: SELECT $1::int AS n",
        "2: SELECT $1::int AS n",
        "2: SELECT $1::int AS n",
        "2: BEGIN",
        "2: SELECT $1::int AS n",
        "2: COMMIT",
        "1: COMMIT"
      ])
    }).pipe(Effect.provide(DbMock.layer({ responses: [DbMock.respond("::int AS n", [{ n: 1 }])] })))
  )

  // the real client's span attributes, naming the database its config reports
  it.effect("traces statements and transactions with the attributes the real client gives them", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const db = yield* Db.Db
      const builtIn = yield* Effect.tracer
      const spans: Array<Tracer.Span> = []
      const recording = Tracer.make({
        span: (options) => {
          const span = builtIn.span(options)
          spans.push(span)
          return span
        }
      })
      yield* Effect.gen(function* () {
        yield* sql`SELECT 1 AS n`
        yield* sql.withTransaction(sql`SELECT 1 AS n`)
        yield* Db.withConnection((pinned) => pinned`SELECT 1 AS n`.values)
      }).pipe(Effect.withTracer(recording))
      // Effect 4 names a statement's span after its target, the database
      const statement = db.config.database
      const traced = spans.filter((span) => span.name === statement || span.name === "sql.transaction")
      assert.deepStrictEqual(
        traced.map((span) => span.name),
        [statement, "sql.transaction", statement, statement]
      )
      for (const span of traced) {
        assert.deepStrictEqual(
          ["db.system.name", "db.namespace", "server.address", "server.port"].map((key) => span.attributes.get(key)),
          ["postgresql", db.config.database, db.config.host, db.config.port]
        )
      }
      assert.deepStrictEqual([sql.config.database, sql.config.host, sql.config.port], ["postgres", "localhost", 5432])
    }).pipe(Effect.provide(DbMock.layer({ responses: [DbMock.respond("AS n", [{ n: 1 }])] })))
  )

  it.effect("answers values, raw and stream statements and records their kind", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const users = sql`SELECT id, name FROM users`
      assert.deepStrictEqual(yield* users.values, [
        [1, "Ann"],
        [2, "Bob"]
      ])
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(users.stream)), [
        { id: 1, name: "Ann" },
        { id: 2, name: "Bob" }
      ])
      const raw = (yield* sql`UPDATE users SET active = false`.raw) as { command: string; rowCount: number }
      assert.strictEqual(raw.command, "UPDATE")
      assert.strictEqual(raw.rowCount, 5)
      assert.deepStrictEqual(yield* sql`SELECT id, name FROM users`.unprepared, [
        { id: 1, name: "Ann" },
        { id: 2, name: "Bob" }
      ])
      assert.deepStrictEqual(
        (yield* DbMock.queries).map((q) => q.kind),
        ["values", "stream", "raw", "unprepared"]
      )
    }).pipe(
      Effect.provide(
        DbMock.layer({
          responses: [
            DbMock.respond("FROM users", [
              { id: 1, name: "Ann" },
              { id: 2, name: "Bob" }
            ]),
            DbMock.respond("UPDATE users", [], { rowCount: 5 })
          ]
        })
      )
    )
  )

  it.effect("fails computed responses with DbMock.sqlError", () => {
    const names = new Set<unknown>()
    const unique = DbMock.respondWith("INSERT INTO users", (_sql, [name]) => {
      if (names.has(name)) return Effect.fail(DbMock.sqlError("duplicate key value", { code: "23505" }))
      names.add(name)
      return [{ id: names.size }]
    })
    return Effect.gen(function* () {
      assert.strictEqual(yield* UserRepo.insert("Ann"), 1)
      const error = yield* Effect.flip(UserRepo.insert("Ann"))
      assert.strictEqual(error.reason._tag, "UniqueViolation")
      assert.strictEqual(causeOf(error).message, "duplicate key value")
    }).pipe(Effect.provide(DbMock.layer({ responses: [unique] })))
  })

  it.effect("compiles with the name transforms and transforms the scripted rows", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`INSERT INTO users ${sql.insert({ firstName: "Ann", lastName: "Lee" })} RETURNING ${sql(
        "userId"
      )}`
      assert.deepStrictEqual(rows, [{ userId: 1, createdAt: "today" }])
      const [query] = yield* DbMock.queries
      assert.strictEqual(query!.sql, 'INSERT INTO users ("first_name","last_name") VALUES ($1,$2) RETURNING "user_id"')
      assert.deepStrictEqual(query!.params, ["Ann", "Lee"])
    }).pipe(
      Effect.provide(
        DbMock.layer({
          transformQueryNames: Str.camelToSnake,
          transformResultNames: Str.snakeToCamel,
          responses: [DbMock.respond('RETURNING "user_id"', [{ user_id: 1, created_at: "today" }])]
        })
      )
    )
  )

  it.effect("delivers notifications to listeners, those sent in a transaction only on commit", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const received = yield* Effect.forkChild(
        Effect.scoped(
          Effect.flatMap(sql.listen("orders"), (queue) =>
            Effect.all([Queue.take(queue), Queue.take(queue), Queue.take(queue)])
          )
        )
      )
      yield* DbMock.awaitListener("orders")
      yield* sql.notify("orders", "1")
      yield* sql.notify("invoices", "ignored")
      yield* Effect.flip(sql.withTransaction(Effect.andThen(sql.notify("orders", "rolled back"), Effect.fail("no"))))
      yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql.notify("orders", "2")
          yield* Effect.flip(sql.withTransaction(Effect.andThen(sql.notify("orders", "savepoint"), Effect.fail("no"))))
          yield* sql.notify("orders", "3")
        })
      )
      const notifications = yield* Fiber.join(received)
      assert.deepStrictEqual(
        notifications.map((n) => [n.channel, n.payload]),
        [
          ["orders", "1"],
          ["orders", "2"],
          ["orders", "3"]
        ]
      )
      const notifies = (yield* DbMock.queries).filter((q) => q.sql === "SELECT pg_notify($1, $2)")
      assert.deepStrictEqual(
        notifies.map((q) => q.params[1]),
        ["1", "ignored", "rolled back", "2", "savepoint", "3"]
      )
    }).pipe(Effect.provide(DbMock.layer()))
  )

  it.effect("reports a healthy idle pool, and what the test sets", () =>
    Effect.gen(function* () {
      const health = yield* Db.health
      assert.strictEqual(health.status, "healthy")
      assert.isTrue(health.database.reachable)
      assert.strictEqual(health.statistics.active, 0)
      assert.strictEqual(health.statistics.waiting, 0)
      assert.strictEqual(health.statistics.idle, health.statistics.total)
      const db = yield* Db.Db
      assert.strictEqual(db.config.maxSize, 10)
      assert.strictEqual(db.config.name, "mock")

      // the Effect 3 edition's name for the service's shape compiles here too
      const mock: DbMock.DbMock.Service = yield* DbMock.DbMock
      yield* mock.setHealth("unhealthy", "database unreachable")
      const down = yield* Db.health
      assert.strictEqual(down.status, "unhealthy")
      assert.deepStrictEqual(down.reason, Option.some("database unreachable"))
      assert.isFalse(down.database.reachable)
      assert.strictEqual((yield* Db.statistics).state, "unhealthy")
    }).pipe(Effect.provide(DbMock.layer()))
  )

  // the Effect 4 edition's first mock tests, kept: helpers of the real client, the classified error, health
  it.effect("answers with the real client's helpers and transforms, numbering a single statement's connection", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{
        id: number
        fullName: string
      }>`SELECT id, full_name FROM users WHERE ${sql.in("id", [1])}`
      assert.deepStrictEqual(rows, [{ id: 1, fullName: "Ann" }])
      assert.deepStrictEqual(yield* DbMock.queries, [
        { sql: `SELECT id, full_name FROM users WHERE "id" IN ($1)`, params: [1], kind: "execute", connection: 1 }
      ])
    }).pipe(
      Effect.provide(
        DbMock.layer({
          responses: [DbMock.respond(/FROM users/, [{ id: 1, full_name: "Ann" }])],
          transformResultNames: Str.snakeToCamel
        })
      )
    )
  )

  it.effect("fails a scripted transaction with the classified SqlError, then reports what the test sets", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* DbMock.script(
        DbMock.fail(/INSERT/, DbMock.sqlError("duplicate key", { code: "23505", constraint: "users_email_key" }))
      )
      const error = yield* Effect.flip(sql.withTransaction(sql`INSERT INTO users VALUES (1)`))
      assert.strictEqual(error.reason._tag, "UniqueViolation")
      assert.isTrue(Exit.isFailure(yield* Effect.exit(sql`SELECT 42`)))
      assert.deepStrictEqual(summary(yield* DbMock.queries), [
        "1: BEGIN",
        "1: INSERT INTO users VALUES (1)",
        "1: ROLLBACK",
        "2: SELECT 42"
      ])
      yield* DbMock.setHealth("degraded", "reconnecting")
      assert.strictEqual((yield* Db.health).status, "degraded")
    }).pipe(Effect.provide(DbMock.layer()))
  )
})
