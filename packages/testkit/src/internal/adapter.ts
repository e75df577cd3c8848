/**
 * The Effect 3 view of the core's objects: each method an effect, each failure a `PgTestServerError`.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Core from "../core/TestServer.js"
import type { ContainerOptions, EmbeddedOptions, PgTestServer } from "../PgTestServer.js"
import * as Errors from "./error.js"

/**
 * The Effect 3 view of a core server: each method an effect, each failure a `PgTestServerError`.
 *
 * @internal
 */
export const fromCore = (server: Core.TestServer): PgTestServer.Service => {
  const toError = Errors.fromCore(server.backend)
  return {
    backend: server.backend,
    url: Redacted.make(server.url),
    host: server.host,
    port: server.port,
    user: server.user,
    password: Redacted.make(server.password),
    database: server.database,
    // A stop runs to its end: interrupting it halfway would leave the server in neither state.
    stop: (options) =>
      Effect.uninterruptible(
        Effect.tryPromise({
          try: () => server.stop({ mode: options?.mode ?? "fast" }),
          catch: Errors.fromCore(server.backend, "StopFailed")
        })
      ),
    start: Effect.tryPromise({ try: (signal) => server.start({ signal }), catch: toError }),
    restart: Effect.uninterruptible(Effect.tryPromise({ try: () => server.restart(), catch: toError })),
    isRunning: Effect.promise(() => server.isRunning())
  }
}

/** @internal */
export const embeddedOptions = (options: EmbeddedOptions | undefined): Core.EmbeddedOptions | undefined => {
  if (options === undefined) return undefined
  const { password, startTimeout, ...rest } = options
  return {
    ...rest,
    ...(password === undefined ? {} : { password: reveal(password) }),
    ...(startTimeout === undefined ? {} : { startTimeoutMillis: Duration.toMillis(startTimeout) })
  }
}

/** @internal */
export const containerOptions = (options: ContainerOptions | undefined): Core.ContainerOptions | undefined => {
  if (options === undefined) return undefined
  const { password, startTimeout, ...rest } = options
  return {
    ...rest,
    ...(password === undefined ? {} : { password: reveal(password) }),
    ...(startTimeout === undefined ? {} : { startTimeoutMillis: Duration.toMillis(startTimeout) })
  }
}

/** @internal */
export const reveal = (value: Redacted.Redacted<string> | string): string =>
  Redacted.isRedacted(value) ? Redacted.value(value) : value
