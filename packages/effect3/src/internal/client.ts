/**
 * The @effect/sql `SqlClient` / @effect/sql-pg `PgClient` built on our pool: the same compiler, the same
 * statements and transactions, but acquisition, cancellation and reset are ours.
 *
 * @internal
 */
import { Classify, Pooler } from "@effect-pg-pool/engine"
import type * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Pg from "pg"
import Cursor from "pg-cursor"
import type { PoolConfig } from "../PoolConfig.js"
import type { AcquireTimeout, PoolClosed } from "../PoolError.js"
import * as Connection from "./connection.js"
import type { PooledConnection } from "./connection.js"
import type { Listener } from "./listener.js"
import { timeoutOption } from "./deadline.js"
import type { Pool } from "./pool.js"
import * as PgClientBuilder from "./pgClientBuilder.js"
import * as Pipeline from "./pipeline.js"

/** @internal */
export interface ClientOptions {
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly transformJson?: boolean | undefined
}

type RowTransform = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

/** @internal */
export interface Clients {
  /** Each statement borrows a connection for its own duration. */
  readonly client: PgClient.PgClient
  /** A client pinned to one checked-out connection (Db.withConnection), cached per physical connection. */
  readonly pinned: (conn: PooledConnection) => PgClient.PgClient
}

const isRollback = (sql: string) => sql === "ROLLBACK" || sql.startsWith("ROLLBACK TO SAVEPOINT")

/** `PgClient.config` as @effect/sql-pg would report it for the same settings. @internal */
export const toPgClientConfig = (config: PoolConfig, options: ClientOptions): PgClient.PgClientConfig => ({
  url: config.url,
  host: config.host,
  port: config.port,
  database: config.database,
  username: config.user,
  password: config.password,
  ssl: config.ssl,
  applicationName: config.applicationName,
  connectTimeout: config.connectTimeout,
  idleTimeout: config.maxIdleTime,
  connectionTTL: config.maxLifetime,
  maxConnections: config.maxSize,
  minConnections: config.minSize,
  spanAttributes: options.spanAttributes,
  transformResultNames: options.transformResultNames,
  transformQueryNames: options.transformQueryNames,
  transformJson: options.transformJson
})

