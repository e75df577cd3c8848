/**
 * Structured logging to a file, with nothing on stdout or stderr: a program that speaks a protocol over its
 * standard streams (an MCP server over stdio, a CLI piping JSON) dies of a stray log line.
 *
 * The layers here replace Effect's console loggers — `Logger.defaultLogger`, the pretty logger that
 * `NodeRuntime.runMain` swaps in for it, and those of `Logger.json`, `Logger.logFmt`, `Logger.pretty` and
 * `Logger.structured` — with a logger appending one JSON object per line to a file. Loggers that do not write
 * to the console (OpenTelemetry's, the tracer's span events, your own) stay.
 *
 * Each line holds `timestamp`, `level`, `fiberId`, `message`, the log annotations at the top level (the pool's
 * `pool`, `event`, `connectionId`, `reason`, durations…; one named like a field above goes under
 * `annotations`), `spans` (label → elapsed ms), `traceId`/`spanId` inside a span, an Error logged as a message
 * under `exception` (name, message, fields, cause, stack — Effect's `jsonLogger` drops the stack; several under
 * `exceptions`), other non-string message parts under `details`, and a logged `Cause` under `cause`, rendered
 * with its stacks. Every password given to the layer, and the password of every
 * `postgres://` URL, is replaced by `***` in every string of the line.
 *
 * Writes are batched and asynchronous; closing the layer's scope writes what is left. A failing disk never
 * fails the program: lines are dropped, and the next line that reaches the file says how many were lost.
 *
 * The pool's own events do not need these layers: with `DB_POOL_LOG_FILE` (or `logFile`) set, the pool writes
 * them to that file and nowhere else, from its background fibers too, however the layers are composed — with
 * `PoolLogger.layerFromEnv()` beside it (`Layer.merge`, `Effect.provide([...])`), under it or not at all; a
 * `PoolLogger` layer on the same file shares it, each line written once. These layers are for the rest of the
 * program's logs. Compose them sequentially, under the layers whose logs they should receive
 * (`Layer.provideMerge(AppLive, PoolLogger.layerFromEnv())`): loggers live in a `FiberRef`, and merged layers are
 * built concurrently, each from the fiber state before the build, so a merged layer's fibers keep the console
 * loggers. A pool without a log file logs to the loggers it was built under.
 *
 * @since 0.1.0
 */
import { Settings } from "@effect-pg-pool/engine"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Config from "./internal/config.js"
import * as internal from "./internal/logger.js"
import type { PoolConfig } from "./PoolConfig.js"
import type { PoolConfigError } from "./PoolError.js"

/**
 * How the file logger redacts, filters and buffers.
 *
 * @example
 * ```ts
 * import { PoolLogger } from "@effect-pg-pool/effect3"
 *
 * const options: PoolLogger.Options = {
 *   redact: [process.env.PGPASSWORD, process.env.API_TOKEN],
 *   minimumLogLevel: "Debug",
 *   maxBufferedBytes: 32 * 1024 * 1024
 * }
 * const LoggerLive = PoolLogger.layer("/var/log/app/pool.jsonl", options)
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
   * The minimum level logged while the layer is in place, for the whole program (as `Logger.minimumLogLevel`):
   * `"Debug"` records every connection opened and closed. Default: unchanged (Effect's default is `Info`).
   */
  readonly minimumLogLevel?: LogLevel.LogLevel | LogLevel.Literal | undefined
  /** Lines held in memory while the disk is slow, in bytes; beyond, lines are dropped and counted. Default 8 MiB. */
  readonly maxBufferedBytes?: number | undefined
}

const toLogLevel = (level: LogLevel.LogLevel | LogLevel.Literal): LogLevel.LogLevel =>
  typeof level === "string" ? LogLevel.fromLiteral(level) : level

const secretsOf = (options: Options | undefined): Array<string> => {
  const secrets: Array<string> = []
  for (const secret of options?.redact ?? []) {
    const text = internal.secretText(secret)
    if (text !== undefined && text !== "") secrets.push(text)
  }
  return secrets
}

