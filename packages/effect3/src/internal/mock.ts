/**
 * The machinery behind `DbMock`: connections that answer from a script instead of a socket and record every
 * statement, under a `PgClient` assembled by the real client's builder (./pgClientBuilder.ts): the same
 * statements, transactions, span attributes and pinned-client isolation.
 *
 * @internal
 */
import { Statistics } from "@effect-pg-pool/engine"
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
    const notifications = yield* PubSub.unbounded<Notification>()
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
      return new SqlError({ message })
    }

    class MockConnection implements SqlConnection.Connection {
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
            return Effect.asVoid(PubSub.publishAll(notifications, pending))
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
            return Effect.asVoid(PubSub.publish(notifications, special))
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
