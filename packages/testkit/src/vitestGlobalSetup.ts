/**
 * A vitest global setup (runtime-free: vitest 3 and 5 alike, Effect 3 or 4 tests) that guarantees no embedded PostgreSQL outlives the test run:
 *
 * - before the run, it reaps servers left by earlier runs whose process died, and builds the template cluster once
 *   (so that parallel workers do not all run initdb);
 * - after the run — and on `SIGINT`/`SIGTERM`, when vitest exits without running teardowns — it reaps every server
 *   owned by this run's processes or by a process that died.
 *
 * ```ts
 * // vitest.config.ts
 * export default defineConfig({ test: { globalSetup: ["@effect-pg-pool/testkit/vitestGlobalSetup"] } })
 * ```
 *
 * @since 0.1.0
 */
import * as embedded from "./internal/embedded.js"
import * as Registry from "./internal/registry.js"

/**
 * The setup vitest runs once before the workers start; it returns the teardown.
 *
 * @example
 * ```ts
 * // vitest.config.ts
 * import { defineConfig } from "vitest/config"
 *
 * export default defineConfig({
 *   test: { globalSetup: ["@effect-pg-pool/testkit/vitestGlobalSetup"] }
 * })
 * ```
 *
 * @since 0.1.0
 * @category vitest
 */
export default async function setup(): Promise<() => Promise<void>> {
  await Registry.reap(Registry.ownerIsDead)
  const ofThisRun = Registry.ownedByRunOrDead(process.pid)
  // vitest answers SIGINT/SIGTERM with process.exit(), skipping teardowns; exit handlers still run.
  const onExit = () => {
    Registry.reapSync(ofThisRun)
  }
  process.on("exit", onExit)
  const backend = process.env.PG_TEST_BACKEND
  if (backend === undefined || backend === "" || backend === "embedded") {
    // Failures surface, with their message, in the first test that starts a server.
    await embedded.warmTemplate().catch(() => undefined)
  }
  return async () => {
    process.off("exit", onExit)
    await Registry.reap(ofThisRun)
  }
}
