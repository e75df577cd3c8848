/**
 * What a session does behind a connection pooler (the `pooler` setting, PgBouncer's `pool_mode`); the decisions
 * are the engine's `Pooler`, taken the same way in both editions.
 *
 * - Every mode but `none`: a round trip right after the login, because PgBouncer accepts logins while no server
 *   answers behind it and then fails every statement (`server login has been failing`): such a session counts as
 *   a failed open, paced by the backoff, instead of failing the callers it would be handed to one after another.
 * - `transaction` (a server connection per transaction): no named prepared statements unless the user asked for
 *   them (`prepare: false`: a statement parsed on one server connection would be executed on another), LISTEN and
 *   the statements that exist to change the session refused with a typed error that says why and what to do,
 *   and the reset on release discards nothing (its statements would run on whichever server connection PgBouncer
 *   picks): it is one round trip that proves the session answers.
 *
 * @internal
 */
import { Pooler } from "@effect-pg-pool/engine"
import * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { SqlError, UnknownError } from "effect/sql/SqlError"

/** The pooler in front of the server, and the name the configuration gave its setting. @internal */
export interface Behind {
  readonly mode: Pooler.Mode
  /** `pooler`, `DB_POOL_POOLER`…: the messages name the setting as the user wrote it. */
  readonly setting: string
}

const refusal = (message: string, operation: string) =>
  new SqlError({ reason: new UnknownError({ cause: new Error(message), message, operation }) })

/** `prepare` as the user set it; unset, false behind a transaction pooler (PgConnection's default otherwise). @internal */
export const prepare = (behind: Behind | undefined, option: boolean | undefined): boolean | undefined =>
  option ?? (behind?.mode === "transaction" ? false : undefined)

/** Why LISTEN cannot work behind this pooler, as the `SqlError` the caller gets; undefined when it can. @internal */
export const listenRefused = (behind: Behind | undefined): SqlError | undefined => {
  const message = behind === undefined ? undefined : Pooler.listenRefusal(behind.mode, behind.setting)
  return message === undefined ? undefined : refusal(message, "listen")
}

/**
 * The session's connection as callers get it: behind a transaction pooler, a statement that would change the
 * session (and LISTEN) fails before it is sent. The pool's own round trips (validation, reset) use the connection
 * underneath.
 *
 * @internal
 */
export const guard = (connection: PgConnection.PgConnection, behind: Behind | undefined): PgConnection.PgConnection => {
  if (behind === undefined || behind.mode !== "transaction") return connection
  const refused = (sql: string) => {
    const message = Pooler.statementRefusal(behind.mode, sql, behind.setting)
    return message === undefined ? undefined : refusal(message, "execute")
  }
  const listen = listenRefused(behind)!
  // delegates member by member: PgConnection's are class instances (getters, state on `this`), not to be copied
  return {
    [PgConnection.TypeId]: PgConnection.TypeId,
    get config() {
      return connection.config
    },
    get processId() {
      return connection.processId
    },
    interrupt: connection.interrupt,
    pin: Effect.map(connection.pin, (pinned) => guard(pinned, behind)),
    query: (sql, params, prepared) => {
      const error = refused(sql)
      return error === undefined ? connection.query(sql, params, prepared) : Effect.fail(error)
    },
    queryValues: (sql, params, prepared) => {
      const error = refused(sql)
      return error === undefined ? connection.queryValues(sql, params, prepared) : Effect.fail(error)
    },
    stream: (sql, params) => {
      const error = refused(sql)
      return error === undefined ? connection.stream(sql, params) : Stream.fail(error)
    },
    listen: () => Effect.fail(listen)
  }
}

/**
 * Behind any pooler, one round trip after the login, bounded by the connect timeout: PgBouncer's refusal
 * (`server login has been failing`, `query_wait_timeout`…) fails the open, classified by the engine as an outage.
 *
 * @internal
 */
export const checkLogin = (
  connection: PgConnection.PgConnection,
  behind: Behind | undefined,
  timeoutMillis: number
): Effect.Effect<void, SqlError> =>
  behind === undefined || behind.mode === "none"
    ? Effect.void
    : connection.query("SELECT 1", [], false).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(timeoutMillis),
          orElse: () =>
            Effect.fail(
              refusal(
                `the pooler accepted the login but no server answered within ${timeoutMillis} ms ` +
                  `(${behind.setting}=${behind.mode})`,
                "connect"
              )
            )
        }),
        Effect.asVoid
      )

/**
 * The reset's session-state statements: behind a transaction pooler none (they would run on another server
 * connection), only a round trip that proves the session answers.
 *
 * @internal
 */
export const resetStatements = (
  behind: Behind | undefined,
  statements: ReadonlyArray<string>
): ReadonlyArray<string> => (behind === undefined || Pooler.mayDiscard(behind.mode) ? statements : ["SELECT 1"])
