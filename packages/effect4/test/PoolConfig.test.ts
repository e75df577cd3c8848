import { Db, PoolConfig, PoolError } from "@effect-pg-pool/effect4"
import * as InternalConfig from "../src/internal/config.js"
import { assert, describe, it } from "@effect/vitest"
import { Config, ConfigProvider, Duration, Effect, Exit, Option, Redacted } from "effect"

const failure = <A>(exit: Exit.Exit<A, unknown>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined

const PASSWORD = "s3cr3t-PW"
const URL = `postgres://app:${PASSWORD}@db.example.com:5433/appdb`

const millis = (duration: Duration.Duration | undefined) =>
  duration === undefined ? undefined : Duration.toMillis(duration)

/** `fromEnv` under a provider holding only `env`: the variables as the environment gives them. */
const withEnv = (env: Record<string, string>) =>
  Effect.provideService(PoolConfig.fromEnv, ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

/** The PoolConfigError of a configuration that must be refused; no message of it may show the password. */
const refused = <A>(effect: Effect.Effect<A, unknown>) =>
  Effect.gen(function* () {
    const error = failure(yield* Effect.exit(effect))
    if (!(error instanceof PoolError.PoolConfigError)) return assert.fail(`expected a PoolConfigError, got ${error}`)
    for (const text of [error.message, ...error.issues.flatMap((i) => [i.message, i.value])]) {
      assert.notInclude(text, "s3cr3t", `password leaked into: ${text}`)
    }
    return error
  })

const messages = (error: PoolError.PoolConfigError) => error.issues.map((issue) => issue.message)

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

  // ported from the Effect 3 edition's PoolConfig.test.ts: the same fields, defaults and variables
  it.effect("fills in every documented default, the Effect 3 edition's fields included", () =>
    Effect.gen(function* () {
      const config = yield* PoolConfig.make({ url: URL })
      assert.strictEqual(config.name, "default")
      assert.deepStrictEqual([config.minSize, config.maxSize, config.maxQueries], [2, 10, 50_000])
      assert.deepStrictEqual(
        [
          config.acquireTimeout,
          config.connectTimeout,
          config.validateAfterIdle,
          config.validationTimeout,
          config.maxLifetime,
          config.maxIdleTime,
          config.leakDetectionThreshold,
          config.shutdownTimeout,
          config.cancelTimeout
        ].map(millis),
        [30_000, 5_000, 1_000, 2_000, 3_600_000, 60_000, 30_000, 30_000, 5_000]
      )
      assert.isUndefined(config.queryTimeout)
      assert.isUndefined(config.statementTimeout)
      assert.isUndefined(config.logLevel)
      assert.strictEqual(config.pooler, "none")
      assert.strictEqual(config.pipeline, 0)
      assert.isFalse(config.multiplex)
      assert.deepStrictEqual(config.hosts, [{ host: "db.example.com", port: 5433 }])
      assert.strictEqual(config.targetSessionAttrs, "any")
      assert.strictEqual(config.loadBalanceHosts, "disable")
      assert.strictEqual(config.settingNames.maxSize, "maxSize")
      const {
        url: _url,
        password: _password,
        database: _database,
        ...rest
      } = yield* PoolConfig.make({
        url: "postgres://localhost"
      })
      assert.deepStrictEqual(rest, PoolConfig.defaults)
    })
  )

  it.effect("reads every DB_POOL_* variable through the current ConfigProvider, naming each by its variable", () =>
    Effect.gen(function* () {
      const config = yield* withEnv({
        DATABASE_URL: `${URL}?sslmode=require`,
        DB_POOL_NAME: "billing",
        DB_POOL_MIN_SIZE: "0",
        DB_POOL_MAX_SIZE: "20",
        DB_POOL_ACQUIRE_TIMEOUT: "10s",
        DB_POOL_CONNECT_TIMEOUT: "3s",
        DB_POOL_VALIDATE_AFTER_IDLE: "500ms",
        DB_POOL_VALIDATION_TIMEOUT: "1s",
        DB_POOL_MAX_LIFETIME: "30m",
        DB_POOL_MAX_IDLE_TIME: "2m",
        DB_POOL_MAX_QUERIES: "1000",
        DB_POOL_LEAK_DETECTION_THRESHOLD: "1m",
        DB_POOL_SHUTDOWN_TIMEOUT: "15s",
        DB_POOL_KEEPALIVE: "false",
        DB_POOL_RECONNECT_INITIAL_DELAY: "200ms",
        DB_POOL_RECONNECT_FACTOR: "1.5",
        DB_POOL_RECONNECT_MAX_DELAY: "5s",
        DB_POOL_RECONNECT_INITIAL_ATTEMPTS: "3",
        DB_POOL_RECONNECT_JITTER: "true",
        DB_POOL_INIT: "lazy",
        DB_POOL_STATEMENT_TIMEOUT: "45s",
        DB_POOL_APPLICATION_NAME: "billing-api",
        DB_POOL_LOG_FILE: "/var/log/pool.jsonl",
        DB_POOL_LOG_LEVEL: "warning",
        DB_POOL_PIPELINE: "16"
      })
      assert.strictEqual(config.name, "billing")
      assert.deepStrictEqual([config.minSize, config.maxSize, config.maxQueries], [0, 20, 1000])
      assert.deepStrictEqual(
        [
          config.acquireTimeout,
          config.connectTimeout,
          config.validateAfterIdle,
          config.validationTimeout,
          config.maxLifetime,
          config.maxIdleTime,
          config.leakDetectionThreshold,
          config.shutdownTimeout,
          config.statementTimeout
        ].map(millis),
        [10_000, 3_000, 500, 1_000, 1_800_000, 120_000, 60_000, 15_000, 45_000]
      )
      assert.isFalse(config.keepAlive)
      assert.deepStrictEqual(
        [config.reconnect.factor, config.reconnect.initialAttempts, config.reconnect.jitter],
        [1.5, 3, true]
      )
      assert.deepStrictEqual([config.init, config.logLevel], ["lazy", "Warn"])
      assert.strictEqual(config.applicationName, "billing-api")
      assert.strictEqual(config.logFile, "/var/log/pool.jsonl")
      assert.deepStrictEqual(config.ssl, { rejectUnauthorized: false })
      // DB_POOL_PIPELINE, the Effect 3 edition's name for multiplexing
      assert.deepStrictEqual([config.pipeline, config.multiplex, config.multiplexConcurrency], [16, true, 16])
      assert.strictEqual(config.settingNames.maxSize, "DB_POOL_MAX_SIZE")
      assert.strictEqual(config.settingNames.multiplex, "DB_POOL_MULTIPLEX")

      const fromCode = yield* PoolConfig.make({ url: URL })
      const fromEnv = yield* withEnv({ DATABASE_URL: URL })
      const { password: _p1, settingNames: _n1, poolerSetting: _s1, url: _u1, ...code } = fromCode
      const { password: _p2, settingNames: _n2, poolerSetting: _s2, url: _u2, ...env } = fromEnv
      assert.deepStrictEqual(env, code)
    })
  )

  it.effect("takes the Effect 3 edition's pipeline as multiplexing, and refuses what it cannot honour", () =>
    Effect.gen(function* () {
      const piped = yield* PoolConfig.make({ url: URL, pipeline: 8 })
      assert.deepStrictEqual([piped.multiplex, piped.multiplexConcurrency], [true, 8])
      const off = yield* PoolConfig.make({ url: URL, pipeline: 1 })
      assert.isFalse(off.multiplex)
      const agreeing = yield* PoolConfig.make({ url: URL, pipeline: 8, multiplex: true, multiplexConcurrency: 8 })
      assert.strictEqual(agreeing.multiplexConcurrency, 8)

      const tooMany = yield* refused(withEnv({ DATABASE_URL: URL, DB_POOL_PIPELINE: "500" }))
      assert.deepStrictEqual(messages(tooMany), [
        "DB_POOL_PIPELINE (500) must be at most 128: the Effect 4 edition pipelines through PgConnection, which " +
          "keeps at most 128 statements on the wire: e.g. 16"
      ])
      const contradicting = yield* refused(PoolConfig.make({ url: URL, pipeline: 8, multiplex: false }))
      assert.deepStrictEqual(messages(contradicting), [
        "pipeline (8) pipelines statements, which multiplex (false) turns off: remove one of them (pipeline is the " +
          "Effect 3 edition's name for multiplex)"
      ])
      const disagreeing = yield* refused(PoolConfig.make({ url: URL, pipeline: 8, multiplexConcurrency: 4 }))
      assert.deepStrictEqual(messages(disagreeing), [
        "pipeline (8) and multiplexConcurrency (4) disagree: both set the statements one session carries at once; " +
          "give one of them"
      ])
    })
  )

  it.effect("validates logLevel, pooler, queryTimeout and cancelTimeout instead of ignoring them", () =>
    Effect.gen(function* () {
      const config = yield* PoolConfig.make({ url: URL, logLevel: "Debug" })
      assert.strictEqual(config.logLevel, "Debug")
      const env = { DATABASE_URL: URL, DB_POOL_LOG_LEVEL: "loud", DB_POOL_MAX_SIZE: "many" }
      const error = yield* refused(withEnv(env))
      assert.deepStrictEqual(messages(error), [
        "DB_POOL_MAX_SIZE (many) must be an integer from 1 to 10000: " +
          "e.g. 10; PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients",
        "DB_POOL_LOG_LEVEL (loud) must be trace, debug, info, warning, error, fatal, all or none (any case): " +
          "the lowest level of the pool's log lines, e.g. info"
      ])
      const bad = yield* refused(
        PoolConfig.make({ url: URL, pooler: "pgcat" as never, queryTimeout: 0, cancelTimeout: "never" })
      )
      assert.deepStrictEqual(
        bad.issues.map((issue) => issue.setting),
        ["cancelTimeout", "queryTimeout", "pooler"]
      )
    })
  )

  it.effect("carries several hosts, targetSessionAttrs and loadBalanceHosts, from the environment and from code", () =>
    Effect.gen(function* () {
      const fromEnv = yield* withEnv({
        PGHOST: "db1,db2",
        PGPORT: "5432,5433",
        PGTARGETSESSIONATTRS: "read-write",
        PGLOADBALANCEHOSTS: "random"
      })
      assert.deepStrictEqual(
        [fromEnv.hosts, fromEnv.host, fromEnv.port, fromEnv.targetSessionAttrs, fromEnv.loadBalanceHosts],
        [
          [
            { host: "db1", port: 5432 },
            { host: "db2", port: 5433 }
          ],
          "db1",
          5432,
          "read-write",
          "random"
        ]
      )
      const fromCode = yield* PoolConfig.make({
        url: `postgres://app:${PASSWORD}@db1,db2/appdb?target_session_attrs=standby`
      })
      assert.deepStrictEqual(
        [fromCode.hosts.map((h) => h.host), fromCode.targetSessionAttrs],
        [["db1", "db2"], "standby"]
      )
    })
  )

  it.effect("names the Config key of a layerConfig option, through mappings, defaults and nesting", () =>
    Effect.gen(function* () {
      const provider = ConfigProvider.fromUnknown({
        APP_URL: URL,
        PG_MAX: "0",
        PG: { RETRY_MAX: "10ms" },
        PG_IDLE: "-1s",
        PG_MUX: "maybe"
      })
      const exit = yield* Effect.exit(
        Effect.provide(
          Effect.void,
          Db.layerConfig({
            url: Config.Redacted("APP_URL"),
            maxConnections: Config.Int("PG_MAX").pipe(Config.withDefault(10)),
            maxIdleTime: Config.String("PG_IDLE").pipe(Config.map((s) => s.trim())),
            multiplex: Config.String("PG_MUX") as never,
            reconnect: { maxDelay: Config.String("RETRY_MAX").pipe(Config.nested("PG")) }
          })
        ).pipe(Effect.provideService(ConfigProvider.ConfigProvider, provider))
      )
      const error = failure(exit)
      assert.instanceOf(error, PoolError.PoolConfigError)
      const issues = (error as PoolError.PoolConfigError).issues
      assert.deepStrictEqual(
        issues.map((issue) => issue.setting),
        ["PG_MAX", "PG.RETRY_MAX", "PG_IDLE", "PG_MUX"]
      )
      const texts = issues.map((issue) => issue.message)
      assert.isTrue(texts[0]!.startsWith("PG_MAX (0) must be an integer from 1 to 10000"), texts[0])
      assert.isTrue(texts[1]!.startsWith("PG.RETRY_MAX (10ms) must be ≥ reconnect.initialDelay"), texts[1])
      assert.isTrue(texts[2]!.startsWith("PG_IDLE (-1s) must be > 0"), texts[2])
      assert.strictEqual(texts[3], "PG_MUX (maybe) must be true or false")
      for (const text of texts) assert.notInclude(text, "DB_POOL_")
      for (const text of texts) assert.notInclude(text, PASSWORD)
    })
  )

  it.effect("carries the engine's replica settings: the read-only pool's name, hosts, target and sizes", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* PoolConfig.make({ url: URL })).replicas, undefined)
      const fromCode = yield* PoolConfig.make({ url: URL, replicas: true, minSize: 1, maxSize: 4 })
      assert.deepStrictEqual(fromCode.replicas, {
        name: "default-replicas",
        hosts: [{ host: "db.example.com", port: 5433 }],
        targetSessionAttrs: "prefer-standby",
        minSize: 1,
        maxSize: 4
      })
      const fromEnv = yield* withEnv({ DATABASE_URL: URL, DB_POOL_REPLICA_HOSTS: "r1:5432" })
      assert.deepStrictEqual(fromEnv.replicas?.hosts, [{ host: "r1", port: 5432 }])
    })
  )

  it("refuses a setting of the engine's table that the edition does not carry, by the name it was given", () => {
    // a setting the engine (and the Effect 3 edition) gains before this edition carries it
    const table = [
      { setting: "replicas", env: "DB_POOL_REPLICAS" },
      { setting: "maxSize", env: "DB_POOL_MAX_SIZE" }
    ]
    const carried = new Set(["maxSize"])
    assert.deepStrictEqual(InternalConfig.uncarried({ maxSize: 3 }, "input", {}, table, carried), [])
    const [fromCode] = InternalConfig.uncarried({ replicas: true }, "input", {}, table, carried)
    assert.strictEqual(
      fromCode?.message,
      "replicas (true) is not supported by the Effect 4 edition yet: remove it, or use the Effect 3 edition " +
        "(@effect-pg-pool/effect3) for this pool"
    )
    assert.strictEqual(
      InternalConfig.uncarried({ replicas: "yes" }, "env", {}, table, carried)[0]?.setting,
      "DB_POOL_REPLICAS"
    )
    assert.strictEqual(
      InternalConfig.uncarried({ replicas: true }, "input", { replicas: "APP_REPLICAS" }, table, carried)[0]?.setting,
      "APP_REPLICAS"
    )
    // every setting of today's table is carried
    assert.deepStrictEqual(
      InternalConfig.uncarried(
        Object.fromEntries(
          ["name", "pooler", "queryTimeout", "cancelTimeout", "logLevel", "pipeline", "targetSessionAttrs"].map((k) => [
            k,
            1
          ])
        ),
        "input",
        {}
      ),
      []
    )
  })

  it.effect("reports the DB_POOL_* variables that are not settings with the issues, and the setting meant", () =>
    Effect.gen(function* () {
      const error = yield* refused(
        withEnv({ DATABASE_URL: URL, DB_POOL_MAX_SIZE: "0", DB_POOL_MAXSIZE: "20", DB_POOL_MULTIPLEX: "true" })
      )
      assert.deepStrictEqual(messages(error).slice(1), [
        "DB_POOL_MAXSIZE is not a setting of the pool and is ignored: did you mean DB_POOL_MAX_SIZE?"
      ])
      // through any provider: object keys as fromUnknown gives them
      const fromUnknown = yield* refused(
        Effect.provideService(
          PoolConfig.fromEnv,
          ConfigProvider.ConfigProvider,
          ConfigProvider.fromUnknown({ DATABASE_URL: URL, DB_POOL_MIN_SIZE: "-1", DB_POOL_ACQUIRE_TIMOUT: "1s" })
        )
      )
      assert.include(
        messages(fromUnknown),
        "DB_POOL_ACQUIRE_TIMOUT is not a setting of the pool and is ignored: did you mean DB_POOL_ACQUIRE_TIMEOUT?"
      )
      const { unknown } = yield* Effect.provideService(
        InternalConfig.fromEnvChecked,
        ConfigProvider.ConfigProvider,
        ConfigProvider.fromEnv({ env: { DATABASE_URL: URL, DB_POOL_LOGLEVEL: "debug" } })
      )
      assert.deepStrictEqual(
        unknown.map((u) => [u.name, u.closest]),
        [["DB_POOL_LOGLEVEL", "DB_POOL_LOG_LEVEL"]]
      )
    })
  )
})
