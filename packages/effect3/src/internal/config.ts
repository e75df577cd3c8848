/**
 * The Effect 3 side of configuration: the engine's `Settings` parses and validates (the one env table, the value
 * rules, the URL, the messages, the redaction); this module reads the environment through Effect's `Config` (so any
 * `ConfigProvider` works), passes Effect's `Duration`, `Redacted` and `LogLevel` in, resolves TLS material with
 * internal/tls.ts, and maps the engine's settings (milliseconds, plain strings) to a `PoolConfig`.
 *
 * @internal
 */
import { Settings } from "@effect-pg-pool/engine"
import * as Config from "effect/Config"
import type * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { PoolConfig, PoolConfigInput, SettingNames } from "../PoolConfig.js"
import { PoolConfigError } from "../PoolError.js"
import * as Logging from "./logger.js"
import * as Tls from "./tls.js"

// ---------------------------------------------------------------------------
// Effect's values in, Effect's values out
// ---------------------------------------------------------------------------

/** How the engine reads Effect's own values. */
const runtime: Settings.Runtime = {
  durationMillis: (raw) => (Duration.isDuration(raw) ? Duration.toMillis(raw) : undefined),
  secret: (raw) => (Redacted.isRedacted(raw) ? String(Redacted.value(raw)) : undefined),
  show: (raw) => (Duration.isDuration(raw) ? Duration.format(raw) : Redacted.isRedacted(raw) ? "<redacted>" : undefined)
}

const optionalMillis = (millis: number | undefined) => (millis === undefined ? undefined : Duration.millis(millis))

const toPoolConfig = (s: Settings.Settings<Tls.Resolved>): PoolConfig => ({
  name: s.name,
  url: Redacted.make(s.url),
  host: s.host,
  port: s.port,
  hosts: s.hosts,
  targetSessionAttrs: s.targetSessionAttrs,
  loadBalanceHosts: s.loadBalanceHosts,
  database: s.database,
  user: s.user,
  password: s.password === undefined ? undefined : Redacted.make(s.password),
  ssl: s.tls.ssl,
  sslmode: s.sslmode,
  minSize: s.minSize,
  maxSize: s.maxSize,
  acquireTimeout: Duration.millis(s.acquireTimeout),
  connectTimeout: Duration.millis(s.connectTimeout),
  validateAfterIdle: Duration.millis(s.validateAfterIdle),
  validationTimeout: Duration.millis(s.validationTimeout),
  maxLifetime: Duration.millis(s.maxLifetime),
  maxIdleTime: Duration.millis(s.maxIdleTime),
  maxQueries: s.maxQueries,
  pipeline: s.pipeline,
  leakDetectionThreshold: Duration.millis(s.leakDetectionThreshold),
  shutdownTimeout: Duration.millis(s.shutdownTimeout),
  cancelTimeout: Duration.millis(s.cancelTimeout),
  queryTimeout: optionalMillis(s.queryTimeout),
  keepAlive: s.keepAlive,
  reset: s.reset,
  reconnect: {
    initialDelay: Duration.millis(s.reconnect.initialDelay),
    factor: s.reconnect.factor,
    maxDelay: Duration.millis(s.reconnect.maxDelay),
    initialAttempts: s.reconnect.initialAttempts,
    jitter: s.reconnect.jitter
  },
  init: s.init,
  pooler: s.pooler,
  statementTimeout: optionalMillis(s.statementTimeout),
  applicationName: s.applicationName,
  logFile: s.logFile,
  logLevel: Logging.logLevelOf(s.logLevel),
  replicas: s.replicas,
  settingNames: s.settingNames
})

const d = Settings.defaults

/** @internal */
export const defaults: Omit<PoolConfig, "url" | "database" | "password"> = {
  name: d.name,
  host: d.host,
  port: d.port,
  hosts: d.hosts,
  targetSessionAttrs: d.targetSessionAttrs,
  loadBalanceHosts: d.loadBalanceHosts,
  user: d.user,
  ssl: false,
  sslmode: d.sslmode,
  minSize: d.minSize,
  maxSize: d.maxSize,
  acquireTimeout: Duration.millis(d.acquireTimeout),
  connectTimeout: Duration.millis(d.connectTimeout),
  validateAfterIdle: Duration.millis(d.validateAfterIdle),
  validationTimeout: Duration.millis(d.validationTimeout),
  maxLifetime: Duration.millis(d.maxLifetime),
  maxIdleTime: Duration.millis(d.maxIdleTime),
  maxQueries: d.maxQueries,
  pipeline: d.pipeline,
  leakDetectionThreshold: Duration.millis(d.leakDetectionThreshold),
  shutdownTimeout: Duration.millis(d.shutdownTimeout),
  cancelTimeout: Duration.millis(d.cancelTimeout),
  queryTimeout: undefined,
  keepAlive: d.keepAlive,
  reset: d.reset,
  reconnect: {
    initialDelay: Duration.millis(d.reconnect.initialDelay),
    factor: d.reconnect.factor,
    maxDelay: Duration.millis(d.reconnect.maxDelay),
    initialAttempts: d.reconnect.initialAttempts,
    jitter: d.reconnect.jitter
  },
  init: d.init,
  pooler: d.pooler,
  statementTimeout: undefined,
  applicationName: d.applicationName,
  logFile: undefined,
  logLevel: undefined,
  replicas: undefined,
  settingNames: Settings.optionNames satisfies SettingNames
}

