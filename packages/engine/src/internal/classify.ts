/**
 * Error classification by SQLSTATE and error class, in one place: what the pool does after a failure (back off,
 * fail init at once, drop the session, nothing) depends on it, never on matching message text.
 *
 * The one copy: the Effect 3 edition's connect path (packages/effect3/src/internal/connection.ts) classifies with it.
 *
 * @internal
 */

/** @internal */
export type FailureKind = "outage" | "rejected" | "fatal-session" | "statement"

/** @internal */
export interface Classified {
  readonly kind: FailureKind
  readonly code: string | undefined
  readonly message: string
  /** Whether the session the error happened on is gone: it must be closed, never handed out again. */
  readonly sessionLost: boolean
  /** For a rejection: what the user should fix. */
  readonly remedy: string | undefined
  /** Nothing listens on the port (refused, unreachable): a TCP probe can tell when that changes. */
  readonly probeable: boolean
  /** The server answered but is starting up (57P03 "starting up" / "not yet accepting connections"). */
  readonly startingUp: boolean
  /**
   * The server answered that it is shutting down (57P03 "shutting down"): its port closes soon, so a TCP probe can
   * tell when it is back — once it has seen the port closed, since the old server still answers meanwhile.
   */
  readonly goingAway: boolean
}

// A connection that was accepted and then dropped or timed out is NOT probeable: the port answers (a proxy,
// a blackhole, a server refusing sessions), so only the backoff may pace the next attempt.
// ENOENT: a Unix socket whose server is down has no socket file.
const probeableCodes = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND", "ENOENT"])

// Node's socket-level failures: the network or the server went away.
const networkCodes = new Set([
  ...probeableCodes,
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENETDOWN",
  "EHOSTDOWN",
  "ERR_SOCKET_CLOSED",
  "ERR_STREAM_DESTROYED"
])

// Node's certificate verification codes; the `ERR_TLS_*` / `ERR_SSL_*` ones are matched by prefix.
const certificateCodes = new Set([
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "HOSTNAME_MISMATCH",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
])

const isAggregate = (u: unknown): u is { readonly errors: ReadonlyArray<unknown>; readonly code?: unknown } =>
  typeof u === "object" && u !== null && Array.isArray((u as any).errors) && (u as any).errors.length > 0

/**
 * The text of an error, never empty: Node reports a refused `localhost` that resolves to both `::1` and
 * `127.0.0.1` as an `AggregateError` whose own message is empty, its causes inside (one per address).
 *
 * @internal
 */
export const errorMessage = (cause: unknown): string => {
  if (isAggregate(cause)) {
    const inner = [...new Set(cause.errors.map(errorMessage))].join("; ")
    const own = (cause as any).message
    return typeof own === "string" && own !== "" ? `${own}: ${inner}` : inner
  }
  if (cause instanceof Error) return cause.message !== "" ? cause.message : cause.name
  const message = (cause as any)?.message
  return typeof message === "string" && message !== "" ? message : String(cause)
}

/** @internal */
export const errorCode = (cause: unknown): string | undefined => {
  const code = (cause as any)?.code
  if (typeof code === "string" && code !== "") return code
  // an AggregateError's first inner error says what happened to the first address
  return isAggregate(cause) ? errorCode(cause.errors[0]) : undefined
}

/**
 * Outage or rejection, by SQLSTATE and error class. Rejected: class 28 (invalid authorization: 28P01 wrong
 * password, 28000 no such role or no pg_hba.conf entry), 3D000 (no such database), class 42 at startup
 * (42704 unrecognized configuration parameter, 42501 no CONNECT privilege), 22023 (a startup parameter's
 * value refused), 0A000 (feature not supported, e.g. the protocol version), 08P01 (the startup message
 * refused), TLS and certificate errors, and pg's client-side SASL errors. Everything else is an outage —
 * including 53300 (too many connections) and 57P01/57P02/57P03 (shutting down, crashed, starting up), which
 * pass once the server recovers.
 *
 * @internal
 */
export const classifyConnectError = (
  cause: unknown,
  target: ConnectTarget = { user: "?", database: "?" }
): Classified => {
  const code = errorCode(cause)
  const message = errorMessage(cause)
  const remedy = rejectionRemedy(code, message, target)
  return {
    kind: remedy === undefined ? "outage" : "rejected",
    code,
    message,
    sessionLost: true,
    remedy,
    probeable: code !== undefined && probeableCodes.has(code),
    startingUp: code === "57P03" && /starting up|not yet accepting/.test(message),
    goingAway: code === "57P03" && /shutting down/.test(message)
  }
}

/**
 * An error on an established session. Outage: a socket-level failure, class 08 (connection exception), 53300
 * (too many connections), 57P01/57P02/57P03 (administrator or crash shutdown, cannot connect now) — the server
 * or the path to it went away. Fatal-session: any other FATAL or PANIC (e.g. 25P03 idle-in-transaction timeout,
 * 57P05 idle-session timeout), or an error of the protocol itself (`protocolError`: the client is out of step
 * with the server). Statement: anything else — the statement failed and its session is fine.
 *
 * @internal
 */
