/**
 * The machinery behind `DbMock`: connections that answer from a script instead of a socket and record every
 * statement, under a `PgClient` assembled by the real client's builder (./client.ts): the same compiler, statements,
 * transactions, span attributes and per-client transaction isolation — and `listen` / `notify` delivered in memory,
 * notifications sent in a transaction only on its COMMIT, as PostgreSQL does.
 *
 * @internal
 */
import { MockScript, Statistics } from "@effect-pg-pool/engine"
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Reactivity from "effect/reactivity/Reactivity"
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
import type * as Db from "../Db.js"
import type * as DbMock from "../DbMock.js"
import { DatabaseReachability, HealthStatus } from "../Health.js"
import type { PoolConfig } from "../PoolConfig.js"
import { ClosedByReason, type PoolState, PoolStatistics } from "../PoolStatistics.js"
import * as Client from "./client.js"
import * as InternalConfig from "./config.js"

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

/**
 * The `SqlError` @effect/sql-pg 4 raises for a server's ErrorResponse: classified by SQLSTATE, with PgConnection's
 * message, caused by an `Error` carrying the server's message and fields.
 *
 * @internal
 */
export const sqlError = (message: string, fields: DbMock.ErrorFields = {}): SqlError => {
  const cause = Object.assign(new Error(message), { severity: "ERROR", ...fields })
  const props = { cause, message: "PgConnection: Query failed", operation: "query" }
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
              ? new UniqueViolation({ ...props, constraint: fields.constraint?.trim() || "unknown" })
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
  readonly db: Db.Service
  readonly control: DbMock.Service
}