/**
 * The JSON-lines formatter on its own, as a `Logger` producing strings: for tests, or to send the same lines
 * elsewhere.
 *
 * @example
 * ```ts
 * import { PoolLogger } from "@effect-pg-pool/effect3"
 * import { Effect, Logger } from "effect"
 *
 * // capture the lines a program logs, e.g. to assert on them in a test
 * const lines: Array<string> = []
 * const capture = PoolLogger.jsonLineLogger().pipe(Logger.map((line) => void lines.push(line)))
 * const program = Effect.logInfo("connection opened").pipe(
 *   Effect.annotateLogs({ connectionId: 1 }),
 *   Effect.provide(Logger.replace(Logger.defaultLogger, capture))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const jsonLineLogger = (options?: Pick<Options, "redact">): Logger.Logger<unknown, string> => {
  const redact = internal.makeRedactor(secretsOf(options))
  return Logger.make((logOptions) => internal.formatLine(logOptions, redact))
}

/**
 * Opens (creating it and its directories) the log file at `path` for appending, and returns a logger
 * writing to it; closing the scope writes what is buffered and closes the file. Install it yourself, or use
 * {@link layer}, which also removes the console loggers.
 *
 * @example
 * ```ts
 * import { PoolLogger } from "@effect-pg-pool/effect3"
 * import { Logger } from "effect"
 *
 * // the file logger next to the console loggers, which `layer` would remove
 * const LoggerLive = Logger.addScoped(PoolLogger.make("/var/log/app/pool.jsonl"))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  path: string,
  options?: Options
): Effect.Effect<Logger.Logger<unknown, void>, PoolConfigError, Scope.Scope> => makeNamed(path, options, "the log file")

/** `setting` names the path in the error as the user gave it (`DB_POOL_LOG_FILE`, `logFile`). */
const makeNamed = (
  path: string,
  options: Options | undefined,
  setting: string
): Effect.Effect<Logger.Logger<unknown, void>, PoolConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const file = internal.LogFile.open(path, options?.maxBufferedBytes ?? internal.defaultMaxBufferedBytes)
    if (file instanceof Error) return yield* internal.openError(path, file, setting)
    yield* Effect.addFinalizer(() => file.close())
    return internal.fileLogger(file, internal.makeRedactor(secretsOf(options)))
  })

