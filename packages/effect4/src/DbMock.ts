/**
 * A `Db` with no database, for unit tests: statements are answered from a script (rows, failures or a
 * function of the SQL and parameters) and every statement is recorded for assertions.
 *
 * The layer provides `Db`, `SqlClient` and `PgClient` like `Db.layer`, built from the same compiler, so the
 * SQL a program sends to the mock is the SQL it sends in production (name transforms included), and
 * transactions, `Db.withConnection`, `reserve`, streams and `listen`/`notify` behave as they do there.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Db from "./Db.js"
import * as internal from "./internal/mock.js"
import type { PoolState } from "./PoolStatistics.js"

/**
 * Which statements a response answers, tested against the compiled SQL with whitespace runs outside quotes
 * collapsed to one space:
 * - a string: the SQL contains it (whitespace in the string is collapsed too);
 * - a `RegExp`: the SQL matches it;
 * - a predicate of the SQL and the parameters.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const byText: DbMock.Matcher = "FROM users WHERE id = $1"
 * const byPattern: DbMock.Matcher = /^UPDATE users SET/
 * const byParams: DbMock.Matcher = (sql, params) => sql.startsWith("DELETE") && params[0] === 42
 * const responses = [DbMock.respond(byText, [{ id: 1 }]), DbMock.respond(byPattern, []), DbMock.respond(byParams, [])]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Matcher = string | RegExp | ((sql: string, params: ReadonlyArray<unknown>) => boolean)

/**
 * How a statement reached the connection: `execute` for `yield* sql\`…\`` (and `.withoutTransform`), `values`
 * for `.values`, `stream` for `.stream`, `raw` for `.raw`, `unprepared` for `.unprepared`. The transaction
 * statements go as the real client sends them: `BEGIN`, `SAVEPOINT …` and `ROLLBACK` prepared (`execute`),
 * `COMMIT` as `raw` (its answer is checked for an aborted transaction).
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * // statements read through a cursor, e.g. to check that an export does not load a whole table at once
 * const streamed = Effect.map(DbMock.queries, (queries) => queries.filter((query) => query.kind === "stream"))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type QueryKind = "execute" | "values" | "stream" | "raw" | "unprepared"

/**
 * A statement the mock saw.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * // "1: BEGIN", "1: INSERT INTO …", "1: COMMIT": one line per statement, for a compact assertion
 * const transcript = (queries: ReadonlyArray<DbMock.RecordedQuery>) =>
 *   queries.map((query) => `${query.connection}: ${query.sql}`)
 *
 * const current = Effect.map(DbMock.queries, transcript)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedQuery {
  /** The compiled SQL, whitespace runs outside quotes collapsed to one space. */
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
  readonly kind: QueryKind
  /**
   * The connection it ran on, numbered from 1 in order of acquisition. Statements of one transaction, one
   * `Db.withConnection` or one `reserve` share a number; every other statement gets a number of its own.
   */
  readonly connection: number
}

/**
 * One entry of the script; build it with `respond`, `respondWith` or `fail`.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * // a fixture shared by several test files
 * const users: ReadonlyArray<DbMock.ScriptedResponse> = [
 *   DbMock.respond("FROM users WHERE id = $1", [{ id: 1, name: "Ann" }]),
 *   DbMock.fail("INSERT INTO users", "duplicate key value violates unique constraint", { code: "23505" })
 * ]
 * const MockLive = DbMock.layer({ responses: users })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ScriptedResponse {
  /** `undefined` answers any statement except transaction control and `pg_notify`. */
  readonly matcher: Matcher | undefined
  /** How many statements it answers before it is used up; `Infinity` when reusable. */
  readonly times: number
  /** The `rowCount` of `.raw` results; the number of rows when `undefined`. */
  readonly rowCount: number | undefined
  /** The rows as the database returns them, before `transformResultNames`, or the failure. */
  readonly answer: (sql: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<object>, SqlError>
}

/**
 * How often a response answers, and the `rowCount` it reports.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const responses: ReadonlyArray<DbMock.ScriptedResponse> = [
 *   // the first claim takes 3 jobs (the rowCount of `.raw`), later ones find none
 *   DbMock.respond("UPDATE jobs SET claimed_by", [], { times: 1, rowCount: 3 }),
 *   DbMock.respond("UPDATE jobs SET claimed_by", [], { rowCount: 0 })
 * ]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ResponseOptions {
  /** Answer this many statements, then step aside for later responses. Default: every matching statement. */
  readonly times?: number | undefined
  /** The `rowCount` of `.raw` results, e.g. the rows an `UPDATE` touched. Default: the number of rows. */
  readonly rowCount?: number | undefined
}

