/**
 * The pool's configuration: parsed and validated by the engine's `Settings` (the same rules, names and messages
 * in both editions), read here with Effect 4's `Duration` and `Redacted`, and turned into a `PoolConfig`. The Effect
 * 4 edition adds multiplexing (`multiplex`, `multiplexConcurrency`), validated here.
 *
 * @internal
 */
import { Settings } from "@effect-pg-pool/engine"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { ConnectionOptions } from "node:tls"
import type { PoolConfig, PoolConfigInput } from "../PoolConfig.js"
import { type ConfigIssue, PoolConfigError } from "../PoolError.js"

/** The environment variables of the multiplexing settings, which the engine's table does not know. @internal */
export const multiplexEnv = { multiplex: "DB_POOL_MULTIPLEX", multiplexConcurrency: "DB_POOL_MULTIPLEX_CONCURRENCY" }

const runtime: Settings.Runtime = {
  durationMillis: (raw) => (Duration.isDuration(raw) ? Duration.toMillis(raw) : undefined),
  secret: (raw) => (Redacted.isRedacted(raw) ? String(Redacted.value(raw)) : undefined),
  show: (raw) =>
    Duration.isDuration(raw) ? `${Duration.toMillis(raw)} ms` : Redacted.isRedacted(raw) ? "<redacted>" : undefined
}

/** `ssl` as given (an object of TLS options, true, false), else the sslmode: PgConnection's `ssl` option. */
const tls: Settings.TlsResolver<false | ConnectionOptions> = (input, report) => {
  const passed = Settings.passTls(input, report)
  const option = input.option
  const fromMode: false | ConnectionOptions =
    passed.sslmode === "disable"
      ? false
      : passed.sslmode === "verify-ca" || passed.sslmode === "verify-full"
        ? {}
        : { rejectUnauthorized: false }
  const resolved =
    option === true
      ? {}
      : option === false
        ? false
        : typeof option === "object" && option !== null
          ? (option as ConnectionOptions)
          : fromMode
  return { sslmode: passed.sslmode, tls: resolved, params: passed.params }
}

/** The raw input: options as given, or strings read from the environment. @internal */
export type RawInput = Settings.Input & {
  readonly multiplex?: unknown
  readonly multiplexConcurrency?: unknown
}

/** The pool-side settings of `PgClient.layer`'s options; the rest shape the client or the sessions. @internal */
export const settingKeys: ReadonlySet<string> = new Set([
  ...Settings.table.map((entry) => entry.setting.split(".")[0]!),
  "username",
  "maxConnections",
  "minConnections",
  "idleTimeout",
  "connectionTTL",
  "multiplex",
  "multiplexConcurrency"
])

const multiplexing = (raw: RawInput, source: "input" | "env", issues: Array<ConfigIssue>) => {
  const name = (field: keyof typeof multiplexEnv) => (source === "env" ? multiplexEnv[field] : field)
  let multiplex = false
  if (raw.multiplex !== undefined) {
    const text = String(raw.multiplex).trim().toLowerCase()
    if (raw.multiplex === true || text === "true" || text === "1") multiplex = true
    else if (!(raw.multiplex === false || text === "false" || text === "0")) {
      issues.push({
        field: "multiplex",
        env: multiplexEnv.multiplex,
        setting: name("multiplex"),
        value: String(raw.multiplex),
        message: `${name("multiplex")} (${String(raw.multiplex)}) must be true or false`
      })
    }
  }
  let multiplexConcurrency = 32
  if (raw.multiplexConcurrency !== undefined) {
    const n = Number(raw.multiplexConcurrency)
    if (Number.isInteger(n) && n >= 1 && n <= 128) multiplexConcurrency = n
    else {
      const setting = name("multiplexConcurrency")
      issues.push({
        field: "multiplexConcurrency",
        env: multiplexEnv.multiplexConcurrency,
        setting,
        value: String(raw.multiplexConcurrency),
        message:
          `${setting} (${String(raw.multiplexConcurrency)}) must be an integer from 1 to 128 (PgConnection keeps ` +
          `at most 128 statements on the wire): e.g. 32`
      })
    }
  }
  return { multiplex, multiplexConcurrency }
}

