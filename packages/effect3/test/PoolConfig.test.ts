import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, describe, it, layer } from "@effect/vitest"
import {
  Cause,
  Config,
  ConfigProvider,
  Duration,
  Effect,
  Either,
  Exit,
  Layer,
  Logger,
  LogLevel,
  Redacted
} from "effect"
import * as Db from "../src/Db.js"
import * as InternalConfig from "../src/internal/config.js"
import * as PoolConfig from "../src/PoolConfig.js"
import { AcquireTimeout, type PoolConfigError } from "../src/PoolError.js"
import * as PoolLogger from "../src/PoolLogger.js"
import type * as PoolStatistics from "../src/PoolStatistics.js"
import { uniqueAppName } from "./utils.js"

const PASSWORD = "s3cr3t-PW"
const URL = `postgres://app:${PASSWORD}@db.example.com:5433/appdb`
const FIX_DURATION = "use milliseconds (250), a short form (500ms, 1.5s, 2m, 1h) or Effect's form (5 seconds)"
const SSL_FIX =
  "use disable, allow, prefer (plain text when the server refuses TLS), require (TLS, no certificate check), " +
  "verify-ca (the certificate's chain) or verify-full (its chain and host name)"

const withEnv = (env: Record<string, string>) =>
  PoolConfig.fromEnv.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

// Every failing case goes through `failure`, so none of them can skip the password check.
const failure = (effect: Effect.Effect<PoolConfig.PoolConfig, PoolConfigError>) =>
  Effect.gen(function* () {
    const result = yield* Effect.either(effect)
    // Fail with a plain message: a whole config as the test's failure value makes the reporter spin.
    if (Either.isRight(result)) return assert.fail("expected a PoolConfigError, but the configuration was accepted")
    const error = result.left
    assert.strictEqual(error._tag, "PoolConfigError")
    for (const text of [error.message, String(error), ...error.issues.flatMap((i) => [i.message, i.value])]) {
      assert.isFalse(text.includes(PASSWORD), `password leaked into: ${text}`)
      assert.isFalse(text.includes("s3cr3t"), `part of the password leaked into: ${text}`)
    }
    return error
  })

const messages = (error: PoolConfigError) => error.issues.map((issue) => issue.message)

const millis = (duration: Duration.Duration | undefined) =>
  duration === undefined ? undefined : Duration.toMillis(duration)