/**
 * The fields of the server's ErrorResponse a scripted failure carries on its `cause`, e.g. `code: "23505"`.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const message = 'duplicate key value violates unique constraint "users_email_key"'
 * const duplicate = DbMock.fail("INSERT INTO users", message, {
 *   code: "23505",
 *   table: "users",
 *   constraint: "users_email_key",
 *   detail: "Key (email)=(ann@example.com) already exists."
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ErrorFields {
  /** The SQLSTATE, e.g. `"23505"` (unique violation) or `"40001"` (serialization failure). */
  readonly code?: string | undefined
  readonly detail?: string | undefined
  readonly hint?: string | undefined
  readonly schema?: string | undefined
  readonly table?: string | undefined
  readonly column?: string | undefined
  readonly constraint?: string | undefined
}

/**
 * How `layer` builds the mock: its script, and the client options of `Db.layer` it honours.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { String as Str } from "effect"
 *
 * const options: DbMock.MockOptions = {
 *   onUnmatched: "empty", // unscripted statements return no rows instead of failing
 *   transformQueryNames: Str.camelToSnake,
 *   transformResultNames: Str.snakeToCamel
 * }
 * const MockLive = DbMock.layer(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MockOptions {
  /** The initial script; the first response that matches a statement and is not used up answers it. */
  readonly responses?: ReadonlyArray<ScriptedResponse> | undefined
  /**
   * A statement no response matches fails with a `SqlError` naming it, its parameters and the script (`fail`,
   * the default), or returns no rows (`empty`). Transaction control and `pg_notify` always succeed.
   */
  readonly onUnmatched?: "fail" | "empty" | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly transformJson?: boolean | undefined
}

