/** @internal */
import * as Data from "effect/Data"
import { type Backend, type Reason, TestServerError } from "./serverError.js"

export type { Backend, Reason } from "./serverError.js"
export { describe } from "./serverError.js"

/** @internal */
export class PgTestServerError extends Data.TaggedError("PgTestServerError")<{
  readonly reason: Reason
  readonly backend: Backend
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The core's error as the Effect 3 layer's, field for field; anything else (a defect of ours) as `StartFailed`.
 *
 * @internal
 */
export const fromCore =
  (backend: Backend, reason: Reason = "StartFailed") =>
  (cause: unknown): PgTestServerError =>
    cause instanceof TestServerError
      ? new PgTestServerError({
          reason: cause.reason,
          backend: cause.backend,
          message: cause.message,
          ...(cause.cause === undefined ? {} : { cause: cause.cause })
        })
      : new PgTestServerError({
          reason,
          backend,
          message: cause instanceof Error ? cause.message : String(cause),
          cause
        })
