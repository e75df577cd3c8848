/**
 * The driver of the Effect 4 clients, the same as bench/src/adapters/effect.ts is for Effect 3: the layer in a
 * `ManagedRuntime`, every loop an Effect program (one `runPromise` per phase, not per query), written against
 * effect 4's API.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as References from "effect/References"
import { type Adapter, type Operation, type OutageControl, promiseBusy } from "../../../src/adapter.js"
import type { Recorder } from "../../../src/stats.js"

export type EffectOps = { readonly [K in Operation]: () => Effect.Effect<unknown, unknown> } & {
  readonly sleep: () => Effect.Effect<unknown, unknown>
  readonly health?: Effect.Effect<unknown> | undefined
  readonly healthJson?: Effect.Effect<string> | undefined
}

const timedLoop = (
  op: () => Effect.Effect<unknown, unknown>,
  deadline: number,
  recorder: Recorder,
  errors: { count: number }
): Effect.Effect<void> => {
  const step = Effect.suspend(() => {
    const started = performance.now()
    return Effect.match(op(), {
      onFailure: () => {
        errors.count++
      },
      onSuccess: () => recorder.record(performance.now() - started)
    })
  })
  return Effect.whileLoop({ while: () => performance.now() < deadline, body: () => step, step: () => {} })
}

const outageLoop = (op: () => Effect.Effect<unknown, unknown>, control: OutageControl): Effect.Effect<void> => {
  const step = Effect.suspend(() =>
    Effect.matchEffect(op(), {
      onFailure: () => {
        control.onFail()
        return Effect.yieldNow
      },
      onSuccess: () => Effect.sync(control.onOk)
    })
  )
  return Effect.whileLoop({ while: () => !control.stopped, body: () => step, step: () => {} })
}

export const makeEffectAdapter = <R, E>(
  layer: Layer.Layer<R, E>,
  makeOps: Effect.Effect<EffectOps, never, R>
): Adapter => {
  let runtime: ManagedRuntime.ManagedRuntime<R, E> | undefined
  let ops: EffectOps | undefined
  const rt = () => runtime!
  const o = () => ops!
  return {
    init: async () => {
      runtime = ManagedRuntime.make(layer)
      ops = await runtime.runPromise(makeOps)
      await runtime.runPromise(ops.select())
    },
    loop: async (op, callers, deadline, recorder) => {
      const errors = { count: 0 }
      const effect = o()[op]
      await rt().runPromise(
        Effect.all(
          Array.from({ length: callers }, () => timedLoop(effect, deadline, recorder, errors)),
          { concurrency: "unbounded", discard: true }
        )
      )
      return errors.count
    },
    // the loops never fail (every outcome is matched); a rejection is the runtime's disposal interrupting them
    outage: (callers, control) =>
      rt()
        .runPromise(
          Effect.all(
            Array.from({ length: callers }, () => outageLoop(o().select, control)),
            { concurrency: "unbounded", discard: true }
          )
        )
        .catch(() => undefined),
    health: async (iterations, recorder) => {
      const health = o().health
      if (health === undefined) return
      let i = 0
      const step = Effect.suspend(() => {
        const started = performance.now()
        return Effect.map(health, () => recorder.record(performance.now() - started))
      })
      // no yield to the scheduler inside the loop: a yield between the two clock reads would charge the health
      // check with whatever else the event loop runs meanwhile
      await rt().runPromise(
        Effect.whileLoop({
          while: () => i < iterations,
          body: () => step,
          step: () => {
            i++
          }
        }).pipe(Effect.provideService(References.PreventSchedulerYield, true))
      )
    },
    healthJson: () => {
      const json = o().healthJson
      return json === undefined ? "{}" : rt().runSync(json)
    },
    // one runPromise per query: effect 4's runtime interrupts its fibers on dispose, and a query the shutdown
    // interrupts is a failed one, not a failed batch
    busy: (n) => promiseBusy(n, () => rt().runPromise(o().sleep())),
    close: () => rt().dispose()
  }
}
