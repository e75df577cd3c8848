/**
 * The error of the runtime-free core: a plain `Error` carrying the same fields as the Effect 3 layer's
 * `PgTestServerError`, into which that layer converts it field for field.
 *
 * @internal
 */

/** @internal */
export type Backend = "embedded" | "container" | "external"

/** @internal */
export type Reason = "StartFailed" | "StopFailed" | "BackendUnavailable" | "NotSupported" | "InvalidConfig"

/** @internal */
export class TestServerError extends Error {
  readonly _tag = "TestServerError"
  readonly reason: Reason
  readonly backend: Backend
  override readonly cause: unknown
  constructor(fields: {
    readonly reason: Reason
    readonly backend: Backend
    readonly message: string
    readonly cause?: unknown
  }) {
    super(fields.message)
    this.name = "TestServerError"
    this.reason = fields.reason
    this.backend = fields.backend
    this.cause = fields.cause
  }
}

/**
 * The text of an unknown failure, for messages. Never applied to anything holding a password.
 *
 * @internal
 */
export const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : String(cause)

/**
 * A promise-chain lock: `run(f)` starts `f` once every earlier `run` has settled.
 *
 * @internal
 */
export const makeLock = () => {
  let tail: Promise<unknown> = Promise.resolve()
  return <A>(f: () => Promise<A>): Promise<A> => {
    const result = tail.then(f, f)
    tail = result.catch(() => undefined)
    return result
  }
}
