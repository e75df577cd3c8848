import { defineConfig } from "vitest/config"

// vitest 5's reporter calls Map.groupBy (Node 21+) when it prints a failure; on Node 20 it would crash instead
if (typeof (Map as any).groupBy !== "function") {
  ;(Map as any).groupBy = <K, V>(items: Iterable<V>, key: (item: V, index: number) => K): Map<K, Array<V>> => {
    const groups = new Map<K, Array<V>>()
    let index = 0
    for (const item of items) {
      const k = key(item, index++)
      const group = groups.get(k)
      if (group === undefined) groups.set(k, [item])
      else group.push(item)
    }
    return groups
  }
}

// An Effect 4 example: on its own vitest (5.x, as the Effect 4 edition), not the root's 3.2 — vitest.workspace.ts
// leaves it out, and the root's `test:effect4` runs it.
export default defineConfig({
  test: {
    name: "quickstart-effect4",
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ["@effect-pg-pool/testkit/vitestGlobalSetup"]
  }
})
