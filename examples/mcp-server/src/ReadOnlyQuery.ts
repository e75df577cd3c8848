/**
 * The `query` tool's engine: one statement a client sent, run so that it cannot change the database, cannot run
 * for long and cannot flood the session with rows.
 *
 * - `READ ONLY` transaction: PostgreSQL refuses every write (INSERT, UPDATE, DELETE, DDL, nextval…) with SQLSTATE
 *   25006. It is a guard against mistakes, not a sandbox: `COPY … TO PROGRAM`, `pg_terminate_backend` and the like
 *   are not writes. Connect as a role that may only read what the client may see.
 * - One statement: the text runs through a cursor (the extended protocol), where PostgreSQL refuses a second
 *   statement — so `COMMIT; DELETE …` cannot end the read-only transaction and write after it.
 * - `SET LOCAL statement_timeout`: the server stops a slow query itself; the same bound (and a second) on the
 *   whole call, connection wait included, interrupts it client-side when the server cannot answer. An interrupted
 *   call (that bound, a cancelled request, the session's end) cancels its statement on the server at once.
 * - A row limit: the cursor is read in batches and closed after `maxRows + 1` rows.
 * - No COPY: a cursor cannot carry its data (and node-postgres' cursor fails on it outside any callback).
 */
import * as Db from "@effect-pg-pool/core/Db"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"

export interface Limits {
  /** The most rows returned; the result says when more were left out. */
  readonly maxRows: number
  /** Bounds the statement (`statement_timeout`) and the whole call, connection wait included. */
  readonly timeout: Duration.Duration
}

export type JsonValue =
  | string
  | number
  | boolean
  | null
  | ReadonlyArray<JsonValue>
  | { readonly [key: string]: JsonValue }

export interface Result {
  /** The columns of the first row, in order (none when no row came back). */
  readonly columns: ReadonlyArray<string>
  readonly rows: ReadonlyArray<Record<string, JsonValue>>
  readonly rowCount: number
  /** True when the statement had more than `maxRows` rows. */
  readonly truncated: boolean
  readonly maxRows: number
  readonly elapsedMillis: number
}

/** The statement ran past its time: on the server (SQLSTATE 57014) or waiting for the pool or the network. */
export class QueryTimeout extends Data.TaggedError("QueryTimeout")<{ readonly timeout: Duration.Duration }> {
  override get message() {
    return (
      `the query did not finish within ${Duration.format(this.timeout)} and was cancelled: ` +
      `narrow it (a WHERE clause, a LIMIT) or raise MCP_QUERY_TIMEOUT`
    )
  }
}

/**
 * JSON for what node-postgres parses: dates as ISO strings, `bytea` as `\x…` hex (as psql shows it), bigints
 * as strings; `json` columns and arrays keep their shape.
 */
export const toJson = (value: unknown): JsonValue => {
  if (value === null || value === undefined) return null
  if (typeof value === "string" || typeof value === "boolean") return value
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value)
  if (typeof value === "bigint") return value.toString()
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString()
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString("hex")}`
  if (Array.isArray(value)) return value.map(toJson)
  if (typeof value === "object") {
    const out: Record<string, JsonValue> = {}
    for (const [key, field] of Object.entries(value)) out[key] = toJson(field)
    return out
  }
  return String(value)
}

const clientGrace = Duration.seconds(1)

/** A statement the tool does not run, refused before it reaches the database. */
export class UnsupportedStatement extends Data.TaggedError("UnsupportedStatement")<{ readonly keyword: string }> {
  override get message() {
    return (
      `${this.keyword} is not supported by the query tool: it streams rows through a cursor, which cannot carry ` +
      `COPY's data. Use SELECT (e.g. SELECT * FROM t) instead`
    )
  }
}

/** The first keyword of a statement, past whitespace, comments and opening parentheses; upper case. */
export const leadingKeyword = (text: string): string | undefined => {
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === "(" || /\s/.test(c)) {
      i++
    } else if (text.startsWith("--", i)) {
      const end = text.indexOf("\n", i)
      if (end === -1) return undefined
      i = end + 1
    } else if (text.startsWith("/*", i)) {
      // PostgreSQL's block comments nest
      let depth = 0
      do {
        if (text.startsWith("/*", i)) {
          depth++
          i += 2
        } else if (text.startsWith("*/", i)) {
          depth--
          i += 2
        } else if (i >= text.length) {
          return undefined
        } else {
          i++
        }
      } while (depth > 0)
    } else {
      return /^[A-Za-z_]+/.exec(text.slice(i))?.[0].toUpperCase()
    }
  }
  return undefined
}

