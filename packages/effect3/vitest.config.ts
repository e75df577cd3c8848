import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    name: "effect3",
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // builds the embedded PostgreSQL template once, and reaps any server a crashed run left behind
    globalSetup: ["@effect-pg-pool/testkit/vitestGlobalSetup"]
  }
})
