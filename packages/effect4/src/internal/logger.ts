/**
 * The JSON-lines file logger's machinery: a formatter that redacts every string before serialising, a log file
 * that never throws into the program, and the routing of the pool's own events (file and level).
 *
 * @internal
 */
import { Settings } from "@effect-pg-pool/engine"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as References from "effect/References"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { PoolConfig } from "../PoolConfig.js"
import { PoolConfigError } from "../PoolError.js"

/** The secrets given as text. @internal */
export const secretsOf = (
  redact: Iterable<Redacted.Redacted<string> | string | undefined> | undefined
): Array<string> => {
  const secrets: Array<string> = []
  for (const secret of redact ?? []) {
    const text = secret === undefined ? undefined : Redacted.isRedacted(secret) ? Redacted.value(secret) : secret
    if (text !== undefined && text !== "") secrets.push(text)
  }
  return secrets
}

const MAX_DEPTH = 8

/** JSON data of any value, every string (keys included) redacted; errors keep name, message and stack. */
const toJson = (value: unknown, redact: (text: string) => string, depth = 0, seen = new Set<object>()): unknown => {
  if (typeof value === "string") return redact(value)
  if (typeof value === "bigint") return `${value}`
  if (value === null || typeof value !== "object") return typeof value === "function" ? undefined : value
  if (depth >= MAX_DEPTH || seen.has(value)) return "[…]"
  seen.add(value)
  try {
    if (value instanceof Error) {
      return toJson({ name: value.name, message: value.message, stack: value.stack }, redact, depth + 1, seen)
    }
    if (Redacted.isRedacted(value)) return "<redacted>"
    if (value instanceof Date) return value.toISOString()
    if (Array.isArray(value)) return value.map((item) => toJson(item, redact, depth + 1, seen))
    const json = (value as { toJSON?: unknown }).toJSON
    if (typeof json === "function") return toJson(json.call(value), redact, depth + 1, seen)
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) out[redact(key)] = toJson(item, redact, depth + 1, seen)
    return out
  } finally {
    seen.delete(value)
  }
}

/** The JSON-lines formatter, with a redactor. @internal */
export const formatter = (redact: (text: string) => string): Logger.Logger<unknown, string> =>
  Logger.make(({ cause, date, fiber, logLevel, message }) => {
    const messages = Array.isArray(message) ? message : [message]
    const entry: Record<string, unknown> = {
      timestamp: date.toISOString(),
      level: logLevel,
      message: toJson(messages.length === 1 ? messages[0] : messages, redact),
      annotations: toJson(fiber.getRef(References.CurrentLogAnnotations), redact)
    }
    if (cause.reasons.length > 0) entry.cause = redact(Cause.pretty(cause))
    return JSON.stringify(entry)
  })

/** The error for a log file that cannot be opened, naming the setting as the configuration wrote it. */
const openError = (path: string, cause: unknown, setting: string) =>
  new PoolConfigError({
    issues: [
      {
        field: "logFile",
        env: Settings.envOf.logFile,
        setting,
        value: path,
        message:
          `${setting} (${path}) cannot be opened for appending (${cause instanceof Error ? cause.message : String(cause)}): ` +
          `point it to a file in a writable directory, or unset it`
      }
    ]
  })

/**
 * A logger appending to `path` (created with its directories), closed with the scope; `setting` names the path
 * in the error as the user gave it (`DB_POOL_LOG_FILE`, `logFile`, `the log file`).
 *
 * @internal
 */
export const openLogFile = (
  path: string,
  options: { readonly redact?: Iterable<Redacted.Redacted<string> | string | undefined> | undefined } | undefined,
  setting: string
): Effect.Effect<Logger.Logger<unknown, void>, PoolConfigError, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.try({
        try: () => {
          Fs.mkdirSync(Path.dirname(path), { recursive: true })
          return Fs.openSync(path, "a")
        },
        catch: (cause) => openError(path, cause, setting)
      }),
      (fd) => Effect.sync(() => Fs.closeSync(fd))
    ),
    (fd) => {
      const format = formatter(Settings.makeRedactor(secretsOf(options?.redact)))
      const logger = Logger.make((entry) => {
        try {
          Fs.writeSync(fd, `${format.log(entry)}\n`)
        } catch {
          // a full disk must not crash the program nor reach stdout
        }
      })
      return logger
    }
  )

/**
 * How the pool's own fibers log, from its configuration: to `logFile` (opened here, closed with the scope) and
 * nowhere else, at `logLevel` when set. Applied around the pool's construction, it reaches every fiber the pool
 * forks (they take their services from the fiber that built the pool), whatever the layers around it.
 *
 * @internal
 */
export const poolLogging = (
  config: PoolConfig
): Effect.Effect<<A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>, PoolConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const level = config.logLevel
    const leveled = <A, E, R>(self: Effect.Effect<A, E, R>) =>
      level === undefined ? self : Effect.provideService(self, References.MinimumLogLevel, level)
    if (config.logFile === undefined) return leveled
    const redact = config.password === undefined ? [] : [config.password]
    const logger = yield* openLogFile(config.logFile, { redact }, config.settingNames.logFile)
    const loggers = new Set([logger])
    return <A, E, R>(self: Effect.Effect<A, E, R>) =>
      leveled(Effect.provideService(self, Logger.CurrentLoggers, loggers))
  })
