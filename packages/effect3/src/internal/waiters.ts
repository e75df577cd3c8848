/**
 * A caller waiting for a connection: its place in the engine's FIFO queue (`WaiterQueue`, O(1) removal) and the
 * outcome it resumes with.
 *
 * @internal
 */
import type { WaiterQueue } from "@effect-pg-pool/engine"
import * as Effect from "effect/Effect"
import type { AcquireTimeout, PoolClosed } from "../PoolError.js"
import type { PooledConnection } from "./connection.js"

type Outcome = Effect.Effect<PooledConnection, AcquireTimeout | PoolClosed>

/** @internal */
export class Waiter implements WaiterQueue.Linked {
  prev: WaiterQueue.Linked | undefined = undefined
  next: WaiterQueue.Linked | undefined = undefined
  /** Whether it is linked in a queue. */
  queued = false
  /** Settled (served, failed) or abandoned: no one may settle it again. */
  done = false
  /** The connection it was granted, until it has seen it (a grant can race an interruption). */
  conn: PooledConnection | undefined = undefined
  private resume: ((outcome: Outcome) => void) | undefined = undefined
  private outcome: Outcome | undefined = undefined

  constructor(
    /** Monotonic millis at which the acquisition started (its place in the FIFO order). */
    readonly arrivedAt: number,
    /** Monotonic millis at which the acquisition times out: one deadline for the whole acquisition. */
    readonly deadline: number,
    readonly startedAtPerf: number,
    readonly site: string | undefined
  ) {}

  settle(outcome: Outcome): void {
    this.done = true
    if (this.resume !== undefined) this.resume(outcome)
    else this.outcome = outcome
  }

  readonly await: Outcome = Effect.async((resume) => {
    if (this.outcome !== undefined) return resume(this.outcome)
    this.resume = resume
  })
}
