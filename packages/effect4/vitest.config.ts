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

// The Effect 4 edition runs on its own vitest (5.x, which @effect/vitest 4 needs), not on the root's 3.2: the root
// script runs it with `pnpm --filter @effect-pg-pool/effect4 test`, and vitest.workspace.ts leaves it out.
export default defineConfig({
  test: {
    name: "effect4",
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ["@effect-pg-pool/testkit/vitestGlobalSetup"]
  }
})
