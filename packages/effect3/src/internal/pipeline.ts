/**
 * A pipelined statement session over one connected `pg.Client`: k autocommit statements in flight at once on one
 * connection, each with its own result or error.
 *
 * **Why pg's own pipeline mode.** pg 8.23's `Client` has a `pipeline` flag: every statement is written at once
 * (`_queryQueue` → `_sentQueryQueue` → `_activeQuery`), each ends with its own Sync (a simple Query is its own
 * Sync; an extended one is Parse/Bind/Describe/Execute/Sync), so an error ends only that statement's implicit
 * transaction and the server goes on with the next one; the replies are matched by order, one ReadyForQuery per
 * statement; a dead socket fails every queued and sent statement (`_errorAllQueries`). Its results are pg's own
 * (type parsers, `rowMode`), the ones the exclusive path returns. What it does not do, this module does:
 * - it refuses what is unsound to pipeline ({@link pipelineable}): COPY … FROM STDIN puts the server in copy-in
 *   mode, where the statements written behind it are a protocol violation (measured: the server answers
 *   "unexpected message type 0x51 during COPY from stdin" and ends the session, failing everyone's statements);
 *   a BEGIN would open a transaction that the statements of other callers behind it would run inside; anything
 *   that may leave session state; several statements in one text. A refused statement is never sent.
 * - it never cancels on the server: the running statement may be someone else's. An interrupted statement is
 *   abandoned — its answer is read and dropped — and its slot stays taken until that answer has come back, so the
 *   session is never handed out exclusively while the pipe still holds it.
 * - it counts each statement off the wire at its own ReadyForQuery (pg calls back an error at the ErrorResponse,
 *   before it) and switches pg's pipeline flag on while statements are in flight and off when the last one's
 *   ReadyForQuery arrives, so the same client serves exclusive checkouts (cursors, which pg refuses in pipeline
 *   mode; cancellation) in between.
 * - it corks the socket for the rest of the tick: the statements of all callers resumed by one read go out in one
 *   write instead of one each.
 * - it guards pg's second callback (a parameter that cannot be serialised fails at once, then its Sync's
 *   ReadyForQuery calls the callback again).
 * - it says whether the session is still sound: not after a dead socket, a FATAL/PANIC or class 08 error, or a
 *   ReadyForQuery outside the idle state.
 *
 * **How the pool adapter uses it** (pool.ts over the engine, with `capacity` k > 1 for statement slots):
 * - Per session: `make(client)` once, when the session opened (keep it beside the `PooledConnection`).
 * - Per autocommit statement: `pipelineable(sql)` chooses the acquisition kind — `"statement"` when true, else
 *   `"exclusive"` (and always exclusive inside a transaction, `withConnection`, streams, `reserve`).
 * - On `Grant { acquisition, session }` of a statement slot, still inside the caller's uninterruptible region
 *   (`Effect.uninterruptibleMask`, as `acquire` runs): `restore(session.send(sql, params, rowMode, (facts) =>
 *   dispatch({ _tag: "Released", now, acquisition, facts })))`. `send` writes (or refuses) the statement
 *   synchronously, so from then on `onDone` is certain to be called exactly once — when the statement's
 *   ReadyForQuery arrived, when the connection died with it in flight, or at once when it was not sent — even
 *   for a caller interrupted before its wait began or while waiting (only the wait is under `restore`; `run`, the
 *   lazy form, sends nothing if interrupted first). So the adapter releases the slot from `onDone`, never from the
 *   caller's exit. Its facts are `Engine.SessionFacts` for that one statement (`inFlight: 0`: it has left the
 *   wire; `broken: !session.sound`; `queries`: 1, or 0 when not sent; `dirty: false`; the last ReadyForQuery
 *   status). `onDone` runs inside pg's socket handler: it must not throw (a throw breaks the session).
 * - Errors: `PipelineError.reason` is `"statement"` (the server refused this statement; the session is fine),
 *   `"connection"` (the session died with it in flight, or was dead before it was sent: `sent` says which; the
 *   outcome of a sent one is unknown) or `"refused"` (not sent: run it exclusively). Map them to `SqlError` with
 *   the pool's redaction; the engine hears of a dead session from the driver's `error`/`end` listener as always
 *   (`SessionClosed`), and of the other statements from their own `onDone`.
 * - A session stops taking statements when `sound` is false (the engine does so once a `Released` says `broken`).
 *   `Close` destroys the client as before: the statements still in flight fail with a connection error.
 *
 * @internal
 */
