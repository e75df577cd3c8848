import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { PrimaryStandby } from "../src/index.js"
import { failureOf, queryOnce } from "./utils.js"

// excludeTestServices: real servers on real time
layer(PrimaryStandby.layer(), { timeout: "60 seconds", excludeTestServices: true })("PrimaryStandby layer", (it) => {
  it.effect("replicates, refuses writes on the standby, and fails over with kill + promote", () =>
    Effect.gen(function* () {
      const { primary, promote, standby, waitForReplay } = yield* PrimaryStandby.PrimaryStandby
      yield* queryOnce(primary.url, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
      yield* waitForReplay()
      assert.deepStrictEqual(yield* queryOnce(standby.url, "SELECT n FROM t"), [{ n: 1 }])
      assert.strictEqual(
        failureOf(yield* Effect.exit(queryOnce(standby.url, "INSERT INTO t VALUES (2)"))).code,
        "25006"
      )

      yield* primary.kill
      assert.isFalse(yield* primary.isRunning)
      yield* promote
      yield* queryOnce(standby.url, "INSERT INTO t VALUES (2)")
      assert.deepStrictEqual(yield* queryOnce(standby.url, "SELECT n FROM t ORDER BY n"), [{ n: 1 }, { n: 2 }])
    })
  )

  it.effect("waitForReplay with the primary down fails with a typed error naming it", () =>
    Effect.gen(function* () {
      // the primary was killed above
      const { primary, waitForReplay } = yield* PrimaryStandby.PrimaryStandby
      const error = failureOf(yield* Effect.exit(waitForReplay({ timeout: "1 second" })))
      assert.strictEqual(error._tag, "PgTestServerError")
      assert.include(error.message, `primary on port ${primary.port}`)
    })
  )
})