/** @internal */
export const redactUrl: (url: string) => string = Settings.redactUrl

/** @internal */
export const redactText: (text: string, password: string | undefined) => string = Settings.redactText

// ---------------------------------------------------------------------------
// resolution
// ---------------------------------------------------------------------------

/**
 * Everything `make` accepts, typed loosely: values read from the environment are strings, and callers from plain
 * JavaScript can pass anything; `PgClient.layer`'s names included.
 *
 * @internal
 */
export type RawInput = Settings.Input

/**
 * What the user wrote for a setting, when it is not the option's own name: a `Config` key (`PG_MAX`), keyed by
 * the option it was given for (`maxConnections`, or `reconnect.maxDelay` for a nested one).
 *
 * @internal
 */
export type WrittenNames = Settings.WrittenNames

const toEffect = (result: Settings.Result<Tls.Resolved>): Effect.Effect<PoolConfig, PoolConfigError> =>
  result.ok
    ? Effect.succeed(toPoolConfig(result.settings))
    : Effect.fail(new PoolConfigError({ issues: result.issues }))

/** @internal */
export const make = (input: PoolConfigInput): Effect.Effect<PoolConfig, PoolConfigError> =>
  Effect.suspend(() => toEffect(Settings.resolve(input as RawInput, { runtime, tls: Tls.resolver })))

/**
 * `Db`'s options: `PgClient.layer`'s names included, `written` naming the settings given through `Config` keys.
 *
 * @internal
 */
export const fromOptions = (input: RawInput, written: WrittenNames = {}): Effect.Effect<PoolConfig, PoolConfigError> =>
  Effect.suspend(() => toEffect(Settings.resolve(input, { runtime, written, tls: Tls.resolver })))

const providerFailed = (error: unknown) =>
  new PoolConfigError({
    issues: [
      {
        field: "env",
        env: "",
        setting: "",
        value: "",
        message: `The configuration provider failed while reading the pool's settings: ${String(error)}`
      }
    ]
  })

/** Every variable of the engine's table, read through the current `ConfigProvider`. */
const readEnv: Effect.Effect<Readonly<Record<string, string | undefined>>, PoolConfigError> = Config.all(
  Object.fromEntries(Settings.envNames.map((key) => [key, Config.option(Config.string(key))] as const))
).pipe(
  Effect.map((values) =>
    Object.fromEntries(Object.entries(values).map(([key, value]) => [key, Option.getOrUndefined(value)]))
  ),
  Effect.mapError(providerFailed)
)

// ---------------------------------------------------------------------------
// unknown variables
// ---------------------------------------------------------------------------

/** @internal */
export type UnknownVariable = Settings.UnknownVariable

/** @internal */
export const unknownVariableMessage: (unknown: UnknownVariable) => string = Settings.unknownVariableMessage

// Bounds on the walk below, so that a provider with a huge or cyclic tree costs little.
const MAX_DEPTH = 8
const MAX_NODES = 1_000
const PREFIX = "DB_POOL_"

/**
 * The `DB_POOL_*` variables the provider holds that are not settings. Providers only list the children of a path,
 * one delimiter-separated segment at a time (`_` for the environment, `.` for `fromMap`), so the walk descends
 * from the root through the paths that can still spell `DB_POOL_…`, joining segments with `_`.
 */
