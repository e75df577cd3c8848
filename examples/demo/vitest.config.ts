import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    name: "demo",
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // reaps the embedded servers of a demo run that died (they belong to its process)
    globalSetup: ["@effect-pg-pool/testkit/vitestGlobalSetup"]
  }
})
