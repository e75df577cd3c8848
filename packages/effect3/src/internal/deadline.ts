/**
 * Deadlines for network round trips that tolerate a blocked event loop. A timer that fires late may be late
 * because the event loop was busy (a long synchronous task, a GC pause, a promise loop that never yields to
 * I/O): the answer we were waiting for may then be sitting in the socket buffer, unread, and declaring the
 * connection dead would throw a healthy pool away. So a deadline only counts as missed after one more turn
 * of the event loop, once pending I/O callbacks have run.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** One turn of the event loop: `setImmediate` runs after the poll phase, so buffered socket data is read first. */
const ioTurn: Effect.Effect<void> = Effect.async((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** Completes once `duration` has passed and the I/O that arrived meanwhile has been handled. */
export const deadline = (duration: Duration.DurationInput): Effect.Effect<void> =>
  // interruptible even inside an uninterruptible region, or the race could not stop it once the work wins
  Effect.interruptible(Effect.zipRight(Effect.sleep(duration), ioTurn))

/**
 * `self` or, at the deadline, the failure `onTimeout` makes. The caller decides whether `self` may be
 * interrupted (mark it `Effect.interruptible` inside a finalizer).
 */
export const failAfter = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.DurationInput,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.raceFirst(self, Effect.zipRight(deadline(duration), Effect.failSync(onTimeout)))

/** `self` as `Some`, or `None` at the deadline. */
export const timeoutOption = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.DurationInput
): Effect.Effect<Option.Option<A>, E, R> =>
  Effect.raceFirst(Effect.asSome(self), Effect.as(deadline(duration), Option.none()))
