/**
 * The server's pool: `DatabaseLive`, configured from the environment as always, over the database `DATABASE_URL`
 * (or libpq's `PGHOST`… variables) names — or, when none is set, over an embedded PostgreSQL started for the
 * session (the testkit's, as the demo does) and stopped and removed when the session ends.
 *
 * The server's own defaults suit an interactive tool; each yields to its `DB_POOL_*` variable.
 */
import { DatabaseLive } from "@effect-pg-pool/effect3/Db"
import * as PgTestServer from "@effect-pg-pool/testkit/PgTestServer"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"

const serverDefaults: Record<string, string> = {
  DB_POOL_NAME: "mcp-server",
  DB_POOL_MIN_SIZE: "1",
  DB_POOL_MAX_SIZE: "4",
  // a tool call should say soon that the database is out of reach, not after the pool's default 30 s
  DB_POOL_ACQUIRE_TIMEOUT: "5s",
  DB_POOL_SHUTDOWN_TIMEOUT: "5s",
  DB_POOL_APPLICATION_NAME: "effect-pg-pool-mcp-server"
}

/** The variables that name a database; the embedded one starts only when none is set. */
const connectionVariables = ["DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"]

const isSet = (name: string) =>
  Config.option(Config.string(name)).pipe(
    Effect.map(Option.exists((value) => value.trim() !== "")),
    Effect.orElseSucceed(() => false)
  )

/**
 * The pool, over the configured database or an embedded one whose superuser has `embeddedPassword` (chosen by the
 * caller, so that its logger can redact it from the start).
 */
export const layer = (embeddedPassword: Redacted.Redacted<string>) =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const env = ConfigProvider.fromEnv()
      const defaults = ConfigProvider.fromMap(new Map(Object.entries(serverDefaults)))
      const configured = yield* Effect.map(Effect.all(connectionVariables.map(isSet)), (set) => set.includes(true))
      if (configured) {
        return DatabaseLive.pipe(
          Layer.provide(Layer.setConfigProvider(env.pipe(ConfigProvider.orElse(() => defaults))))
        )
      }
      const server = yield* PgTestServer.makeEmbedded({ password: embeddedPassword })
      yield* Effect.log("embedded PostgreSQL started (DATABASE_URL is not set)").pipe(
        Effect.annotateLogs({ host: server.host, port: server.port })
      )
      const provider = ConfigProvider.fromMap(new Map([["DATABASE_URL", Redacted.value(server.url)]])).pipe(
        ConfigProvider.orElse(() => env),
        ConfigProvider.orElse(() => defaults)
      )
      return DatabaseLive.pipe(Layer.provide(Layer.setConfigProvider(provider)))
    })
  )
