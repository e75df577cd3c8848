import { defineConfig } from "vitest/config"

// Each package and example brings its own vitest.config.ts; `vitest run` at the root runs them all.
export default defineConfig({
  test: {
    projects: ["packages/*", "examples/*"]
  }
})
