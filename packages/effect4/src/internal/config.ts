/**
 * The pool's configuration: parsed and validated by the engine's `Settings` (the same rules, names and messages
 * in both editions), read here with Effect 4's `Duration`, `Redacted`, `LogLevel` and `Config` (so any
 * `ConfigProvider` works), and turned into a `PoolConfig`. The Effect 4 edition adds multiplexing (`multiplex`,
 * `multiplexConcurrency`), validated here, and reads the Effect 3 edition's `pipeline` as its equivalent.
 *
 * @internal
 */
import { Settings } from "@effect-pg-pool/engine"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { ConnectionOptions } from "node:tls"
import type { PoolConfig, PoolConfigInput } from "../PoolConfig.js"
import { type ConfigIssue, PoolConfigError } from "../PoolError.js"
// the engine's libpq TLS resolution on Node's files (the same as the Effect 3 edition's)
import { resolver as tls } from "./tls.js"

/** The environment variables of the multiplexing settings, which the engine's table does not know. @internal */
export const multiplexEnv = { multiplex: "DB_POOL_MULTIPLEX", multiplexConcurrency: "DB_POOL_MULTIPLEX_CONCURRENCY" }

const runtime: Settings.Runtime = {
  durationMillis: (raw) => (Duration.isDuration(raw) ? Duration.toMillis(raw) : undefined),
  secret: (raw) => (Redacted.isRedacted(raw) ? String(Redacted.value(raw)) : undefined),
  show: (raw) =>
    Duration.isDuration(raw) ? `${Duration.toMillis(raw)} ms` : Redacted.isRedacted(raw) ? "<redacted>" : undefined
}

/** The raw input: options as given, or strings read from the environment. @internal */
export type RawInput = Settings.Input & {
  readonly multiplex?: unknown
  readonly multiplexConcurrency?: unknown
}

/** The names the user wrote for settings given as `Config`s, keyed by option. @internal */
export type WrittenNames = Settings.WrittenNames

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

/** The engine's levels as Effect 4's (which calls `Warning` `Warn`). */
const LOG_LEVELS: { readonly [K in Settings.LogLevel]: LogLevel.LogLevel } = {
  All: "All",
  Trace: "Trace",
  Debug: "Debug",
  Info: "Info",
  Warning: "Warn",
  Error: "Error",
  Fatal: "Fatal",
  None: "None"
}

/** Effect 4's `LogLevel` for a level the engine parsed. @internal */
export const logLevelOf = (level: Settings.LogLevel | undefined): LogLevel.LogLevel | undefined =>
  level === undefined ? undefined : LOG_LEVELS[level]

interface Multiplexing {
  readonly multiplex: boolean
  readonly multiplexConcurrency: number
  readonly names: { readonly multiplex: string; readonly multiplexConcurrency: string }
}

const PIPELINE_FIX =
  "the Effect 4 edition pipelines through PgConnection, which keeps at most 128 statements on the wire: e.g. 16"

const multiplexing = (
  raw: RawInput,
  source: "input" | "env",
  issues: Array<ConfigIssue>,
  settings: Settings.Settings<false | ConnectionOptions> | undefined,
  written: Settings.WrittenNames
): Multiplexing => {
  const name = (field: keyof typeof multiplexEnv) => written[field] ?? (source === "env" ? multiplexEnv[field] : field)
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
  // The Effect 3 edition's `pipeline` (k statement slots per session, k ≥ 2) is multiplexing with k slots here,
  // so DB_POOL_PIPELINE keeps its meaning; the engine validated it (0 to 1000), the wire bounds it at 128.
  const pipeline = settings?.pipeline ?? 0
  if (pipeline >= 2) {
    const setting = settings!.settingNames.pipeline
    if (pipeline > 128) {
      issues.push({
        field: "pipeline",
        env: Settings.envOf.pipeline,
        setting,
        value: String(pipeline),
        message: `${setting} (${pipeline}) must be at most 128: ${PIPELINE_FIX}`
      })
    } else if (raw.multiplex !== undefined && !multiplex) {
      issues.push({
        field: "pipeline",
        env: Settings.envOf.pipeline,
        setting,
        value: String(pipeline),
        message:
          `${setting} (${pipeline}) pipelines statements, which ${name("multiplex")} (false) turns off: ` +
          `remove one of them (${setting} is the Effect 3 edition's name for ${name("multiplex")})`
      })
    } else if (raw.multiplexConcurrency !== undefined && multiplexConcurrency !== pipeline) {
      issues.push({
        field: "pipeline",
        env: Settings.envOf.pipeline,
        setting,
        value: String(pipeline),
        message:
          `${setting} (${pipeline}) and ${name("multiplexConcurrency")} (${multiplexConcurrency}) disagree: both set ` +
          `the statements one session carries at once; give one of them`
      })
    } else {
      multiplex = true
      multiplexConcurrency = pipeline
    }
  }
  return {
    multiplex,
    multiplexConcurrency,
    names: { multiplex: name("multiplex"), multiplexConcurrency: name("multiplexConcurrency") }
  }
}

