/**
 * A LISTEN the server refuses — a hot standby answers "cannot execute LISTEN during recovery" (25006) — fails the
 * caller with that error and leaves no session behind, and no log line renders an object as `[object Object]` or
 * shows the password (issue 10, item 12; the Effect 3 edition's test/Listener.test.ts, on a real standby here
 * instead of a proxy that forges the refusal: @effect/sql-pg sends LISTEN through the extended protocol).
 */
import { Db } from "@effect-pg-pool/effect4"
import { PrimaryStandby } from "@effect-pg-pool/testkit/core"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Redacted, References, Schedule } from "effect"
import * as Util from "node:util"
import { afterAll, beforeAll } from "vitest"
import { uniqueAppName } from "./utils/pools.js"

let pair: PrimaryStandby.PrimaryStandby
beforeAll(async () => {
  pair = await PrimaryStandby.start()
}, 120_000)
afterAll(() => pair?.close())

describe("a refused LISTEN", () => {
  it.live("fails the caller with the server's error, closes its session, and logs no object and no password", () => {
    const applicationName = uniqueAppName("listen-standby")
    const lines: Array<string> = []
    const logger = Logger.make(({ cause, fiber, message }) => {
      lines.push(
        Util.inspect(
          { message, annotations: { ...fiber.getRef(References.CurrentLogAnnotations) }, cause },
          { depth: 10 }
        )
      )
    })
    const standby = Db.layer({
      url: Redacted.make(pair.standby.url),
      applicationName,
      minSize: 1,
      maxSize: 1
    }).pipe(Layer.provide(Logger.layer([logger])))
    // another pool on the standby watches its sessions (only reads: a standby allows them)
    const sessions = Effect.provide(
      Db.withConnection(
        (sql) => sql<{ query: string }>`SELECT query FROM pg_stat_activity WHERE application_name = ${applicationName}`
      ),
      Db.layer({ url: Redacted.make(pair.standby.url), minSize: 0, maxSize: 1 }).pipe(Layer.provide(Logger.layer([])))
    )
    return Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(Effect.scoped(sql.listen("standby_events")))
        assert.strictEqual(error._tag, "SqlError")
        assert.include(Util.inspect(error, { depth: 10 }), "25006")
      }
      // the pool's own session stays; no LISTEN session is left open
      const left = yield* Effect.repeat(sessions, {
        until: (rows) => rows.length === 1,
        schedule: Schedule.spaced("50 millis"),
        times: 100
      })
      assert.lengthOf(left, 1, JSON.stringify(left))
      assert.notInclude(left[0]!.query, "LISTEN")
      for (const line of lines) {
        assert.notInclude(line, "[object Object]")
        assert.notInclude(line, pair.standby.password)
      }
    }).pipe(Effect.provide(standby))
  })
})
