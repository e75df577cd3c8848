/**
 * The machinery behind `DbMock`: connections that answer from a script instead of a socket and record every
 * statement, under a `PgClient` assembled by the real client's builder (./client.ts): the same compiler, statements,
 * transactions, span attributes and per-client transaction isolation — and `listen` / `notify` delivered in memory,
 * notifications sent in a transaction only on its COMMIT, as PostgreSQL does.
 *
 * @internal
 */
import { Statistics } from "@effect-pg-pool/engine"
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

const isSpace = (ch: string) => ch === " " || ch === "\n" || ch === "\t" || ch === "\r" || ch === "\f" || ch === "\v"

/**
 * Collapses whitespace runs outside quoted literals and identifiers, so matchers and assertions do not depend
 * on how a template literal was indented.
 *
 * @internal
 */
export const normalize = (sql: string): string => {
  let out = ""
  let quote: string | undefined
  let space = false
  for (const ch of sql) {
    if (quote !== undefined) {
      out += ch
      if (ch === quote) quote = undefined
    } else if (isSpace(ch)) {
      space = out.length > 0
    } else {
      if (space) out += " "
      space = false
      if (ch === "'" || ch === '"') quote = ch
      out += ch
    }
  }
  return out
}

const matches = (matcher: DbMock.Matcher, sql: string, params: ReadonlyArray<unknown>): boolean =>
  typeof matcher === "string"
    ? sql.includes(normalize(matcher))
    : matcher instanceof RegExp
      ? sql.search(matcher) !== -1
      : matcher(sql, params)

const show = (value: unknown): string => {
  if (typeof value === "bigint") return `${value}n`
  if (value instanceof Date) return value.toISOString()
  if (value instanceof RegExp) return String(value)
  if (value instanceof Uint8Array) return `<${value.length} bytes>`
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`
  if (typeof value === "function") return value.name === "" ? "a predicate" : `${value.name}(sql, params)`
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** Statements the mock answers itself when no response matches them explicitly, and their side effects. */
type Builtin =
  | { readonly _tag: "Begin" }
  | { readonly _tag: "Commit" }
  | { readonly _tag: "Rollback" }
  | { readonly _tag: "Savepoint"; readonly name: string }
  | { readonly _tag: "RollbackTo"; readonly name: string }
  | { readonly _tag: "Release"; readonly name: string }
  | { readonly _tag: "Notify"; readonly channel: string; readonly payload: string }

const builtin = (sql: string, params: ReadonlyArray<unknown>): Builtin | undefined => {
  if (/^(BEGIN|START TRANSACTION)\b/i.test(sql)) return { _tag: "Begin" }
  if (/^(COMMIT|END)\b/i.test(sql)) return { _tag: "Commit" }
  const rollbackTo = /^ROLLBACK(?: TRANSACTION| WORK)? TO (?:SAVEPOINT )?(\S+)/i.exec(sql)
  if (rollbackTo !== null) return { _tag: "RollbackTo", name: rollbackTo[1]! }
  if (/^(ROLLBACK|ABORT)\b/i.test(sql)) return { _tag: "Rollback" }
  const savepoint = /^SAVEPOINT (\S+)/i.exec(sql)
  if (savepoint !== null) return { _tag: "Savepoint", name: savepoint[1]! }
  const release = /^RELEASE (?:SAVEPOINT )?(\S+)/i.exec(sql)
  if (release !== null) return { _tag: "Release", name: release[1]! }
  // what `PgClient.notify` sends
  if (/^SELECT pg_notify\(\$1, \$2\)$/i.test(sql)) {
    return { _tag: "Notify", channel: String(params[0]), payload: String(params[1] ?? "") }
  }
  return undefined
}

interface Notification {
  readonly channel: string
  readonly payload: string
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

    const publish = (notifications: ReadonlyArray<Notification>) =>
      Effect.sync(() => {
        for (const { channel, payload } of notifications) {
          for (const listener of listeners) {
            if (listener.channel === channel) Queue.offerUnsafe(listener.queue, { processId: 0, channel, payload })
          }
        }
      })

    const unmatched = (sql: string, params: ReadonlyArray<unknown>): SqlError => {
      const script =
        entries.length === 0
          ? "No responses are scripted."
          : "Scripted responses, first match wins:\n" +
            entries
              .map(({ response: { matcher, times }, used }, i) => {
                const what = matcher === undefined ? "any statement (respondWith without a matcher)" : show(matcher)
                const uses = times === Number.POSITIVE_INFINITY ? "" : ` (used ${used} of ${times} times)`
                return `  ${i + 1}. ${what}${uses}`
              })
              .join("\n")
      const message =
        `DbMock: no scripted response matches this statement:\n  ${sql}\n  params: ${show(params)}\n${script}\n` +
        `Script one with DbMock.respond(matcher, rows) in DbMock.layer({ responses }) or DbMock.script(...), ` +
        `or pass onUnmatched: "empty" to answer every unmatched statement with no rows.`
      return new SqlError({ reason: new UnknownError({ cause: new Error(message), message, operation: "query" }) })
    }

    class MockConnection implements Connection {
      readonly id = ++connections
      /** Notifications sent inside the open transaction: PostgreSQL delivers them on COMMIT only. */
      pending: Array<Notification> | undefined = undefined
      savepoints: Array<readonly [name: string, pending: number]> = []

      run(kind: DbMock.QueryKind, rawSql: string, params: ReadonlyArray<unknown>): Effect.Effect<Result, SqlError> {
        return Effect.suspend(() => {
          const sql = normalize(rawSql)
          recorded.push({ sql, params, kind, connection: this.id })
          const special = builtin(sql, params)
          const entry = entries.find(
            ({ response, used }) =>
              used < response.times &&
              (response.matcher === undefined ? special === undefined : matches(response.matcher, sql, params))
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

      apply(special: Builtin): Effect.Effect<void> {
        switch (special._tag) {
          case "Begin":
            this.pending ??= []
            return Effect.void
          case "Commit": {
            const pending = this.pending ?? []
            this.pending = undefined
            this.savepoints = []
            return publish(pending)
          }
          case "Rollback":
            this.pending = undefined
            this.savepoints = []
            return Effect.void
          case "Savepoint":
            this.savepoints.push([special.name, this.pending?.length ?? 0])
            return Effect.void
          case "RollbackTo":
          case "Release": {
            let i = this.savepoints.length - 1
            while (i >= 0 && this.savepoints[i]![0] !== special.name) i--
            if (i === -1) return Effect.void
            if (special._tag === "RollbackTo") {
              this.pending?.splice(this.savepoints[i]![1])
              this.savepoints.splice(i + 1)
            } else {
              this.savepoints.splice(i)
            }
            return Effect.void
          }
          case "Notify":
            if (this.pending !== undefined) {
              this.pending.push(special)
              return Effect.void
            }
            return publish([special])
        }
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
