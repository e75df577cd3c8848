/**
 * What the pool may do behind a connection pooler (the `pooler` setting, PgBouncer's `pool_mode`), decided once for
 * every edition. In `transaction` mode PgBouncer lends a server connection for one transaction, or one statement
 * outside a transaction, and then to any other client: session state does not follow the pool's connection, and
 * what one statement leaves on a server connection the next client of PgBouncer gets. So, in that mode only:
 * LISTEN is refused (its notifications would be lost), statements whose purpose is session state are refused
 * (`SET` but not `SET LOCAL`, `RESET`, `PREPARE`, `DEALLOCATE`, `DISCARD`, `LOAD`), and the reset on release
 * discards nothing (it would run on whichever server connection PgBouncer picks). `none` and `session` change
 * nothing.
 *
 * @since 0.1.0
 */
import * as sessionState from "./internal/sessionState.js"
import type * as model from "./internal/settings/model.js"

/**
 * `none`, `session` or `transaction`.
 *
 * @example
 * ```ts
 * import type { Pooler } from "@effect-pg-pool/engine"
 *
 * const describe = (mode: Pooler.Mode): string =>
 *   mode === "transaction" ? "a server connection per transaction" : "a session per connection"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = model.Pooler

// The statements that exist to change the session; a transaction-scoped SET (SET LOCAL, SET TRANSACTION) is not one
const SESSION_KEYWORDS: ReadonlySet<string> = new Set([
  "SET",
  "RESET",
  "LISTEN",
  "UNLISTEN",
  "PREPARE",
  "DEALLOCATE",
  "DISCARD",
  "LOAD"
])

/**
 * Why a LISTEN cannot run in this mode, or undefined when it can. `setting` is the name the user gave the pooler
 * setting (`settingNames.pooler`: `pooler`, `DB_POOL_POOLER`…).
 *
 * @example
 * ```ts
 * import { Pooler } from "@effect-pg-pool/engine"
 *
 * Pooler.listenRefusal("transaction", "DB_POOL_POOLER") // "LISTEN cannot work behind PgBouncer in transaction mode …"
 * Pooler.listenRefusal("session", "DB_POOL_POOLER") // undefined
 * ```
 *
 * @since 0.1.0
 * @category decisions
 */
export const listenRefusal = (mode: Mode, setting: string): string | undefined =>
  mode !== "transaction"
    ? undefined
    : `LISTEN cannot work behind PgBouncer in transaction mode (${setting}=transaction): the server connection that ` +
      "LISTENs goes back to PgBouncer's pool after the statement and its notifications are lost. Listen through a " +
      "direct connection to the server (a second pool whose URL is the server's, not PgBouncer's), or run PgBouncer " +
      `in session mode (${setting}=session)`

/**
 * Why a statement cannot run in this mode, or undefined when it can: in `transaction` mode, a statement that exists
 * to change the session (`SET`, `RESET`, `LISTEN`, `UNLISTEN`, `PREPARE`, `DEALLOCATE`, `DISCARD`, `LOAD`; `SET
 * LOCAL` and `SET TRANSACTION` are fine). The message names the statement by its first keyword only: a statement's
 * text may hold a secret.
 *
 * @example
 * ```ts
 * import { Pooler } from "@effect-pg-pool/engine"
 *
 * Pooler.statementRefusal("transaction", "SET search_path = app", "pooler") // "SET … use SET LOCAL …"
 * Pooler.statementRefusal("transaction", "SET LOCAL statement_timeout = 1000", "pooler") // undefined
 * ```
 *
 * @since 0.1.0
 * @category decisions
 */
export const statementRefusal = (mode: Mode, sql: string, setting: string): string | undefined => {
  if (mode !== "transaction") return undefined
  const keyword = sessionState.firstKeyword(sql)
  if (keyword === undefined || !SESSION_KEYWORDS.has(keyword)) return undefined
  if (keyword === "LISTEN") return listenRefusal(mode, setting)
  if (!sessionState.mayLeaveSessionState(sql)) return undefined
  return (
    `${keyword} would change a server connection's session behind PgBouncer in transaction mode ` +
    `(${setting}=transaction): the pool's next statement may run on another server connection, and another client ` +
    "gets this one with the change. Use SET LOCAL inside a transaction, set it per role or database on the server " +
    `(ALTER ROLE … SET), or run PgBouncer in session mode (${setting}=session)`
  )
}

/**
 * Whether the reset on release may discard session state (`DISCARD ALL`): not in `transaction` mode, where it would
 * run on whichever server connection PgBouncer picks. A ROLLBACK of an open transaction is still sent in every
 * mode: it ends the transaction that holds PgBouncer's server connection.
 *
 * @example
 * ```ts
 * import { Pooler } from "@effect-pg-pool/engine"
 *
 * Pooler.mayDiscard("transaction") // false
 * Pooler.mayDiscard("none") // true
 * ```
 *
 * @since 0.1.0
 * @category decisions
 */
export const mayDiscard = (mode: Mode): boolean => mode !== "transaction"
