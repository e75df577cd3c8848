/**
 * Classification, in one place, of what the pool must tell apart: errors by SQLSTATE and error class (an outage,
 * a rejected login, a dead session, a failed statement) and statement texts by whether they may leave session
 * state behind for the next holder.
 *
 * @since 0.1.0
 */
import * as classify from "./internal/classify.js"
import * as sessionState from "./internal/sessionState.js"

/**
 * What an error means for the pool:
 * - `outage`: the server or the path to it is gone or unavailable for now (socket errors, class 08, 53300 too many
 *   connections, 57P01–57P03 shutdown / crash / starting up): back off and retry;
 * - `rejected`: the server refused the login for a reason retrying cannot fix (authentication, no such database or
 *   role, a refused startup setting, TLS): a configuration error;
 * - `fatal-session`: the session is lost but the server is fine (another FATAL, a protocol error);
 * - `statement`: the statement failed, its session is fine.
 *
 * @example
 * ```ts
 * import type { Classify } from "@effect-pg-pool/engine"
 *
 * const next = (kind: Classify.FailureKind): string =>
 *   kind === "outage" ? "back off and retry" : kind === "rejected" ? "fix the configuration" : "carry on"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type FailureKind = classify.FailureKind

/**
 * A classified error: its kind, SQLSTATE (or Node error code), message, and what follows from it.
 *
 * @example
 * ```ts
 * import { Classify } from "@effect-pg-pool/engine"
 *
 * const failure: Classify.Classified = Classify.classifyConnectError({ code: "ECONNREFUSED", message: "refused" })
 * failure.probeable // true: a TCP probe can tell when the port answers again
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Classified = classify.Classified

/**
 * Classifies a failure to open a session: `rejected` (with a remedy naming what to fix) or `outage`.
 *
 * @example
 * ```ts
 * import { Classify } from "@effect-pg-pool/engine"
 *
 * const failure = Classify.classifyConnectError({ code: "28P01", message: "password authentication failed" }, {
 *   user: "app",
 *   database: "shop"
 * })
 * failure.kind // "rejected"; failure.remedy: check the password of user "app" in DATABASE_URL (or PGPASSWORD)
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const classifyConnectError: (
  cause: unknown,
  target?: {
    readonly user: string
    readonly database: string
    /** How the configuration named the connection (`url`, `DATABASE_URL`, a `Config` key): the remedy names it. */
    readonly settingNames?: { readonly url?: string | undefined } | undefined
  }
) => Classified = classify.classifyConnectError

/**
 * Classifies an error on an established session; `protocolError` when the driver's parser reported it (no
 * SQLSTATE: the client is out of step with the server).
 *
 * @example
 * ```ts
 * import { Classify } from "@effect-pg-pool/engine"
 *
 * Classify.classifyError({ code: "57P01", severity: "FATAL", message: "terminating connection" }).kind // "outage"
 * Classify.classifyError({ code: "23505", severity: "ERROR", message: "duplicate key" }).sessionLost // false
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const classifyError: (cause: unknown, protocolError?: boolean) => Classified = classify.classifyError

/**
 * The text of an error, never empty (an `AggregateError` of a refused multi-address host lists its causes).
 *
 * @example
 * ```ts
 * import { Classify } from "@effect-pg-pool/engine"
 *
 * const refused = new AggregateError([new Error("connect ECONNREFUSED ::1:5432")], "")
 * Classify.errorMessage(refused) // "connect ECONNREFUSED ::1:5432"
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const errorMessage: (cause: unknown) => string = classify.errorMessage

/**
 * Whether a statement text may leave session state behind (SET, temp tables, LISTEN, PREPARE, advisory locks…),
 * so that its session must be reset before the next holder gets it. Scans the text as PostgreSQL's lexer does;
 * what it cannot classify counts as dirty.
 *
 * @example
 * ```ts
 * import { Classify } from "@effect-pg-pool/engine"
 *
 * Classify.mayLeaveSessionState("SELECT * FROM users WHERE id = $1") // false
 * Classify.mayLeaveSessionState("SET search_path = tenant_1") // true
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const mayLeaveSessionState: (sql: string) => boolean = sessionState.mayLeaveSessionState

/**
 * The first keyword of a statement, upper-cased, past whitespace, nested comments and opening parentheses; or
 * undefined when the text does not start with one. An edition uses it to refuse what a path cannot carry (COPY
 * through a cursor).
 *
 * @example
 * ```ts
 * import { Classify } from "@effect-pg-pool/engine"
 *
 * Classify.firstKeyword("-- export\n(COPY t TO STDOUT)") // "COPY"
 * Classify.firstKeyword("  select 1") // "SELECT"
 * Classify.firstKeyword("42") // undefined
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const firstKeyword: (sql: string) => string | undefined = sessionState.firstKeyword

/**
 * PgBouncer's own errors, all SQLSTATE 08P01 and told apart by their message: `login-failing` (`server login has
 * been failing, try again later (server_login_retry)`: the server is down, PgBouncer still accepts logins and fails
 * each statement), `cannot-connect`, `query-wait-timeout` (no server connection within `query_wait_timeout`),
 * `max-client-conn` (at login: PgBouncer's own connection limit) and `server-crashed` (the server connection died
 * under a statement). PgBouncer closes the client connection after each. All are outages, none a rejection.
 *
 * @example
 * ```ts
 * import { Classify } from "@effect-pg-pool/engine"
 *
 * Classify.poolerError({ code: "08P01", message: "query_wait_timeout" }) // "query-wait-timeout"
 * Classify.classifyConnectError({ code: "08P01", message: "no more connections allowed (max_client_conn)" }).kind
 * // "outage": back off and retry, not a configuration error
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type PoolerErrorKind = classify.PoolerErrorKind

/**
 * Which of PgBouncer's errors this is, or undefined for any other error (PostgreSQL's own 08P01 included).
 *
 * @example
 * ```ts
 * import { Classify } from "@effect-pg-pool/engine"
 *
 * const error = { code: "08P01", message: "server login has been failing, try again later (server_login_retry)" }
 * Classify.poolerError(error) // "login-failing"
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const poolerError: (cause: unknown) => PoolerErrorKind | undefined = classify.poolerError

/**
 * Whether a statement PgBouncer refused never reached a server (`login-failing`, `cannot-connect`,
 * `query-wait-timeout`): running it again cannot run it twice, so a pool may keep its caller waiting for a working
 * connection instead of failing it.
 *
 * @example
 * ```ts
 * import { Classify } from "@effect-pg-pool/engine"
 *
 * Classify.neverReachedServer("query-wait-timeout") // true
 * Classify.neverReachedServer("server-crashed") // false: the statement may have run
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const neverReachedServer: (error: PoolerErrorKind) => boolean = classify.neverReachedServer