const toConfig = (settings: Settings.Settings<false | ConnectionOptions>, mux: Multiplexing): PoolConfig => {
  const millis = Duration.millis
  return {
    name: settings.name,
    url: Redacted.make(settings.url),
    host: settings.host,
    port: settings.port,
    hosts: settings.hosts,
    targetSessionAttrs: settings.targetSessionAttrs,
    loadBalanceHosts: settings.loadBalanceHosts,
    replicas: settings.replicas,
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
    pipeline: settings.pipeline,
    leakDetectionThreshold: millis(settings.leakDetectionThreshold),
    shutdownTimeout: millis(settings.shutdownTimeout),
    cancelTimeout: millis(settings.cancelTimeout),
    queryTimeout: settings.queryTimeout === undefined ? undefined : millis(settings.queryTimeout),
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
    logLevel: logLevelOf(settings.logLevel),
    multiplex: mux.multiplex,
    multiplexConcurrency: mux.multiplexConcurrency,
    settingNames: { ...settings.settingNames, ...mux.names }
  }
}

/** The settings of the engine's table that this edition carries into its `PoolConfig`. */
const CARRIED: ReadonlySet<string> = new Set([
  "name",
  "url",
  "host",
  "port",
  "database",
  "user",
  "password",
  "ssl",
  "sslmode",
  "targetSessionAttrs",
  "loadBalanceHosts",
  "minSize",
  "maxSize",
  "acquireTimeout",
  "connectTimeout",
  "validateAfterIdle",
  "validationTimeout",
  "maxLifetime",
  "maxIdleTime",
  "maxQueries",
  "pipeline",
  "leakDetectionThreshold",
  "shutdownTimeout",
  "cancelTimeout",
  "queryTimeout",
  "keepAlive",
  "reset",
  "reconnect",
  "init",
  "pooler",
  "statementTimeout",
  "applicationName",
  "logFile",
  "logLevel",
  "replicas",
  "replicaHosts",
  "replicaTargetSessionAttrs",
  "replicaMinSize",
  "replicaMaxSize"
])

/**
 * A setting the engine's table gained (the Effect 3 edition's) that this edition does not carry yet is refused
 * when given, never validated and then ignored.
 *
 * @internal
 */
export const uncarried = (
  raw: Readonly<Record<string, unknown>>,
  source: "input" | "env",
  written: Settings.WrittenNames,
  table: ReadonlyArray<{ readonly setting: string; readonly env: string }> = Settings.table,
  carried: ReadonlySet<string> = CARRIED
): Array<ConfigIssue> => {
  const issues: Array<ConfigIssue> = []
  const seen = new Set<string>()
  for (const entry of table) {
    const field = entry.setting.split(".")[0]!
    if (carried.has(field) || seen.has(field) || raw[field] === undefined) continue
    seen.add(field)
    const setting = written[field] ?? (source === "env" ? entry.env : field)
    const value = typeof raw[field] === "object" ? JSON.stringify(raw[field]) : String(raw[field])
    issues.push({
      field,
      env: entry.env,
      setting,
      value,
      message:
        `${setting} (${value}) is not supported by the Effect 4 edition yet: remove it, or use the Effect 3 ` +
        `edition (@effect-pg-pool/effect3) for this pool`
    })
  }
  return issues
}