/** @internal */
export const make = (
  pool: Pool,
  config: PoolConfig,
  listener: Listener,
  options: ClientOptions
): Effect.Effect<Clients, never, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const pgConfig = toPgClientConfig(config, options)

    const acquireError = (error: AcquireTimeout | PoolClosed) => new SqlError({ cause: error, message: error.message })

    // Acquire → use → release in as few steps as the fiber runtime allows (this is the hot path): the
    // release is settled synchronously in the continuation, and only a needed reset adds an effect.
    const usePooled = <A, E, R, E2>(
      f: (conn: PooledConnection) => Effect.Effect<A, E, R>,
      onAcquireError: (error: AcquireTimeout | PoolClosed) => E2
    ): Effect.Effect<A, E | E2, R> =>
      Effect.uninterruptibleMask((restore) =>
        pool.withAcquired<A, E | E2, R>(
          restore,
          (conn) =>
            Effect.matchCauseEffect(restore(f(conn)), {
              onFailure: (cause) => pool.afterRelease(conn, Effect.failCause(cause)),
              onSuccess: (value) => pool.afterRelease(conn, Effect.succeed(value))
            }),
          (cause) => Effect.failCause(Cause.map(cause, onAcquireError))
        )
      )
    // the release is the scope's finalizer, added in the acquisition's own step (no mapError or tap steps after it)
    const reserveRaw: Effect.Effect<PooledConnection, SqlError, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.scope, (scope) =>
        pool.withAcquired<PooledConnection, SqlError, never>(
          restore,
          (conn) => Effect.as(Scope.addFinalizer(scope, pool.releaseEffect(conn)), conn),
          (cause) => Effect.failCause(Cause.map(cause, acquireError))
        )
      )
    )

    const statementError = (conn: PooledConnection, cause: Error, sql?: string) => {
      const lost = conn.broken !== undefined || /Connection terminated|not queryable|ECONNRESET/.test(cause.message)
      const code = (cause as any).code as string | undefined
      const text = pool.redact(cause)
      // a lost COMMIT has an unknown outcome, unlike any other statement of a transaction: say which it was
      const what = sql === "COMMIT" ? "COMMIT" : "a statement"
      return new SqlError({
        cause,
        message: lost
          ? `Connection lost while executing ${what} (${text}); it may or may not have been applied: ` +
            `retry only if it is idempotent`
          : `Failed to execute statement${code ? ` (SQLSTATE ${code})` : ""}: ${text}`
      })
    }

    // Behind a transaction pooler a statement that exists to change the session would change someone else's
    const refusedBehindPooler = (sql: string): SqlError | undefined => {
      const message = Pooler.statementRefusal(config.pooler, sql, config.settingNames.pooler)
      return message === undefined ? undefined : new SqlError({ message })
    }

    const run = (
      conn: PooledConnection,
      sql: string,
      params: ReadonlyArray<unknown>,
      transform: RowTransform,
      rowMode?: "array"
    ): Effect.Effect<ReadonlyArray<any>, SqlError> => {
      const invalid = unsendable(sql, params) ?? refusedBehindPooler(sql)
      if (invalid !== undefined) return Effect.fail(invalid)
      return pool.query(conn, sql, params, rowMode, (err, result) => {
        if (err) return Effect.fail(statementError(conn, err, sql))
        // multi-statement queries return one result per statement
        const rows = Array.isArray(result) ? result.map((r: Pg.QueryResult) => r.rows ?? []) : (result.rows ?? [])
        // the row transform recurses into each result of a multi-statement query
        return Effect.succeed(transform !== undefined ? transform(rows) : rows)
      })
    }

    const runRaw = (conn: PooledConnection, sql: string, params: ReadonlyArray<unknown>) => {
      const invalid = unsendable(sql, params) ?? refusedBehindPooler(sql)
      if (invalid !== undefined) return Effect.fail(invalid)
      return pool.query(conn, sql, params, undefined, (err, result) =>
        err ? Effect.fail(statementError(conn, err)) : Effect.succeed(result)
      )
    }

    // A cursor holds its connection until it is closed: it counts as in flight (shutdown cancels it, a release
    // while it is open discards the connection) and nothing else may run on the connection meanwhile. A read
    // interrupted on the server's time is cancelled there, as a statement is.
    const stream = (conn: PooledConnection, sql: string, params: ReadonlyArray<unknown>, transform: RowTransform) =>
      Effect.gen(function* () {
        const invalid = unsendable(sql, params)
        if (invalid !== undefined) return yield* invalid
        // a cursor cannot carry COPY's data (pg's cursor has no handler for it: it would throw out of the socket's
        // callback and take the process down)
        if (Classify.firstKeyword(sql) === "COPY") {
          return yield* Effect.fail(
            new SqlError({
              message:
                "COPY cannot run as a stream (a cursor): run it as a statement (COPY … TO STDOUT returns no rows " +
                "through the pool), or stream the rows of a SELECT instead"
            })
          )
        }
        if (Classify.mayLeaveSessionState(sql)) conn.sessionDirty = true
        if (conn.blockedByCursor()) {
          return yield* Effect.fail(
            new SqlError({
              message:
                "Cannot open a stream on a connection whose other stream (cursor) is still open: PostgreSQL runs one " +
                "at a time per connection. Consume or end the first stream, or open this one on the pool"
            })
          )
        }
        const cursor = conn.client.query(new Cursor(sql, params as Array<any>))
        conn.queries++
        conn.inFlight++
        conn.cursor = cursor as unknown as { readonly state: string }
        let reading = false
        const forget = (closed: boolean) =>
          Effect.sync(() => {
            conn.inFlight--
            if (conn.cursor === (cursor as unknown)) conn.cursor = undefined
            if (!closed) conn.broken ??= new Error("a cursor could not be closed in time")
          })
        yield* Effect.addFinalizer(() =>
          Effect.suspend(() => {
            // still queued behind another statement: never sent, nothing to close or cancel
            if (Connection.unqueue(conn.client, cursor)) return forget(true)
            const close = Effect.async<void>((resume) => {
              cursor.close(() => resume(Effect.void))
            })
            const target = reading ? conn.cancelTarget() : undefined
            const closed =
              target === undefined
                ? Effect.interruptible(close).pipe((work) => timeoutOption(work, config.cancelTimeout))
                : Effect.asSome(
                    Connection.cancelAndAwait(target, close, config.cancelTimeout, () => {
                      conn.broken ??= new Error("a cursor could not be cancelled in time")
                    })
                  )
            return Effect.flatMap(closed, (done) => forget(Option.isSome(done)))
          })
        )
        const pull = Effect.async<Chunk.Chunk<any>, Option.Option<SqlError>>((resume) => {
          reading = true
          cursor.read(128, (err, rows) => {
            reading = false
            if (err) return resume(Effect.fail(Option.some(statementError(conn, err))))
            if (!Arr.isNonEmptyArray(rows)) return resume(Effect.fail(Option.none()))
            try {
              resume(Effect.succeed(Chunk.unsafeFromArray(transform ? transform(rows) : rows)))
            } catch (defect) {
              // a throwing transform (user code) is a defect of the stream, never a throw inside pg
              resume(Effect.die(defect))
            }
          })
        })
        return Stream.repeatEffectChunkOption(pull)
      })

    class PinnedConnection implements SqlConnection.Connection {
      constructor(readonly conn: PooledConnection) {}
      execute(sql: string, params: ReadonlyArray<unknown>, transform: RowTransform) {
        return run(this.conn, sql, params, transform)
      }
      executeRaw(sql: string, params: ReadonlyArray<unknown>) {
        return runRaw(this.conn, sql, params)
      }
      executeStream(sql: string, params: ReadonlyArray<unknown>, transform: RowTransform) {
        return Stream.unwrapScoped(stream(this.conn, sql, params, transform))
      }
      executeValues(sql: string, params: ReadonlyArray<unknown>) {
        return run(this.conn, sql, params, undefined, "array")
      }
      executeUnprepared(sql: string, params: ReadonlyArray<unknown>, transform: RowTransform) {
        const effect = run(this.conn, sql, params, transform)
        if (!isRollback(sql)) return effect
        // A rollback on a lost connection has nothing left to undo: the server discarded the transaction with the
        // session. Failing it would turn the caller's real error into a defect (withTransaction dies on a failed
        // rollback), so it succeeds and the caller sees the error that broke the connection.
        const conn = this.conn
        return Effect.catchAll(effect, (error) =>
          conn.broken !== undefined || /Connection terminated|not queryable|ECONNRESET/.test(String(error.cause))
            ? Effect.succeed([])
            : Effect.fail(error)
        )
      }
    }

    // A statement PgBouncer failed before any server ran it waits for a working connection, within acquireTimeout
    const neverRan = (error: SqlError) => {
      const kind = Classify.poolerError(error.cause)
      return kind !== undefined && Classify.neverReachedServer(kind)
    }
    const borrow = <A>(f: (conn: PooledConnection) => Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> => {
      const attempt = usePooled(f, acquireError)
      if (config.pooler === "none") return attempt
      return Effect.suspend(() => {
        const deadline = Date.now() + Duration.toMillis(config.acquireTimeout)
        return Effect.retry(attempt, { while: (error) => neverRan(error) && Date.now() < deadline })
      })
    }

    // Statements outside a transaction borrow a connection per call; no Scope is opened for it.
    // Pipelining (`pipeline` ≥ 2 statement slots): an autocommit statement that cannot leave session state takes a
    // slot of the least-loaded session (internal/pipeline.ts) instead of a whole one. Not with a queryTimeout: its
    // promise is a server-side cancel, and a pipelined statement is never cancelled (the running one may be
    // another caller's).
    const pipelining = config.pipeline >= 2 && config.queryTimeout === undefined
    const pipelinedError = (error: Pipeline.PipelineError): SqlError => {
      const cause = error.cause as Error | undefined
      const text = cause === undefined ? error.message : pool.redact(cause)
      const code = (cause as { code?: unknown } | undefined)?.code
      return new SqlError({
        cause: error.cause ?? error,
        message:
          error.reason === "statement"
            ? `Failed to execute statement${typeof code === "string" ? ` (SQLSTATE ${code})` : ""}: ${text}`
            : `Connection lost while executing a statement (${text}); it may or may not have been applied: ` +
              `retry only if it is idempotent`
      })
    }
    // The slot is granted and the statement written inside one uninterruptible region: from `send` on, its
    // `onDone` hands the slot back exactly once, whether the caller waits, is interrupted, or never looks.
    const pipelined = (
      sql: string,
      params: ReadonlyArray<unknown>,
      rowMode: "array" | undefined,
      value: (result: Pg.QueryResult) => any,
      exclusive: Effect.Effect<any, SqlError>
    ): Effect.Effect<any, SqlError> => {
      const invalid = unsendable(sql, params)
      if (invalid !== undefined) return Effect.fail(invalid)
      return Effect.uninterruptibleMask((restore) =>
        pool.withStatementSlot(
          restore,
          ({ acquisition, session }) =>
            restore(
              Effect.matchEffect(
                session.send(sql, params, rowMode, (facts) => pool.releaseStatement(acquisition, facts)),
                {
                  onSuccess: (result) => Effect.succeed(value(result as Pg.QueryResult)),
                  // not sent (the session died before, or refused it): nothing ran, the exclusive path may
                  onFailure: (error) => (error.sent ? Effect.fail(pipelinedError(error)) : exclusive)
                }
              )
            ),
          (cause) => Effect.failCause(Cause.map(cause, acquireError))
        )
      )
    }
    const rowsOf = (transform: RowTransform) => (result: Pg.QueryResult) =>
      transform !== undefined ? transform(result.rows ?? []) : (result.rows ?? [])

    const pooledConnection: SqlConnection.Connection = {
      execute: (sql, params, transform) => {
        const exclusive = borrow((conn) => run(conn, sql, params, transform))
        return pipelining && Pipeline.pipelineable(sql)
          ? pipelined(sql, params, undefined, rowsOf(transform), exclusive)
          : exclusive
      },
      executeRaw: (sql, params) => {
        const exclusive = borrow((conn) => runRaw(conn, sql, params))
        return pipelining && Pipeline.pipelineable(sql)
          ? pipelined(sql, params, undefined, identity, exclusive)
          : exclusive
      },
      executeStream: (sql, params, transform) =>
        Stream.unwrapScoped(Effect.flatMap(reserveRaw, (conn) => stream(conn, sql, params, transform))),
      executeValues: (sql, params) => {
        const exclusive = borrow((conn) => run(conn, sql, params, undefined, "array"))
        return pipelining && Pipeline.pipelineable(sql)
          ? pipelined(sql, params, "array", rowsOf(undefined), exclusive)
          : exclusive
      },
      executeUnprepared: (sql, params, transform) => {
        const exclusive = borrow((conn) => run(conn, sql, params, transform))
        return pipelining && Pipeline.pipelineable(sql)
          ? pipelined(sql, params, undefined, rowsOf(transform), exclusive)
          : exclusive
      }
    }

    const reserve = Effect.map(reserveRaw, (conn): SqlConnection.Connection => new PinnedConnection(conn))

    const pooledOf = (connection: SqlConnection.Connection) =>
      connection instanceof PinnedConnection ? connection.conn : undefined
    const builder = PgClientBuilder.make({
      ...options,
      config: pgConfig,
      listen: (channel) => {
        const refused = Pooler.listenRefusal(config.pooler, config.settingNames.pooler)
        return refused === undefined ? listener.listen(channel) : Stream.fail(new SqlError({ message: refused }))
      },
      pooledOf
    })

    const client = yield* builder.build(
      { connection: pooledConnection, joinsTransactions: () => true },
      {
        // the wait is interruptible where the caller is; once granted, the connection is the scope's to return
        acquire: (restore) =>
          Effect.flatMap(Scope.make(), (scope) =>
            pool.acquire(restore).pipe(
              Effect.mapError(acquireError),
              Effect.tap((conn) => Scope.addFinalizer(scope, pool.releaseEffect(conn))),
              Effect.map((conn) => [scope, new PinnedConnection(conn)] as const)
            )
          ),
        joins: () => true,
        pooledOf
      },
      reserve
    )

    // Pinned clients are built once per physical connection and reused by every later holder of it.
    const runtime = yield* Effect.runtime<Reactivity.Reactivity>()
    const pinned = (conn: PooledConnection): PgClient.PgClient => {
      if (conn.cache !== undefined) return conn.cache as PgClient.PgClient
      const exit = Runtime.runSyncExit(runtime)(builder.pinned(new PinnedConnection(conn)))
      if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
      const pinnedClient = exit.value
      conn.cache = pinnedClient
      return pinnedClient
    }

    return { client, pinned }
  })

