/**
 * The read replicas' settings in the Effect 3 edition: from code, from the environment (`DB_POOL_REPLICA*`) and
 * through `Config` keys with `Db.layerConfig`, each named as written in messages; and what a pool without them
 * gives `Db.readOnly` (the primary pool).
 */
import { it } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Effect, Exit, Redacted } from "effect"
import { assert, describe } from "vitest"
import * as Db from "../src/Db.js"
import * as PoolConfig from "../src/PoolConfig.js"
import type { PoolConfigError } from "../src/PoolError.js"

const URL = "postgres://app:secret@db1:5432,db2:5433/app?target_session_attrs=read-write"

describe("read replicas' settings", () => {
  it.effect("off by default; replicas: true gives the primary's hosts and sizes, prefer-standby, <name>-replicas", () =>
    Effect.gen(function* () {
      assert.isUndefined((yield* PoolConfig.make({ url: URL })).replicas)
      const config = yield* PoolConfig.make({ url: URL, name: "orders", maxSize: 6, replicas: true })
      assert.deepStrictEqual(config.replicas, {
        name: "orders-replicas",
        hosts: [
          { host: "db1", port: 5432 },
          { host: "db2", port: 5433 }
        ],
        targetSessionAttrs: "prefer-standby",
        minSize: 2,
        maxSize: 6
      })
      assert.isUndefined(PoolConfig.defaults.replicas)
    })
  )

  it.effect("from the environment: DB_POOL_REPLICA_HOSTS alone turns them on", () =>
    Effect.gen(function* () {
      const provider = ConfigProvider.fromMap(
        new Map([
          ["DATABASE_URL", URL],
          ["DB_POOL_REPLICA_HOSTS", "r1:5432,r2:5432"],
          ["DB_POOL_REPLICA_MAX_SIZE", "4"],
          ["DB_POOL_REPLICA_TARGET_SESSION_ATTRS", "standby"]
        ])
      )
      const config = yield* PoolConfig.fromEnv.pipe(Effect.withConfigProvider(provider))
      assert.deepStrictEqual(config.replicas, {
        name: "default-replicas",
        hosts: [
          { host: "r1", port: 5432 },
          { host: "r2", port: 5432 }
        ],
        targetSessionAttrs: "standby",
        minSize: 2,
        maxSize: 4
      })
    })
  )

  it.effect("Db.layerConfig names a replica setting by its Config key", () =>
    Effect.gen(function* () {
      const provider = ConfigProvider.fromMap(
        new Map([
          ["APP_URL", URL],
          ["APP_REPLICA_MAX", "0"]
        ])
      )
      const exit = yield* Effect.exit(
        Effect.provide(
          Effect.void,
          Db.layerConfig({
            url: Config.redacted("APP_URL"),
            replicas: Config.succeed(true),
            replicaMaxSize: Config.integer("APP_REPLICA_MAX")
          })
        ).pipe(Effect.withConfigProvider(provider))
      )
      const error = (Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined) as PoolConfigError | undefined
      assert.strictEqual(error?._tag, "PoolConfigError")
      assert.deepStrictEqual(
        error!.issues.map((issue) => [issue.setting, issue.env]),
        [["APP_REPLICA_MAX", "DB_POOL_REPLICA_MAX_SIZE"]]
      )
      assert.match(error!.issues[0]!.message, /^APP_REPLICA_MAX \(0\) must be an integer from 1 to 10000/)
    })
  )

  it.effect("a replica setting with the replicas off is refused, naming both settings", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(PoolConfig.make({ url: Redacted.make(URL), replicas: false, replicaMaxSize: 3 }))
      const error = (Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined) as PoolConfigError | undefined
      assert.deepStrictEqual(
        error?.issues.map((issue) => issue.message),
        [
          "replicaMaxSize (3) is set but the read replicas are off (replicas is false): set replicas to true, or remove replicaMaxSize"
        ]
      )
    })
  )
})
