/**
 * The JSON-lines file logger's machinery: the Effect 3 edition's line format, every string redacted before it is
 * serialised, a log file
 * that never throws into the program, and the routing of the pool's own events (file and level).
 *
 * @internal
 */
import { LogJson, Settings } from "@effect-pg-pool/engine"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as References from "effect/References"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { PoolConfig } from "../PoolConfig.js"
import { PoolConfigError } from "../PoolError.js"

/** Effect's loggers that write to the console; the ones `Logger.consolePretty()` makes are new each call. */
const consoleLoggers: ReadonlySet<Logger.Logger<unknown, any>> = new Set([
  Logger.defaultLogger,
  Logger.consoleJson,
  Logger.consoleLogFmt,
  Logger.consoleStructured
])

/** The loggers but Effect's console ones. @internal */
export const withoutConsole = (loggers: ReadonlySet<Logger.Logger<unknown, any>>): Set<Logger.Logger<unknown, any>> =>
  new Set([...loggers].filter((logger) => !consoleLoggers.has(logger)))

/** Which file each file logger appends to, so that a fiber's loggers never hold two writing the same file. */
const fileOf = new WeakMap<Logger.Logger<unknown, any>, string>()

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

const RESERVED = LogJson.reserved

const { errorJson, toJson } = LogJson.make(Redacted.isRedacted)

const causeMessage = (cause: Cause.Cause<unknown>): string => {
  if (Cause.hasInterruptsOnly(cause)) return "interrupted"
  const squashed = Cause.squash(cause)
  if (squashed instanceof Error) return squashed.message
  if (typeof squashed === "string") return squashed
  try {
    return JSON.stringify(squashed) ?? String(squashed)
  } catch {
    return String(squashed)
  }
}

/**
 * One log event as one JSON line (without the newline), as the Effect 3 edition writes it: timestamp, level, fiber
 * id, message, the annotations at the top level (an annotation whose name is taken by one of those goes under
 * `annotations`), spans with their elapsed milliseconds, the current trace and span ids, errors logged as messages
 * under `exception` (with their stacks), other message parts under `details`, and the cause, rendered with its
 * stacks. Every string is redacted before serialising.
 *
 * @internal
 */
export const formatter = (redact: (text: string) => string): Logger.Logger<unknown, string> =>
  Logger.make(({ cause, date, fiber, logLevel, message }) => {
    const seen = new Set<object>()
    const texts: Array<string> = []
    const errors: Array<unknown> = []
    const details: Array<unknown> = []
    for (const part of Array.isArray(message) ? message : [message]) {
      if (typeof part === "string") texts.push(part)
      else if (typeof part === "number" || typeof part === "boolean" || typeof part === "bigint") {
        texts.push(String(part))
      } else if (part instanceof Error) {
        errors.push(errorJson(part, redact, 0, seen))
        if (texts.length === 0) texts.push(part.message)
      } else if (part !== undefined) details.push(toJson(part, redact, 0, seen))
    }
    const hasCause = cause.reasons.length > 0
    let text = texts.join(" ")
    if (text === "" && hasCause) text = causeMessage(cause)
    const line: Record<string, unknown> = {
      timestamp: date.toISOString(),
      // the Effect 3 edition's labels (its LogLevel's), so that one reader serves both editions' files
      level: logLevel.toUpperCase(),
      fiberId: `#${fiber.id}`,
      message: redact(text)
    }
    let clashing: Record<string, unknown> | undefined
    for (const [key, value] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) {
      const json = toJson(value, redact, 0, seen)
      if (RESERVED.has(key)) (clashing ??= {})[redact(key)] = json
      else line[redact(key)] = json
    }
    if (clashing !== undefined) line.annotations = clashing
    if (details.length > 0) line.details = details.length === 1 ? details[0] : details
    if (errors.length === 1) line.exception = errors[0]
    else if (errors.length > 1) line.exceptions = errors
    if (hasCause) line.cause = redact(Cause.pretty(cause))
    const spans = fiber.getRef(References.CurrentLogSpans)
    if (spans.length > 0) {
      const now = date.getTime()
      const spansJson: Record<string, number> = {}
      for (const [label, startTime] of spans) spansJson[redact(label)] = now - startTime
      line.spans = spansJson
    }
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span !== undefined) {
      line.traceId = span.traceId
      line.spanId = span.spanId
    }
    return JSON.stringify(line)
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
 * Creates `dir` and its missing parents, one `mkdir` each: Node 20's recursive `mkdirSync` never returns for a
 * path it cannot create under some pseudo file systems (`/proc/x/logs` spins at full CPU).
 */
const makeDirectories = (dir: string): void => {
  if (Fs.existsSync(dir)) return
  makeDirectories(Path.dirname(dir))
  try {
    Fs.mkdirSync(dir)
  } catch (error) {
    if ((error as { code?: unknown }).code !== "EEXIST") throw error
  }
}

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
          makeDirectories(Path.dirname(path))
          return new LogFile(path, Fs.openSync(path, "a"))
        },
        catch: (cause) => openError(path, cause, setting)
      }),
      (file) => Effect.sync(() => file.close())
    ),
    (file) => {
      const format = formatter(Settings.makeRedactor(secretsOf(options?.redact)))
      const logger = Logger.make((entry) => file.write(`${format.log(entry)}\n`))
      fileOf.set(logger, Path.resolve(path))
      return logger
    }
  )

