/**
 * The pool's logs as JSON lines in a file, and nothing on stdout or stderr: an MCP server on stdio dies of a stray
 * line. One JSON object per line with the time, level, message, annotations (the pool name, connection ids,
 * durations…) and the cause with its stack; passwords are masked in every line.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import { redactText } from "./internal/config.js"
import { PoolConfigError } from "./PoolError.js"

/**
 * @example
 * ```ts
 * import type { PoolLogger } from "@effect-pg-pool/effect4"
 *
 * const options: PoolLogger.Options = {
 *   redact: ["s3cret-password"]
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Secrets to mask in every line, besides the passwords of URLs. */
  readonly redact?: ReadonlyArray<string> | undefined
}

const stringify = (value: unknown): unknown => {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack }
  return value
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
export const jsonLineLogger = (options?: Options): Logger.Logger<unknown, string> =>
  Logger.make(({ cause, date, fiber, logLevel, message }) => {
    const annotations: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) {
      annotations[key] = stringify(value)
    }
    const messages = Array.isArray(message) ? message : [message]
    const entry: Record<string, unknown> = {
      timestamp: date.toISOString(),
      level: logLevel,
      message: messages.length === 1 ? stringify(messages[0]) : messages.map(stringify),
      annotations
    }
    if (cause.reasons.length > 0) entry.cause = Cause.pretty(cause)
    let line = JSON.stringify(entry)
    for (const secret of options?.redact ?? []) line = redactText(line, secret)
    return redactText(line, undefined)
  })

/**
 * A logger appending JSON lines to `path` (created if missing), closed with the scope; fails with
 * `PoolConfigError` naming `DB_POOL_LOG_FILE` when the file cannot be opened.
 *
 * @example
 * ```ts
 * import { PoolLogger } from "@effect-pg-pool/effect4"
 * import { Effect } from "effect"
 *
 * const program = Effect.scoped(Effect.flatMap(PoolLogger.make("/tmp/pool.log"), (logger) => Effect.log("ready")))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  path: string,
  options?: Options
): Effect.Effect<Logger.Logger<unknown, void>, PoolConfigError, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.try({
        try: () => Fs.openSync(path, "a"),
        catch: (cause) =>
          new PoolConfigError({
            issues: [
              {
                field: "logFile",
                env: "DB_POOL_LOG_FILE",
                setting: "logFile",
                value: path,
                message: `logFile (${path}) cannot be opened for appending: ${String(cause)}; fix the path or its permissions`
              }
            ]
          })
      }),
      (fd) => Effect.sync(() => Fs.closeSync(fd))
    ),
    (fd) => {
      const format = jsonLineLogger(options)
      return Logger.make((entry) => {
        try {
          Fs.writeSync(fd, `${format.log(entry)}\n`)
        } catch {
          // a full disk must not crash the program nor reach stdout
        }
      })
    }
  )

/**
 * Replaces every logger of the program with the JSON-lines file logger: nothing reaches stdout or stderr.
 *
 * @example
 * ```ts
 * import { DatabaseLive, PoolLogger } from "@effect-pg-pool/effect4"
 * import { Layer } from "effect"
 *
 * const AppLive = DatabaseLive.pipe(Layer.provide(PoolLogger.layer("/var/log/app/pool.jsonl")))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (path: string, options?: Options): Layer.Layer<never, PoolConfigError> =>
  Logger.layer([make(path, options)])

/**
 * Removes every logger: a program that must print nothing and keeps no log.
 *
 * @example
 * ```ts
 * import { PoolLogger } from "@effect-pg-pool/effect4"
 *
 * import { Layer } from "effect"
 *
 * const Quiet: Layer.Layer<never> = PoolLogger.layerSilent
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSilent: Layer.Layer<never> = Logger.layer([])
