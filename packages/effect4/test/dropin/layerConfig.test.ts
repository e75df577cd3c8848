// PgClient.layerConfig's drop-in: Db.layerPgClientConfig reads the same Config, provides the same services and fails
// with the same error types (ConfigError for a missing key, SqlError for a failed start) — checked side by side.
import { Db } from "@effect-pg-pool/effect4"
import { PgClient } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import * as PgServer from "../support/PgServer.js"

const config = { url: Config.Redacted("DATABASE_URL"), maxConnections: Config.succeed(2) }

const layers = [
  ["PgClient.layerConfig", PgClient.layerConfig],
  ["Db.layerPgClientConfig", Db.layerPgClientConfig]
] as const

const withEnv = (env: Record<string, string>) =>
  Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(env))

const answer = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ answer: number }>`SELECT 41 + 1 AS answer`
  return rows[0]!.answer
})

for (const [name, makeLayer] of layers) {
  layer(PgServer.layer, { timeout: "60 seconds" })(name, (it) => {
    it.effect("reads the URL through Config and runs the program", () =>
      Effect.gen(function* () {
        const server = yield* PgServer.PgServer
        const result = yield* answer.pipe(
          Effect.provide(makeLayer(config)),
          withEnv({ DATABASE_URL: Redacted.value(server.url) }),
          TestClock.withLive
        )
        assert.strictEqual(result, 42)
      })
    )

    it.effect("a missing key fails the layer with a ConfigError", () =>
      Effect.gen(function* () {
        const error = yield* answer.pipe(Effect.provide(makeLayer(config)), withEnv({}), Effect.flip)
        assert.strictEqual(error._tag, "ConfigError")
      })
    )

    it.effect("a refused login fails the layer with a SqlError whose reason is an AuthenticationError", () =>
      Effect.gen(function* () {
        const server = yield* PgServer.PgServer
        const wrong = `postgres://${server.username}:not-the-password@${server.host}:${server.port}/${server.database}`
        const error = yield* answer.pipe(
          Effect.provide(makeLayer(config)),
          withEnv({ DATABASE_URL: wrong }),
          TestClock.withLive,
          Effect.flip
        )
        assert.strictEqual(error._tag, "SqlError")
        if (error._tag === "SqlError") assert.strictEqual(error.reason._tag, "AuthenticationError")
      })
    )
  })
}