/**
 * Answers matching statements with `rows`, given as the database returns them: `transformResultNames` applies
 * to them as it would to real results, and `.values` turns objects into arrays of their values.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const MockLive = DbMock.layer({
 *   responses: [
 *     DbMock.respond("SELECT nextval", [{ nextval: 1 }], { times: 1 }),
 *     DbMock.respond("SELECT nextval", [{ nextval: 2 }]),
 *     DbMock.respond(/FROM users WHERE id = \$1/, [{ id: 1, name: "Ann" }])
 *   ]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const respond = (matcher: Matcher, rows: ReadonlyArray<object>, options?: ResponseOptions): ScriptedResponse =>
  internal.response(matcher, () => Effect.succeed(rows), options)

/**
 * What `respondWith` calls: rows, or an effect of rows.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * // an in-memory table behind the mock
 * const users = new Map([[1, { id: 1, name: "Ann" }]])
 * const findUser: DbMock.Handler = (_sql, [id]) => {
 *   const user = users.get(id as number)
 *   return user === undefined ? [] : [user]
 * }
 * const MockLive = DbMock.layer({ responses: [DbMock.respondWith("FROM users WHERE id = $1", findUser)] })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Handler = (
  sql: string,
  params: ReadonlyArray<unknown>
) => ReadonlyArray<object> | Effect.Effect<ReadonlyArray<object>, SqlError>

/**
 * Answers statements with rows computed from the SQL and parameters, or with an effect (to fail with
 * `sqlError`, or to wait). Without a matcher it answers every statement except transaction control and
 * `pg_notify`.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const responses = [
 *   // rows computed from the parameters
 *   DbMock.respondWith("FROM users WHERE id = $1", (_sql, [id]) => (id === 1 ? [{ id: 1, name: "Ann" }] : [])),
 *   // a slow statement, to test a timeout under TestClock
 *   DbMock.respondWith("FROM reports", () => Effect.as(Effect.sleep("10 seconds"), []))
 * ]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const respondWith: {
  (handler: Handler, options?: ResponseOptions): ScriptedResponse
  (matcher: Matcher, handler: Handler, options?: ResponseOptions): ScriptedResponse
} = (first: Matcher | Handler, second?: Handler | ResponseOptions, third?: ResponseOptions): ScriptedResponse =>
  typeof second === "function"
    ? internal.response(first as Matcher, internal.fromHandler(second), third)
    : internal.response(undefined, internal.fromHandler(first as Handler), second)

/**
 * Fails matching statements as the server would: the `SqlError` @effect/sql-pg 4 raises, classified by the
 * SQLSTATE (`UniqueViolation` for `23505`, `SerializationError` for `40001`, …), caused by an `Error` carrying
 * `message` and the fields — or with the `SqlError` given.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * // the first attempt hits a serialization failure, the retry goes through
 * const MockLive = DbMock.layer({
 *   responses: [
 *     DbMock.fail("UPDATE accounts", "could not serialize access due to concurrent update", {
 *       code: "40001",
 *       times: 1
 *     }),
 *     DbMock.respond("UPDATE accounts", [])
 *   ]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fail = (
  matcher: Matcher,
  message: string | SqlError,
  options?: ErrorFields & Pick<ResponseOptions, "times">
): ScriptedResponse => {
  const error = typeof message === "string" ? sqlError(message, options) : message
  return internal.response(matcher, () => Effect.fail(error), options)
}

/**
 * The `SqlError` `fail` answers with, for failures computed in `respondWith`.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * // fails for one parameter only
 * const insertUser = DbMock.respondWith("INSERT INTO users", (_sql, [email]) =>
 *   email === "ann@example.com"
 *     ? Effect.fail(DbMock.sqlError("duplicate key value violates unique constraint", { code: "23505" }))
 *     : [{ id: 2 }]
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const sqlError: (message: string, fields?: ErrorFields) => SqlError = internal.sqlError

/**
 * What the `DbMock` service holds.
 *
 * @example
 * ```ts
 * import type { DbMock } from "@effect-pg-pool/effect4"
 * import { Array, Effect } from "effect"
 *
 * // the statements of each connection: shows what ran inside one transaction
 * const byConnection = (mock: DbMock.Service) =>
 *   Effect.map(mock.queries, (queries) => Array.groupBy(queries, (query) => String(query.connection)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Every statement seen so far, oldest first. */
  readonly queries: Effect.Effect<ReadonlyArray<RecordedQuery>>
  /** Forgets the recorded statements; the script stays as it is. */
  readonly clear: Effect.Effect<void>
  /** Appends responses to the script: they answer only statements no earlier response matches. */
  readonly script: (...responses: ReadonlyArray<ScriptedResponse>) => Effect.Effect<void>
  /**
   * Waits until a `listen` on `channel` is subscribed: a notification sent before that is lost, as it is with
   * PostgreSQL, and a listener forked by the code under test subscribes at a time of its own.
   */
  readonly awaitListener: (channel: string) => Effect.Effect<void>
  /** What `Db.health` and `Db.statistics` report from now on (initially `healthy`). */
  readonly setHealth: (status: PoolState, reason?: string) => Effect.Effect<void>
}

/**
 * Controls the mock in context: what it recorded, and more script.
 *
 * @example
 * ```ts
 * import { Db, DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const test = Effect.gen(function* () {
 *   const mock = yield* DbMock.DbMock
 *   yield* mock.script(DbMock.respond("FROM users", [{ id: 1, name: "Ann" }]))
 *   const rows = yield* Db.withConnection((sql) => sql`SELECT id, name FROM users`)
 *   const queries = yield* mock.queries
 * }).pipe(Effect.provide(DbMock.layer()))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class DbMock extends Context.Service<DbMock, Service>()("@effect-pg-pool/DbMock") {}

type ServiceShape = Service

/**
 * The Effect 3 edition's name for `Service`, so that `DbMock.DbMock.Service` compiles in both editions.
 *
 * @since 0.1.0
 * @category models
 */
export declare namespace DbMock {
  /**
   * What the `DbMock` service holds: the same as `DbMock.Service`.
   *
   * @example
   * ```ts
   * import type { DbMock } from "@effect-pg-pool/effect4"
   * import { Effect } from "effect"
   *
   * // written for the Effect 3 edition, unchanged
   * const count = (mock: DbMock.DbMock.Service) => Effect.map(mock.queries, (queries) => queries.length)
   * ```
   *
   * @since 0.1.0
   * @category models
   */
  export type Service = ServiceShape
}

