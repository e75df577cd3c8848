/**
 * The test projects that run on the root's vitest (3.2, which @effect/vitest 0.30 for Effect 3 needs): every
 * package and Effect 3 example brings its own vitest.config.ts. The Effect 4 edition and the Effect 4 examples are
 * not listed (hence no `examples/*`): @effect/vitest 4 needs vitest 5, so packages/effect4 and
 * examples/quickstart-effect4 run on their own (`pnpm test:effect4`), and the root's `pnpm test` runs both.
 */
export default [
  "packages/engine",
  "packages/testkit",
  "packages/effect3",
  "examples/demo",
  "examples/health-server",
  "examples/mcp-server",
  "examples/quickstart"
]
