/**
 * The reconnect backoff's waits: the engine decides when the pool backs off and counts the attempts
 * (`ScheduleReconnect`), `Schedule.exponential(initialDelay, factor)` ∪ `spaced(maxDelay)` (jittered when
 * configured) decides how long each step lasts, and this module waits it out — cut short by a TCP probe when
 * nothing listened on the port, or on a short doubling cadence while the server says it is starting up or
 * going away.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import type { PoolConfig } from "../PoolConfig.js"

/** How often a down server's port is probed to cut the backoff short. */
const probeIntervalMillis = 100

/** @internal */
export interface Backoff {
  /**
   * One step as the engine asked for it (`ScheduleReconnect`): the delay from the schedule, logged, then waited
   * out. A defect does not end the backoff (nothing would open a connection again): the step then lasts maxDelay.
   */
  readonly step: (
    decision: {
      readonly attempt: number
      readonly restart: boolean
      readonly failure: { readonly probeable: boolean; readonly startingUp: boolean }
      readonly startingUpStreak: number
    },
    now: () => number,
    log: (level: "Info" | "Error", message: string, annotations: Record<string, unknown>) => void,
    describe: (cause: unknown) => string
  ) => Effect.Effect<void>
  /** The next step's delay in milliseconds: the schedule's first when `restart`, else it goes on where it stood. */
  readonly next: (now: number, restart: boolean) => Effect.Effect<number>
  /**
   * Waits out one step. While the last failure was a refused TCP connection (`probeable`), a cheap TCP probe runs
   * on a short cadence and the step ends as soon as the port accepts. A server that accepts TCP but refuses
   * sessions gets no such shortcut — the backoff governs — except one that says it is starting up or going away
   * (`startingUp`), retried on a short doubling cadence within the step: its port still answers, so a probe
   * cannot tell it restarted (a restart can take less than the probe's period), while the next attempt can.
   */
  readonly wait: (
    delayMillis: number,
    failure: { readonly probeable: boolean; readonly startingUp: boolean },
    startingUpStreak: number,
    now: () => number
  ) => Effect.Effect<void>
}

/** @internal */
export const make = (reconnect: PoolConfig["reconnect"], probe: Effect.Effect<boolean>): Backoff => {
  const exponential = Schedule.exponential(reconnect.initialDelay, reconnect.factor).pipe(
    Schedule.union(Schedule.spaced(reconnect.maxDelay))
  )
  const schedule = reconnect.jitter ? Schedule.jittered(exponential) : exponential
  let state: unknown = schedule.initial
  const backoff: Backoff = {
    step: (decision, now, log, describe) =>
      Effect.catchAllCause(
        Effect.gen(function* () {
          const delay = yield* backoff.next(now(), decision.restart)
          log("Info", "reconnect attempt scheduled", { attempt: decision.attempt, delayMillis: delay })
          yield* backoff.wait(delay, decision.failure, decision.startingUpStreak, now)
        }),
        (cause) => {
          if (Cause.isInterruptedOnly(cause)) return Effect.interrupt
          log("Error", "the reconnect loop died of a defect; restarting it", { error: describe(Cause.squash(cause)) })
          return Effect.sleep(reconnect.maxDelay)
        }
      ),
    next: (now, restart) =>
      Effect.map(schedule.step(now, undefined, restart ? schedule.initial : state), ([next, , decision]) => {
        state = next
        return ScheduleDecision.isDone(decision)
          ? Duration.toMillis(reconnect.maxDelay)
          : // whole milliseconds: `now` is fractional (performance.now()), and `start - now` would log 100.0000000002
            Math.max(0, Math.round(Intervals.start(decision.intervals) - now))
      }),
    wait: (delayMillis, failure, startingUpStreak, now) =>
      Effect.gen(function* () {
        if (failure.startingUp) {
          yield* Effect.sleep(Math.min(delayMillis, 100 * 2 ** Math.min(startingUpStreak, 6)))
          return
        }
        const deadline = now() + delayMillis
        while (true) {
          const remaining = deadline - now()
          if (remaining <= 0) return
          yield* Effect.sleep(Math.min(remaining, probeIntervalMillis))
          if (failure.probeable && remaining > probeIntervalMillis && (yield* probe)) return
        }
      })
  }
  return backoff
}
