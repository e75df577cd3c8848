/**
 * A `Db`, `SqlClient` and `PgClient` with no database, for users' unit tests: statements are answered from a
 * script (a matcher on the SQL text and the rows, or an error), recorded for assertions, and the client is built
 * by the same code as the real one (`SqlClient.make` + `PgClient.makeCompiler`), so helpers, transforms and
 * transactions behave as in production.
 *
 * @since 0.1.0
 */
import { Statistics } from "@effect-pg-pool/engine"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import {
  AuthenticationError,
  AuthorizationError,
  ConnectionError,
  ConstraintError,
  DeadlockError,
  LockTimeoutError,
  SerializationError,
  SqlError,
  SqlSyntaxError,
  StatementTimeoutError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import * as Db from "./Db.js"
import { DatabaseReachability, HealthStatus } from "./Health.js"
import * as Client from "./internal/client.js"
import { ClosedByReason, type PoolState, PoolStatistics } from "./PoolStatistics.js"

/**
 * What a matcher accepts: the SQL text (exact), a pattern, or a predicate on the text and the parameters.
 *
 * @example
 * ```ts
 * import type { DbMock } from "@effect-pg-pool/effect4"
 *
 * const users: DbMock.Matcher = /FROM users/
 * const byId: DbMock.Matcher = (sql, params) => sql.includes("WHERE id") && params[0] === 1
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Matcher = string | RegExp | ((sql: string, params: ReadonlyArray<unknown>) => boolean)

/**
 * How a statement was run.
 *
 * @example
 * ```ts
 * import type { DbMock } from "@effect-pg-pool/effect4"
 *
 * const streamed = (q: DbMock.RecordedQuery) =>
 *   q.kind === "stream"
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
 * import type { DbMock } from "@effect-pg-pool/effect4"
 *
 * const texts = (queries: ReadonlyArray<DbMock.RecordedQuery>) =>
 *   queries.map((q) => q.sql)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedQuery {
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
  readonly kind: QueryKind
  /** Which connection ran it: 1, 2, … per `withConnection` / transaction / reserve; 0 for single statements. */
  readonly connection: number
}

/**
 * One scripted answer: the first response whose matcher accepts a statement answers it, `times` times.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const response: DbMock.ScriptedResponse =
 *   DbMock.respond("SELECT 1 AS one", [{ one: 1 }], { times: 1 })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ScriptedResponse {
  readonly matcher: Matcher | undefined
  readonly times: number
  readonly answer: (sql: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<object>, SqlError>
}

/**
 * @example
 * ```ts
 * import type { DbMock } from "@effect-pg-pool/effect4"
 *
 * const once: DbMock.ResponseOptions = {
 *   times: 1
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ResponseOptions {
  /** How many statements it answers; unlimited when absent. */
  readonly times?: number | undefined
}

/**
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const options: DbMock.MockOptions = {
 *   responses: [DbMock.respond(/users/, [])],
 *   onUnmatched: "fail"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MockOptions {
  readonly responses?: ReadonlyArray<ScriptedResponse> | undefined
  /** A statement no response matches: a `SqlError` (default), or no rows. */
  readonly onUnmatched?: "fail" | "empty" | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly transformJson?: boolean | undefined
}

/**
 * What the `DbMock` service holds: the record and the script.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const count = Effect.flatMap(DbMock.DbMock, (mock) => Effect.map(mock.queries, (q) => q.length))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly queries: Effect.Effect<ReadonlyArray<RecordedQuery>>
  readonly clear: Effect.Effect<void>
  /** Adds responses ahead of the ones already scripted. */
  readonly script: (...responses: ReadonlyArray<ScriptedResponse>) => Effect.Effect<void>
  readonly setHealth: (status: PoolState, reason?: string) => Effect.Effect<void>
}

