import { Reactivity } from "@effect/experimental"
import { assert, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Layer, Redacted } from "effect"
import * as Db from "../src/Db.js"
import { DatabaseUnreachable } from "../src/PoolError.js"
import { failureOf, freePort } from "./utils.js"

// one attempt against a port nobody listens on: eager init gives up at once, without a backoff to wait through
const unreachableMessage = <E, R>(effect: Effect.Effect<unknown, E, R>) =>
  Effect.gen(function* () {
    const error = failureOf(yield* Effect.exit(effect))
    assert.instanceOf(error, DatabaseUnreachable)
    return (error as DatabaseUnreachable).message
  })

// the environment (or a Config source) as a ConfigProvider, with the unreachable port in its URL
const environment = (urlKey: string, port: number, extra: ReadonlyArray<readonly [string, string]>) =>
  ConfigProvider.fromMap(new Map([[urlKey, `postgres://app:pw@127.0.0.1:${port}/appdb`], ...extra]))

it.scoped("DatabaseUnreachable names the url and init options for a pool configured in code, not DATABASE_URL", () =>
  Effect.gen(function* () {
    const port = yield* freePort
    const message = yield* unreachableMessage(
      Db.make({
        url: Redacted.make(`postgres://app:pw@127.0.0.1:${port}/appdb`),
        reconnect: { initialAttempts: 1 }
      }).pipe(Effect.provide(Reactivity.layer))
    )
    assert.notInclude(message, "DATABASE_URL")
    assert.include(message, "that the url option (or host, port and database) is right")
    assert.include(message, `set init: "lazy" in the pool's options`)
  })
)

it.scoped("DatabaseUnreachable names DATABASE_URL and DB_POOL_INIT for a pool configured from the environment", () =>
  Effect.gen(function* () {
    const port = yield* freePort
    const env = environment("DATABASE_URL", port, [["DB_POOL_RECONNECT_INITIAL_ATTEMPTS", "1"]])
    const message = yield* unreachableMessage(
      Layer.build(Db.layerFromEnv()).pipe(Effect.withConfigProvider(env), Effect.asVoid)
    )
    assert.include(message, "that DATABASE_URL is right")
    assert.include(message, "or set DB_POOL_INIT=lazy to start without it")
  })
)

it.scoped("DatabaseUnreachable names the Config keys a layerConfig pool was given", () =>
  Effect.gen(function* () {
    const port = yield* freePort
    const env = environment("APP_DB_URL", port, [["APP_DB_INIT", "eager"]])
    const layer = Db.layerConfig({
      url: Config.redacted("APP_DB_URL"),
      init: Config.literal("eager", "lazy")("APP_DB_INIT"),
      reconnect: Config.succeed({ initialAttempts: 1 })
    })
    const message = yield* unreachableMessage(Layer.build(layer).pipe(Effect.withConfigProvider(env), Effect.asVoid))
    assert.include(message, "that APP_DB_URL is right")
    assert.include(message, "or set APP_DB_INIT=lazy")
    assert.notInclude(message, "DATABASE_URL")
  })
)