describe("PoolConfig", () => {
  describe("defaults", () => {
    it.effect("fills in every documented default (the README's configuration table) when only a URL is given", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: URL })
        assert.strictEqual(config.name, "default")
        assert.strictEqual(config.minSize, 2)
        assert.strictEqual(config.maxSize, 10)
        assert.strictEqual(millis(config.acquireTimeout), 30_000)
        assert.strictEqual(millis(config.connectTimeout), 5_000)
        assert.strictEqual(millis(config.validateAfterIdle), 1_000)
        assert.strictEqual(millis(config.validationTimeout), 2_000)
        assert.strictEqual(millis(config.maxLifetime), 3_600_000)
        assert.strictEqual(millis(config.maxIdleTime), 60_000)
        assert.strictEqual(config.maxQueries, 50_000)
        assert.strictEqual(millis(config.leakDetectionThreshold), 30_000)
        assert.strictEqual(millis(config.shutdownTimeout), 30_000)
        assert.strictEqual(millis(config.cancelTimeout), 5_000)
        assert.isUndefined(config.queryTimeout)
        assert.isTrue(config.keepAlive)
        assert.strictEqual(millis(config.reconnect.initialDelay), 1_000)
        assert.strictEqual(config.reconnect.factor, 2)
        assert.strictEqual(millis(config.reconnect.maxDelay), 16_000)
        assert.strictEqual(config.reconnect.initialAttempts, 5)
        assert.isFalse(config.reconnect.jitter)
        assert.strictEqual(config.init, "eager")
        assert.isUndefined(config.statementTimeout)
        assert.strictEqual(config.applicationName, "effect-pg-pool")
        assert.isUndefined(config.logFile)
        assert.isFalse(config.ssl)
      })
    )

    it.effect("fills in the same defaults from an environment holding only DATABASE_URL", () =>
      Effect.gen(function* () {
        const fromCode = yield* PoolConfig.make({ url: URL })
        const fromEnv = yield* withEnv({ DATABASE_URL: URL })
        const { password: _p1, settingNames: codeNames, url: _u1, ...code } = fromCode
        const { password: _p2, settingNames: envNames, url: _u2, ...env } = fromEnv
        assert.deepStrictEqual(env, code)
        // the same settings, named as each source names them
        assert.strictEqual(codeNames.maxSize, "maxSize")
        assert.strictEqual(envNames.maxSize, "DB_POOL_MAX_SIZE")
        assert.strictEqual(Redacted.value(fromEnv.url), Redacted.value(fromCode.url))
      })
    )

    it.effect("exposes the defaults it fills in", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: "postgres://localhost" })
        const { url: _url, password: _password, database: _database, ...rest } = config
        assert.deepStrictEqual(rest, PoolConfig.defaults)
        assert.strictEqual(PoolConfig.defaults.host, "localhost")
        assert.strictEqual(PoolConfig.defaults.port, 5432)
        assert.strictEqual(PoolConfig.defaults.user, "postgres")
      })
    )
  })

  describe("connection URL", () => {
    it.effect("parses host, port, user, password and database and normalises the URL", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: Redacted.make(URL) })
        assert.strictEqual(config.host, "db.example.com")
        assert.strictEqual(config.port, 5433)
        assert.strictEqual(config.user, "app")
        assert.strictEqual(config.database, "appdb")
        assert.strictEqual(config.password && Redacted.value(config.password), PASSWORD)
        assert.strictEqual(
          Redacted.value(config.url),
          `postgres://app:${PASSWORD}@db.example.com:5433/appdb?sslmode=disable&application_name=effect-pg-pool`
        )
      })
    )

    it.effect("accepts postgresql:// and normalises it to postgres://", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: "postgresql://app@db/appdb" })
        assert.strictEqual(config.host, "db")
        assert.isTrue(Redacted.value(config.url).startsWith("postgres://app@db:5432/appdb?"))
      })
    )

    it.effect("defaults the port to 5432, the user to postgres and the database to the user", () =>
      Effect.gen(function* () {
        const bare = yield* PoolConfig.make({ url: "postgres://db" })
        assert.deepStrictEqual([bare.host, bare.port, bare.user, bare.database], ["db", 5432, "postgres", "postgres"])
        assert.isUndefined(bare.password)
        const withUser = yield* PoolConfig.make({ url: "postgres://bob@db" })
        assert.strictEqual(withUser.database, "bob")
        const noHost = yield* PoolConfig.make({ url: "postgres:///appdb" })
        assert.strictEqual(noHost.host, "localhost")
        assert.strictEqual(noHost.database, "appdb")
      })
    )

    it.effect("decodes a percent-encoded password and re-encodes it in the normalised URL", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: "postgres://u:p%40ss%2Fw%3Ard@db/x" })
        assert.strictEqual(config.password && Redacted.value(config.password), "p@ss/w:rd")
        assert.isTrue(Redacted.value(config.url).startsWith("postgres://u:p%40ss%2Fw%3Ard@db:5432/x?"))
      })
    )

    it.effect("reads a password with unencoded @, /, ? and # up to the last @", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: "postgres://u:a/b?c#d@e@db:6000/x" })
        assert.strictEqual(config.password && Redacted.value(config.password), "a/b?c#d@e")
        assert.deepStrictEqual([config.host, config.port, config.database], ["db", 6000, "x"])
      })
    )

    it.effect("reads IPv6 hosts in brackets", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: "postgres://u@[::1]:6543/x" })
        assert.deepStrictEqual([config.host, config.port], ["::1", 6543])
        assert.isTrue(Redacted.value(config.url).startsWith("postgres://u@[::1]:6543/x?"))
      })
    )

    it.effect("honours libpq keyword parameters such as a Unix socket host", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: "postgres:///x?host=/var/run/postgresql&port=6432&user=u" })
        assert.deepStrictEqual([config.host, config.port, config.user], ["/var/run/postgresql", 6432, "u"])
        assert.isTrue(Redacted.value(config.url).startsWith("postgres://u@%2Fvar%2Frun%2Fpostgresql:6432/x?"))
      })
    )

    it.effect("honours application_name", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: `${URL}?application_name=billing` })
        assert.strictEqual(config.applicationName, "billing")
        assert.isTrue(Redacted.value(config.url).endsWith("?sslmode=disable&application_name=billing"))
      })
    )

    it.effect("reports each parameter it does not act on instead of ignoring it, with the equivalent", () =>
      Effect.gen(function* () {
        const error = yield* failure(
          PoolConfig.make({ url: `${URL}?options=-c%20search_path%3Dapp&connect_timeout=10&sslcrldir=/etc/crl&foo=1` })
        )
        const shown =
          "url (postgres://app:***@db.example.com:5433/appdb?options=-c%20search_path%3Dapp&" +
          "connect_timeout=10&sslcrldir=/etc/crl&foo=1) has the parameter"
        assert.deepStrictEqual(messages(error), [
          `${shown} options, which the pool does not support: run SET statements in onConnect, or set ` +
            "statementTimeout (DB_POOL_STATEMENT_TIMEOUT)",
          `${shown} connect_timeout, which the pool does not support: set connectTimeout (DB_POOL_CONNECT_TIMEOUT) ` +
            "instead",
          `${shown} sslcrldir, which the pool does not support: Node cannot read a CRL directory: concatenate the ` +
            "CRLs into one file for sslcrl",
          `${shown} foo, which the pool does not support: remove it, it would be ignored`
        ])
      })
    )

    it.effect("lets explicit fields win over the URL's parts and parameters", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({
          url: `${URL}?application_name=billing`,
          host: "replica",
          port: 7000,
          user: "other",
          database: "otherdb",
          password: Redacted.make("pw2"),
          applicationName: "explicit"
        })
        assert.deepStrictEqual(
          [config.host, config.port, config.user, config.database, config.applicationName],
          ["replica", 7000, "other", "otherdb", "explicit"]
        )
        assert.strictEqual(config.password && Redacted.value(config.password), "pw2")
        assert.strictEqual(
          Redacted.value(config.url),
          "postgres://other:pw2@replica:7000/otherdb?sslmode=disable&application_name=explicit"
        )
      })
    )

    it.effect("builds the URL from fields when no URL is given", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ host: "db", user: "app", password: PASSWORD })
        assert.strictEqual(config.database, "app")
        assert.strictEqual(
          Redacted.value(config.url),
          `postgres://app:${PASSWORD}@db:5432/app?sslmode=disable&application_name=effect-pg-pool`
        )
      })
    )

    it.effect("keeps the password out of the printed and serialised config", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: URL })
        assert.isFalse(JSON.stringify(config).includes(PASSWORD))
        assert.isFalse(String(config.url).includes(PASSWORD))
      })
    )
  })

  describe("sslmode", () => {
    // mode, sslmode, TLS options: false, or [rejectUnauthorized, host name checked]
    const cases: ReadonlyArray<
      readonly [string, PoolConfig.PoolConfig["sslmode"], false | readonly [boolean, boolean]]
    > = [
      ["disable", "disable", false],
      ["allow", "allow", [false, true]],
      ["prefer", "prefer", [false, true]],
      ["require", "require", [false, true]],
      ["no-verify", "require", [false, true]],
      ["verify-full", "verify-full", [true, true]]
    ]
    const tlsOf = (config: PoolConfig.PoolConfig) =>
      config.ssl === false ? false : [config.ssl.rejectUnauthorized, config.ssl.checkServerIdentity === undefined]
    for (const [mode, sslmode, tls] of cases) {
      it.effect(`maps sslmode=${mode} in the URL to ${sslmode} ${JSON.stringify(tls)}`, () =>
        Effect.gen(function* () {
          const config = yield* PoolConfig.make({ url: `${URL}?sslmode=${mode}` })
          assert.deepStrictEqual([config.sslmode, tlsOf(config)], [sslmode, tls])
          assert.isTrue(Redacted.value(config.url).includes(`sslmode=${sslmode}`))
        })
      )
      it.effect(`maps PGSSLMODE=${mode} to ${sslmode} ${JSON.stringify(tls)}`, () =>
        Effect.gen(function* () {
          const config = yield* withEnv({ PGHOST: "db", PGSSLMODE: mode })
          assert.deepStrictEqual([config.sslmode, tlsOf(config)], [sslmode, tls])
        })
      )
    }

    it.effect("lets an explicit ssl option win over the URL's sslmode", () =>
      Effect.gen(function* () {
        const verify = yield* PoolConfig.make({ url: `${URL}?sslmode=disable`, ssl: true })
        assert.deepStrictEqual(verify.ssl, { rejectUnauthorized: true })
        assert.isTrue(Redacted.value(verify.url).includes("sslmode=verify-full"))
        const off = yield* PoolConfig.make({ url: `${URL}?sslmode=verify-full`, ssl: false })
        assert.isFalse(off.ssl)
        const unverified = yield* PoolConfig.make({ url: URL, ssl: { rejectUnauthorized: false } })
        assert.deepStrictEqual(unverified.ssl, { rejectUnauthorized: false })
        const defaulted = yield* PoolConfig.make({ url: URL, ssl: {} })
        assert.deepStrictEqual([defaulted.sslmode, defaulted.ssl], ["verify-full", {}])
      })
    )

    it.effect("reads node-postgres's ssl=true parameter as verified TLS rather than dropping it", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({ url: `${URL}?ssl=true` })
        assert.deepStrictEqual(config.ssl, { rejectUnauthorized: true })
      })
    )

    it.effect("reports an unknown sslmode in the URL", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ url: `${URL}?sslmode=requir` }))
        assert.deepStrictEqual(messages(error), [
          "url (postgres://app:***@db.example.com:5433/appdb?sslmode=requir) " +
            `sslmode (requir) is not an sslmode: ${SSL_FIX}`
        ])
        assert.strictEqual(error.issues[0]!.field, "ssl")
      })
    )

    it.effect("reports an unknown PGSSLMODE", () =>
      Effect.gen(function* () {
        const error = yield* failure(withEnv({ PGHOST: "db", PGPASSWORD: PASSWORD, PGSSLMODE: "on" }))
        assert.deepStrictEqual(messages(error), [`PGSSLMODE (on) is not an sslmode: ${SSL_FIX}`])
      })
    )
  })

  describe("durations", () => {
    const forms: ReadonlyArray<readonly [string, PoolConfig.PoolConfigInput["acquireTimeout"], number]> = [
      ["a Duration", Duration.seconds(5), 5_000],
      ["Effect's text form", "5 seconds", 5_000],
      ["a number of milliseconds", 5_000, 5_000],
      ["a [seconds, nanos] tuple", [5, 500_000_000], 5_500],
      ["a bigint of nanoseconds", 5_000_000_000n, 5_000],
      ["plain milliseconds as text", "250", 250],
      ["milliseconds", "500ms", 500],
      ["seconds", "5s", 5_000],
      ["fractional seconds", "1.5s", 1_500],
      ["minutes", "2m", 120_000],
      ["hours", "1h", 3_600_000],
      ["a compound form as Duration.format prints it", "1m 30s", 90_000],
      ["upper case and spaces", " 2 MIN ", 120_000]
    ]
    for (const [form, input, expected] of forms) {
      it.effect(`accepts ${form} (${String(input)})`, () =>
        Effect.gen(function* () {
          const config = yield* PoolConfig.make({ url: URL, acquireTimeout: input })
          assert.strictEqual(millis(config.acquireTimeout), expected)
        })
      )
    }

    it.effect("reads every duration form from the environment", () =>
      Effect.gen(function* () {
        const config = yield* withEnv({
          DATABASE_URL: URL,
          DB_POOL_ACQUIRE_TIMEOUT: "1.5s",
          DB_POOL_CONNECT_TIMEOUT: "250",
          DB_POOL_MAX_LIFETIME: "2 hours",
          DB_POOL_MAX_IDLE_TIME: "1m 30s"
        })
        assert.strictEqual(millis(config.acquireTimeout), 1_500)
        assert.strictEqual(millis(config.connectTimeout), 250)
        assert.strictEqual(millis(config.maxLifetime), 7_200_000)
        assert.strictEqual(millis(config.maxIdleTime), 90_000)
      })
    )

    it.effect("reports an unparseable duration with the accepted forms", () =>
      Effect.gen(function* () {
        const error = yield* failure(withEnv({ DATABASE_URL: URL, DB_POOL_ACQUIRE_TIMEOUT: "5 parsecs" }))
        assert.deepStrictEqual(messages(error), [
          `DB_POOL_ACQUIRE_TIMEOUT (5 parsecs) is not a duration: ${FIX_DURATION}`
        ])
        assert.deepStrictEqual(error.issues[0], {
          field: "acquireTimeout",
          env: "DB_POOL_ACQUIRE_TIMEOUT",
          setting: "DB_POOL_ACQUIRE_TIMEOUT",
          value: "5 parsecs",
          message: `DB_POOL_ACQUIRE_TIMEOUT (5 parsecs) is not a duration: ${FIX_DURATION}`
        })
      })
    )

    it.effect("rejects zero and negative durations where the rule is > 0", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ url: URL, acquireTimeout: 0, connectTimeout: "-5s" }))
        assert.deepStrictEqual(messages(error), [
          "acquireTimeout (0) must be > 0: set how long a caller may wait for a connection, e.g. 30s",
          "connectTimeout (-5s) must be > 0: set how long one connection attempt may take, e.g. 5s"
        ])
      })
    )

    it.effect("accepts zero where the rule is ≥ 0, and 0 disables leak detection", () =>
      Effect.gen(function* () {
        const config = yield* withEnv({
          DATABASE_URL: URL,
          DB_POOL_LEAK_DETECTION_THRESHOLD: "0",
          DB_POOL_SHUTDOWN_TIMEOUT: "0s",
          DB_POOL_VALIDATE_AFTER_IDLE: "0"
        })
        assert.strictEqual(millis(config.leakDetectionThreshold), 0)
        assert.strictEqual(millis(config.shutdownTimeout), 0)
        assert.strictEqual(millis(config.validateAfterIdle), 0)
      })
    )

    it.effect("rejects negative durations where the rule is ≥ 0", () =>
      Effect.gen(function* () {
        const error = yield* failure(withEnv({ DATABASE_URL: URL, DB_POOL_LEAK_DETECTION_THRESHOLD: "-1s" }))
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_LEAK_DETECTION_THRESHOLD (-1s) must be ≥ 0: " +
            "use 0 to disable leak detection, or a duration such as 30s"
        ])
      })
    )

    it.effect("rejects infinite durations", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ url: URL, maxLifetime: Duration.infinity }))
        assert.deepStrictEqual(messages(error), [
          "maxLifetime (Infinity) must be a finite duration: " +
            "set how long a connection may live before it is replaced, e.g. 1h"
        ])
      })
    )

    it.effect("leaves queryTimeout and statementTimeout unset unless given, and then requires > 0", () =>
      Effect.gen(function* () {
        const config = yield* withEnv({
          DATABASE_URL: URL,
          DB_POOL_QUERY_TIMEOUT: "10s",
          DB_POOL_STATEMENT_TIMEOUT: "1m"
        })
        assert.strictEqual(millis(config.queryTimeout), 10_000)
        assert.strictEqual(millis(config.statementTimeout), 60_000)
        const error = yield* failure(PoolConfig.make({ url: URL, queryTimeout: 0, statementTimeout: "0s" }))
        assert.deepStrictEqual(messages(error), [
          "queryTimeout (0) must be > 0: set a client-side limit per query such as 30s, " +
            "or leave queryTimeout unset for none",
          "statementTimeout (0s) must be > 0: set a server-side limit per statement such as 30s, " +
            "or leave statementTimeout unset for none"
        ])
      })
    )
  })

  describe("environment", () => {
    it.effect("reads every DB_POOL_* variable", () =>
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
          DB_POOL_CANCEL_TIMEOUT: "4s",
          DB_POOL_QUERY_TIMEOUT: "20s",
          DB_POOL_KEEPALIVE: "false",
          DB_POOL_RECONNECT_INITIAL_DELAY: "200ms",
          DB_POOL_RECONNECT_FACTOR: "1.5",
          DB_POOL_RECONNECT_MAX_DELAY: "5s",
          DB_POOL_RECONNECT_INITIAL_ATTEMPTS: "3",
          DB_POOL_RECONNECT_JITTER: "true",
          DB_POOL_INIT: "lazy",
          DB_POOL_STATEMENT_TIMEOUT: "45s",
          DB_POOL_APPLICATION_NAME: "billing-api",
          DB_POOL_LOG_FILE: "/var/log/pool.jsonl"
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
            config.cancelTimeout,
            config.queryTimeout,
            config.statementTimeout
          ].map(millis),
          [10_000, 3_000, 500, 1_000, 1_800_000, 120_000, 60_000, 15_000, 4_000, 20_000, 45_000]
        )
        assert.isFalse(config.keepAlive)
        assert.deepStrictEqual(
          {
            ...config.reconnect,
            initialDelay: millis(config.reconnect.initialDelay),
            maxDelay: millis(config.reconnect.maxDelay)
          },
          { initialDelay: 200, factor: 1.5, maxDelay: 5_000, initialAttempts: 3, jitter: true }
        )
        assert.strictEqual(config.init, "lazy")
        assert.strictEqual(config.applicationName, "billing-api")
        assert.strictEqual(config.logFile, "/var/log/pool.jsonl")
        assert.deepStrictEqual(config.ssl, { rejectUnauthorized: false })
      })
    )

    it.effect("treats an empty variable as not set", () =>
      Effect.gen(function* () {
        const config = yield* withEnv({ DATABASE_URL: URL, DB_POOL_MAX_SIZE: "", DB_POOL_LOG_FILE: "  " })
        assert.strictEqual(config.maxSize, 10)
        assert.isUndefined(config.logFile)
      })
    )

    it.effect("uses PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE when DATABASE_URL is absent", () =>
      Effect.gen(function* () {
        const config = yield* withEnv({
          PGHOST: "pg.internal",
          PGPORT: "6432",
          PGUSER: "svc",
          PGPASSWORD: PASSWORD,
          PGDATABASE: "orders"
        })
        assert.deepStrictEqual(
          [config.host, config.port, config.user, config.database],
          ["pg.internal", 6432, "svc", "orders"]
        )
        assert.strictEqual(config.password && Redacted.value(config.password), PASSWORD)
        assert.strictEqual(
          Redacted.value(config.url),
          `postgres://svc:${PASSWORD}@pg.internal:6432/orders?sslmode=disable&application_name=effect-pg-pool`
        )
      })
    )

    it.effect("falls back to libpq's defaults for the libpq variables not set", () =>
      Effect.gen(function* () {
        const config = yield* withEnv({ PGUSER: "svc" })
        assert.deepStrictEqual([config.host, config.port, config.database], ["localhost", 5432, "svc"])
        assert.isUndefined(config.password)
      })
    )

    it.effect("ignores the libpq connection variables when DATABASE_URL is set, but not the PGSSL* ones", () =>
      Effect.gen(function* () {
        const config = yield* withEnv({
          DATABASE_URL: URL,
          PGHOST: "elsewhere",
          PGPASSWORD: "other",
          PGSSLMODE: "require"
        })
        assert.strictEqual(config.host, "db.example.com")
        assert.strictEqual(config.password && Redacted.value(config.password), PASSWORD)
        assert.strictEqual(config.sslmode, "require")
        // as in libpq, the URL's own parameter wins over the variable
        const fromUrl = yield* withEnv({ DATABASE_URL: `${URL}?sslmode=disable`, PGSSLMODE: "require" })
        assert.strictEqual(fromUrl.sslmode, "disable")
      })
    )

    it.effect("asks for DATABASE_URL, with an example, when no connection is configured", () =>
      Effect.gen(function* () {
        const error = yield* failure(withEnv({ DB_POOL_MAX_SIZE: "5" }))
        assert.deepStrictEqual(messages(error), [
          "DATABASE_URL is not set: set it to the database's URL, e.g. " +
            "DATABASE_URL=postgres://user:password@localhost:5432/mydb " +
            "(or set PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE)"
        ])
        const fromCode = yield* failure(PoolConfig.make({ maxSize: 5 }))
        assert.deepStrictEqual(messages(fromCode), [
          "no connection is configured: pass url, e.g. postgres://user:password@localhost:5432/mydb, " +
            "or host, port, user, password and database"
        ])
      })
    )

    it.effect("reports an invalid PGPORT", () =>
      Effect.gen(function* () {
        const error = yield* failure(withEnv({ PGHOST: "db", PGPORT: "abc", PGPASSWORD: PASSWORD }))
        assert.deepStrictEqual(messages(error), [
          "PGPORT (abc) must be an integer from 1 to 65535: PostgreSQL listens on 5432 unless configured otherwise"
        ])
      })
    )

    it.effect("reads booleans as true/false, yes/no, on/off or 1/0 in any case", () =>
      Effect.gen(function* () {
        const config = yield* withEnv({ DATABASE_URL: URL, DB_POOL_KEEPALIVE: "Off", DB_POOL_RECONNECT_JITTER: "YES" })
        assert.isFalse(config.keepAlive)
        assert.isTrue(config.reconnect.jitter)
        const error = yield* failure(withEnv({ DATABASE_URL: URL, DB_POOL_KEEPALIVE: "maybe" }))
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_KEEPALIVE (maybe) must be true or false (yes/no, on/off and 1/0 work too)"
        ])
      })
    )

    it.effect("reads the reset mode in any case and rejects unknown modes", () =>
      Effect.gen(function* () {
        assert.strictEqual((yield* withEnv({ DATABASE_URL: URL })).reset, "auto")
        assert.strictEqual((yield* withEnv({ DATABASE_URL: URL, DB_POOL_RESET: "Always" })).reset, "always")
        const error = yield* failure(withEnv({ DATABASE_URL: URL, DB_POOL_RESET: "never" }))
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_RESET (never) must be auto or always: auto discards session state only after statements that " +
            "may leave some, always runs DISCARD ALL on every return"
        ])
      })
    )

    it.effect("reads the init mode in any case and rejects unknown modes", () =>
      Effect.gen(function* () {
        const config = yield* withEnv({ DATABASE_URL: URL, DB_POOL_INIT: "LAZY" })
        assert.strictEqual(config.init, "lazy")
        const error = yield* failure(withEnv({ DATABASE_URL: URL, DB_POOL_INIT: "fast" }))
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_INIT (fast) must be eager or lazy: eager fails startup when the database is unreachable, " +
            "lazy starts degraded and connects in the background"
        ])
      })
    )
  })

  describe("validation", () => {
    it.effect("reports minSize above maxSize with both values and the fix", () =>
      Effect.gen(function* () {
        const error = yield* failure(withEnv({ DATABASE_URL: URL, DB_POOL_MIN_SIZE: "5", DB_POOL_MAX_SIZE: "2" }))
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_MIN_SIZE (5) must be ≤ DB_POOL_MAX_SIZE (2): lower DB_POOL_MIN_SIZE or raise DB_POOL_MAX_SIZE"
        ])
        assert.deepStrictEqual(error.issues[0], {
          field: "minSize",
          env: "DB_POOL_MIN_SIZE",
          setting: "DB_POOL_MIN_SIZE",
          value: "5",
          message:
            "DB_POOL_MIN_SIZE (5) must be ≤ DB_POOL_MAX_SIZE (2): lower DB_POOL_MIN_SIZE or raise DB_POOL_MAX_SIZE"
        })
        const fromCode = yield* failure(PoolConfig.make({ url: URL, minSize: 5, maxSize: 2 }))
        assert.deepStrictEqual(messages(fromCode), [
          "minSize (5) must be ≤ maxSize (2): lower minSize or raise maxSize"
        ])
      })
    )

    it.effect("caps the default minSize at an explicit maxSize instead of reporting a conflict", () =>
      Effect.gen(function* () {
        const fromEnv = yield* withEnv({ DATABASE_URL: URL, DB_POOL_MAX_SIZE: "1" })
        assert.deepStrictEqual([fromEnv.minSize, fromEnv.maxSize], [1, 1])
        const fromCode = yield* PoolConfig.make({ url: URL, maxSize: 1 })
        assert.deepStrictEqual([fromCode.minSize, fromCode.maxSize], [1, 1])
        // an explicit minimum above the default maximum is still the user's conflict, and says which is the default
        const error = yield* failure(PoolConfig.make({ url: URL, minSize: 20 }))
        assert.deepStrictEqual(messages(error), [
          "minSize (20) must be ≤ maxSize (10, the default): lower minSize or raise maxSize"
        ])
      })
    )

    it.effect("rejects sizes and counts that are not integers in range", () =>
      Effect.gen(function* () {
        const error = yield* failure(
          withEnv({
            DATABASE_URL: URL,
            DB_POOL_MIN_SIZE: "2.5",
            DB_POOL_MAX_SIZE: "0",
            DB_POOL_MAX_QUERIES: "ten",
            DB_POOL_RECONNECT_INITIAL_ATTEMPTS: "0"
          })
        )
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_MAX_SIZE (0) must be an integer from 1 to 10000: " +
            "e.g. 10; PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients",
          "DB_POOL_MIN_SIZE (2.5) must be an integer from 0 to 10000: e.g. 2",
          "DB_POOL_MAX_QUERIES (ten) must be an integer ≥ 1: e.g. 50000",
          "DB_POOL_RECONNECT_INITIAL_ATTEMPTS (0) must be an integer ≥ 1: " +
            "set how many attempts startup makes before it fails, e.g. 5"
        ])
        const negative = yield* failure(PoolConfig.make({ url: URL, minSize: -1 }))
        assert.deepStrictEqual(messages(negative), ["minSize (-1) must be an integer from 0 to 10000: e.g. 2"])
      })
    )

    it.effect("requires a reconnect factor above 1 and a max delay no shorter than the initial delay", () =>
      Effect.gen(function* () {
        const error = yield* failure(
          PoolConfig.make({
            url: URL,
            reconnect: { factor: 1, initialDelay: "2s", maxDelay: "500ms" }
          })
        )
        assert.deepStrictEqual(messages(error), [
          "reconnect.maxDelay (500ms) must be ≥ reconnect.initialDelay (2s): " +
            "raise reconnect.maxDelay or lower reconnect.initialDelay",
          "reconnect.factor (1) must be a number > 1: use e.g. 2 to double the delay after each failed attempt"
        ])
        const againstDefault = yield* failure(withEnv({ DATABASE_URL: URL, DB_POOL_RECONNECT_INITIAL_DELAY: "20s" }))
        assert.deepStrictEqual(messages(againstDefault), [
          "DB_POOL_RECONNECT_MAX_DELAY (16s, the default) must be ≥ DB_POOL_RECONNECT_INITIAL_DELAY (20s): " +
            "raise DB_POOL_RECONNECT_MAX_DELAY or lower DB_POOL_RECONNECT_INITIAL_DELAY"
        ])
      })
    )

    it.effect("rejects an empty pool name", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ url: URL, name: " " }))
        assert.deepStrictEqual(messages(error), [
          "name ( ) must be a non-empty string: name the pool for logs and metrics, e.g. default"
        ])
      })
    )

    it.effect("reports every invalid field at once", () =>
      Effect.gen(function* () {
        const error = yield* failure(
          withEnv({
            DATABASE_URL: `postgres://app:${PASSWORD}@db:99999/appdb`,
            DB_POOL_MIN_SIZE: "ten",
            DB_POOL_ACQUIRE_TIMEOUT: "5 parsecs",
            DB_POOL_KEEPALIVE: "maybe",
            DB_POOL_INIT: "fast",
            DB_POOL_RECONNECT_FACTOR: "0.5"
          })
        )
        assert.deepStrictEqual(
          error.issues.map((issue) => [issue.field, issue.env, issue.value]),
          [
            ["port", "DATABASE_URL", "postgres://app:***@db:99999/appdb"],
            ["minSize", "DB_POOL_MIN_SIZE", "ten"],
            ["acquireTimeout", "DB_POOL_ACQUIRE_TIMEOUT", "5 parsecs"],
            ["keepAlive", "DB_POOL_KEEPALIVE", "maybe"],
            ["reconnect.factor", "DB_POOL_RECONNECT_FACTOR", "0.5"],
            ["init", "DB_POOL_INIT", "fast"]
          ]
        )
        assert.isTrue(error.message.startsWith("Invalid database pool configuration (6 problems):\n"))
        for (const issue of error.issues) assert.isTrue(error.message.includes(issue.message))
      })
    )
  })

  describe("setting names", () => {
    it.effect("names a setting made in code by its option, and one from the environment by its variable", () =>
      Effect.gen(function* () {
        const fromCode = yield* failure(PoolConfig.make({ url: URL, minSize: 20, acquireTimeout: "soon" }))
        assert.deepStrictEqual(messages(fromCode), [
          "minSize (20) must be ≤ maxSize (10, the default): lower minSize or raise maxSize",
          `acquireTimeout (soon) is not a duration: ${FIX_DURATION}`
        ])
        assert.deepStrictEqual(
          fromCode.issues.map((issue) => [issue.setting, issue.env]),
          [
            ["minSize", "DB_POOL_MIN_SIZE"],
            ["acquireTimeout", "DB_POOL_ACQUIRE_TIMEOUT"]
          ]
        )
        const fromEnv = yield* failure(withEnv({ DATABASE_URL: URL, DB_POOL_MIN_SIZE: "20" }))
        assert.deepStrictEqual(messages(fromEnv), [
          "DB_POOL_MIN_SIZE (20) must be ≤ DB_POOL_MAX_SIZE (10, the default): " +
            "lower DB_POOL_MIN_SIZE or raise DB_POOL_MAX_SIZE"
        ])
      })
    )

    it.effect("names PgClient.layer's alias when that is what the options used", () =>
      Effect.gen(function* () {
        const error = yield* failure(InternalConfig.fromOptions({ url: URL, maxConnections: 0, minConnections: 3 }))
        assert.deepStrictEqual(messages(error), [
          "maxConnections (0) must be an integer from 1 to 10000: " +
            "e.g. 10; PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients"
        ])
        const config = yield* InternalConfig.fromOptions({ url: URL, maxConnections: 4, idleTimeout: "5s" })
        assert.strictEqual(config.settingNames.maxSize, "maxConnections")
        assert.strictEqual(config.settingNames.maxIdleTime, "idleTimeout")
        assert.strictEqual(config.settingNames.minSize, "minSize")
      })
    )

    it.effect("names the Config key of a layerConfig option, through mappings, defaults and nesting", () =>
      Effect.gen(function* () {
        const provider = ConfigProvider.fromMap(
          new Map([
            ["APP_URL", URL],
            ["PG_MAX", "0"],
            ["PG.RETRY_MAX", "10ms"],
            ["PG_IDLE", "-1s"]
          ])
        )
        const exit = yield* Effect.exit(
          Effect.provide(
            Effect.void,
            Db.layerConfig({
              url: Config.redacted("APP_URL"),
              maxConnections: Config.integer("PG_MAX").pipe(Config.withDefault(10)),
              maxIdleTime: Config.string("PG_IDLE").pipe(Config.map((s) => s.trim())),
              reconnect: { maxDelay: Config.nested(Config.string("RETRY_MAX"), "PG") }
            })
          ).pipe(Effect.withConfigProvider(provider))
        )
        const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.strictEqual((error as PoolConfigError)?._tag, "PoolConfigError")
        const texts = messages(error as PoolConfigError)
        assert.deepStrictEqual(
          (error as PoolConfigError).issues.map((issue) => issue.setting),
          ["PG_MAX", "PG.RETRY_MAX", "PG_IDLE"]
        )
        assert.isTrue(texts[0]!.startsWith("PG_MAX (0) must be an integer from 1 to 10000"), texts[0])
        assert.isTrue(texts[1]!.startsWith("PG.RETRY_MAX (10ms) must be ≥ reconnect.initialDelay (1s, the default)"))
        assert.isTrue(texts[2]!.startsWith("PG_IDLE (-1s) must be > 0"), texts[2])
        for (const text of texts) assert.notInclude(text, "DB_POOL_")
      })
    )

    it("AcquireTimeout's remedy names the settings as the configuration wrote them", () => {
      const statistics = { active: 2, maxSize: 2, waiting: 3 } as unknown as PoolStatistics.PoolStatistics
      const fromCode = new AcquireTimeout({
        waitedMillis: 100,
        statistics,
        settingNames: { maxSize: "maxConnections", acquireTimeout: "acquireTimeout" }
      })
      assert.include(fromCode.message, "Raise maxConnections, shorten transactions, or raise acquireTimeout.")
      assert.include(
        new AcquireTimeout({ waitedMillis: 100, statistics }).message,
        "Raise DB_POOL_MAX_SIZE, shorten transactions, or raise DB_POOL_ACQUIRE_TIMEOUT."
      )
    })
  })

  describe("aliases", () => {
    it.effect("rejects PgClient.layer's name and ours for one setting when they disagree", () =>
      Effect.gen(function* () {
        const error = yield* failure(InternalConfig.fromOptions({ url: URL, maxConnections: 3, maxSize: 7 }))
        assert.deepStrictEqual(messages(error), [
          "maxConnections (3) and maxSize (7) are two names for the same setting and disagree: keep one of them"
        ])
        const durations = yield* failure(
          InternalConfig.fromOptions({ url: URL, connectionTTL: "1h", maxLifetime: "30m", username: "a", user: "b" })
        )
        assert.deepStrictEqual(
          durations.issues.map((issue) => issue.field),
          ["user", "maxLifetime"]
        )
      })
    )

    it.effect("accepts both names when they agree, however each is written", () =>
      Effect.gen(function* () {
        const config = yield* InternalConfig.fromOptions({
          url: URL,
          maxConnections: 5,
          maxSize: 5,
          idleTimeout: "60s",
          maxIdleTime: Duration.minutes(1)
        })
        assert.strictEqual(config.maxSize, 5)
        assert.strictEqual(millis(config.maxIdleTime), 60_000)
      })
    )

    it.effect("takes PgClient.layer's default minimum (0) with its maxConnections, and caps ours at maxSize", () =>
      Effect.gen(function* () {
        const pgClientStyle = yield* InternalConfig.fromOptions({ url: URL, maxConnections: 1 })
        assert.deepStrictEqual([pgClientStyle.minSize, pgClientStyle.maxSize], [0, 1])
        const ours = yield* InternalConfig.fromOptions({ url: URL, maxSize: 1 })
        assert.deepStrictEqual([ours.minSize, ours.maxSize], [1, 1])
        const both = yield* InternalConfig.fromOptions({ url: URL, maxConnections: 8, minConnections: 3 })
        assert.deepStrictEqual([both.minSize, both.maxSize], [3, 8])
      })
    )
  })

  describe("bounds", () => {
    it.effect("reads integers written in decimal digits only", () =>
      Effect.gen(function* () {
        const error = yield* failure(
          withEnv({ DATABASE_URL: URL, DB_POOL_MAX_SIZE: "1e1", DB_POOL_MAX_QUERIES: "10.0", PGPORT: "5432" })
        )
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_MAX_SIZE (1e1) must be written in decimal digits: " +
            "e.g. 10; PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients",
          "DB_POOL_MAX_QUERIES (10.0) must be written in decimal digits: e.g. 50000"
        ])
        const port = yield* failure(withEnv({ PGHOST: "db", PGPORT: "5.432e3" }))
        assert.deepStrictEqual(messages(port), [
          "PGPORT (5.432e3) must be an integer from 1 to 65535: PostgreSQL listens on 5432 unless configured otherwise"
        ])
        assert.strictEqual((yield* withEnv({ DATABASE_URL: URL, DB_POOL_MAX_SIZE: " +12 " })).maxSize, 12)
      })
    )

    it.effect("bounds the pool at 10 000 connections", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ url: URL, maxSize: 100_000 }))
        assert.deepStrictEqual(messages(error), [
          "maxSize (100000) must be an integer from 1 to 10000: " +
            "e.g. 10; PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients"
        ])
        assert.strictEqual((yield* PoolConfig.make({ url: URL, maxSize: 10_000, minSize: 10_000 })).maxSize, 10_000)
      })
    )

    const durationFields = [
      "acquireTimeout",
      "connectTimeout",
      "validateAfterIdle",
      "validationTimeout",
      "maxLifetime",
      "maxIdleTime",
      "leakDetectionThreshold",
      "shutdownTimeout",
      "cancelTimeout",
      "queryTimeout",
      "statementTimeout"
    ] as const
    const MAX = 2 ** 31 - 1

    it.effect("rejects every duration longer than the longest timer, 2^31−1 ms", () =>
      Effect.gen(function* () {
        const tooLong = Object.fromEntries(durationFields.map((field) => [field, MAX + 1]))
        const error = yield* failure(
          PoolConfig.make({ url: URL, ...tooLong, reconnect: { initialDelay: "25d", maxDelay: "30d" } })
        )
        assert.deepStrictEqual(
          error.issues.map((issue) => issue.field).sort(),
          [...durationFields, "reconnect.initialDelay", "reconnect.maxDelay"].sort()
        )
        for (const message of messages(error)) {
          assert.include(message, "must be at most 2147483647ms (about 24.8 days, the longest a timer can wait")
        }
        assert.strictEqual(
          messages(error).find((m) => m.startsWith("connectTimeout"))!,
          "connectTimeout (2147483648) must be at most 2147483647ms (about 24.8 days, the longest a " +
            "timer can wait and the largest timeout PostgreSQL accepts): " +
            "set how long one connection attempt may take, e.g. 5s"
        )
        const longest = Object.fromEntries(durationFields.map((field) => [field, MAX]))
        const config = yield* PoolConfig.make({ url: URL, ...longest, reconnect: { initialDelay: MAX, maxDelay: MAX } })
        assert.strictEqual(millis(config.statementTimeout), MAX)
      })
    )

    it.effect("rejects a non-zero duration under 1 ms, which would round to 0", () =>
      Effect.gen(function* () {
        const error = yield* failure(
          withEnv({
            DATABASE_URL: URL,
            DB_POOL_STATEMENT_TIMEOUT: "0.5ms",
            DB_POOL_LEAK_DETECTION_THRESHOLD: "500us",
            DB_POOL_CONNECT_TIMEOUT: "0.4"
          })
        )
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_CONNECT_TIMEOUT (0.4) must be at least 1ms (timers and PostgreSQL count whole milliseconds: " +
            "a shorter one rounds to 0): set how long one connection attempt may take, e.g. 5s",
          "DB_POOL_LEAK_DETECTION_THRESHOLD (500us) must be at least 1ms (timers and PostgreSQL count whole " +
            "milliseconds: a shorter one rounds to 0) or 0: use 0 to disable leak detection, or a duration such as 30s",
          "DB_POOL_STATEMENT_TIMEOUT (0.5ms) must be at least 1ms (timers and PostgreSQL count whole milliseconds: " +
            "a shorter one rounds to 0): set a server-side limit per statement such as 30s, " +
            "or leave DB_POOL_STATEMENT_TIMEOUT unset for none"
        ])
        assert.strictEqual(
          millis((yield* withEnv({ DATABASE_URL: URL, DB_POOL_STATEMENT_TIMEOUT: "1ms" })).statementTimeout),
          1
        )
      })
    )
  })

  describe("unknown variables and the log level", () => {
    it.effect("finds a DB_POOL_* variable that is not a setting, and the setting it was probably meant as", () =>
      Effect.gen(function* () {
        const provider = ConfigProvider.fromMap(
          new Map([
            ["DATABASE_URL", URL],
            ["DB_POOL_MAXSIZE", "3"],
            ["DB_POOL_LOGFILE", "/tmp/x"],
            ["DB_POOL_MAX_SIZE", "4"],
            ["OTHER_DB_POOL_X", "1"]
          ])
        )
        const { config, unknown } = yield* InternalConfig.fromEnvChecked.pipe(Effect.withConfigProvider(provider))
        assert.strictEqual(config.maxSize, 4)
        assert.deepStrictEqual(unknown, [
          { name: "DB_POOL_LOGFILE", closest: "DB_POOL_LOG_FILE" },
          { name: "DB_POOL_MAXSIZE", closest: "DB_POOL_MAX_SIZE" }
        ])
        assert.strictEqual(
          InternalConfig.unknownVariableMessage(unknown[1]!),
          "DB_POOL_MAXSIZE is not a setting of the pool and is ignored: did you mean DB_POOL_MAX_SIZE?"
        )
      })
    )

    it.effect("walks the environment too, where a name splits at each underscore", () => {
      const set = { DATABASE_URL: URL, DB_POOL_MAXSIZE: "3", DB_POOL_MAX: "3", DB_POOL_MAX_SIZE: "4" }
      return Effect.acquireUseRelease(
        Effect.sync(() => {
          const saved = Object.keys(set).map((key) => [key, process.env[key]] as const)
          Object.assign(process.env, set)
          return saved
        }),
        () =>
          Effect.gen(function* () {
            const { config, unknown } = yield* InternalConfig.fromEnvChecked.pipe(
              Effect.withConfigProvider(ConfigProvider.fromEnv())
            )
            assert.strictEqual(config.maxSize, 4)
            // DB_POOL_MAX is both a variable and a prefix of DB_POOL_MAX_SIZE
            assert.includeMembers(
              unknown.map((u) => u.name),
              ["DB_POOL_MAX", "DB_POOL_MAXSIZE"]
            )
            assert.notInclude(
              unknown.map((u) => u.name),
              "DB_POOL_MAX_SIZE"
            )
          }),
        (saved) =>
          Effect.sync(() => {
            for (const [key, value] of saved) {
              if (value === undefined) delete process.env[key]
              else process.env[key] = value
            }
          })
      )
    })

    it.effect("reports unknown variables with the issues when the configuration fails anyway", () =>
      Effect.gen(function* () {
        const error = yield* failure(withEnv({ DATABASE_URL: URL, DB_POOL_MIN_SIZE: "12", DB_POOL_MAXSIZE: "20" }))
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_MIN_SIZE (12) must be ≤ DB_POOL_MAX_SIZE (10, the default): " +
            "lower DB_POOL_MIN_SIZE or raise DB_POOL_MAX_SIZE",
          "DB_POOL_MAXSIZE is not a setting of the pool and is ignored: did you mean DB_POOL_MAX_SIZE?"
        ])
      })
    )

    it.effect("validates DB_POOL_LOG_LEVEL with the other settings, and PoolLogger the same way", () =>
      Effect.gen(function* () {
        const env = { DATABASE_URL: URL, DB_POOL_LOG_LEVEL: "loud", DB_POOL_MAX_SIZE: "many" }
        const error = yield* failure(withEnv(env))
        const levelMessage =
          "DB_POOL_LOG_LEVEL (loud) must be trace, debug, info, warning, error, fatal, all or none (any case): " +
          "the lowest level of the pool's log lines, e.g. info"
        assert.deepStrictEqual(messages(error), [
          "DB_POOL_MAX_SIZE (many) must be an integer from 1 to 10000: " +
            "e.g. 10; PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients",
          levelMessage
        ])
        const logger = yield* Effect.exit(
          Effect.provide(Effect.void, PoolLogger.layerFromEnv()).pipe(
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
          )
        )
        const loggerError = Exit.isFailure(logger) ? (Cause.squash(logger.cause) as PoolConfigError) : undefined
        assert.deepStrictEqual(
          loggerError?.issues.map((issue) => issue.message),
          [levelMessage]
        )

        const config = yield* withEnv({ DATABASE_URL: URL, DB_POOL_LOG_LEVEL: "Warning" })
        assert.strictEqual(config.logLevel, LogLevel.Warning)
        assert.strictEqual((yield* PoolConfig.make({ url: URL, logLevel: "Debug" })).logLevel, LogLevel.Debug)
      })
    )
  })

  describe("URL problems", () => {
    it.effect("requires the postgres:// or postgresql:// scheme", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ url: `mysql://app:${PASSWORD}@db.example.com/appdb` }))
        assert.deepStrictEqual(messages(error), [
          "url (mysql://app:***@db.example.com/appdb) must start with postgres:// or postgresql://: " +
            "use e.g. postgres://user:password@localhost:5432/mydb"
        ])
      })
    )

    it.effect("masks the password of a libpq keyword connection string, which is not supported", () =>
      Effect.gen(function* () {
        const error = yield* failure(withEnv({ DATABASE_URL: `host=db user=app password=${PASSWORD}` }))
        assert.deepStrictEqual(messages(error), [
          "DATABASE_URL (host=db user=app password=***) must start with postgres:// or postgresql://: " +
            "use e.g. postgres://user:password@localhost:5432/mydb"
        ])
      })
    )

    it.effect("masks the password of a URL without a scheme", () =>
      Effect.gen(function* () {
        const error = yield* failure(withEnv({ DATABASE_URL: `app:${PASSWORD}@db/appdb` }))
        assert.deepStrictEqual(
          error.issues.map((issue) => issue.value),
          ["app:***@db/appdb"]
        )
      })
    )

    it.effect("reports an invalid port in the URL", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ url: `postgres://app:${PASSWORD}@db.example.com:99999/appdb` }))
        assert.deepStrictEqual(messages(error), [
          "url (postgres://app:***@db.example.com:99999/appdb) has an invalid port (99999): " +
            "use an integer from 1 to 65535, e.g. postgres://user:password@localhost:5432/mydb"
        ])
        const word = yield* failure(PoolConfig.make({ url: `postgres://app:${PASSWORD}@db:pg/appdb` }))
        assert.deepStrictEqual(
          word.issues.map((issue) => issue.field),
          ["port"]
        )
      })
    )

    it.effect("masks a password holding unencoded URL delimiters in a malformed URL", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ url: `postgres://app:${PASSWORD}/#?x@db:port/appdb` }))
        assert.deepStrictEqual(
          error.issues.map((issue) => issue.value),
          ["postgres://app:***@db:port/appdb"]
        )
      })
    )

    it.effect("masks a password given as a URL parameter", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ url: `postgres://db:0/appdb?user=app&password=${PASSWORD}` }))
        assert.deepStrictEqual(
          error.issues.map((issue) => issue.value),
          ["postgres://db:0/appdb?user=app&password=***"]
        )
      })
    )

    it.effect("parses several hosts, target_session_attrs and load_balance_hosts", () =>
      Effect.gen(function* () {
        const config = yield* PoolConfig.make({
          url: `postgres://app:${PASSWORD}@db1:5432,db2:5433/appdb?target_session_attrs=read-write`
        })
        assert.deepStrictEqual(config.hosts, [
          { host: "db1", port: 5432 },
          { host: "db2", port: 5433 }
        ])
        assert.deepStrictEqual([config.host, config.port, config.targetSessionAttrs], ["db1", 5432, "read-write"])
        const lists = yield* withEnv({ PGHOST: "db1,db2", PGPORT: "5432,5433", PGLOADBALANCEHOSTS: "random" })
        assert.deepStrictEqual(lists.hosts, config.hosts)
        assert.strictEqual(lists.loadBalanceHosts, "random")
      })
    )

    it.effect("refuses a port list that does not pair with the hosts", () =>
      Effect.gen(function* () {
        const error = yield* failure(
          PoolConfig.make({ host: ["db1", "db2", "db3"], port: [5432, 5433], password: PASSWORD })
        )
        assert.deepStrictEqual(messages(error), [
          "port (5432,5433) lists 2 ports for 3 hosts (host (db1,db2,db3)): give one port for all hosts, or one per " +
            "host in the same order (libpq: could not match 2 port numbers to 3 hosts)"
        ])
      })
    )

    it.effect("keeps the password out of messages about other fields", () =>
      Effect.gen(function* () {
        const error = yield* failure(PoolConfig.make({ host: "db", password: PASSWORD, port: 70_000, minSize: 50 }))
        assert.deepStrictEqual(
          error.issues.map((issue) => issue.field),
          ["port", "minSize"]
        )
        const env = yield* failure(withEnv({ PGPASSWORD: PASSWORD, PGPORT: "0", DB_POOL_INIT: "fast" }))
        assert.deepStrictEqual(
          env.issues.map((issue) => issue.field),
          ["port", "init"]
        )
      })
    )
  })

  describe("redaction", () => {
    const urls: ReadonlyArray<readonly [string, string]> = [
      [`postgres://app:${PASSWORD}@db:5432/x`, "postgres://app:***@db:5432/x"],
      [`postgresql://app:${encodeURIComponent("p@ss/w")}@db/x`, "postgresql://app:***@db/x"],
      ["postgres://app:a/b@c#d@db/x?sslmode=require", "postgres://app:***@db/x?sslmode=require"],
      ["postgres://app@db/x", "postgres://app@db/x"],
      [
        "postgres://db/x?user=app&password=secret&sslpassword=key",
        "postgres://db/x?user=app&password=***&sslpassword=***"
      ],
      ["host=db user=app password='a b' dbname=x", "host=db user=app password=*** dbname=x"],
      ["app:secret@db/x", "app:***@db/x"],
      ["not a url", "not a url"]
    ]
    for (const [url, expected] of urls) {
      it(`redactUrl(${JSON.stringify(url)}) masks the password`, () => {
        assert.strictEqual(PoolConfig.redactUrl(url), expected)
      })
    }

    it("redactText removes the password, plain or percent-encoded, and masks embedded URLs", () => {
      const password = "p@ss word"
      const text =
        `password authentication failed (tried "p@ss word", p%40ss%20word) ` + `for postgres://app:other@db:5432/x.`
      assert.strictEqual(
        PoolConfig.redactText(text, password),
        `password authentication failed (tried "***", ***) for postgres://app:***@db:5432/x.`
      )
      assert.strictEqual(
        PoolConfig.redactText("connect ECONNREFUSED 127.0.0.1:5432", undefined),
        "connect ECONNREFUSED 127.0.0.1:5432"
      )
      assert.strictEqual(PoolConfig.redactText("no secret", ""), "no secret")
    })

    it("redactText leaves a very short password's every occurrence alone, but masks it in URLs and parameters", () => {
      assert.strictEqual(
        PoolConfig.redactText("log file /work/app/packages/pool.jsonl", "p"),
        "log file /work/app/packages/pool.jsonl"
      )
      assert.strictEqual(
        PoolConfig.redactText("failed for postgres://app:p@db:5432/x with password=p", "p"),
        "failed for postgres://app:***@db:5432/x with password=***"
      )
    })
  })
})

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("PoolConfig with a server", (it) => {
  // code written for PgClient.layer with a one-connection pool: each way of saying it builds
  const oneConnection = (options: Omit<Db.DbOptions, "url">, env: Record<string, string> = {}) =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const name = uniqueAppName("one")
      const live = Object.keys(env).length === 0 ? Db.layer({ url: server.url, name, ...options }) : Db.DatabaseLive
      const provider = ConfigProvider.fromMap(
        new Map(Object.entries({ DATABASE_URL: Redacted.value(server.url), DB_POOL_NAME: name, ...env }))
      )
      return yield* Effect.flatMap(Db.Db, (db) =>
        Effect.map(
          db.withConnection((sql) => sql`SELECT 1 AS one`),
          () => [db.config.minSize, db.config.maxSize]
        )
      ).pipe(
        Effect.provide(live.pipe(Layer.provideMerge(PoolLogger.layerSilent()))),
        Effect.withConfigProvider(provider)
      )
    })

  it.effect("a pool given several hosts connects past one that does not resolve to the test server", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      // a first host that does not exist: every connection must go on to the second, the test server
      const url = Redacted.value(server.url).replace(/@([^/@]+)\//, "@standby.invalid:5432,$1/")
      const warnings: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      const one = yield* Effect.flatMap(Db.Db, (db) => db.withConnection((sql) => sql`SELECT 1 AS one`)).pipe(
        Effect.provide(Db.layer({ url, name: uniqueAppName("hosts"), minSize: 0 })),
        Effect.provide(Logger.add(capture))
      )
      assert.deepStrictEqual(one, [{ one: 1 }])
      assert.deepStrictEqual(
        warnings.filter((line) => line.includes("multi-host")),
        []
      )
    })
  )

  it.effect("builds a one-connection pool from maxSize: 1, maxConnections: 1 or DB_POOL_MAX_SIZE=1", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* oneConnection({ maxSize: 1 }), [1, 1])
      assert.deepStrictEqual(yield* oneConnection({ maxConnections: 1 }), [0, 1])
      assert.deepStrictEqual(yield* oneConnection({}, { DB_POOL_MAX_SIZE: "1" }), [1, 1])
    })
  )
})
