/**
 * The pool's logs as JSON lines in a file, and nothing on stdout or stderr: an MCP server on stdio dies of a stray
 * line.
 *
 * Each line is the Effect 3 edition's: `timestamp`, `level` (`INFO`, `WARN`, …), `fiberId`, `message`, the log
 * annotations at the top level (the pool's `pool`, `event`, `connectionId`, `reason`, durations…; one named like a
 * field above goes under `annotations`), `spans` (label → elapsed ms), `traceId`/`spanId` inside a span, an Error
 * logged as a message under `exception` (name, message, fields, cause, stack; several under `exceptions`), other
 * non-string message parts under `details`, and a logged `Cause` under `cause`, rendered with its stacks. Every
 * password given to the layer, and the password of every `postgres://` URL, is replaced by `***` in every string
 * of the line, before it is serialised (so that escaping cannot hide one).
 *
 * The layers here remove Effect's console loggers — `Logger.defaultLogger` and the `Logger.consoleJson`,
 * `Logger.consoleLogFmt` and `Logger.consoleStructured` instances — and add a logger appending to a file. Loggers
 * that do not write to the console (the tracer's span events, OpenTelemetry's, your own) stay. A
 * `Logger.consolePretty()` you install yourself is a new logger per call, which nothing can tell from your own:
 * install it under these layers only if you want it.
 *
 * The pool's own events do not need these layers: with `DB_POOL_LOG_FILE` (or `logFile`) set, the pool writes
 * them to that file and nowhere else, from its background fibers too, at `DB_POOL_LOG_LEVEL` (or `logLevel`) when
 * set, however the layers are composed. These layers are for the rest of the program's logs.
 *
 * @since 0.1.0
 */
import { Settings } from "@effect-pg-pool/engine"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import type * as Redacted from "effect/Redacted"
import * as References from "effect/References"
import type * as Scope from "effect/Scope"
import * as InternalConfig from "./internal/config.js"
import * as internal from "./internal/logger.js"
import type { PoolConfig } from "./PoolConfig.js"
import type { PoolConfigError } from "./PoolError.js"

/**
 * How the file logger redacts and filters.
 *
 * @example
 * ```ts
 * import type { PoolLogger } from "@effect-pg-pool/effect4"
 *
 * const options: PoolLogger.Options = {
 *   redact: [process.env.PGPASSWORD, process.env.API_TOKEN],
 *   minimumLogLevel: "Debug"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Secrets never to write, e.g. the database password (`Redacted` or plain). Passwords inside `postgres://`
   * URLs are removed whether given or not.
   */
  readonly redact?: Iterable<Redacted.Redacted<string> | string | undefined> | undefined
  /**
   * The minimum level logged while the layer is in place, for the whole program (as `References.MinimumLogLevel`):
   * `"Debug"` records every connection opened and closed. Default: unchanged (Effect's default is `Info`).
   */
  readonly minimumLogLevel?: LogLevel.LogLevel | undefined
}

