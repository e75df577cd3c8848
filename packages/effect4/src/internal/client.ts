/**
 * `effect/sql`'s `SqlClient` and @effect/sql-pg's `PgClient` over the pool, built as `PgClient.make` builds its
 * own (`SqlClient.make` with a borrower, acquirers and a COMMIT that checks its answer, `PgClient.makeCompiler`,
 * the `json` fragment) — its private pieces rewritten here from its public parts.
 *
 * - A statement outside a transaction borrows: an exclusive session for one statement, or, multiplexed, one of a
 *   session's statement slots (pipelined with others). Transactions, `reserve`, streams and `LISTEN` lease a
 *   whole session (exclusive, strictly FIFO) for their scope.
 * - Every statement is tracked: the checkout's query count, whether it may leave session state behind, the
 *   transaction status, an interruption — the facts the engine decides the release on.
 *
 * @internal
 */
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Queue from "effect/Queue"
import type * as Reactivity from "effect/reactivity/Reactivity"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import { ConnectionError, SqlError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Stream from "effect/Stream"
import type { AcquireTimeout, PoolClosed } from "../PoolError.js"
import type { Facts, Grant, Holder, Pool } from "./pool.js"
import type { Session } from "./session.js"
import * as Listener from "./listener.js"
import * as StatementBounds from "./statementBounds.js"
import * as StatementText from "./statementText.js"

/** The client options of `PgClient.layer` that shape the client rather than the pool. @internal */
export interface ClientOptions {
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
}

/** One checkout's record of what ran on it; it holds the grant (see `Holder`). */
interface Checkout extends Holder {
  queries: number
  dirty: boolean
  interrupted: boolean
  /** A borrowed checkout's one statement, noted when it is issued; its outcome is read from the borrow's exit. */
  sql: string | undefined
  /** The borrowed statement answered (set by the mapping of its result, which it has anyway). */
  ok: boolean
  /** A statement was not stopped within cancelTimeout: the session still runs it, and closes at release. */
  cancelFailed: boolean
}

/** A pool error as the `SqlError` that `SqlClient`'s signatures carry; the pool error stays its cause. @internal */
export const toSqlError = (error: AcquireTimeout | PoolClosed): SqlError =>
  new SqlError({
    reason: new ConnectionError({ cause: error, message: error.message, operation: "acquireConnection" })
  })

const factsOf = (checkout: Checkout): Facts => {
  const session = checkout.grant!.session
  return {
    // an interrupted statement drained (or cancelled) before it returned: the session is validated by a reset
    transactionStatus: session.status,
    dirty: checkout.dirty || checkout.interrupted,
    broken: session.closed || session.broken,
    inFlight: checkout.cancelFailed ? 1 : 0,
    queries: checkout.queries
  }
}

/** The statement failed because the connection did (socket error, closed, class 08): the session is lost. */
const isConnectionError = (exit: Exit.Exit<unknown, unknown>) => {
  const error = Exit.findErrorOption(exit)
  return error._tag === "Some" && error.value instanceof SqlError && error.value.reason._tag === "ConnectionError"
}

/** What a statement's outcome tells about its checkout and session. */
const noteOutcome = (
  checkout: Checkout,
  session: Session,
  sql: string,
  exit: Exit.Exit<unknown, unknown>,
  ok: boolean
) => {
  checkout.queries++
  if (StatementText.read(sql).mayLeaveSessionState) checkout.dirty = true
  if (!ok) {
    if (Exit.hasInterrupts(exit)) checkout.interrupted = true
    else if (isConnectionError(exit)) session.broken = true
  }
  session.track(sql, ok)
}

/**
 * A borrowed checkout's facts, from the borrow's exit: it runs one statement (`SqlClient`'s borrower contract), so
 * the statement needs no exit hook of its own.
 */
const settleBorrowed = (checkout: Checkout, exit: Exit.Exit<unknown, unknown>) => {
  if (checkout.sql !== undefined) noteOutcome(checkout, checkout.grant!.session, checkout.sql, exit, checkout.ok)
}

class TrackedConnection implements Connection {
  constructor(
    readonly connection: PgConnection.PgConnection,
    readonly checkout: Checkout,
    readonly session: Session,
    /** One statement on a borrowed checkout: noted when issued, settled by the borrow's exit. */
    readonly borrowed: boolean,
    /** queryTimeout / cancelTimeout, when they ask for more than PgConnection does by itself. */
    readonly bounds: StatementBounds.Bounds | undefined
  ) {}

  private bounded<A>(statement: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> {
    if (this.bounds === undefined) return statement
    const checkout = this.checkout
    return StatementBounds.guard(
      this.bounds,
      () => {
        checkout.cancelFailed = true
      },
      statement
    )
  }

  private track<A>(sql: string, effect: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> {
    const checkout = this.checkout
    if (this.borrowed) {
      checkout.sql = sql
      return Effect.map(effect, (a) => {
        checkout.ok = true
        return a
      })
    }
    const session = this.session
    return Effect.onExit(effect, (exit) => {
      noteOutcome(checkout, session, sql, exit, Exit.isSuccess(exit))
      return Effect.void
    })
  }

  private rows(sql: string, params: ReadonlyArray<unknown>, prepare: boolean) {
    const checkout = this.checkout
    const query = this.bounded(this.connection.query(sql, params, prepare))
    let rows: Effect.Effect<ReadonlyArray<any>, SqlError>
    if (this.borrowed) {
      // the result's mapping notes the answer: the hot path of a statement gets no extra step
      checkout.sql = sql
      rows = Effect.map(query, (result) => {
        checkout.ok = true
        return result.rows
      })
    } else {
      rows = this.track(
        sql,
        Effect.map(query, (result) => result.rows)
      )
    }
    // A lost connection has ended its transaction: the server rolled it back. `withTransaction` turns a failed
    // ROLLBACK into a defect, so on a lost connection the rollback reports what happened — it is done — and the
    // transaction fails with the connection error that ended it.
    return StatementText.read(sql).endsTransactionBlock
      ? Effect.catchIf(
          rows,
          (error) => error.reason._tag === "ConnectionError",
          () => {
            this.session.broken = true
            return Effect.succeed([])
          }
        )
      : rows
  }

  execute(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return transformRows ? Effect.map(this.rows(sql, params, true), transformRows) : this.rows(sql, params, true)
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.track(sql, this.bounded(this.connection.query(sql, params)))
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return this.track(sql, this.bounded(this.connection.queryValues(sql, params)))
  }
  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return this.track(sql, this.bounded(this.connection.queryValues(sql, params, false)))
  }
  executeUnprepared(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    const rows = this.rows(sql, params, false)
    return transformRows ? Effect.map(rows, transformRows) : rows
  }
  executeStream(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    const checkout = this.checkout
    checkout.queries++
    if (StatementText.read(sql).mayLeaveSessionState) checkout.dirty = true
    const stream = this.connection.stream(sql, params).pipe(
      Stream.onExit((exit) =>
        Effect.sync(() => {
          // a stream cut short drained or was cancelled: validate the session by a reset before reuse
          if (!Exit.isSuccess(exit)) checkout.interrupted = true
          this.session.track(sql, Exit.isSuccess(exit))
        })
      )
    )
    return transformRows
      ? Stream.mapArray(stream, (rows) => transformRows(rows) as Arr.NonEmptyReadonlyArray<PgConnection.Row>)
      : stream
  }
}

/** PostgreSQL answers COMMIT with ROLLBACK when the transaction was aborted: that is a failure. */
const commit = (conn: Connection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(conn.executeRaw("COMMIT", []) as Effect.Effect<PgConnection.Result, SqlError>, (result) =>
    result.command === "ROLLBACK"
      ? Effect.fail(
          new SqlError({
            reason: new UnknownError({
              cause: new Error("COMMIT rolled back an aborted transaction"),
              message: "PgClient: COMMIT rolled back an aborted transaction",
              operation: "commit"
            })
          })
        )
      : Effect.void
  )

// PostgreSQL truncates identifiers to 63 bytes: @effect/sql-pg refuses longer channel names before sending them
const channelTooLong = (channel: string) => new TextEncoder().encode(channel).byteLength > 63
const channelError = (operation: string) => {
  const message = "PostgreSQL channel names must not exceed 63 UTF-8 bytes"
  return new SqlError({ reason: new UnknownError({ cause: new Error(message), message, operation }) })
}

interface PgJson extends Statement.Custom<"PgJson", unknown> {}
const PgJson = Statement.custom<PgJson>("PgJson")

/** A client over one way of getting connections (the pool's, a held session's, the mock's). @internal */
export const build = (
  options: ClientOptions,
  spanTarget: { readonly host: string; readonly port: number; readonly database: string },
  acquirers: {
    readonly acquirer: Effect.Effect<Connection, SqlError, Scope.Scope>
    readonly borrower?:
      | (<A, E, R>(f: (connection: Connection) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>)
      | undefined
    readonly transactionAcquirer: Effect.Effect<Connection, SqlError, Scope.Scope>
    readonly listen: (
      channel: string
    ) => Effect.Effect<Queue.Dequeue<PgConnection.Notification, SqlError>, SqlError, Scope.Scope>
  },
  config: PgClient.PgClientConfig
): Effect.Effect<PgClient.PgClient, never, Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const compiler = PgClient.makeCompiler(options.transformQueryNames, options.transformJson)
    const transformRows = options.transformResultNames
      ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
      : undefined
    const client = yield* SqlClient.make({
      driver: "pg",
      acquirer: acquirers.acquirer,
      borrower: acquirers.borrower,
      prepareTransactionControls: true,
      commit,
      releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
      transactionAcquirer: acquirers.transactionAcquirer,
      compiler,
      spanAttributes: [
        ...(options.spanAttributes ? Object.entries(options.spanAttributes) : []),
        ["db.system.name", "postgresql"],
        ["db.namespace", spanTarget.database],
        ["server.address", spanTarget.host],
        ["server.port", spanTarget.port]
      ],
      transformRows
    })
    const notify = (channel: string, payload: string) =>
      channelTooLong(channel)
        ? Effect.fail(channelError("notify"))
        : Effect.asVoid(client`SELECT pg_notify(${channel}, ${payload})`.raw)
    return Object.assign(client, {
      [PgClient.TypeId]: PgClient.TypeId,
      config,
      json: (_: unknown) => Statement.fragment([PgJson(_)]),
      listen: acquirers.listen,
      notify
    }) as PgClient.PgClient
  })

/** @internal */
export interface Clients {
  /** The pooled client: `SqlClient` and `PgClient`. */
  readonly client: PgClient.PgClient
  /** Runs `f` with a client bound to one exclusive checkout, returned on every exit. */
  readonly withConnection: <A, E, R>(
    f: (sql: PgClient.PgClient) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | AcquireTimeout | PoolClosed, R>
  /** A client bound to a session outside any checkout: the connect hook's. */
  readonly forSession: (session: Session) => Effect.Effect<PgClient.PgClient>
}

/** @internal */
export const make = (
  pool: Pool,
  options: ClientOptions,
  config: PgClient.PgClientConfig,
  listener: Listener.ListenerOptions
): Effect.Effect<Clients, never, Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const reactivity = yield* Effect.context<Reactivity.Reactivity>()
    const multiplex = pool.config.multiplex
    const bounds = StatementBounds.make(pool.config)
    // a multiplexed statement is abandoned, never cancelled (a CancelRequest would hit whichever statement runs):
    // under a queryTimeout statements take whole sessions instead (no borrower: SqlClient leases), as the Effect 3
    // edition stops pipelining under one
    const borrowing = !(multiplex && pool.config.queryTimeout !== undefined)
    const borrowedBounds = multiplex ? undefined : bounds
    const spanTarget = { host: pool.config.host, port: pool.config.port, database: pool.config.database }
    const newCheckout = (grant: Grant | undefined): Checkout => ({
      grant,
      queries: 0,
      dirty: false,
      interrupted: false,
      sql: undefined,
      ok: false,
      cancelFailed: false
    })

    // an exclusive lease for the current scope: a whole session, pinned when multiplexed (so statements skip the
    // pipeline, interruption cancels on the server, and pipelined leftovers drain first)
    // The lease and the borrower mask interruption themselves instead of using acquireRelease /
    // acquireUseRelease, whose acquire is uninterruptible: waiting for a session must stay as interruptible as the
    // caller (interruptible in a program, not in a finalizer), and the release is registered before anything can
    // interrupt.
    const lease = (dirty: boolean): Effect.Effect<TrackedConnection, AcquireTimeout | PoolClosed, Scope.Scope> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          const checkout = newCheckout(undefined)
          const wait = pool.acquire("exclusive", yield* Effect.fiber, checkout)
          if (wait !== undefined) yield* restore(wait)
          const grant = checkout.grant!
          checkout.dirty = dirty
          yield* Effect.addFinalizer(() => Effect.sync(() => pool.release(grant, factsOf(checkout))))
          // pinned when multiplexed: statements skip the pipeline, interruption cancels on the server, and pipelined
          // leftovers drain first
          const base = grant.session.connection
          const connection = multiplex ? yield* restore(base.pin) : base
          return new TrackedConnection(connection, checkout, grant.session, false, bounds)
        })
      )

    const exclusive = Effect.mapError(lease(false), toSqlError)

    // one statement outside a transaction: multiplexed, a statement slot on the base (pipelining) connection,
    // whose interruption abandons the statement instead of cancelling it (the session runs others' too)
    const kind = multiplex ? "statement" : "exclusive"
    // No interruption mask: the exit hook is in place before the acquisition is asked for, and the grant lands in
    // the checkout the moment the engine makes it, so whichever way the borrow ends (interrupted while queued,
    // after the grant, or during the statement) the hook returns what the checkout holds.
    const borrower = <A, E, R>(f: (connection: Connection) => Effect.Effect<A, E, R>) => {
      const checkout = newCheckout(undefined)
      const use = (): Effect.Effect<A, E, R> => {
        const session = checkout.grant!.session
        return f(new TrackedConnection(session.connection, checkout, session, true, borrowedBounds))
      }
      return Effect.onExit(
        Effect.withFiber((fiber): Effect.Effect<A, E | SqlError, R> => {
          const wait = pool.acquire(kind, fiber, checkout)
          return wait === undefined ? use() : Effect.flatMap(Effect.mapError(wait, toSqlError), use)
        }),
        (exit) => {
          if (checkout.grant !== undefined) {
            settleBorrowed(checkout, exit)
            pool.release(checkout.grant, factsOf(checkout))
          }
          return Effect.void
        }
      )
    }

    // a dedicated, reconnecting session per listener: it takes no pool slot
    const listen = (channel: string) =>
      channelTooLong(channel) ? Effect.fail(channelError("listen")) : Listener.listen(listener, channel)

    const client = yield* build(
      options,
      spanTarget,
      { acquirer: exclusive, borrower: borrowing ? borrower : undefined, transactionAcquirer: exclusive, listen },
      config
    )

    const bound = (conn: TrackedConnection) => {
      const held: Effect.Effect<Connection, SqlError, Scope.Scope> = Effect.succeed(conn)
      return build(
        options,
        spanTarget,
        {
          acquirer: held,
          transactionAcquirer: held,
          listen: (channel) => {
            conn.checkout.dirty = true
            return conn.connection.listen(channel)
          }
        },
        config
      ).pipe(Effect.provideContext(reactivity))
    }

    const forSession = (session: Session) =>
      bound(
        new TrackedConnection(
          session.connection,
          newCheckout({ acquisition: -1, session, grantedAt: 0, span: undefined, frame: undefined }),
          session,
          false,
          bounds
        )
      )

    const withConnection = <A, E, R>(
      f: (sql: PgClient.PgClient) => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | AcquireTimeout | PoolClosed, R> =>
      Effect.scoped(
        Effect.gen(function* () {
          const pinned = yield* bound(yield* lease(false))
          // suspended: a callback that throws is a defect inside the lease, so its session is returned all the same
          return yield* Effect.suspend(() => f(pinned))
        })
      )

    return { client, withConnection, forSession }
  })