const install = (
  logger: Logger.Logger<unknown, void> | undefined,
  minimumLogLevel: LogLevel.LogLevel | LogLevel.Literal | undefined
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.zipRight(
    Effect.locallyScopedWith(FiberRef.currentLoggers, (loggers) => {
      const rest = internal.withoutConsoleLoggers(loggers)
      return logger === undefined ? rest : HashSet.add(rest, logger)
    }),
    minimumLogLevel === undefined
      ? Effect.void
      : Effect.locallyScoped(FiberRef.currentMinimumLogLevel, toLogLevel(minimumLogLevel))
  )

/**
 * Logs to the file at `path` (appending; the file and its directories are created) instead of the console.
 * Fails with `PoolConfigError` when the file cannot be opened; once open, a failing disk never fails the
 * program.
 *
 * Provide it under the layers that log (`Layer.provideMerge`, see the module's notes), so that their background
 * fibers inherit it. A failure that escapes the program is reported by `runMain` outside every layer,
 * on the console: log it inside, and turn that report off, to keep stdout and stderr clean.
 *
 * @example
 * ```ts
 * import { DatabaseLive, Db, PoolLogger } from "@effect-pg-pool/effect3"
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 *
 * const LoggerLive = PoolLogger.layer("/var/log/app/pool.jsonl", { redact: [process.env.PGPASSWORD] })
 * const MainLive = DatabaseLive.pipe(Layer.provideMerge(LoggerLive))
 *
 * Db.withConnection((sql) => sql`SELECT 1`).pipe(
 *   Effect.tapErrorCause(Effect.logError),
 *   Effect.provide(MainLive),
 *   NodeRuntime.runMain({ disableErrorReporting: true })
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (path: string, options?: Options): Layer.Layer<never, PoolConfigError> =>
  layerNamed(path, options, "the log file")

const layerNamed = (path: string, options: Options | undefined, setting: string): Layer.Layer<never, PoolConfigError> =>
  Layer.scopedDiscard(
    Effect.flatMap(makeNamed(path, options, setting), (logger) => install(logger, options?.minimumLogLevel))
  )

/**
 * Removes the console loggers and installs none: logs go nowhere, except to loggers that do not write to
 * the console.
 *
 * @example
 * ```ts
 * import { DatabaseLive, PoolLogger } from "@effect-pg-pool/effect3"
 * import { Layer } from "effect"
 *
 * // a CLI that writes JSON to stdout: no log line may reach it
 * const MainLive = DatabaseLive.pipe(Layer.provideMerge(PoolLogger.layerSilent()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSilent = (options?: Pick<Options, "minimumLogLevel">): Layer.Layer<never> =>
  Layer.scopedDiscard(install(undefined, options?.minimumLogLevel))

/**
 * Reads `DB_POOL_LOG_FILE` and `DB_POOL_LOG_LEVEL` (`trace`, `debug`, `info`, `warning`, `error`, `fatal`,
 * `all`, `none`; any case) through `Config`, validated as `PoolConfig.fromEnv` validates them: logs to that file,
 * or — when it is not set — nowhere, and in either case never to the console. The passwords of `DATABASE_URL` and `PGPASSWORD` are redacted along with
 * `options.redact`; `options.minimumLogLevel` applies when `DB_POOL_LOG_LEVEL` is not set.
 *
 * @example
 * ```ts
 * import { DatabaseLive, Db, PoolLogger } from "@effect-pg-pool/effect3"
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 *
 * // DB_POOL_LOG_FILE=/var/log/app/pool.jsonl DB_POOL_LOG_LEVEL=debug node server.js
 * const MainLive = DatabaseLive.pipe(Layer.provideMerge(PoolLogger.layerFromEnv()))
 *
 * Db.withConnection((sql) => sql`SELECT 1`).pipe(Effect.provide(MainLive), NodeRuntime.runMain)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromEnv = (options?: Options): Layer.Layer<never, PoolConfigError> =>
  Layer.unwrapEffect(
    Effect.map(Config.loggingFromEnv, (env) => {
      const minimumLogLevel = env.logLevel ?? options?.minimumLogLevel
      if (env.logFile === undefined) return layerSilent({ minimumLogLevel })
      const redact = [
        ...(options?.redact ?? []),
        ...(env.url === undefined ? [] : internal.passwordsInUrl(env.url)),
        ...(env.password === undefined ? [] : [env.password])
      ]
      return layerNamed(env.logFile, { ...options, redact, minimumLogLevel }, Settings.envOf.logFile)
    })
  )

/**
 * Logs to the pool configuration's `logFile` (nowhere when it has none), never to the console, redacting the
 * configuration's password.
 *
 * @example
 * ```ts
 * import { DatabaseLive, PoolConfig, PoolLogger } from "@effect-pg-pool/effect3"
 * import { Effect, Layer } from "effect"
 *
 * // DB_POOL_LOG_FILE read and validated with the rest of the pool's settings
 * const LoggerLive = Layer.unwrapEffect(Effect.map(PoolConfig.fromEnv, PoolLogger.layerFromConfig))
 * const MainLive = DatabaseLive.pipe(Layer.provideMerge(LoggerLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig = (config: PoolConfig, options?: Options): Layer.Layer<never, PoolConfigError> => {
  const redact = [...(options?.redact ?? []), config.password]
  const minimumLogLevel = config.logLevel ?? options?.minimumLogLevel
  if (config.logFile === undefined) return layerSilent({ minimumLogLevel })
  return layerNamed(config.logFile, { ...options, redact, minimumLogLevel }, config.settingNames.logFile)
}