/**
 * A layer providing `Db`, `SqlClient`, `PgClient` and `DbMock`, with no database behind them.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 *
 * const findUser = (id: number) =>
 *   Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT id, name FROM users WHERE id = ${id}`)
 *
 * const test = Effect.gen(function* () {
 *   const rows = yield* findUser(1) // [{ id: 1, name: "Ann" }]
 *   const [query] = yield* DbMock.queries // { sql: "SELECT id, name FROM users WHERE id = $1", params: [1], … }
 * }).pipe(Effect.provide(DbMock.layer({ responses: [DbMock.respond(/FROM users/, [{ id: 1, name: "Ann" }])] })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: MockOptions = {}
): Layer.Layer<Db.Db | SqlClient.SqlClient | PgClient.PgClient | DbMock> =>
  Layer.effectContext(
    Effect.map(internal.make(options), ({ control, db }) =>
      Context.make(Db.Db, db).pipe(
        Context.add(SqlClient.SqlClient, db.sql),
        Context.add(PgClient.PgClient, db.sql),
        Context.add(DbMock, control)
      )
    )
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * Every statement the mock in context has seen, oldest first.
 *
 * @example
 * ```ts
 * import { Db, DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const test = Effect.gen(function* () {
 *   yield* Db.withConnection((sql) => sql`SELECT * FROM users WHERE id = ${1}`)
 *   const queries = yield* DbMock.queries
 *   // [{ sql: "SELECT * FROM users WHERE id = $1", params: [1], kind: "execute", connection: 1 }]
 * }).pipe(Effect.provide(DbMock.layer({ onUnmatched: "empty" })))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const queries: Effect.Effect<ReadonlyArray<RecordedQuery>, never, DbMock> = Effect.flatMap(
  Effect.service(DbMock),
  (mock) => mock.queries
)

/**
 * Forgets the recorded statements, e.g. after a test's setup.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * declare const seedUsers: Effect.Effect<void>
 * declare const archiveInactiveUsers: Effect.Effect<void>
 *
 * const test = Effect.gen(function* () {
 *   yield* seedUsers
 *   yield* DbMock.clear // what follows is what the test asserts on
 *   yield* archiveInactiveUsers
 *   const queries = yield* DbMock.queries
 * })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const clear: Effect.Effect<void, never, DbMock> = Effect.flatMap(Effect.service(DbMock), (mock) => mock.clear)

/**
 * Appends responses to the script of the mock in context.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * declare const balance: Effect.Effect<number>
 *
 * const test = Effect.gen(function* () {
 *   yield* DbMock.script(DbMock.respond("SELECT balance", [{ balance: 100 }], { times: 1 }))
 *   const before = yield* balance // 100
 *   yield* DbMock.script(DbMock.respond("SELECT balance", [{ balance: 40 }]))
 *   const after = yield* balance // 40
 * })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const script = (...responses: ReadonlyArray<ScriptedResponse>): Effect.Effect<void, never, DbMock> =>
  Effect.flatMap(Effect.service(DbMock), (mock) => mock.script(...responses))

/**
 * Waits until a `listen` stream on `channel` is subscribed, so that a notification sent next reaches it.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Fiber, Queue } from "effect"
 *
 * const test = Effect.gen(function* () {
 *   const sql = yield* PgClient.PgClient
 *   const received = yield* Effect.forkChild(Effect.scoped(Effect.flatMap(sql.listen("orders"), Queue.take)))
 *   yield* DbMock.awaitListener("orders") // a notification sent before this would be lost
 *   yield* sql.notify("orders", "42")
 *   const notification = yield* Fiber.join(received) // { channel: "orders", payload: "42", … }
 * }).pipe(Effect.provide(DbMock.layer()))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const awaitListener = (channel: string): Effect.Effect<void, never, DbMock> =>
  Effect.flatMap(Effect.service(DbMock), (mock) => mock.awaitListener(channel))

/**
 * Sets what `Db.health` and `Db.statistics` report, e.g. to test a readiness endpoint.
 *
 * @example
 * ```ts
 * import { type Db, DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * declare const readiness: Effect.Effect<{ readonly status: number }, never, Db.Db> // your /ready handler
 *
 * const test = Effect.gen(function* () {
 *   yield* DbMock.setHealth("unhealthy", "database unreachable")
 *   const response = yield* readiness // expect status 503
 * }).pipe(Effect.provide(DbMock.layer()))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const setHealth = (status: PoolState, reason?: string): Effect.Effect<void, never, DbMock> =>
  Effect.flatMap(Effect.service(DbMock), (mock) => mock.setHealth(status, reason))