/** @internal */
export const make = (options: DbMock.MockOptions): Effect.Effect<Mock, never, Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const config = InternalConfig.resolve({
      url: "postgres://postgres@localhost:5432/postgres",
      name: "mock"
    }) as PoolConfig
    const spanTarget = { host: config.host, port: config.port, database: config.database }
    const pgConfig = {
      url: config.url,
      host: config.host,
      port: config.port,
      database: config.database,
      username: config.user
    } as PgClient.PgClientConfig

    const recorded: Array<DbMock.RecordedQuery> = []
    const entries: Array<Entry> = (options.responses ?? []).map((response) => ({ response, used: 0 }))
    const listeners = new Set<{ readonly channel: string; readonly queue: Queue.Queue<PgConnection.Notification> }>()
    const awaiting = new Set<{ readonly channel: string; readonly done: Deferred.Deferred<void> }>()
    let connections = 0
    let health: { readonly status: PoolState; readonly reason: string | undefined } = {
      status: "healthy",
      reason: undefined
    }
    const upSince = new Date(yield* Clock.currentTimeMillis)

    const publish = (notifications: ReadonlyArray<MockScript.Notification>) =>
      Effect.sync(() => {
        for (const { channel, payload } of notifications) {
          for (const listener of listeners) {
            if (listener.channel === channel) Queue.offerUnsafe(listener.queue, { processId: 0, channel, payload })
          }
        }
      })

    const unmatched = (sql: string, params: ReadonlyArray<unknown>): SqlError => {
      const message = MockScript.unmatchedMessage(sql, params, entries)
      return new SqlError({ reason: new UnknownError({ cause: new Error(message), message, operation: "query" }) })
    }

    class MockConnection implements Connection {
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
        return now.length === 0 ? Effect.void : publish(now)
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
      executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
        return this.executeValues(sql, params)
      }
      executeRaw(sql: string, params: ReadonlyArray<unknown>) {
        // shaped like PgConnection's Result, which `.raw` returns in production
        return Effect.map(
          this.run("raw", sql, params),
          ({ rowCount, rows }): PgConnection.Result => ({
            command: sql.trimStart().split(/\s/, 1)[0]!.toUpperCase(),
            rowCount,
            oid: null,
            rows,
            fields: []
          })
        )
      }
      executeStream(sql: string, params: ReadonlyArray<unknown>, transform: RowTransform) {
        return Stream.unwrap(
          Effect.map(this.run("stream", sql, params), ({ rows }) =>
            Stream.fromIterable(transform ? transform(rows) : rows)
          )
        )
      }
    }

    // a listener is subscribed once `listen` returns: a notification sent before that is lost, as with PostgreSQL
    const listen = (channel: string) =>
      Effect.acquireRelease(
        Effect.gen(function* () {
          const queue = yield* Queue.unbounded<PgConnection.Notification>()
          const listener = { channel, queue }
          listeners.add(listener)
          for (const waiter of awaiting) {
            if (waiter.channel === channel) {
              awaiting.delete(waiter)
              Deferred.doneUnsafe(waiter.done, Effect.void)
            }
          }
          return listener
        }),
        (listener) =>
          Effect.sync(() => {
            listeners.delete(listener)
            Queue.shutdownUnsafe(listener.queue)
          })
      ).pipe(Effect.map((listener) => listener.queue as Queue.Dequeue<PgConnection.Notification, SqlError>))

    // a statement outside a transaction gets a connection of its own, as a pool would lend it one
    const fresh = Effect.sync((): Connection => new MockConnection())
    const client = yield* Client.build(
      options,
      spanTarget,
      {
        acquirer: fresh,
        borrower: (f) => Effect.suspend(() => f(new MockConnection())),
        transactionAcquirer: fresh,
        listen
      },
      pgConfig
    )
    const reactivity = yield* Effect.context<Reactivity.Reactivity>()

    const statistics = (): PoolStatistics =>
      new PoolStatistics(
        {
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
          lastError: Option.fromUndefinedOr(health.status === "healthy" ? undefined : health.reason),
          upSince
        },
        { disableChecks: true }
      )

    const db: Db.Service = {
      withConnection: (f) =>
        Effect.suspend(() => {
          const held: Effect.Effect<Connection> = Effect.succeed(new MockConnection())
          return Client.build(
            options,
            spanTarget,
            { acquirer: held, transactionAcquirer: held, listen },
            pgConfig
          ).pipe(
            Effect.provideContext(reactivity),
            Effect.flatMap((sql) => Effect.suspend(() => f(sql)))
          )
        }),
      statistics: Effect.sync(statistics),
      health: Effect.map(Clock.currentTimeMillis, (now) => {
        const checkedAt = new Date(now)
        return new HealthStatus(
          {
            status: health.status,
            reason: Option.fromUndefinedOr(health.status === "healthy" ? undefined : health.reason),
            checkedAt,
            database: new DatabaseReachability({
              reachable: health.status !== "unhealthy",
              latencyMs: health.status === "unhealthy" ? Option.none() : Option.some(0),
              probedAt: Option.some(checkedAt)
            }),
            statistics: statistics()
          },
          { disableChecks: true }
        )
      }),
      // no connections to retire, no read-only pool: reads run as withConnection does
      refresh: Effect.void,
      readOnly: (f) => db.withConnection(f),
      readOnlySql: client,
      replicas: Option.none(),
      sql: client,
      config
    }

    const control: DbMock.Service = {
      queries: Effect.sync(() => recorded.slice()),
      clear: Effect.sync(() => {
        recorded.length = 0
      }),
      script: (...responses) =>
        Effect.sync(() => {
          for (const response of responses) entries.push({ response, used: 0 })
        }),
      awaitListener: (channel) =>
        Effect.suspend(() => {
          for (const listener of listeners) if (listener.channel === channel) return Effect.void
          const done = Deferred.makeUnsafe<void>()
          const waiter = { channel, done }
          awaiting.add(waiter)
          return Effect.ensuring(
            Deferred.await(done),
            Effect.sync(() => awaiting.delete(waiter))
          )
        }),
      setHealth: (status, reason) =>
        Effect.sync(() => {
          health = { status, reason }
        })
    }

    return { db, control }
  })
