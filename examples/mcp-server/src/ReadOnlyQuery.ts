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
 * - No COPY: a cursor cannot carry its data; the pool refuses it with a `SqlError`.
 */
import * as Db from "@effect-pg-pool/effect3/Db"
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
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

/**
 * Runs `text` read-only under `limits`. Fails with the statement's `SqlError` (a refused write: SQLSTATE 25006;
 * a COPY, which a cursor cannot carry) or `QueryTimeout`.
 */
export const run = (text: string, limits: Limits): Effect.Effect<Result, SqlError | QueryTimeout, Db.Db> =>
  Effect.gen(function* () {
    const { sql } = yield* Db.Db
    const started = performance.now()
    const rows = yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`SET TRANSACTION READ ONLY`
        // an integer from our own configuration: nothing of the client's reaches this text
        yield* sql.unsafe(`SET LOCAL statement_timeout = ${Math.max(1, Math.ceil(Duration.toMillis(limits.timeout)))}`)
        // interrupted (a cancelled request, the call's bound, the session's end), the pool cancels the cursor's
        // statement on the server
        return yield* sql
          .unsafe<Record<string, unknown>>(text)
          .stream.pipe(Stream.take(limits.maxRows + 1), Stream.runCollect)
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
