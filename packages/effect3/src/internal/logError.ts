/**
 * The one way an error becomes text in a log line (and in `lastError`): its message, its SQLSTATE or system error
 * code, the inner errors of an AggregateError (a refused `localhost` that resolves to both `::1` and `127.0.0.1`
 * has an empty message of its own), and the password redacted. Whatever it is given, it never renders
 * `[object Object]`.
 *
 * @internal
 */
import { Settings } from "@effect-pg-pool/engine"

/**
 * Renders `cause` for a log line, with `password` (and any URL's credentials) redacted.
 *
 * @internal
 */
export const formatLogError = (cause: unknown, password: string | undefined): string =>
  Settings.redactText(render(cause, 0), password)

// deep enough for an AggregateError inside a wrapper inside a wrapper; a cycle stops here too
const MAX_DEPTH = 4

interface ErrorLike {
  readonly _tag?: unknown
  readonly message?: unknown
  readonly code?: unknown
  readonly severity?: unknown
  readonly errors?: unknown
  readonly cause?: unknown
}

const render = (cause: unknown, depth: number): string => {
  if (typeof cause === "string") return cause
  if (cause === null || typeof cause !== "object") return String(cause)
  const error = cause as ErrorLike
  const inner = error.cause !== undefined && depth < MAX_DEPTH ? error.cause : undefined
  // wrappers whose own message says nothing: our ConnectFailure, Effect's UnknownException (tryPromise)
  if (inner !== undefined && (error._tag === "ConnectFailure" || error._tag === "UnknownException")) {
    return render(inner, depth + 1)
  }
  let text = typeof error.message === "string" ? error.message : ""
  if (Array.isArray(error.errors) && error.errors.length > 0 && depth < MAX_DEPTH) {
    const each = error.errors.map((e) => render(e, depth + 1)).join("; ")
    text = text === "" ? each : `${text}: ${each}`
  }
  const code = typeof error.code === "string" || typeof error.code === "number" ? String(error.code) : undefined
  if (code !== undefined && !text.includes(code)) {
    // a server error has a severity; a system error's code (ECONNREFUSED, EPIPE) is not a SQLSTATE
    text += typeof error.severity === "string" ? ` (SQLSTATE ${code})` : ` (${code})`
  }
  if (inner !== undefined) {
    const because = render(inner, depth + 1)
    // a wrapper's message usually quotes its cause's (a SqlError's does): say it once
    const quoted = (inner as ErrorLike).message
    const known = typeof quoted === "string" && quoted !== "" ? quoted : because
    if (!text.includes(known)) text = text === "" ? because : `${text} (cause: ${because})`
  }
  return text !== "" ? text : fallback(cause)
}

/** Something without a message: its JSON if it has one, else the name of what it is. */
const fallback = (cause: object): string => {
  const name = (cause as { constructor?: { name?: unknown } }).constructor?.name
  const kind = typeof name === "string" && name !== "" ? name : "object"
  if (cause instanceof Error) return kind
  try {
    const json = JSON.stringify(cause)
    if (json !== undefined && json !== "{}") return json
  } catch {
    // circular or throwing toJSON: the name is all we can say
  }
  return `<${kind}>`
}