import { Classify, type Engine } from "@effect-pg-pool/engine"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Pg from "pg"

/**
 * Why a pipelined statement failed: `statement` (the server refused it; the session is sound), `connection` (the
 * session died with it in flight — `sent`: it may or may not have been applied — or before it was sent), or
 * `refused` (not pipelineable, not sent: run it on an exclusive checkout).
 *
 * @internal
 */
export class PipelineError extends Data.TaggedError("PipelineError")<{
  readonly reason: "statement" | "connection" | "refused"
  readonly sent: boolean
  readonly message: string
  readonly cause?: unknown
}> {}

/** What the results of one statement are: pg's, as the exclusive path returns them. @internal */
export type Result = Pg.QueryResult<any> | Pg.QueryArrayResult<any>

/** @internal */
export type OnDone = (facts: Engine.SessionFacts) => void

// Statements that change the transaction state, or COPY: the statements of other callers written behind them
// would run inside the transaction (or be read as COPY data). LOCK and SET … LOCAL only mean anything inside one.
const transactional = new Set([
  "BEGIN",
  "START",
  "COMMIT",
  "END",
  "ROLLBACK",
  "ABORT",
  "SAVEPOINT",
  "RELEASE",
  "PREPARE",
  "COPY",
  "LOCK",
  "SET"
])

/**
 * Whether a statement text may share a connection with other callers' statements: one statement (a trailing `;`
 * allowed), none that changes the transaction state or runs COPY, nothing that may leave session state
 * (`Classify.mayLeaveSessionState`). Conservative like that scanner: a `;` inside a string counts as a second
 * statement, and a false "no" only costs the exclusive path.
 *
 * @internal
 */
export const pipelineable = (sql: string): boolean => {
  // a hot path repeats one statement: the last text that was accepted is not scanned again
  if (sql === lastPipelineable) return true
  const semicolon = sql.indexOf(";")
  if (semicolon !== -1 && !onlySeparatorsFrom(sql, semicolon)) return false
  const keyword = Classify.firstKeyword(sql)
  const accepted = keyword !== undefined && !transactional.has(keyword) && !Classify.mayLeaveSessionState(sql)
  if (accepted && sql.length <= 2_048) lastPipelineable = sql
  return accepted
}

let lastPipelineable: string | undefined

const onlySeparatorsFrom = (sql: string, i: number): boolean => {
  for (; i < sql.length; i++) {
    const c = sql.charCodeAt(i)
    if (c !== 59 && c !== 32 && (c < 9 || c > 13)) return false
  }
  return true
}

/** One statement on the wire, from its write to its ReadyForQuery. */
class Entry {
  settled = false
  /** The outcome, when it came before anyone waited for it. */
  outcome: Effect.Effect<Result, PipelineError> | undefined = undefined
  abandoned = false
  /** The waiting caller; gone once it was resumed or gave up. */
  resume: ((effect: Effect.Effect<Result, PipelineError>) => void) | undefined = undefined
  constructor(readonly onDone: OnDone | undefined) {}
}

/**
 * The pipelined side of one session. Mutable on purpose, like `PooledConnection`: only touched from pg's
 * callbacks and the fibers of one runtime, never across threads.
 *
 * @internal
 */
export class PipelinedSession {
  /** Statements written, in order, waiting for their ReadyForQuery; `head` is the next to be answered. */
  private readonly wire: Array<Entry | undefined> = []
  private head = 0
  private corked = false
  /** Why the session is unsound, once it is. */
  broken: unknown = undefined
  /** The status of the last ReadyForQuery. */
  transactionStatus: "I" | "T" | "E" = "I"
  /** Statements sent through this session. */
  queries = 0

  constructor(readonly client: Pg.Client) {
    const internal = client as unknown as PgInternals
    internal.connection.on("readyForQuery", this.onReadyForQuery)
    client.on("error", this.onLost)
    client.on("end", this.onEnded)
  }

