import { Db, PoolConfig, PoolError } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Option, Redacted } from "effect"

const failure = <A>(exit: Exit.Exit<A, unknown>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined

describe("PoolConfig", () => {
  it.effect("reads Effect 4 durations and PgClient.layer's names, with the defaults of the design", () =>
    Effect.gen(function* () {
      const config = yield* PoolConfig.make({
        url: Redacted.make("postgres://app:secret@db.internal:6543/shop"),
        acquireTimeout: Duration.seconds(3),
        connectTimeout: "500ms",
        multiplex: true
      })
      assert.strictEqual(config.host, "db.internal")
      assert.strictEqual(config.port, 6543)
      assert.strictEqual(config.database, "shop")
      assert.strictEqual(config.user, "app")
      assert.strictEqual(Redacted.value(config.password!), "secret")
      assert.strictEqual(Duration.toMillis(config.acquireTimeout), 3_000)
      assert.strictEqual(Duration.toMillis(config.connectTimeout), 500)
      assert.strictEqual(config.maxSize, 10)
      assert.strictEqual(config.minSize, 2)
      assert.isTrue(config.multiplex)
      assert.strictEqual(config.multiplexConcurrency, 32)
    })
  )

  it.effect("reports every invalid field at once, by the name it was given, never showing the password", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Effect.provide(
          Db.statistics,
          Db.layer({
            url: "postgres://app:hunter2secret@db/app",
            minConnections: 5,
            maxSize: 2,
            acquireTimeout: "soon",
            multiplexConcurrency: 500
          })
        )
      )
      const error = failure(exit)
      assert.instanceOf(error, PoolError.PoolConfigError)
      const message = (error as PoolError.PoolConfigError).message
      assert.include(message, "(3 problems)")
      assert.include(message, "minConnections (5) must be ≤ maxSize (2)")
      assert.include(message, "acquireTimeout (soon)")
      assert.include(message, "multiplexConcurrency (500) must be an integer from 1 to 128")
      assert.notInclude(message, "hunter2secret")
    })
  )

  it.effect("names the environment variables when reading the environment", () =>
    Effect.gen(function* () {
      const saved = { ...process.env }
      process.env.DATABASE_URL = "postgres://app@db/app"
      process.env.DB_POOL_MAX_SIZE = "0"
      process.env.DB_POOL_MULTIPLEX = "maybe"
      const exit = yield* Effect.exit(PoolConfig.fromEnv)
      process.env = saved
      const message = (failure(exit) as PoolError.PoolConfigError).message
      assert.include(message, "DB_POOL_MAX_SIZE (0)")
      assert.include(message, "DB_POOL_MULTIPLEX (maybe) must be true or false")
    })
  )
})