const droppedNotice = (count: number, reason: string | undefined): string =>
  `${JSON.stringify({
    timestamp: new Date().toISOString(),
    level: "WARN",
    fiberId: "",
    message: `${count} log line${count === 1 ? " was" : "s were"} lost`,
    event: "log lines lost",
    lost: count,
    ...(reason === undefined ? {} : { reason })
  })}\n`

/**
 * An append-only log file, written synchronously (a line is on the file when the log call returns). A failing
 * disk never throws into the program: the line is dropped and counted, and the next line that reaches the file is
 * led by a notice of how many were lost. Lines logged after the file is closed (by fibers that outlive its scope,
 * as the pool's background fibers may) are appended by path, never written to a descriptor that may since have
 * been reused.
 *
 * @internal
 */
export class LogFile {
  private droppedSinceNotice = 0
  private lastError: string | undefined
  constructor(
    readonly path: string,
    private fd: number | undefined
  ) {}

  write(line: string): void {
    const data = (this.droppedSinceNotice > 0 ? droppedNotice(this.droppedSinceNotice, this.lastError) : "") + line
    try {
      if (this.fd === undefined) Fs.appendFileSync(this.path, data)
      else Fs.writeSync(this.fd, data)
      this.droppedSinceNotice = 0
    } catch (error) {
      // a full disk must not crash the program nor reach stdout
      this.droppedSinceNotice++
      this.lastError = error instanceof Error ? error.message : String(error)
    }
  }

  close(): void {
    if (this.fd === undefined) return
    const fd = this.fd
    this.fd = undefined
    try {
      Fs.closeSync(fd)
    } catch {
      // already closed: nothing to release
    }
  }
}

/**
 * How the pool's own fibers log, from its configuration: to `logFile` (opened here, closed with the scope) and
 * never to the console, at `logLevel` when set. Applied around the pool's construction, it reaches every fiber the pool
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
    const path = fileOf.get(logger)
    // the console loggers and any other logger of the same file (a PoolLogger layer the pool is built under) give
    // way to the pool's; the rest (the tracer's, OpenTelemetry's, yours) stay
    return <A, E, R>(self: Effect.Effect<A, E, R>) =>
      leveled(
        Effect.flatMap(Effect.service(Logger.CurrentLoggers), (current) => {
          const loggers = withoutConsole(current)
          for (const other of loggers) if (fileOf.get(other) === path) loggers.delete(other)
          return Effect.provideService(self, Logger.CurrentLoggers, loggers.add(logger))
        })
      )
  })