const finish = (
  result: Settings.Result<false | ConnectionOptions>,
  raw: RawInput,
  source: "input" | "env",
  written: Settings.WrittenNames = {}
): PoolConfig | PoolConfigError => {
  const issues: Array<ConfigIssue> = result.ok ? [] : [...result.issues]
  issues.push(...uncarried(raw, source, written))
  const mux = multiplexing(raw, source, issues, result.ok ? result.settings : undefined, written)
  return result.ok && issues.length === 0 ? toConfig(result.settings, mux) : new PoolConfigError({ issues })
}

/**
 * Validates raw settings into a configuration, or every problem found; `written` names the settings given under
 * `Config` keys (`Db.layerConfig`), keyed by option.
 *
 * @internal
 */
export const resolve = (
  raw: RawInput,
  source: "input" | "env" = "input",
  written: Settings.WrittenNames = {}
): PoolConfig | PoolConfigError => {
  const { multiplex: _m, multiplexConcurrency: _c, ...settings } = raw
  return finish(Settings.resolve(settings, { source, runtime, tls, written }), raw, source, written)
}

/** The defaults `make` and `fromEnv` fill in: a configuration of `postgres://localhost` but its connection. @internal */
export const defaults: Omit<PoolConfig, "url" | "database" | "password"> = (() => {
  const { url: _u, database: _d, password: _p, ...rest } = resolve({ url: "postgres://localhost" }) as PoolConfig
  return rest
})()

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
      ...Settings.inputFromEnv(env),
      multiplex: env[multiplexEnv.multiplex] || undefined,
      multiplexConcurrency: env[multiplexEnv.multiplexConcurrency] || undefined
    },
    "env"
  )

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

/** Every variable of the engine's table and the multiplexing ones, read through the current `ConfigProvider`. */
const readEnv: Effect.Effect<Readonly<Record<string, string | undefined>>, PoolConfigError> = Effect.map(
  Effect.mapError(
    Config.all(
      Object.fromEntries(
        [...Settings.envNames, ...Object.values(multiplexEnv)].map((key) => [key, Config.option(Config.String(key))])
      )
    ),
    providerFailed
  ),
  (values) => Object.fromEntries(Object.entries(values).map(([key, value]) => [key, Option.getOrUndefined(value)]))
)

// Bounds on the walk below, so that a provider with a huge or cyclic tree costs little.
const MAX_DEPTH = 8
const MAX_NODES = 1_000
const PREFIX = "DB_POOL_"
const EDITION_VARIABLES: ReadonlySet<string> = new Set(Object.values(multiplexEnv))

const childrenOf = (node: ConfigProvider.Node | undefined): ReadonlyArray<string> =>
  node === undefined || node._tag === "Value"
    ? []
    : node._tag === "Record"
      ? [...node.keys]
      : Array.from({ length: node.length }, (_, i) => String(i))

/**
 * The `DB_POOL_*` variables the provider holds that are not settings. Providers list the children of a path one
 * segment at a time (`_`-separated for the environment, object keys for `fromUnknown`), so the walk descends from
 * the root through the paths that can still spell `DB_POOL_…`, joining segments with `_`.
 *
 * @internal
 */
export const unknownVariables: Effect.Effect<ReadonlyArray<Settings.UnknownVariable>> = Effect.gen(function* () {
  const provider = yield* ConfigProvider.ConfigProvider
  const load = (path: ReadonlyArray<string>) =>
    Effect.orElseSucceed(provider.load(path as Array<string>), () => undefined)
  const found = new Set<string>()
  let visited = 0
  const walk = (path: ReadonlyArray<string>): Effect.Effect<void> =>
    Effect.gen(function* () {
      if (path.length >= MAX_DEPTH || visited >= MAX_NODES) return
      for (const child of childrenOf(yield* load(path))) {
        if (++visited > MAX_NODES) return
        const next = [...path, child]
        const name = next.join("_").toUpperCase()
        if (name.startsWith(PREFIX)) {
          const node = yield* load(next)
          // a leaf is a variable; an inner node (DB_POOL_MAX of DB_POOL_MAX_SIZE) is one only if it has a value
          if (node !== undefined && (node._tag === "Value" || node.value !== undefined)) found.add(name)
          yield* walk(next)
        } else if (PREFIX.startsWith(`${name}_`)) {
          yield* walk(next)
        }
      }
    })
  yield* walk([])
  return Settings.unknownVariables([...found].filter((name) => !EDITION_VARIABLES.has(name)))
})