export const classifyError = (cause: unknown, protocolError = false): Classified => {
  const code = errorCode(cause)
  const message = errorMessage(cause)
  const severity = (cause as any)?.severity
  const base = { code, message, remedy: undefined, probeable: false, startingUp: false, goingAway: false }
  if (code !== undefined && (networkCodes.has(code) || code.startsWith("08") || outageStates.has(code))) {
    return {
      ...base,
      kind: "outage",
      sessionLost: true,
      probeable: probeableCodes.has(code),
      startingUp: code === "57P03"
    }
  }
  if (protocolError || severity === "FATAL" || severity === "PANIC") {
    return { ...base, kind: "fatal-session", sessionLost: true }
  }
  return { ...base, kind: "statement", sessionLost: false }
}

const outageStates = new Set(["53300", "57P01", "57P02", "57P03"])

/**
 * Whom a connect attempt was for; `settingNames.url` says how the configuration named the connection (`url` in code,
 * `DATABASE_URL` from the environment, a `Config` key), so that a remedy points where the user wrote it.
 *
 * @internal
 */
export interface ConnectTarget {
  readonly user: string
  readonly database: string
  readonly settingNames?: { readonly url?: string | undefined } | undefined
}

/** Where a remedy sends the user: the variable or `Config` key as written, "the url option" for code. */
const urlSetting = (names: ConnectTarget["settingNames"]): string =>
  names?.url === undefined ? "DATABASE_URL" : names.url === "url" ? "the url option" : names.url

const rejectionRemedy = (code: string | undefined, message: string, target: ConnectTarget): string | undefined => {
  const { database, user } = target
  const url = urlSetting(target.settingNames)
  if (code === "28P01") return `check the password of user "${user}" in ${url} (or PGPASSWORD)`
  if (code === "28000") {
    return (
      `check the user name "${user}" in ${url} (the role must exist and may LOG IN) and that the ` +
      `server's pg_hba.conf admits it from this host`
    )
  }
  if (code?.startsWith("28")) return `check the credentials (user "${user}", password) in ${url}`
  if (code === "3D000") return `create the database (CREATE DATABASE "${database}") or fix its name in ${url}`
  if (code === "42501") return `grant user "${user}" CONNECT on database "${database}", or connect as another user`
  if (code?.startsWith("42") || code === "22023" || code === "0A000") {
    return (
      "the server refused a startup setting: check DB_POOL_STATEMENT_TIMEOUT, DB_POOL_APPLICATION_NAME and " +
      `the options in ${url} against what this server supports`
    )
  }
  if (code === "08P01" && /^unsupported startup parameter/.test(message)) {
    return (
      "PgBouncer refuses startup parameters it does not track: unset DB_POOL_STATEMENT_TIMEOUT and the options in " +
      `${url}, and set them per role on the server instead (ALTER ROLE … SET statement_timeout = …)`
    )
  }
  // PgBouncer answers for a server it cannot reach, or for its own limits, with 08P01 too: an outage
  if (code === "08P01" && poolerError({ code, message }) === undefined) {
    return `the server refused the startup message: check that ${url} points at a PostgreSQL server or pooler`
  }
  if (
    (code !== undefined &&
      (certificateCodes.has(code) || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_"))) ||
    message.includes("does not support SSL")
  ) {
    return `check sslmode in ${url} and the server's TLS setup (its certificate, its CA, its host name)`
  }
  if (code === undefined && message.startsWith("SASL:")) {
    return `check the password of user "${user}" in ${url} (the server asks for one)`
  }
  return undefined
}

/** @internal */
export type PoolerErrorKind =
  | "login-failing"
  | "cannot-connect"
  | "query-wait-timeout"
  | "max-client-conn"
  | "server-crashed"

// PgBouncer's messages (1.18 and later), each sent as an ErrorResponse with SQLSTATE 08P01 before it closes the client
const poolerMessages: ReadonlyArray<readonly [RegExp, PoolerErrorKind]> = [
  [/^server login has been failing/, "login-failing"],
  [/^pgbouncer cannot connect to server/, "cannot-connect"],
  [/^query_wait_timeout/, "query-wait-timeout"],
  [/^no more connections allowed \(max_client_conn\)/, "max-client-conn"],
  [/^server conn crashed\?/, "server-crashed"]
]

/**
 * PgBouncer's own refusal, told apart from PostgreSQL's 08P01 (protocol violation) by its message; undefined for
 * anything else.
 *
 * @internal
 */
export const poolerError = (cause: unknown): PoolerErrorKind | undefined => {
  if (errorCode(cause) !== "08P01") return undefined
  const message = errorMessage(cause)
  return poolerMessages.find(([pattern]) => pattern.test(message))?.[1]
}

/**
 * Whether a statement refused this way never reached a server, so running it again cannot run it twice: PgBouncer
 * failed it while waiting for a server connection (the server is down, or none came within query_wait_timeout).
 *
 * @internal
 */
export const neverReachedServer = (error: PoolerErrorKind): boolean =>
  error === "login-failing" || error === "cannot-connect" || error === "query-wait-timeout"
