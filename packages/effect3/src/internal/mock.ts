/**
 * The machinery behind `DbMock`: connections that answer from a script instead of a socket and record every
 * statement, under a `PgClient` assembled by the real client's builder (./pgClientBuilder.ts): the same
 * statements, transactions, span attributes and pinned-client isolation.
 *
 * @internal
 */
import { MockScript, Statistics } from "@effect-pg-pool/engine"
import * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Pg from "pg"
import type * as Db from "../Db.js"
import type * as DbMock from "../DbMock.js"
import { DatabaseReachability, HealthStatus } from "../Health.js"
import * as PoolConfig from "../PoolConfig.js"
import { ClosedByReason, type PoolState, PoolStatistics } from "../PoolStatistics.js"
import { toPgClientConfig } from "./client.js"
import * as PgClientBuilder from "./pgClientBuilder.js"

type RowTransform = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

/** @internal */
export const response = (
  matcher: DbMock.Matcher | undefined,
  answer: DbMock.ScriptedResponse["answer"],
  options: DbMock.ResponseOptions | undefined
): DbMock.ScriptedResponse => ({
  matcher,
  times: options?.times ?? Number.POSITIVE_INFINITY,
  rowCount: options?.rowCount,
  answer
})

/** @internal */
export const fromHandler =
  (handler: DbMock.Handler): DbMock.ScriptedResponse["answer"] =>
  (sql, params) => {
    const result = handler(sql, params)
    return Effect.isEffect(result) ? result : Effect.succeed(result)
  }

/** @internal */
export const sqlError = (message: string, fields: DbMock.ErrorFields = {}): SqlError => {
  const cause = new Pg.DatabaseError(message, 0, "error")
  cause.severity = "ERROR"
  cause.code = fields.code
  cause.detail = fields.detail
  cause.hint = fields.hint
  cause.schema = fields.schema
  cause.table = fields.table
  cause.column = fields.column
  cause.constraint = fields.constraint
  // The same messages as internal/client.ts, so a test can assert on what production would report.
  return new SqlError({
    cause,
    message: /Connection terminated|not queryable/.test(message)
      ? `Connection lost while executing a statement (${message}); it may or may not have been applied: ` +
        `retry only if it is idempotent`
      : `Failed to execute statement${fields.code ? ` (SQLSTATE ${fields.code})` : ""}: ${message}`
  })
}

interface Entry {
  readonly response: DbMock.ScriptedResponse
  used: number
}

interface Result {
  readonly rows: ReadonlyArray<any>
  readonly rowCount: number
}

/** @internal */
export interface Mock {
  readonly db: Db.Db.Service
  readonly control: DbMock.DbMock.Service
}