/**
 * A logger that formats each entry as one JSON line (with the cause's stack), passwords masked: for tests, or
 * to send the same lines elsewhere (never to stdout in an MCP server — `PoolLogger.layer(path)` writes a file).
 *
 * @example
 * ```ts
 * import { PoolLogger } from "@effect-pg-pool/effect4"
 * import { Logger } from "effect"
 *
 * // capture the lines a program logs, e.g. to assert on them in a test
 * const lines: Array<string> = []
 * const capture = Logger.map(PoolLogger.jsonLineLogger(), (line) => void lines.push(line))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const jsonLineLogger = (options?: Pick<Options, "redact">): Logger.Logger<unknown, string> =>
  internal.formatter(Settings.makeRedactor(internal.secretsOf(options?.redact)))

/**
 * Opens (creating it and its directories) the log file at `path` for appending, and returns a logger writing
 * to it, closed with the scope; fails with `PoolConfigError` when the file cannot be opened. Install it yourself,
 * or use `layer`, which also removes the console loggers.
 *
 * @example
 * ```ts
 * import { PoolLogger } from "@effect-pg-pool/effect4"
 * import { Logger } from "effect"
 *
 * // the file logger next to the console loggers, which `layer` would remove
 * const LoggerLive = Logger.layer([PoolLogger.make("/var/log/app/pool.jsonl")], { mergeWithExisting: true })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  path: string,
  options?: Options
): Effect.Effect<Logger.Logger<unknown, void>, PoolConfigError, Scope.Scope> =>
  internal.openLogFile(path, options, "the log file")

const install = (
  logger: Effect.Effect<Logger.Logger<unknown, void>, PoolConfigError, Scope.Scope> | undefined,
  minimumLogLevel: LogLevel.LogLevel | undefined
): Layer.Layer<never, PoolConfigError> => {
  const loggers = Layer.effect(
    Logger.CurrentLoggers,
    Effect.gen(function* () {
      const rest = internal.withoutConsole(yield* Logger.CurrentLoggers)
      if (logger !== undefined) rest.add(yield* logger)
      return rest
    })
  )
  return minimumLogLevel === undefined
    ? loggers
    : Layer.merge(loggers, Layer.succeed(References.MinimumLogLevel, minimumLogLevel))
}

/**
 * Logs to the file at `path` (appending; the file and its directories are created) instead of the console.
 * Fails with `PoolConfigError` when the file cannot be opened; once open, a failing disk never fails the
 * program.
 *
 * @example
 * ```ts
 * import { DatabaseLive, PoolLogger } from "@effect-pg-pool/effect4"
 * import { Layer } from "effect"
 *
 * const AppLive = DatabaseLive.pipe(Layer.provideMerge(PoolLogger.layer("/var/log/app/pool.jsonl")))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (path: string, options?: Options): Layer.Layer<never, PoolConfigError> =>
  install(internal.openLogFile(path, options, "the log file"), options?.minimumLogLevel)

/**
 * Removes the console loggers and installs none: logs go nowhere, except to loggers that do not write to the
 * console. A `Layer` value, as Effect 4's own logger layers are; for a level too, merge
 * `Layer.succeed(References.MinimumLogLevel, level)`.
 *
 * @example
 * ```ts
 * import { DatabaseLive, PoolLogger } from "@effect-pg-pool/effect4"
 * import { Layer } from "effect"
 *
 * // a CLI that writes JSON to stdout: no log line may reach it
 * const MainLive = DatabaseLive.pipe(Layer.provideMerge(PoolLogger.layerSilent))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSilent: Layer.Layer<never> = install(undefined, undefined) as Layer.Layer<never>

/**
 * Reads `DB_POOL_LOG_FILE` and `DB_POOL_LOG_LEVEL` (`trace`, `debug`, `info`, `warning`, `error`, `fatal`, `all`,
 * `none`; any case) through `Config`, validated as `PoolConfig.fromEnv` validates them: logs to that file, or —
 * when it is not set — nowhere, and in either case never to the console. The passwords of `DATABASE_URL` and
 * `PGPASSWORD` are redacted along with `options.redact`; `options.minimumLogLevel` applies when
 * `DB_POOL_LOG_LEVEL` is not set.
 *
 * @example
 * ```ts
 * import { DatabaseLive, PoolLogger } from "@effect-pg-pool/effect4"
 * import { Layer } from "effect"
 *
 * // DB_POOL_LOG_FILE=/var/log/app/pool.jsonl DB_POOL_LOG_LEVEL=debug node server.js
 * const MainLive = DatabaseLive.pipe(Layer.provideMerge(PoolLogger.layerFromEnv()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromEnv = (options?: Options): Layer.Layer<never, PoolConfigError> =>
  Layer.unwrap(
    Effect.map(InternalConfig.loggingFromEnv, (env) => {
      const minimumLogLevel = env.logLevel ?? options?.minimumLogLevel
      if (env.logFile === undefined) return install(undefined, minimumLogLevel)
      const redact = [
        ...(options?.redact ?? []),
        ...(env.url === undefined ? [] : Settings.passwordsInUrl(env.url)),
        env.password
      ]
      return install(internal.openLogFile(env.logFile, { redact }, Settings.envOf.logFile), minimumLogLevel)
    })
  )

/**
 * Logs to the pool configuration's `logFile` (nowhere when it has none), never to the console, at its `logLevel`
 * when set, redacting the configuration's password.
 *
 * @example
 * ```ts
 * import { DatabaseLive, PoolConfig, PoolLogger } from "@effect-pg-pool/effect4"
 * import { Effect, Layer } from "effect"
 *
 * // DB_POOL_LOG_FILE read and validated with the rest of the pool's settings
 * const LoggerLive = Layer.unwrap(Effect.map(PoolConfig.fromEnv, (config) => PoolLogger.layerFromConfig(config)))
 * const MainLive = DatabaseLive.pipe(Layer.provideMerge(LoggerLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig = (config: PoolConfig, options?: Options): Layer.Layer<never, PoolConfigError> => {
  const minimumLogLevel = config.logLevel ?? options?.minimumLogLevel
  if (config.logFile === undefined) return install(undefined, minimumLogLevel)
  const redact = [...(options?.redact ?? []), config.password]
  return install(internal.openLogFile(config.logFile, { redact }, config.settingNames.logFile), minimumLogLevel)
}
