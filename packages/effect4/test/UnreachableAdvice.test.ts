/**
 * DatabaseUnreachable's advice names the settings as the user wrote them: the url and init options for a pool
 * configured in code, DATABASE_URL and DB_POOL_INIT for one configured from the environment — never DATABASE_URL
 * to a user who never set it. The message itself is the engine's `Messages.databaseUnreachable`.
 */
import { Db, PoolError } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Logger, Option, Redacted } from "effect"
import { freePort } from "./utils/waits.js"

// one attempt against a port nobody listens on: an eager start gives up at once, without a backoff to wait through
const unreachableMessage = <E>(layer: Layer.Layer<Db.Db, E>) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(Effect.provide(Db.statistics, layer.pipe(Layer.provide(Logger.layer([])))))
    const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
    assert.instanceOf(error, PoolError.DatabaseUnreachable)
    return (error as PoolError.DatabaseUnreachable).message
  })

describe("DatabaseUnreachable's advice", () => {
  it.live("names the url and init options for a pool configured in code, not DATABASE_URL", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const message = yield* unreachableMessage(
        Db.layer({ url: Redacted.make(`postgres://app:pw@127.0.0.1:${port}/appdb`), reconnect: { initialAttempts: 1 } })
      )
      assert.notInclude(message, "DATABASE_URL")
      assert.include(message, "that the url option (or host, port and database) is right")
      assert.include(message, `set init: "lazy" in the pool's options`)
    })
  )

  it.live("names DATABASE_URL and DB_POOL_INIT for a pool configured from the environment", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const env = ConfigProvider.fromEnv({
        env: { DATABASE_URL: `postgres://app:pw@127.0.0.1:${port}/appdb`, DB_POOL_RECONNECT_INITIAL_ATTEMPTS: "1" }
      })
      const message = yield* unreachableMessage(Db.layerFromEnv().pipe(Layer.provide(ConfigProvider.layer(env))))
      assert.include(message, "that DATABASE_URL is right")
      assert.include(message, "or set DB_POOL_INIT=lazy to start without it")
    })
  )
})
