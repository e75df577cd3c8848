/**
 * The callers waiting for a connection, in arrival order: an intrusive doubly linked list, so that a caller
 * that gives up (interrupted, timed out) leaves at once in O(1) instead of lingering until a release skips
 * it. During an outage thousands may wait and give up; none of them may cost anything afterwards.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { AcquireTimeout, PoolClosed } from "../PoolError.js"
import type { PooledConnection } from "./connection.js"

type Outcome = Effect.Effect<PooledConnection, AcquireTimeout | PoolClosed>

/** @internal */
export class Waiter {
  prev: Waiter | undefined = undefined
  next: Waiter | undefined = undefined
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

/** @internal */
export class WaiterQueue {
  head: Waiter | undefined = undefined
  private tail: Waiter | undefined = undefined
  size = 0

  /** Appends a new arrival. Returns whether it became the head. */
  push(waiter: Waiter): boolean {
    this.link(waiter, this.tail, undefined)
    return this.size === 1
  }

  /**
   * Puts back a caller that arrived before some of those queued (its first try, a validation, failed while
   * they queued): behind everyone who arrived earlier, ahead of everyone who arrived later. Such callers are
   * the oldest there are, so the walk from the head is short. Returns whether it became the head.
   */
  insertByArrival(waiter: Waiter): boolean {
    let before: Waiter | undefined
    let after = this.head
    while (after !== undefined && after.arrivedAt <= waiter.arrivedAt) {
      before = after
      after = after.next
    }
    this.link(waiter, before, after)
    return before === undefined
  }

  /** Removes and returns the longest-waiting caller. */
  shift(): Waiter | undefined {
    const waiter = this.head
    if (waiter !== undefined) this.remove(waiter)
    return waiter
  }

  remove(waiter: Waiter): void {
    if (!waiter.queued) return
    if (waiter.prev === undefined) this.head = waiter.next
    else waiter.prev.next = waiter.next
    if (waiter.next === undefined) this.tail = waiter.prev
    else waiter.next.prev = waiter.prev
    waiter.prev = waiter.next = undefined
    waiter.queued = false
    this.size--
  }

  private link(waiter: Waiter, before: Waiter | undefined, after: Waiter | undefined): void {
    waiter.prev = before
    waiter.next = after
    if (before === undefined) this.head = waiter
    else before.next = waiter
    if (after === undefined) this.tail = waiter
    else after.prev = waiter
    waiter.queued = true
    this.size++
  }
}