  /** Statements written whose ReadyForQuery has not arrived yet, abandoned ones included. */
  get inFlight(): number {
    return this.wire.length - this.head
  }

  /** Whether statements may still be sent: not broken here, and pg's client and socket still usable. */
  get sound(): boolean {
    if (this.broken !== undefined) return false
    const internal = this.client as unknown as PgInternals
    return internal._queryable !== false && internal._ending !== true && internal.connection.stream.destroyed !== true
  }

  /**
   * Runs one autocommit statement, pipelined behind whatever this session has in flight: `send` when the effect
   * runs. Interrupting it abandons the statement (never a CancelRequest); `onDone` still comes when it leaves the
   * wire. An effect interrupted before it started sends nothing — and calls no `onDone`: a caller that must hand
   * a slot back whatever happens calls `send` itself.
   */
  run(
    text: string,
    values: ReadonlyArray<unknown> | undefined,
    rowMode: "array" | undefined,
    onDone?: OnDone
  ): Effect.Effect<Result, PipelineError> {
    return Effect.suspend(() => this.send(text, values, rowMode, onDone))
  }

  /**
   * Writes one autocommit statement now, pipelined behind whatever this session has in flight (or refuses it now,
   * unsent), and returns the wait for its outcome. From the moment it returns, `onDone` is certain to be called
   * exactly once, whether or not the wait is ever run or is interrupted (which abandons the statement: its answer
   * is read and dropped, never cancelled on the server).
   */
  send(
    text: string,
    values: ReadonlyArray<unknown> | undefined,
    rowMode: "array" | undefined,
    onDone?: OnDone
  ): Effect.Effect<Result, PipelineError> {
    const refusal = this.refusal(text, values)
    if (refusal !== undefined) {
      if (onDone !== undefined) this.report(onDone, 0)
      return Effect.fail(refusal)
    }
    const entry = new Entry(onDone)
    const internal = this.client as unknown as PgInternals
    if (this.inFlight === 0) internal.pipeline = true
    this.cork(internal)
    this.wire.push(entry)
    this.queries++
    const config = rowMode === undefined ? text : { text, rowMode }
    // pg sends it at once in pipeline mode: a synchronous callback (a parameter that cannot be serialised) is
    // settled like any other, and its Sync still brings the ReadyForQuery that takes it off the wire
    this.client.query(
      new Pg.Query(
        config as any,
        values as Array<unknown> | undefined,
        ((err: Error | null, result: Result) => this.settle(entry, err, result)) as any
      )
    )
    return Effect.async<Result, PipelineError>((resume) => {
      if (entry.outcome !== undefined) return resume(entry.outcome)
      entry.resume = resume
      // abandoned: its answer is read and dropped when it comes
      return Effect.sync(() => {
        entry.resume = undefined
        entry.abandoned = true
      })
    })
  }

  private refusal(text: string, values: ReadonlyArray<unknown> | undefined): PipelineError | undefined {
    if (!this.sound) {
      return new PipelineError({
        reason: "connection",
        sent: false,
        message: `The connection was already lost (${Classify.errorMessage(this.broken ?? "its socket closed")}), so the statement was not sent: retry it on another connection`,
        cause: this.broken
      })
    }
    // pg would not send these (it calls back without a ReadyForQuery to follow), and the wire count would be off
    if (typeof text !== "string" || (values !== undefined && !Array.isArray(values)) || !pipelineable(text)) {
      return new PipelineError({
        reason: "refused",
        sent: false,
        message:
          "The statement was not pipelined: several statements in one text, a transaction or COPY statement, or " +
          "one that may leave session state cannot share a connection with other callers' statements; run it " +
          "on an exclusive checkout (withConnection, a transaction)"
      })
    }
    return undefined
  }

  /** The statements of this tick go out in one write: pg writes each message on its own otherwise. */
  private cork(internal: PgInternals): void {
    if (this.corked) return
    const stream = internal.connection.stream
    if (typeof stream.cork !== "function") return
    this.corked = true
    stream.cork()
    process.nextTick(() => {
      this.corked = false
      stream.uncork()
    })
  }

