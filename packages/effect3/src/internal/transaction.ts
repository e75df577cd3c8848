/**
 * `withTransaction` for our clients: @effect/sql's semantics (BEGIN, savepoints for nested calls, the
 * `TransactionConnection` every client's statements join, the `sql.transaction` span) with three differences
 * a database library owes its users:
 *
 * - a failed COMMIT fails with a `SqlError` (its outcome may be unknown: the message says so) instead of dying;
 * - a COMMIT of a transaction that an earlier, caught statement error aborted is refused: PostgreSQL would
 *   answer it with ROLLBACK and no error, so the caller would believe its writes were committed;
 * - a failed top-level ROLLBACK discards the connection and lets the original failure through.
 *
 * A failed ROLLBACK TO SAVEPOINT still dies, as in @effect/sql: the outer transaction is then in an unknown
 * state and must not be committed by code that caught the inner failure.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type { PooledConnection } from "./connection.js"

/** Where a client's transactions run. */
export interface TransactionTarget {
  /**
   * A connection for a new transaction, with the scope that returns it (none: nothing to return). Called
   * uninterruptibly; `restore` makes the wait for the connection interruptible, as the caller was.
   */
  readonly acquire: (
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  ) => Effect.Effect<readonly [Scope.CloseableScope | undefined, SqlConnection.Connection], SqlError>
  /** Whether an open transaction of the fiber (on `connection`) takes a nested call as a savepoint. */
  readonly joins: (connection: SqlConnection.Connection) => boolean
  /** The pooled connection behind one of our `SqlConnection`s. */
  readonly pooledOf: (connection: SqlConnection.Connection) => PooledConnection | undefined
}

const spanOptions: Tracer.SpanOptions = { kind: "client", captureStackTrace: false }

export const makeWithTransaction =
  (spanAttributes: ReadonlyArray<readonly [string, unknown]>, target: TransactionTarget) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.useSpan("sql.transaction", spanOptions, (span) =>
        Effect.withFiberRuntime<A, E | SqlError, R>((fiber) => {
          for (const [key, value] of spanAttributes) span.attribute(key, value)
          const context = fiber.currentContext
          const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
          const outer = Context.getOption(context, SqlClient.TransactionConnection)
          const nested = outer._tag === "Some" && target.joins(outer.value[0])
          const id = nested ? outer.value[1] + 1 : 0
          const acquired = nested ? Effect.succeed([undefined, outer.value[0]] as const) : target.acquire(restore)
          return Effect.flatMap(acquired, ([scope, conn]) =>
            // BEGIN may be interrupted like any statement: the transaction then ends as a failed one (rolled back)
            restore(id === 0 ? execute(conn, "BEGIN") : execute(conn, `SAVEPOINT effect_sql_${id}`)).pipe(
              Effect.zipRight(
                Effect.locally(
                  restore(effect),
                  FiberRef.currentContext,
                  Context.add(context, SqlClient.TransactionConnection, [conn, id]).pipe(
                    Context.add(Tracer.ParentSpan, span)
                  )
                )
              ),
              Effect.exit,
              Effect.flatMap((exit) => {
                let end: Effect.Effect<void, SqlError>
                if (Exit.isSuccess(exit)) {
                  span.event(
                    id === 0 ? "db.transaction.commit" : "db.transaction.savepoint",
                    clock.unsafeCurrentTimeNanos()
                  )
                  end = id === 0 ? commit(conn, target.pooledOf(conn)) : Effect.void
                } else {
                  span.event("db.transaction.rollback", clock.unsafeCurrentTimeNanos())
                  end =
                    id === 0
                      ? rollback(conn, target.pooledOf(conn))
                      : Effect.orDie(execute(conn, `ROLLBACK TO SAVEPOINT effect_sql_${id}`))
                }
                const ended = scope === undefined ? end : Effect.ensuring(end, Scope.close(scope, exit))
                return Effect.zipRight(ended, exit)
              })
            )
          )
        })
      )
    )

const execute = (conn: SqlConnection.Connection, statement: string) =>
  Effect.asVoid(conn.executeUnprepared(statement, [], undefined))

const commit = (
  conn: SqlConnection.Connection,
  pooled: PooledConnection | undefined
): Effect.Effect<void, SqlError> => {
  // the ReadyForQuery status of the last statement: "E" is a failed transaction block
  if (pooled?.transactionStatus !== "E") return execute(conn, "COMMIT")
  return Effect.zipRight(
    Effect.ignore(execute(conn, "ROLLBACK")),
    Effect.fail(
      new SqlError({
        message:
          "The transaction was rolled back, not committed: a statement in it failed and the failure was caught, " +
          "which aborts a PostgreSQL transaction. Let the failure end the transaction, or run the statement that " +
          "may fail in a nested withTransaction (a savepoint)."
      })
    )
  )
}

const rollback = (conn: SqlConnection.Connection, pooled: PooledConnection | undefined): Effect.Effect<void> =>
  Effect.catchAll(execute(conn, "ROLLBACK"), (error) => {
    // not ours to judge: fail as @effect/sql does
    if (pooled === undefined) return Effect.die(error)
    // the session's state is unknown: it must not serve anyone again
    pooled.broken ??= error
    return Effect.void
  })