/**
 * The mock's control service.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const reset = Effect.flatMap(DbMock.DbMock, (mock) => mock.clear)
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class DbMock extends Context.Service<DbMock, Service>()("@effect-pg-pool/DbMock") {}

/**
 * Answers the statements `matcher` accepts with `rows`.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const users = DbMock.respond(/FROM users/, [{ id: 1, name: "Ann" }])
 * const layer = DbMock.layer({ responses: [users] })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const respond = (
  matcher: Matcher,
  rows: ReadonlyArray<object>,
  options?: ResponseOptions
): ScriptedResponse => ({ matcher, times: options?.times ?? Infinity, answer: () => Effect.succeed(rows) })

/**
 * Answers the statements `matcher` accepts with `error`.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const duplicate = DbMock.fail(
 *   /INSERT INTO users/,
 *   DbMock.sqlError("duplicate key", { code: "23505", constraint: "users_email_key" })
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fail = (matcher: Matcher, error: SqlError, options?: ResponseOptions): ScriptedResponse => ({
  matcher,
  times: options?.times ?? Infinity,
  answer: () => Effect.fail(error)
})

/**
 * A `SqlError` classified by its SQLSTATE as @effect/sql-pg classifies the server's errors.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const error = DbMock.sqlError("could not serialize access", { code: "40001" })
 * error.reason._tag // "SerializationError"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const sqlError = (message: string, fields: { readonly code?: string; readonly constraint?: string } = {}) => {
  const cause = Object.assign(new Error(message), fields)
  const props = { cause, message, operation: "query" }
  const code = fields.code ?? ""
  return new SqlError({
    reason: code.startsWith("08")
      ? new ConnectionError(props)
      : code.startsWith("28")
        ? new AuthenticationError(props)
        : code === "42501"
          ? new AuthorizationError(props)
          : code.startsWith("42")
            ? new SqlSyntaxError(props)
            : code === "23505"
              ? new UniqueViolation({ ...props, constraint: fields.constraint ?? "unknown" })
              : code.startsWith("23")
                ? new ConstraintError(props)
                : code === "40P01"
                  ? new DeadlockError(props)
                  : code === "40001"
                    ? new SerializationError(props)
                    : code === "55P03"
                      ? new LockTimeoutError(props)
                      : code === "57014"
                        ? new StatementTimeoutError(props)
                        : new UnknownError(props)
  })
}

const control = /^\s*(BEGIN|START|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE)\b/i

const matches = (matcher: Matcher | undefined, sql: string, params: ReadonlyArray<unknown>) =>
  matcher === undefined ||
  (typeof matcher === "string" ? matcher === sql : matcher instanceof RegExp ? matcher.test(sql) : matcher(sql, params))

const statistics = (state: PoolState) =>
  new PoolStatistics(
    {
      poolName: "mock",
      total: 1,
      idle: 1,
      active: 0,
      pending: 0,
      waiting: 0,
      minSize: 1,
      maxSize: 1,
      peakActive: 0,
      peakWaiting: 0,
      acquisitions: 0,
      acquisitionTimeAvgMs: 0,
      acquisitionTimeP95Ms: 0,
      acquisitionTimeP99Ms: 0,
      acquireTimeouts: 0,
      connectionsCreated: 1,
      connectionsClosed: new ClosedByReason(Statistics.noneClosed()),
      reconnectAttempts: 0,
      leaksSuspected: 0,
      state,
      lastError: Option.none(),
      upSince: new Date(0)
    },
    { disableChecks: true }
  )

const make = (options: MockOptions) =>
  Effect.gen(function* () {
    const recorded: Array<RecordedQuery> = []
    let responses: Array<{ response: ScriptedResponse; left: number }> = (options.responses ?? []).map((response) => ({
      response,
      left: response.times
    }))
    let health: { status: PoolState; reason: string | undefined } = { status: "healthy", reason: undefined }
    let connections = 0

    const answer = (connection: number, kind: QueryKind, sql: string, params: ReadonlyArray<unknown>) =>
      Effect.suspend((): Effect.Effect<ReadonlyArray<object>, SqlError> => {
        recorded.push({ sql, params, kind, connection })
        if (control.test(sql)) return Effect.succeed([])
        const entry = responses.find((e) => e.left > 0 && matches(e.response.matcher, sql, params))
        if (entry === undefined) {
          return options.onUnmatched === "empty"
            ? Effect.succeed([])
            : Effect.fail(sqlError(`DbMock: no scripted response matches: ${sql}`))
        }
        entry.left--
        return entry.response.answer(sql, params)
      })

    const connection = (id: number): Connection => ({
      execute: (sql, params, transformRows) =>
        Effect.map(answer(id, "execute", sql, params), (rows) => (transformRows ? transformRows(rows) : rows)),
      executeRaw: (sql, params) =>
        Effect.map(answer(id, "raw", sql, params), (rows) => ({
          command: (/^\s*(\w+)/.exec(sql)?.[1] ?? "").toUpperCase(),
          rowCount: rows.length,
          oid: null,
          rows,
          fields: []
        })),
      executeValues: (sql, params) =>
        Effect.map(answer(id, "values", sql, params), (rows) => rows.map((row) => Object.values(row))),
      executeValuesUnprepared: (sql, params) =>
        Effect.map(answer(id, "values", sql, params), (rows) => rows.map((row) => Object.values(row))),
      executeUnprepared: (sql, params, transformRows) =>
        Effect.map(answer(id, "unprepared", sql, params), (rows) => (transformRows ? transformRows(rows) : rows)),
      executeStream: (sql, params, transformRows) =>
        Stream.unwrap(
          Effect.map(answer(id, "stream", sql, params), (rows) =>
            Stream.fromIterable(transformRows ? transformRows(rows) : rows)
          )
        )
    })

    const held = Effect.sync(() => connection(++connections))
    const spanTarget = { host: "mock", port: 0, database: "mock" }
    const listen = () => Queue.unbounded<never>()
    const client = yield* Client.build(
      options,
      spanTarget,
      {
        acquirer: held,
        borrower: (f) => f(connection(0)),
        transactionAcquirer: held,
        listen: listen as never
      },
      {}
    )
    const reactivity = yield* Effect.context<Reactivity.Reactivity>()
    const db: Db.Service = {
      withConnection: (f) =>
        Effect.flatMap(
          Effect.flatMap(held, (conn) =>
            Effect.provideContext(
              Client.build(
                options,
                spanTarget,
                { acquirer: Effect.succeed(conn), transactionAcquirer: Effect.succeed(conn), listen: listen as never },
                {}
              ),
              reactivity
            )
          ),
          (sql) => Effect.suspend(() => f(sql))
        ),
      statistics: Effect.sync(() => statistics(health.status)),
      health: Effect.sync(
        () =>
          new HealthStatus(
            {
              status: health.status,
              reason: Option.fromUndefinedOr(health.reason),
              checkedAt: new Date(),
              database: new DatabaseReachability({
                reachable: health.status !== "unhealthy",
                latencyMs: Option.none(),
                probedAt: Option.none()
              }),
              statistics: statistics(health.status)
            },
            { disableChecks: true }
          )
      ),
      // no connections to retire
      refresh: Effect.void,
      // no read-only pool: reads run as withConnection does
      readOnly: (f) => db.withConnection(f),
      readOnlySql: client,
      replicas: Option.none(),
      sql: client,
      config: undefined as never
    }
    const service: Service = {
      queries: Effect.sync(() => [...recorded]),
      clear: Effect.sync(() => {
        recorded.length = 0
      }),
      script: (...added) =>
        Effect.sync(() => {
          responses = [...added.map((response) => ({ response, left: response.times })), ...responses]
        }),
      setHealth: (status, reason) =>
        Effect.sync(() => {
          health = { status, reason }
        })
    }
    return { db, service }
  })

/**
 * `Db`, `SqlClient`, `PgClient` and the `DbMock` control, with no database.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 *
 * const findUser = (id: number) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT * FROM users WHERE id = ${id}`)
 * const test = findUser(1).pipe(Effect.provide(DbMock.layer({ responses: [DbMock.respond(/FROM users/, [{ id: 1 }])] })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: MockOptions = {}
): Layer.Layer<Db.Db | SqlClient.SqlClient | PgClient.PgClient | DbMock> =>
  Layer.effectContext(
    Effect.map(make(options), ({ db, service }) =>
      Context.make(Db.Db, db).pipe(
        Context.add(SqlClient.SqlClient, db.sql),
        Context.add(PgClient.PgClient, db.sql),
        Context.add(DbMock, service)
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
 *   const queries = yield* DbMock.queries // [{ sql: "SELECT * FROM users WHERE id = $1", params: [1], … }]
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
 * Forgets the statements seen so far.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const fresh = Effect.andThen(DbMock.clear, DbMock.queries) // []
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const clear: Effect.Effect<void, never, DbMock> = Effect.flatMap(Effect.service(DbMock), (mock) => mock.clear)

/**
 * Adds responses ahead of those already scripted.
 *
 * @example
 * ```ts
 * import { DbMock } from "@effect-pg-pool/effect4"
 *
 * const lost = DbMock.sqlError("connection lost", { code: "08006" })
 * const outage = DbMock.script(DbMock.fail(/SELECT/, lost))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const script = (...responses: ReadonlyArray<ScriptedResponse>): Effect.Effect<void, never, DbMock> =>
  Effect.flatMap(Effect.service(DbMock), (mock) => mock.script(...responses))

/**
 * Sets what `Db.health` (and the statistics' state) report.
 *
 * @example
 * ```ts
 * import { Db, DbMock } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const degraded = Effect.andThen(DbMock.setHealth("degraded", "reconnecting"), Db.health)
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const setHealth = (status: PoolState, reason?: string): Effect.Effect<void, never, DbMock> =>
  Effect.flatMap(Effect.service(DbMock), (mock) => mock.setHealth(status, reason))
