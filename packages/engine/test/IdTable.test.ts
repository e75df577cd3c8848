import * as fc from "fast-check"
import { assert, describe, it } from "vitest"
import { IdTable } from "../src/index.js"

type Command = { readonly op: "set" | "delete" | "get"; readonly id: number }

// ids from a small range come back after their deletion and fill the table to its load limit: long probe runs (so deletions shift entries back across the wrap of
// the table); the others are what editions use: ever-growing integers, and now and then something unusual
const id = fc.oneof(
  fc.integer({ min: 0, max: 300 }),
  fc.integer({ min: 0, max: 2 ** 53 }),
  fc.constantFrom(-1, 0.5, 2 ** 32, 2 ** 32 + 16, -(2 ** 31))
)
const command: fc.Arbitrary<Command> = fc.record({ op: fc.constantFrom("set", "set", "delete", "get"), id })

describe("IdTable", () => {
  it("answers as a Map does after any sequence of sets and deletes", () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 1_000 }), (commands) => {
        const table = new IdTable.IdTable<string>()
        const model = new Map<number, string>()
        commands.forEach(({ id, op }, step) => {
          if (op === "set") {
            table.set(id, `v${step}`)
            model.set(id, `v${step}`)
          } else if (op === "delete") {
            assert.strictEqual(table.delete(id), model.delete(id), `delete ${id} at step ${step}`)
          }
          assert.strictEqual(table.get(id), model.get(id), `get ${id} at step ${step}`)
          assert.strictEqual(table.size, model.size, `size at step ${step}`)
        })
        for (const [key, value] of model) assert.strictEqual(table.get(key), value, `get ${key} at the end`)
        assert.sameMembers(table.values(), [...model.values()])
      }),
      { numRuns: 300 }
    )
  })

  it("finds every record after each deletion in a table near its load limit, whose probe runs wrap around", () => {
    // up to 7 records in the 16 slots a table starts with: runs cross the end of the table, and a deletion must
    // pull back across it exactly the entries whose home does not lie after the hole
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 1_000_000 }), { minLength: 1, maxLength: 7 }),
        fc.infiniteStream(fc.nat()),
        (ids, picks) => {
          const table = new IdTable.IdTable<number>()
          for (const key of ids) table.set(key, key)
          const live = [...ids]
          const pick = picks[Symbol.iterator]()
          while (live.length > 0) {
            const [gone] = live.splice(pick.next().value % live.length, 1)
            assert.isTrue(table.delete(gone!))
            assert.isUndefined(table.get(gone!))
            for (const key of live) assert.strictEqual(table.get(key), key, `${key} after deleting ${gone}`)
          }
          assert.strictEqual(table.size, 0)
        }
      ),
      { numRuns: 2_000 }
    )
  })

  it("keeps its records through churn by ever-growing ids, as the acquisitions of a busy pool are", () => {
    const table = new IdTable.IdTable<number>()
    const live: Array<number> = []
    for (let next = 1; next <= 30_000; next++) {
      table.set(next, next)
      live.push(next)
      // ~100 in flight, one leaving at a random place for every one arriving
      if (live.length > 100) {
        const [gone] = live.splice(Math.floor(Math.random() * live.length), 1)
        assert.isTrue(table.delete(gone!))
      }
    }
    assert.strictEqual(table.size, live.length)
    for (const key of live) assert.strictEqual(table.get(key), key)
    assert.isFalse(table.has(1))
  })
})
