/**
 * The pool's timers: the engine's one timer (`ArmTimer`: the head of the queue's deadline, or shutdown's) and the
 * periodic events (housekeeping's `Tick`, the health probe's `ProbeRequested`).
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/**
 * One fiber serves every deadline: it sleeps until the armed instant and is woken only when the timer moves
 * earlier. When it moves later (the head of the queue was served), the fiber wakes at the old instant and sleeps
 * again, so a busy queue costs no fiber, and no wake-up, per acquisition.
 *
 * @internal
 */
export class Timer {
  private at: number | undefined = undefined
  private sleepingUntil: number | undefined = undefined
  private wake: (() => void) | undefined = undefined

  constructor(
    private readonly now: () => number,
    private readonly due: (now: number) => void
  ) {}

  arm(at: number | undefined): void {
    this.at = at
    if (at !== undefined && (this.sleepingUntil === undefined || at < this.sleepingUntil)) this.wake?.()
  }

  loop(): Effect.Effect<never> {
    const woken = Effect.async<void>((resume) => {
      const wake = () => {
        this.wake = undefined
        resume(Effect.void)
      }
      this.wake = wake
      return Effect.sync(() => {
        if (this.wake === wake) this.wake = undefined
      })
    })
    return Effect.suspend(() => {
      const at = this.at
      this.sleepingUntil = at
      if (at === undefined) return woken
      const now = this.now()
      if (at > now) return Effect.raceFirst(Effect.sleep(at - now), woken)
      // a timer that fired is gone: the engine arms it again if something is still due
      this.at = undefined
      this.sleepingUntil = undefined
      this.due(now)
      return Effect.void
    }).pipe(Effect.forever)
  }
}

/**
 * `f` every `millis`, forever; `first` runs it at once too (the health probe), else it waits a period first.
 *
 * @internal
 */
export const every = (millis: number, f: () => void, first: boolean): Effect.Effect<never> => {
  const run = Effect.sync(f)
  const sleep = Effect.sleep(millis)
  return (first ? Effect.zipRight(run, sleep) : Effect.zipRight(sleep, run)).pipe(Effect.forever)
}