  private settle(entry: Entry, err: Error | null, result: Result): void {
    // pg calls back twice after a parameter failed to serialise: the error, then at its ReadyForQuery
    if (entry.settled) return
    entry.settled = true
    // classified even when nobody waits: a FATAL answer breaks the session for everyone
    const outcome = err == null ? Effect.succeed(result) : Effect.fail(this.failure(err))
    const resume = entry.resume
    if (resume !== undefined) {
      entry.resume = undefined
      resume(outcome)
    } else if (!entry.abandoned) {
      entry.outcome = outcome
    }
  }

  private failure(err: Error): PipelineError {
    if (this.broken === undefined && Classify.classifyError(err).sessionLost) this.broken = err
    if (this.broken !== undefined) {
      return new PipelineError({
        reason: "connection",
        sent: true,
        message: `The connection was lost with this statement in flight (${Classify.errorMessage(err)}); it may or may not have been applied: retry only if it is idempotent`,
        cause: err
      })
    }
    const code = (err as { code?: unknown }).code
    return new PipelineError({
      reason: "statement",
      sent: true,
      message: `Failed to execute statement${typeof code === "string" ? ` (SQLSTATE ${code})` : ""}: ${Classify.errorMessage(err)}`,
      cause: err
    })
  }

  /**
   * Hands a slot back. It runs inside pg's socket handler, where a throw would escape into the socket's data
   * callback and take the process down: a throwing `onDone` (a bug of its caller) breaks this session instead.
   */
  private report(onDone: OnDone, queries: number): void {
    try {
      onDone(this.facts(queries))
    } catch (defect) {
      this.broken ??= defect
    }
  }

  private facts(queries: number): Engine.SessionFacts {
    return {
      transactionStatus: this.transactionStatus,
      dirty: false,
      broken: !this.sound,
      inFlight: 0,
      queries
    }
  }

  /** Runs after pg's own listener, which has called the statement back (or did so at its ErrorResponse). */
  private readonly onReadyForQuery = (msg: { readonly status: string }): void => {
    const status = msg.status as "I" | "T" | "E"
    this.transactionStatus = status
    // not ours: the session's startup, or a statement of an exclusive checkout
    if (this.head === this.wire.length) return
    const entry = this.wire[this.head]!
    this.wire[this.head++] = undefined
    if (this.head === this.wire.length) {
      this.wire.length = 0
      this.head = 0
      ;(this.client as unknown as PgInternals).pipeline = false
    }
    // what runs behind it ran inside that transaction: the session can no longer be trusted
    if (status !== "I") {
      this.broken ??= new Error(`a pipelined statement left the session in transaction state ${status}`)
    }
    if (!entry.settled) {
      // cannot happen with pg's ordering; failing it is better than a caller waiting forever
      this.broken ??= new Error("a pipelined statement's ReadyForQuery arrived before its result")
      this.settle(entry, this.broken as Error, undefined as unknown as Result)
    }
    if (entry.onDone !== undefined) this.report(entry.onDone, 1)
  }

  private readonly onLost = (cause: unknown): void => {
    this.broken ??= cause ?? new Error("Connection lost")
    // pg fails its queued statements on the next tick, with the cause: take them off the wire after that
    process.nextTick(this.sweep)
  }

  private readonly onEnded = (): void => this.onLost(new Error("Connection terminated unexpectedly"))

  private readonly sweep = (): void => {
    const cause = this.broken as Error
    while (this.head < this.wire.length) {
      const entry = this.wire[this.head]!
      this.wire[this.head++] = undefined
      this.settle(entry, cause, undefined as unknown as Result)
      if (entry.onDone !== undefined) this.report(entry.onDone, 1)
    }
    this.wire.length = 0
    this.head = 0
  }
}

/** The pg internals this module reads, in one place. */
interface PgInternals {
  pipeline: boolean
  readonly _queryable?: boolean
  readonly _ending?: boolean
  readonly connection: {
    readonly stream: { readonly destroyed?: boolean; cork(): void; uncork(): void }
    on(event: "readyForQuery", listener: (msg: { readonly status: string }) => void): void
  }
}

/**
 * The pipelined side of a connected client: attach it once per session, when the session opened.
 *
 * @internal
 */
export const make = (client: Pg.Client): PipelinedSession => new PipelinedSession(client)
