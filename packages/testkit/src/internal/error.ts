/** @internal */
import * as Data from "effect/Data"

/** @internal */
export type Backend = "embedded" | "container" | "external"

/** @internal */
export type Reason = "StartFailed" | "StopFailed" | "BackendUnavailable" | "NotSupported" | "InvalidConfig"

/** @internal */
export class PgTestServerError extends Data.TaggedError("PgTestServerError")<{
  readonly reason: Reason
  readonly backend: Backend
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The text of an unknown failure, for messages. Never applied to anything holding a password.
 *
 * @internal
 */
export const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : String(cause)
