/**
 * The driver shared by the Effect clients (ours and @effect/sql-pg): the layer in a `ManagedRuntime`, and every
 * loop written as an Effect program, the way an Effect application would run it — one `runPromise` per phase, not
 * per query.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import type { Adapter, OutageControl } from "../adapter.js"
import type { Recorder } from "../stats.js"

export interface EffectOps {
  readonly select: () => Effect.Effect<unknown, unknown>
  readonly checkout: () => Effect.Effect<unknown, unknown>
  readonly rows: () => Effect.Effect<unknown, unknown>
  readonly blob: () => Effect.Effect<unknown, unknown>
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
        return Effect.yieldNow()
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
    outage: (callers, control) =>
      rt().runPromise(
        Effect.all(
          Array.from({ length: callers }, () => outageLoop(o().select, control)),
          { concurrency: "unbounded", discard: true }
        )
      ),
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
        }).pipe(Effect.withMaxOpsBeforeYield(Number.MAX_SAFE_INTEGER))
      )
    },
    healthJson: () => {
      const json = o().healthJson
      return json === undefined ? "{}" : rt().runSync(json)
    },
    busy: async (n) => {
      const outcomes = await rt().runPromise(
        Effect.all(
          Array.from({ length: n }, () => Effect.either(o().sleep())),
          { concurrency: "unbounded" }
        )
      )
      const ok = outcomes.filter((e) => e._tag === "Right").length
      return { ok, failed: n - ok }
    },
    close: () => rt().dispose()
  }
}
