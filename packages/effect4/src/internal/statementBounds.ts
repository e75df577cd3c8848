/**
 * `queryTimeout` and `cancelTimeout` for a statement on an exclusive session, as the Effect 3 edition has them: a
 * statement over `queryTimeout` is cancelled on the server and fails with a `SqlError` naming the option; stopping
 * it — a timeout's or its caller's interruption — waits at most `cancelTimeout` for the server, after which the
 * caller goes on and the session is closed at its release (`cancel`).
 *
 * PgConnection cancels an interrupted statement itself (a CancelRequest, then it drains the statement) but waits
 * up to its own 5 s for that, which no option changes. So a bounded statement runs on a fiber of its own, which the
 * caller stops and waits for only as long as `cancelTimeout`. With the defaults (no `queryTimeout`, `cancelTimeout`
 * 5 s) PgConnection's own bound is the one asked for, and statements run as they are: no fiber per statement.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { SqlError, StatementTimeoutError } from "effect/sql/SqlError"

/** @internal */
export interface Bounds {
  readonly queryTimeout: Duration.Duration | undefined
  readonly cancelTimeout: Duration.Duration
}

/** PgConnection's own bound on stopping a statement. */
const ownCancelMillis = 5_000

/** The bounds to apply, or undefined when PgConnection's own handling is what the options ask for. @internal */
export const make = (config: Bounds): Bounds | undefined =>
  config.queryTimeout === undefined && Duration.toMillis(config.cancelTimeout) === ownCancelMillis ? undefined : config

const timedOut = (bounds: Bounds, cancelled: boolean) => {
  const limit = Duration.format(bounds.queryTimeout!)
  const message = cancelled
    ? `The statement exceeded queryTimeout (${limit}) and was cancelled: make it faster, or raise DB_POOL_QUERY_TIMEOUT`
    : `The statement exceeded queryTimeout (${limit}); its cancel did not land within cancelTimeout ` +
      `(${Duration.format(bounds.cancelTimeout)}), so its connection is closed: make it faster, or raise ` +
      "DB_POOL_QUERY_TIMEOUT (DB_POOL_CANCEL_TIMEOUT bounds the cancel)"
  return new SqlError({
    reason: new StatementTimeoutError({ cause: new Error(message), message, operation: "execute" })
  })
}

/**
 * Runs `statement` under `bounds`. `onCancelFailed` is called when stopping it took longer than `cancelTimeout`:
 * its session is still busy with it and must not serve again.
 *
 * @internal
 */
export const guard = <A>(
  bounds: Bounds,
  onCancelFailed: () => void,
  statement: Effect.Effect<A, SqlError>
): Effect.Effect<A, SqlError> =>
  Effect.withFiber((parent) =>
    Effect.callback<A, SqlError>((resume) => {
      const fiber = Effect.runForkWith(parent.context)(statement)
      let state: "running" | "stopping" | "done" = "running"
      let stopped: (cancelled: boolean) => void = () => {}
      let timer: ReturnType<typeof setTimeout> | undefined
      let watchdog: ReturnType<typeof setTimeout> | undefined
      fiber.addObserver((exit) => {
        if (state === "running") {
          state = "done"
          if (timer !== undefined) clearTimeout(timer)
          resume(exit)
        } else if (state === "stopping") {
          state = "done"
          clearTimeout(watchdog)
          stopped(true)
        }
      })
      // interrupting the fiber is PgConnection's cancel: a CancelRequest, then the statement drained
      const stop = (then: (cancelled: boolean) => void) => {
        state = "stopping"
        stopped = then
        if (timer !== undefined) clearTimeout(timer)
        watchdog = setTimeout(() => {
          if (state !== "stopping") return
          state = "done"
          onCancelFailed()
          stopped(false)
        }, Duration.toMillis(bounds.cancelTimeout))
        fiber.interruptUnsafe(parent.id)
      }
      if (bounds.queryTimeout !== undefined) {
        timer = setTimeout(() => {
          timer = undefined
          if (state === "running") stop((cancelled) => resume(Effect.fail(timedOut(bounds, cancelled))))
        }, Duration.toMillis(bounds.queryTimeout))
      }
      // the caller interrupted: stop the statement, for at most cancelTimeout
      return Effect.callback<void>((resumeInterrupt) => {
        if (state === "running") return stop(() => resumeInterrupt(Effect.void))
        if (state === "done") return resumeInterrupt(Effect.void)
        const previous = stopped
        stopped = (cancelled) => {
          previous(cancelled)
          resumeInterrupt(Effect.void)
        }
      })
    })
  )
