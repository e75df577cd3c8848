/**
 * The test projects that run on the root's vitest (3.2, which @effect/vitest 0.30 for Effect 3 needs): every
 * package and example brings its own vitest.config.ts. The Effect 4 edition is not listed: @effect/vitest 4 needs
 * vitest 5, so packages/effect4 runs on its own (`pnpm --filter @effect-pg-pool/effect4 test`), and the root's
 * `pnpm test` runs both.
 */
export default ["packages/engine", "packages/testkit", "packages/effect3", "examples/*"]