/**
 * The configuration from the environment, and the `DB_POOL_*` variables it ignored. When the configuration is
 * invalid anyway, those are reported with its issues: a typo is the likeliest cause of a setting that seems lost.
 *
 * @internal
 */
export const fromEnvChecked: Effect.Effect<
  { readonly config: PoolConfig; readonly unknown: ReadonlyArray<Settings.UnknownVariable> },
  PoolConfigError
> = Effect.gen(function* () {
  const env = yield* readEnv
  const unknown = yield* unknownVariables
  const result = fromEnvRecord(env)
  if (!(result instanceof PoolConfigError)) return { config: result, unknown }
  return yield* new PoolConfigError({
    issues: [
      ...result.issues,
      ...unknown.map((u) => ({
        field: "env",
        env: u.name,
        setting: u.name,
        value: "",
        message: Settings.unknownVariableMessage(u)
      }))
    ]
  })
})

/** The configuration from the environment, read through the current `ConfigProvider`. @internal */
export const fromEnv: Effect.Effect<PoolConfig, PoolConfigError> = Effect.map(fromEnvChecked, ({ config }) => config)

/**
 * What `PoolLogger.layerFromEnv` reads: `DB_POOL_LOG_FILE` and `DB_POOL_LOG_LEVEL`, validated as `fromEnv`
 * validates them, and the passwords to redact.
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
  if (!result.ok) return Effect.fail(new PoolConfigError({ issues: result.issues }))
  const { logFile, logLevel, url, password } = result
  return Effect.succeed({ logFile, logLevel: logLevelOf(logLevel), url, password })
})

/**
 * Reads `Db.layerConfig`'s options, each `Config` through a provider that records the paths it loads: the first is
 * the key the user wrote (`Config.Int("PG_MAX")` → `PG_MAX`, nested paths joined with "."), so that messages name
 * it. Effect 4's `Config` is an opaque evaluator, so the key is observed rather than read off its structure.
 *
 * @internal
 */
export const readConfig = <A>(
  wrapped: Config.Wrap<A>
): Effect.Effect<{ readonly options: A; readonly written: Settings.WrittenNames }, Config.ConfigError> =>
  Effect.gen(function* () {
    const provider = yield* ConfigProvider.ConfigProvider
    const written: Record<string, string> = {}
    const read = (value: unknown, key: string): Effect.Effect<unknown, Config.ConfigError> => {
      if (Config.isConfig(value)) {
        let first: string | undefined
        const recording = ConfigProvider.make((path) => {
          if (first === undefined && path.length > 0) first = path.join(".")
          return provider.load(path)
        })
        return Effect.provideService(value, ConfigProvider.ConfigProvider, recording).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              if (first !== undefined && key !== "" && first !== key) written[key] = first
            })
          )
        )
      }
      // `Config.Wrap` nests plain objects only (the reconnect schedule); a nested setting is keyed `reconnect.x`
      if (typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
        return Effect.map(
          Effect.forEach(Object.entries(value), ([k, v]) =>
            Effect.map(read(v, key === "" ? k : `${key}.${k}`), (read) => [k, read] as const)
          ),
          (entries) => Object.fromEntries(entries)
        )
      }
      return Effect.succeed(value)
    }
    const options = (yield* read(wrapped, "")) as A
    return { options, written }
  })

/** @internal */
export const redactUrl: (url: string) => string = Settings.redactUrl

/** @internal */
export const redactText: (text: string, password: string | undefined) => string = Settings.redactText