/** The wire protocol counts a statement's parameters in 16 bits. */
const MAX_PARAMETERS = 65_535

/**
 * What the protocol cannot carry, refused before it is sent: pg would write it anyway, the server would answer
 * with a protocol violation, and the connection would be lost with it.
 */
const unsendable = (sql: string, params: ReadonlyArray<unknown>): SqlError | undefined => {
  if (params.length > MAX_PARAMETERS) {
    return new SqlError({
      message:
        `The statement has ${params.length} parameters; PostgreSQL accepts at most ${MAX_PARAMETERS} in one ` +
        `statement, so it was not sent: pass a list as one array parameter (\`= ANY(\${ids})\` instead of ` +
        `\`IN \${sql.in(ids)}\`, \`SELECT * FROM unnest(\${a}::int[], \${b}::text[])\` instead of a large ` +
        `\`sql.insert(rows)\`), or split it into batches`
    })
  }
  const nul = sql.indexOf("\0")
  if (nul !== -1) {
    return new SqlError({
      message:
        `The statement's text contains a NUL byte (\\0) at character ${nul + 1}, which PostgreSQL cannot accept in ` +
        `a statement, so it was not sent: remove it, or pass the value as a parameter (as bytea if it must keep ` +
        `the NUL)`
    })
  }
  return undefined
}