/**
 * Runs a cursor's statement so that interrupting it (the client cancelled the request, the call timed out, the
 * session ends) stops it on the server at once. The pool cancels an interrupted statement itself, but not yet a
 * cursor's: closing the cursor would wait for the statement, up to DB_POOL_CANCEL_TIMEOUT, then give up the
 * connection while the backend runs on. So the backend is cancelled first, from another connection of the pool —
 * safe here because this transaction holds its connection until the cancel is done, so it cannot reach another
 * caller's statement (a cancel that arrives after the statement ended finds the backend idle and is ignored).
 */
const cancelOnInterrupt = <A, E, R>(rows: Effect.Effect<A, E, R>, pid: number) =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const running = yield* Effect.fork(restore(rows))
      return yield* restore(Fiber.join(running)).pipe(
        Effect.onInterrupt(() =>
          Effect.flatMap(Db.Db, ({ sql }) => sql`SELECT pg_cancel_backend(${pid})`).pipe(
            // outside this transaction, whose connection is busy with the statement
            Effect.mapInputContext((context: Context.Context<Db.Db>) =>
              Context.omit(SqlClient.TransactionConnection)(context)
            ),
            Effect.timeout("2 seconds"),
            Effect.ignore,
            Effect.zipRight(Fiber.interrupt(running))
          )
        )
      )
    })
  )

/**
 * Runs `text` read-only under `limits`. Fails with the statement's `SqlError` (a refused write: SQLSTATE 25006),
 * `QueryTimeout` or `UnsupportedStatement`.
 */
export const run = (
  text: string,
  limits: Limits
): Effect.Effect<Result, SqlError | QueryTimeout | UnsupportedStatement, Db.Db> =>
  Effect.gen(function* () {
    // pg's cursor has no handler for COPY's data messages, and one arriving throws out of the socket's callback
    if (leadingKeyword(text) === "COPY") return yield* new UnsupportedStatement({ keyword: "COPY" })
    const { sql } = yield* Db.Db
    const started = performance.now()
    const rows = yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`SET TRANSACTION READ ONLY`
        // an integer from our own configuration: nothing of the client's reaches this text
        yield* sql.unsafe(`SET LOCAL statement_timeout = ${Math.max(1, Math.ceil(Duration.toMillis(limits.timeout)))}`)
        const [{ pid }] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
        const rows = sql
          .unsafe<Record<string, unknown>>(text)
          .stream.pipe(Stream.take(limits.maxRows + 1), Stream.runCollect)
        return yield* cancelOnInterrupt(rows, pid)
      })
    )
    const all = Chunk.toReadonlyArray(rows)
    const kept = all.slice(0, limits.maxRows).map((row) => toJson(row) as Record<string, JsonValue>)
    return {
      columns: all.length === 0 ? [] : Object.keys(all[0]!),
      rows: kept,
      rowCount: kept.length,
      truncated: all.length > limits.maxRows,
      maxRows: limits.maxRows,
      elapsedMillis: Math.round(performance.now() - started)
    }
  }).pipe(
    // a second more than the server's own bound, which stops a slow query without a cancel request
    Effect.timeoutFail({
      duration: Duration.sum(limits.timeout, clientGrace),
      onTimeout: () => new QueryTimeout({ timeout: limits.timeout })
    }),
    Effect.catchIf(
      // 57014 is also a cancel by an administrator, which is no timeout of ours
      (error) => error._tag === "SqlError" && sqlState(error) === "57014" && /statement timeout/.test(error.message),
      () => Effect.fail(new QueryTimeout({ timeout: limits.timeout }))
    )
  )

/** The SQLSTATE of the PostgreSQL error behind a `SqlError`, if there is one. */
export const sqlState = (error: SqlError): string | undefined => {
  const code = (error.cause as { code?: unknown } | undefined)?.code
  return typeof code === "string" ? code : undefined
}
