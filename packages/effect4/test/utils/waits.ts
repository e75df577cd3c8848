/**
 * Waiting on the pool in tests: conditions polled with a bound (a wait that times out says what it waited for),
 * a session held until released, a free port, a typed failure. Real time: the Effect 4 edition's clock is live.
 */
import { Db } from "@effect-pg-pool/effect4"
import { Deferred, Effect, Exit, Fiber, Option, Schedule } from "effect"
import * as Net from "node:net"

/** Polls `effect` until `done` holds; dies naming `what` after `millis`. */
export const eventually = <A, E, R>(
  what: string,
  effect: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  millis = 8_000
) =>
  Effect.repeat(effect, { until: done, schedule: Schedule.spaced("10 millis") }).pipe(
    Effect.timeoutOrElse({ duration: millis, orElse: () => Effect.die(new Error(`timed out waiting: ${what}`)) })
  )

/** Until `n` callers wait in the pool's queue. */
export const waitingIs = (n: number) => eventually(`${n} waiting`, Db.statistics, (s) => s.waiting === n)

/** Holds a session of the pool in context until `release` (which also waits for the holder to finish). */
export const hold = Effect.gen(function* () {
  const holding = yield* Deferred.make<void>()
  const release = yield* Deferred.make<void>()
  const fiber = yield* Effect.forkChild(
    Db.withConnection(() => Effect.andThen(Deferred.succeed(holding, undefined), Deferred.await(release)))
  )
  yield* Deferred.await(holding)
  return { release: Effect.andThen(Deferred.succeed(release, undefined), Fiber.join(fiber)) }
})

/** A port nobody listens on (bound, then freed). */
export const freePort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const probe = Net.createServer()
      probe.listen(0, "127.0.0.1", () => {
        const port = (probe.address() as Net.AddressInfo).port
        probe.close(() => resolve(port))
      })
    })
)

/** The typed failure of an exit, if it failed with one. */
export const failureOf = <E>(exit: Exit.Exit<unknown, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
