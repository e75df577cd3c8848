import { assert, describe, it } from "vitest"
import { WaiterQueue as Queue } from "../src/index.js"

class Waiter implements Queue.Linked {
  prev: Queue.Linked | undefined = undefined
  next: Queue.Linked | undefined = undefined
  queued = false
  constructor(readonly arrivedAt: number) {}
}

class WaiterQueue extends Queue.WaiterQueue<Waiter> {}

const waiter = (arrivedAt: number) => new Waiter(arrivedAt)

const drain = (queue: WaiterQueue) => {
  const out: Array<number> = []
  for (let w = queue.shift(); w !== undefined; w = queue.shift()) out.push(w.arrivedAt)
  return out
}

describe("WaiterQueue", () => {
  it("serves in arrival order and forgets a removed waiter at once, wherever it stands", () => {
    const queue = new WaiterQueue()
    const waiters = Array.from({ length: 10_000 }, (_, i) => waiter(i))
    for (const w of waiters) queue.push(w)
    for (let i = 1; i < waiters.length; i += 2) queue.remove(waiters[i]!)
    // nothing lingers: the size, the head and the links hold only who still waits
    assert.strictEqual(queue.size, 5_000)
    assert.isFalse(waiters[1]!.queued)
    assert.isUndefined(waiters[1]!.next)
    assert.deepStrictEqual(
      drain(queue),
      Array.from({ length: 5_000 }, (_, i) => 2 * i)
    )
    assert.strictEqual(queue.size, 0)
    assert.isUndefined(queue.head)
  })

  it("removing twice, or a waiter that was never queued, changes nothing", () => {
    const queue = new WaiterQueue()
    const a = waiter(1)
    const b = waiter(2)
    queue.push(a)
    queue.push(b)
    queue.remove(a)
    queue.remove(a)
    queue.remove(waiter(3))
    assert.strictEqual(queue.size, 1)
    assert.deepStrictEqual(drain(queue), [2])
  })

  it("puts a retry back by arrival: behind earlier arrivals, ahead of later ones", () => {
    const queue = new WaiterQueue()
    assert.isTrue(queue.push(waiter(10)))
    assert.isFalse(queue.push(waiter(20)))
    assert.isFalse(queue.insertByArrival(waiter(15)))
    assert.isTrue(queue.insertByArrival(waiter(5)))
    assert.isFalse(queue.insertByArrival(waiter(25)))
    assert.deepStrictEqual(drain(queue), [5, 10, 15, 20, 25])
  })
})