const toConfig = (
  settings: Settings.Settings<false | ConnectionOptions>,
  mux: { readonly multiplex: boolean; readonly multiplexConcurrency: number }
): PoolConfig => {
  const millis = Duration.millis
  return {
    name: settings.name,
    url: Redacted.make(settings.url),
    host: settings.host,
    port: settings.port,
    database: settings.database,
    user: settings.user,
    password: settings.password === undefined ? undefined : Redacted.make(settings.password),
    ssl: settings.tls,
    sslmode: settings.sslmode,
    minSize: settings.minSize,
    maxSize: settings.maxSize,
    acquireTimeout: millis(settings.acquireTimeout),
    connectTimeout: millis(settings.connectTimeout),
    validateAfterIdle: millis(settings.validateAfterIdle),
    validationTimeout: millis(settings.validationTimeout),
    maxLifetime: millis(settings.maxLifetime),
    maxIdleTime: millis(settings.maxIdleTime),
    maxQueries: settings.maxQueries,
    leakDetectionThreshold: millis(settings.leakDetectionThreshold),
    shutdownTimeout: millis(settings.shutdownTimeout),
    keepAlive: settings.keepAlive,
    reset: settings.reset,
    reconnect: {
      initialDelay: millis(settings.reconnect.initialDelay),
      factor: settings.reconnect.factor,
      maxDelay: millis(settings.reconnect.maxDelay),
      initialAttempts: settings.reconnect.initialAttempts,
      jitter: settings.reconnect.jitter
    },
    init: settings.init,
    pooler: settings.pooler,
    poolerSetting: settings.settingNames.pooler,
    statementTimeout: settings.statementTimeout === undefined ? undefined : millis(settings.statementTimeout),
    applicationName: settings.applicationName,
    logFile: settings.logFile,
    multiplex: mux.multiplex,
    multiplexConcurrency: mux.multiplexConcurrency
  }
}

const finish = (
  result: Settings.Result<false | ConnectionOptions>,
  raw: RawInput,
  source: "input" | "env"
): PoolConfig | PoolConfigError => {
  const issues: Array<ConfigIssue> = result.ok ? [] : [...result.issues]
  const mux = multiplexing(raw, source, issues)
  return result.ok && issues.length === 0 ? toConfig(result.settings, mux) : new PoolConfigError({ issues })
}

/**
 * Validates raw settings into a configuration, or every problem found.
 *
 * @internal
 */
export const resolve = (raw: RawInput, source: "input" | "env" = "input"): PoolConfig | PoolConfigError => {
  const { multiplex: _m, multiplexConcurrency: _c, ...settings } = raw
  return finish(Settings.resolve(settings, { source, runtime, tls }), raw, source)
}

/** @internal */
export const make = (input: PoolConfigInput): Effect.Effect<PoolConfig, PoolConfigError> =>
  Effect.suspend(() => {
    const result = resolve(input as RawInput)
    return result instanceof PoolConfigError ? Effect.fail(result) : Effect.succeed(result)
  })

/** Reads the settings from `env` (`DATABASE_URL`, the libpq `PG*` variables, `DB_POOL_*`). @internal */
export const fromEnvRecord = (env: Readonly<Record<string, string | undefined>>): PoolConfig | PoolConfigError =>
  finish(
    Settings.fromEnv(env, { runtime, tls }),
    {
      multiplex: env[multiplexEnv.multiplex] || undefined,
      multiplexConcurrency: env[multiplexEnv.multiplexConcurrency] || undefined
    },
    "env"
  )

/** @internal */
export const fromEnv: Effect.Effect<PoolConfig, PoolConfigError> = Effect.suspend(() => {
  const result = fromEnvRecord(process.env)
  return result instanceof PoolConfigError ? Effect.fail(result) : Effect.succeed(result)
})

/** @internal */
export const redactUrl: (url: string) => string = Settings.redactUrl

/** @internal */
export const redactText: (text: string, password: string | undefined) => string = Settings.redactText