const unknownVariables: Effect.Effect<ReadonlyArray<UnknownVariable>> = Effect.gen(function* () {
  const provider = yield* Effect.configProviderWith((provider: ConfigProvider.ConfigProvider) =>
    Effect.succeed(provider)
  )
  const found = new Set<string>()
  let visited = 0
  const walk = (path: ReadonlyArray<string>): Effect.Effect<void> =>
    Effect.gen(function* () {
      if (path.length >= MAX_DEPTH || visited >= MAX_NODES) return
      const children = yield* Effect.orElseSucceed(provider.flattened.enumerateChildren(path), () => [])
      for (const child of children) {
        if (++visited > MAX_NODES) return
        const next = [...path, child]
        const name = next.join("_").toUpperCase()
        if (name.startsWith(PREFIX)) {
          const grandchildren = yield* Effect.orElseSucceed(provider.flattened.enumerateChildren(next), () => [])
          // a leaf is a variable; an inner node (DB_POOL_MAX of DB_POOL_MAX_SIZE) is one only if it has a value
          const isVariable =
            [...grandchildren].length === 0 ||
            Option.isSome(yield* Effect.orElseSucceed(provider.load(Config.option(Config.string(name))), Option.none))
          if (isVariable) found.add(name)
          yield* walk(next)
        } else if (PREFIX.startsWith(`${name}_`)) {
          yield* walk(next)
        }
      }
    })
  yield* walk([])
  return Settings.unknownVariables(found)
})

/**
 * The configuration from the environment, and the `DB_POOL_*` variables it ignored. When the configuration is
 * invalid anyway, those are reported with its issues: a typo is the likeliest cause of a setting that seems lost.
 *
 * @internal
 */
export const fromEnvChecked: Effect.Effect<
  { readonly config: PoolConfig; readonly unknown: ReadonlyArray<UnknownVariable> },
  PoolConfigError
> = Effect.gen(function* () {
  const env = yield* readEnv
  const unknown = yield* unknownVariables
  const result = Settings.fromEnv(env, { runtime, tls: Tls.resolver })
  if (result.ok) return { config: toPoolConfig(result.settings), unknown }
  return yield* new PoolConfigError({
    issues: [
      ...result.issues,
      ...unknown.map((u) => ({
        field: "env",
        env: u.name,
        setting: u.name,
        value: "",
        message: unknownVariableMessage(u)
      }))
    ]
  })
})

/** @internal */
export const fromEnv: Effect.Effect<PoolConfig, PoolConfigError> = Effect.map(fromEnvChecked, ({ config }) => config)

/**
 * What `PoolLogger.layerFromEnv` reads: `DB_POOL_LOG_FILE` and `DB_POOL_LOG_LEVEL`, validated as `fromEnv`
 * validates them (the same rules, the same messages), and the passwords to redact.
 *
 * @internal
 */
export const loggingFromEnv: Effect.Effect<
  {
    readonly logFile: string | undefined
    readonly logLevel: LogLevel.LogLevel | undefined
    readonly url: string | undefined
    readonly password: string | undefined
  },
  PoolConfigError
> = Effect.flatMap(readEnv, (env) => {
  const result = Settings.loggingFromEnv(env)
  if (!result.ok) return new PoolConfigError({ issues: result.issues })
  const { logFile, logLevel, url, password } = result
  return Effect.succeed({ logFile, logLevel: Logging.logLevelOf(logLevel), url, password })
})

// ---------------------------------------------------------------------------
// Config keys
// ---------------------------------------------------------------------------

// Reads the key a `Config` is read under (`Config.integer("PG_MAX")` → "PG_MAX", nested paths joined with "." as
// Effect's own messages show them) from its structure, through mappings, descriptions and fallbacks. The node
// shapes are Effect's internal `_tag`s: a shape this does not know yields no key, and the option's name is used
// instead.
const configKey = (config: unknown, depth = 0): string | undefined => {
  if (!Config.isConfig(config) || depth > 32) return undefined
  const node = config as unknown as {
    readonly _tag: string
    readonly name?: string
    readonly config?: unknown
    readonly original?: unknown
    readonly first?: unknown
    readonly second?: unknown
  }
  switch (node._tag) {
    case "Nested": {
      const inner = configKey(node.config, depth + 1)
      return inner === undefined ? node.name : `${node.name}.${inner}`
    }
    case "Described":
      return configKey(node.config, depth + 1)
    case "MapOrFail":
      return configKey(node.original, depth + 1)
    case "Fallback":
      return configKey(node.first, depth + 1) ?? configKey(node.second, depth + 1)
    default:
      return undefined
  }
}

/**
 * The `Config` keys of the options given as `Config`s, keyed by option (`reconnect.maxDelay` for a nested one).
 *
 * @internal
 */
export const configKeys = (options: unknown): WrittenNames => {
  const out: Record<string, string> = {}
  const visit = (value: unknown, prefix: string) => {
    if (typeof value !== "object" || value === null || Config.isConfig(value)) return
    for (const [key, field] of Object.entries(value)) {
      const found = configKey(field)
      if (found !== undefined) out[prefix + key] = found
      else if (prefix === "" && key === "reconnect") visit(field, "reconnect.")
    }
  }
  visit(options, "")
  return out
}
