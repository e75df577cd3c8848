/**
 * The acquisitions waiting for a session, in arrival order: an intrusive doubly linked list, so that one that
 * gives up (abandoned, timed out) leaves at once in O(1) instead of lingering until a release skips it. During an
 * outage thousands may wait and give up; none of them may cost anything afterwards. The engine's queue, and the
 * Effect 3 edition's until it is driven by the engine.
 *
 * @since 0.1.0
 */

/**
 * What a queued element carries: its links and its arrival time.
 *
 * @example
 * ```ts
 * import type { WaiterQueue } from "@effect-pg-pool/engine"
 *
 * class Caller implements WaiterQueue.Linked {
 *   prev: WaiterQueue.Linked | undefined = undefined
 *   next: WaiterQueue.Linked | undefined = undefined
 *   queued = false
 *   constructor(readonly arrivedAt: number) {}
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Linked {
  prev: Linked | undefined
  next: Linked | undefined
  /** Whether it is linked in a queue. */
  queued: boolean
  /** Monotonic millis at which the acquisition started: its place in the FIFO order. */
  readonly arrivedAt: number
}

/**
 * A FIFO queue with O(1) removal from anywhere; a retry goes back by arrival.
 *
 * @example
 * ```ts
 * import { WaiterQueue } from "@effect-pg-pool/engine"
 *
 * const caller = (arrivedAt: number) => ({ prev: undefined, next: undefined, queued: false, arrivedAt })
 * const queue = new WaiterQueue.WaiterQueue<WaiterQueue.Linked>()
 * const first = caller(1)
 * queue.push(first)
 * queue.push(caller(3))
 * queue.remove(first) // gave up: gone at once
 * queue.insertByArrival(caller(2)) // a retry keeps its place: ahead of the later arrival
 * queue.shift()?.arrivedAt // 2
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export class WaiterQueue<W extends Linked> {
  head: W | undefined = undefined
  private tail: W | undefined = undefined
  size = 0

  /** Appends a new arrival. Returns whether it became the head. */
  push(waiter: W): boolean {
    this.link(waiter, this.tail, undefined)
    return this.size === 1
  }

  /**
   * Puts back an acquisition that arrived before some of those queued (its first try, a validation, failed while
   * they queued): behind everyone who arrived earlier, ahead of everyone who arrived later. Such acquisitions are
   * the oldest there are, so the walk from the head is short. Returns whether it became the head.
   */
  insertByArrival(waiter: W): boolean {
    let before: W | undefined
    let after = this.head
    while (after !== undefined && after.arrivedAt <= waiter.arrivedAt) {
      before = after
      after = after.next as W | undefined
    }
    this.link(waiter, before, after)
    return before === undefined
  }

  /** Removes and returns the longest-waiting acquisition. */
  shift(): W | undefined {
    const waiter = this.head
    if (waiter !== undefined) this.remove(waiter)
    return waiter
  }

  remove(waiter: W): void {
    if (!waiter.queued) return
    if (waiter.prev === undefined) this.head = waiter.next as W | undefined
    else waiter.prev.next = waiter.next
    if (waiter.next === undefined) this.tail = waiter.prev as W | undefined
    else waiter.next.prev = waiter.prev
    waiter.prev = waiter.next = undefined
    waiter.queued = false
    this.size--
  }

  *[Symbol.iterator](): Iterator<W> {
    for (let w = this.head; w !== undefined; w = w.next as W | undefined) yield w
  }

  private link(waiter: W, before: W | undefined, after: W | undefined): void {
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
