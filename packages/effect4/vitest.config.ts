import { defineConfig } from "vitest/config"

// The Effect 4 edition runs on its own vitest (5.x, which @effect/vitest 4 needs), not on the root's 3.2: the root
// script runs it with `pnpm --filter @effect-pg-pool/effect4 test`, and vitest.workspace.ts leaves it out.
export default defineConfig({
  test: {
    name: "effect4",
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ["@effect-pg-pool/testkit/vitestGlobalSetup", "./test/support/node20.ts"]
  }
})