/** @internal */
export const make = (options: DbMock.MockOptions): Effect.Effect<Mock, never, Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const config: PoolConfig.PoolConfig = {
      ...PoolConfig.defaults,
      name: "mock",
      url: Redacted.make("postgres://postgres@localhost:5432/postgres"),
      database: "postgres",
      password: undefined
    }
    const pgConfig = toPgClientConfig(config, options)

    const recorded: Array<DbMock.RecordedQuery> = []
    const entries: Array<Entry> = (options.responses ?? []).map((response) => ({ response, used: 0 }))
    const notifications = yield* PubSub.unbounded<MockScript.Notification>()
    const listeners = yield* SubscriptionRef.make<ReadonlyMap<string, number>>(new Map())
    const countListener = (channel: string, delta: number) =>
      SubscriptionRef.update(listeners, (counts) => new Map(counts).set(channel, (counts.get(channel) ?? 0) + delta))
    let connections = 0
    let health: { readonly status: PoolState; readonly reason: string | undefined } = {
      status: "healthy",
      reason: undefined
    }
    const upSince = new Date(yield* Clock.currentTimeMillis)

    const unmatched = (sql: string, params: ReadonlyArray<unknown>): SqlError => {
      const message = MockScript.unmatchedMessage(sql, params, entries)
      return new SqlError({ message })
    }

    class MockConnection implements SqlConnection.Connection {
      readonly id = ++connections
      readonly transaction = new MockScript.Transaction()

      run(kind: DbMock.QueryKind, rawSql: string, params: ReadonlyArray<unknown>): Effect.Effect<Result, SqlError> {
        return Effect.suspend(() => {
          const sql = MockScript.normalize(rawSql)
          recorded.push({ sql, params, kind, connection: this.id })
          const special = MockScript.builtin(sql, params)
          const entry = entries.find(
            ({ response, used }) =>
              used < response.times &&
              (response.matcher === undefined
                ? special === undefined
                : MockScript.matches(response.matcher, sql, params))
          )
          let answer: Effect.Effect<Result, SqlError>
          if (entry !== undefined) {
            entry.used++
            const { rowCount } = entry.response
            answer = Effect.map(entry.response.answer(sql, params), (rows) => ({
              rows,
              rowCount: rowCount ?? rows.length
            }))
          } else if (special !== undefined) {
            const rows = special._tag === "Notify" ? [{ pg_notify: "" }] : []
            answer = Effect.succeed({ rows, rowCount: rows.length })
          } else if (options.onUnmatched === "empty") {
            answer = Effect.succeed({ rows: [], rowCount: 0 })
          } else {
            answer = Effect.fail(unmatched(sql, params))
          }
          // side effects only of statements that succeeded, as on a server
          return special === undefined ? answer : Effect.tap(answer, () => this.apply(special))
        })
      }

      apply(special: MockScript.BuiltinStatement): Effect.Effect<void> {
        const now = this.transaction.apply(special)
        return now.length === 0 ? Effect.void : Effect.asVoid(PubSub.publishAll(notifications, now))
      }

      execute(sql: string, params: ReadonlyArray<unknown>, transform: RowTransform) {
        return Effect.map(this.run("execute", sql, params), ({ rows }) => (transform ? transform(rows) : rows))
      }
      executeUnprepared(sql: string, params: ReadonlyArray<unknown>, transform: RowTransform) {
        return Effect.map(this.run("unprepared", sql, params), ({ rows }) => (transform ? transform(rows) : rows))
      }
      executeValues(sql: string, params: ReadonlyArray<unknown>) {
        return Effect.map(this.run("values", sql, params), ({ rows }) =>
          rows.map((row): ReadonlyArray<unknown> => (Array.isArray(row) ? row : Object.values(row)))
        )
      }
      executeRaw(sql: string, params: ReadonlyArray<unknown>) {
        // shaped like node-postgres's QueryResult, which `.raw` returns in production
        return Effect.map(this.run("raw", sql, params), ({ rowCount, rows }) => ({
          command: sql.trimStart().split(/\s/, 1)[0]!.toUpperCase(),
          rowCount,
          oid: 0,
          rows,
          fields: []
        }))
      }
      executeStream(sql: string, params: ReadonlyArray<unknown>, transform: RowTransform) {
        return Stream.unwrap(
          Effect.map(this.run("stream", sql, params), ({ rows }) =>
            Stream.fromIterable(transform ? transform(rows) : rows)
          )
        )
      }
    }

    // A statement outside a transaction gets a connection of its own, as a pool would lend it one.
    const pooled: SqlConnection.Connection = {
      execute: (sql, params, transform) => new MockConnection().execute(sql, params, transform),
      executeUnprepared: (sql, params, transform) => new MockConnection().executeUnprepared(sql, params, transform),
      executeValues: (sql, params) => new MockConnection().executeValues(sql, params),
      executeRaw: (sql, params) => new MockConnection().executeRaw(sql, params),
      executeStream: (sql, params, transform) => new MockConnection().executeStream(sql, params, transform)
    }

    // the real client's assembly: its statements, transactions, pinned-client isolation and PgClient surface
    const builder = PgClientBuilder.make({
      ...options,
      config: pgConfig,
      listen: (channel) =>
        Stream.unwrapScoped(
          Effect.gen(function* () {
            const queue = yield* PubSub.subscribe(notifications)
            // counted only once subscribed, so `awaitListener` never returns before delivery is possible
            yield* Effect.acquireRelease(countListener(channel, 1), () => countListener(channel, -1))
            return Stream.filterMap(Stream.fromQueue(queue), (n) =>
              n.channel === channel ? Option.some(n.payload) : Option.none()
            )
          })
        ),
      pooledOf: () => undefined
    })
    const reactivity = yield* Reactivity.Reactivity
    const provided = Effect.provideService(Reactivity.Reactivity, reactivity)

    const client = yield* builder.build(
      { connection: pooled, joinsTransactions: () => true },
      {
        acquire: () => Effect.sync(() => [undefined, new MockConnection()] as const),
        joins: () => true,
        pooledOf: () => undefined
      },
      Effect.sync(() => new MockConnection())
    )

    const statistics = (): PoolStatistics =>
      new PoolStatistics({
        poolName: config.name,
        total: config.minSize,
        idle: config.minSize,
        active: 0,
        pending: 0,
        waiting: 0,
        minSize: config.minSize,
        maxSize: config.maxSize,
        peakActive: 0,
        peakWaiting: 0,
        acquisitions: 0,
        acquisitionTimeAvgMs: 0,
        acquisitionTimeP95Ms: 0,
        acquisitionTimeP99Ms: 0,
        acquireTimeouts: 0,
        connectionsCreated: config.minSize,
        connectionsClosed: new ClosedByReason(Statistics.noneClosed()),
        reconnectAttempts: 0,
        leaksSuspected: 0,
        state: health.status,
        lastError: Option.fromNullable(health.status === "healthy" ? undefined : health.reason),
        upSince
      })

    const withConnection: Db.Db.Service["withConnection"] = (f) =>
      Effect.suspend(() => {
        return Effect.flatMap(provided(builder.pinned(new MockConnection())), f)
      })
    const db: Db.Db.Service = {
      withConnection,
      // no replicas: reads go where every statement goes
      readOnly: withConnection,
      readOnlySql: client,
      replicas: Option.none(),
      statistics: Effect.sync(statistics),
      health: Effect.map(Clock.currentTimeMillis, (now) => {
        const checkedAt = new Date(now)
        return new HealthStatus({
          status: health.status,
          reason: Option.fromNullable(health.status === "healthy" ? undefined : health.reason),
          checkedAt,
          database: new DatabaseReachability({
            reachable: health.status !== "unhealthy",
            latencyMs: health.status === "unhealthy" ? Option.none() : Option.some(0),
            probedAt: Option.some(checkedAt)
          }),
          statistics: statistics()
        })
      }),
      // no connections to retire
      refresh: Effect.void,
      sql: client,
      config
    }

    const control: DbMock.DbMock.Service = {
      queries: Effect.sync(() => recorded.slice()),
      clear: Effect.sync(() => {
        recorded.length = 0
      }),
      script: (...responses) =>
        Effect.sync(() => {
          for (const response of responses) entries.push({ response, used: 0 })
        }),
      awaitListener: (channel) =>
        listeners.changes.pipe(
          Stream.takeUntil((counts) => (counts.get(channel) ?? 0) > 0),
          Stream.runDrain
        ),
      setHealth: (status, reason) =>
        Effect.sync(() => {
          health = { status, reason }
        })
    }

    return { db, control }
  })
