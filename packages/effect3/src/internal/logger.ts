/**
 * The file logger's machinery: a JSON-lines formatter that keeps error stacks and removes secrets, and an
 * append-only log file whose writes are batched and asynchronous, that never throws into the program, and
 * that is drained synchronously when it closes.
 *
 * @internal
 */
import { LogJson, Settings } from "@effect-pg-pool/engine"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashSet from "effect/HashSet"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { PoolConfig } from "../PoolConfig.js"
import { PoolConfigError } from "../PoolError.js"

// ---------------------------------------------------------------------------------------------------------
// the loggers that write to the console
// ---------------------------------------------------------------------------------------------------------

let consoleLoggersCache: ReadonlyArray<Logger.Logger<unknown, any>> | undefined

/**
 * Effect's console loggers: `defaultLogger`, the pretty logger `NodeRuntime.runMain` swaps in for it, and the
 * ones the `Logger.json`, `Logger.logFmt`, `Logger.pretty` and `Logger.structured` layers install. Those last
 * instances are not exported, so they are read off the layers themselves, once.
 *
 * @internal
 */
export const consoleLoggers = (): ReadonlyArray<Logger.Logger<unknown, any>> => {
  if (consoleLoggersCache !== undefined) return consoleLoggersCache
  const found = new Set<Logger.Logger<unknown, any>>([Logger.defaultLogger, Logger.prettyLoggerDefault])
  const before = Effect.runSync(FiberRef.get(FiberRef.currentLoggers))
  for (const layer of [Logger.json, Logger.logFmt, Logger.pretty, Logger.structured]) {
    const installed = Effect.runSync(Effect.provide(FiberRef.get(FiberRef.currentLoggers), layer))
    for (const logger of installed) if (!HashSet.has(before, logger)) found.add(logger)
  }
  consoleLoggersCache = [...found]
  return consoleLoggersCache
}

/** @internal */
export const withoutConsoleLoggers = (
  loggers: HashSet.HashSet<Logger.Logger<unknown, any>>
): HashSet.HashSet<Logger.Logger<unknown, any>> => {
  let out = loggers
  for (const logger of consoleLoggers()) out = HashSet.remove(out, logger)
  return out
}

// ---------------------------------------------------------------------------------------------------------
// secrets
// ---------------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------------
// the pool's log level and log file (read and validated by the engine's Settings, carried out here)
// ---------------------------------------------------------------------------------------------------------

const LOG_LEVELS: { readonly [K in Settings.LogLevel]: LogLevel.LogLevel } = {
  All: LogLevel.All,
  Trace: LogLevel.Trace,
  Debug: LogLevel.Debug,
  Info: LogLevel.Info,
  Warning: LogLevel.Warning,
  Error: LogLevel.Error,
  Fatal: LogLevel.Fatal,
  None: LogLevel.None
}

/** Effect's `LogLevel` for a level the engine parsed. @internal */
export const logLevelOf = (level: Settings.LogLevel | undefined): LogLevel.LogLevel | undefined =>
  level === undefined ? undefined : LOG_LEVELS[level]

/**
 * A function removing from a string every given secret (plain or percent-encoded), the password of every
 * `postgres://` URL and every `password=` setting: the engine's one redaction (`Settings.makeRedactor`).
 *
 * @internal
 */
export const makeRedactor: (secrets: ReadonlyArray<string>) => (text: string) => string = Settings.makeRedactor

/**
 * The password of a `postgres://` URL (user info runs to the last `@`, as the pool reads it) and of its
 * `password=` parameter.
 *
 * @internal
 */
export const passwordsInUrl: (url: string) => Array<string> = Settings.passwordsInUrl

/** @internal */
export const secretText = (secret: Redacted.Redacted<string> | string | undefined): string | undefined =>
  secret === undefined ? undefined : Redacted.isRedacted(secret) ? Redacted.value(secret) : secret

// ---------------------------------------------------------------------------------------------------------
// formatting
// ---------------------------------------------------------------------------------------------------------

const RESERVED = LogJson.reserved

const { errorJson, toJson } = LogJson.make(Redacted.isRedacted)

const currentSpan = (refs: FiberRefs.FiberRefs): Tracer.AnySpan | undefined => {
  const context = FiberRefs.getOrDefault(refs, FiberRef.currentContext)
  const span = Context.getOption(context, Tracer.ParentSpan)
  return span._tag === "Some" ? span.value : undefined
}

/**
 * One log event as one JSON line (without the newline): timestamp, level, fiber id, message, the annotations
 * at the top level (an annotation whose name is taken by one of those goes under `annotations`), spans with
 * their elapsed milliseconds, the current trace and span ids, errors logged as messages under `exception`
 * (with their stacks), and the cause, rendered with its stacks.
 *
 * @internal
 */
export const formatLine = (options: Logger.Logger.Options<unknown>, redact: (s: string) => string): string => {
  const { annotations, cause, context, date, fiberId, logLevel, message, spans } = options
  const seen = new Set<object>()
  const texts: Array<string> = []
  const errors: Array<unknown> = []
  const details: Array<unknown> = []
  for (const part of Array.isArray(message) ? message : [message]) {
    if (typeof part === "string") texts.push(part)
    else if (typeof part === "number" || typeof part === "boolean" || typeof part === "bigint") texts.push(String(part))
    else if (part instanceof Error) {
      errors.push(errorJson(part, redact, 0, seen))
      if (texts.length === 0) texts.push(part.message)
    } else if (part !== undefined) details.push(toJson(part, redact, 0, seen))
  }
  const hasCause = !Cause.isEmpty(cause)
  let text = texts.join(" ")
  if (text === "" && hasCause) text = causeMessage(cause)

  const line: Record<string, unknown> = {
    timestamp: date.toISOString(),
    level: logLevel.label,
    fiberId: FiberId.threadName(fiberId),
    message: redact(text)
  }
  let clashing: Record<string, unknown> | undefined
  for (const [key, value] of annotations) {
    const json = toJson(value, redact, 0, seen)
    if (RESERVED.has(key)) (clashing ??= {})[redact(key)] = json
    else line[redact(key)] = json
  }
  if (clashing !== undefined) line.annotations = clashing
  if (details.length > 0) line.details = details.length === 1 ? details[0] : details
  if (errors.length === 1) line.exception = errors[0]
  else if (errors.length > 1) line.exceptions = errors
  if (hasCause) line.cause = redact(Cause.pretty(cause, { renderErrorCause: true }))
  if (List.isCons(spans)) {
    const now = date.getTime()
    const spansJson: Record<string, number> = {}
    for (const span of spans) spansJson[redact(span.label)] = now - span.startTime
    line.spans = spansJson
  }
  const span = currentSpan(context)
  if (span !== undefined) {
    line.traceId = span.traceId
    line.spanId = span.spanId
  }
  return JSON.stringify(line)
}

const causeMessage = (cause: Cause.Cause<unknown>): string => {
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  const squashed = Cause.squash(cause)
  if (squashed instanceof Error) return squashed.message
  if (typeof squashed === "string") return squashed
  try {
    return JSON.stringify(squashed) ?? String(squashed)
  } catch {
    return String(squashed)
  }
}

// ---------------------------------------------------------------------------------------------------------
// the file
// ---------------------------------------------------------------------------------------------------------

/**
 * Files still open when the process exits (without closing their scope, e.g. on `process.exit`) are drained
 * synchronously by one shared exit hook: a listener per file would trip Node's listener-leak warning, on
 * stderr.
 */
const openFiles = new Set<LogFile>()
const closeOpenFiles = () => {
  for (const file of [...openFiles]) file.closeNow()
}

/** A failed file is reopened at most this often. */
const reopenIntervalMillis = 1_000

/**
 * An append-only log file. `write` only buffers and schedules; the buffer is written with one asynchronous
 * `write` per batch, so logging never blocks the event loop on the disk. When the disk fails, lines are
 * dropped and counted, never thrown; the next write that succeeds records how many were lost. `close` waits
 * for the write in flight and writes the rest synchronously; lines logged afterwards (by fibers that
 * outlive the scope) are appended synchronously.
 *
 * @internal
 */
export class LogFile {
  private fd: number | undefined
  private buffer: Array<string> = []
  private bufferedBytes = 0
  private writing = false
  private scheduled = false
  private closed = false
  private lastOpenAttempt = 0
  private waiters: Array<() => void> = []
  private droppedSinceNotice = 0
  /** Lines lost to disk failures or to a full buffer, since the file was opened. */
  dropped = 0
  /** The last disk error. */
  lastError: string | undefined = undefined

  /** Holders of this file (the pool's own, `PoolLogger` layers): it closes when the last one lets go. */
  private holders = 1

  private constructor(
    readonly path: string,
    fd: number,
    private readonly maxBufferedBytes: number
  ) {
    this.fd = fd
    openFiles.add(this)
    if (openFiles.size === 1) process.on("exit", closeOpenFiles)
  }

  /**
   * Creates the file and its directories, or reports why it cannot. A file already open under the same path is
   * shared, so that the pool's events and a `PoolLogger` layer's lines reach it in order, through one buffer.
   */
  static open(path: string, maxBufferedBytes: number): LogFile | Error {
    const resolved = Path.resolve(path)
    for (const file of openFiles) {
      if (file.resolved === resolved) {
        file.holders++
        return file
      }
    }
    try {
      makeDirectories(Path.dirname(resolved))
      return new LogFile(path, Fs.openSync(path, "a"), maxBufferedBytes)
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error))
    }
  }

  private get resolved(): string {
    return Path.resolve(this.path)
  }

  write(line: string): void {
    if (this.closed) return this.appendNow(line)
    if (this.bufferedBytes + line.length > this.maxBufferedBytes) {
      this.drop(1, "the log buffer is full: the disk is slower than the logging")
      return
    }
    this.buffer.push(line)
    this.bufferedBytes += line.length
    if (!this.writing && !this.scheduled) {
      this.scheduled = true
      setImmediate(this.flush)
    }
  }

  /**
   * Lets go of the file; the last holder waits for the write in flight (at most 5 s), then writes the rest and
   * closes it.
   */
  close(): Effect.Effect<void> {
    if (--this.holders > 0) return Effect.void
    const drained = Effect.async<void>((resume) => {
      if (!this.writing) return resume(Effect.void)
      this.waiters.push(() => resume(Effect.void))
    })
    return drained.pipe(
      Effect.interruptible,
      Effect.timeoutOption(5_000),
      Effect.zipRight(Effect.sync(() => this.closeNow()))
    )
  }

  /** Writes what is buffered synchronously and closes the file: on scope close, or when the process exits. */
  closeNow(): void {
    if (this.closed) return
    this.closed = true
    openFiles.delete(this)
    if (openFiles.size === 0) process.removeListener("exit", closeOpenFiles)
    this.writeSyncAll()
    if (this.fd !== undefined) {
      try {
        Fs.closeSync(this.fd)
      } catch {
        // the file is gone: nothing left to release
      }
      this.fd = undefined
    }
  }

  private readonly flush = () => {
    this.scheduled = false
    if (this.writing || this.closed) return
    if (this.buffer.length === 0) return this.notifyDrained()
    const fd = this.ensureOpen()
    const batch = this.takeBuffer()
    if (fd === undefined) {
      this.drop(batch.lines, this.lastError ?? "the log file is not open")
      return this.notifyDrained()
    }
    this.writing = true
    writeAll(fd, Buffer.from(batch.data, "utf8"), (error) => {
      this.writing = false
      if (error === undefined) this.droppedSinceNotice -= batch.noticed
      else this.fail(error, batch.lines)
      this.flush()
    })
  }

  /** Empties the buffer into one chunk, led by a notice of the lines lost since the last successful write. */
  private takeBuffer(): { readonly data: string; readonly lines: number; readonly noticed: number } {
    const noticed = this.droppedSinceNotice
    const data = (noticed > 0 ? droppedNotice(noticed, this.lastError) : "") + this.buffer.join("")
    const lines = this.buffer.length
    this.buffer = []
    this.bufferedBytes = 0
    return { data, lines, noticed }
  }

  private writeSyncAll(): void {
    if (this.buffer.length === 0) return
    const fd = this.ensureOpen(true)
    const batch = this.takeBuffer()
    if (fd === undefined) return this.drop(batch.lines, this.lastError ?? "the log file is not open")
    try {
      const data = Buffer.from(batch.data, "utf8")
      for (let offset = 0; offset < data.length; ) offset += Fs.writeSync(fd, data, offset)
      this.droppedSinceNotice -= batch.noticed
    } catch (error) {
      this.fail(error, batch.lines)
    }
  }

  private appendNow(line: string): void {
    try {
      Fs.appendFileSync(this.path, line)
    } catch (error) {
      this.dropped++
      this.lastError = describe(error)
    }
  }

  private ensureOpen(force = false): number | undefined {
    if (this.fd !== undefined) return this.fd
    const now = Date.now()
    if (!force && now - this.lastOpenAttempt < reopenIntervalMillis) return undefined
    this.lastOpenAttempt = now
    try {
      makeDirectories(Path.dirname(Path.resolve(this.path)))
      this.fd = Fs.openSync(this.path, "a")
    } catch (error) {
      this.lastError = describe(error)
    }
    return this.fd
  }

  private fail(error: unknown, lines: number): void {
    this.lastError = describe(error)
    // a descriptor that failed is reopened later: the directory may have been recreated, the disk freed
    if (this.fd !== undefined) {
      try {
        Fs.closeSync(this.fd)
      } catch {
        // already unusable
      }
      this.fd = undefined
      this.lastOpenAttempt = Date.now()
    }
    this.drop(lines, this.lastError)
  }

  private drop(lines: number, reason: string): void {
    this.dropped += lines
    this.droppedSinceNotice += lines
    this.lastError = reason
  }

  private notifyDrained(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const waiter of waiters) waiter()
  }
}

/**
 * Creates `dir` and its missing parents, one `mkdir` each. Node's recursive `mkdirSync` never returns for a path
 * it cannot create under some pseudo file systems (`/proc/x/logs` spins at full CPU): this makes at most one
 * attempt per path component and fails with the first error.
 */
const makeDirectories = (dir: string): void => {
  const missing: Array<string> = []
  for (let current = dir; ; ) {
    try {
      if (Fs.statSync(current).isDirectory()) break
      throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${current}'`), { code: "ENOTDIR" })
    } catch (error) {
      if ((error as { readonly code?: unknown }).code !== "ENOENT") throw error
    }
    missing.push(current)
    const parent = Path.dirname(current)
    if (parent === current) break
    current = parent
  }
  for (const path of missing.reverse()) {
    try {
      Fs.mkdirSync(path)
    } catch (error) {
      if ((error as { readonly code?: unknown }).code !== "EEXIST") throw error
    }
  }
}

const writeAll = (fd: number, data: Buffer, done: (error: unknown) => void, offset = 0): void => {
  if (offset >= data.length) return done(undefined)
  Fs.write(fd, data, offset, data.length - offset, null, (error, written) => {
    if (error) return done(error)
    writeAll(fd, data, done, offset + written)
  })
}

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const droppedNotice = (count: number, reason: string | undefined): string =>
  JSON.stringify({
    timestamp: new Date().toISOString(),
    level: LogLevel.Warning.label,
    fiberId: "",
    message: `${count} log line${count === 1 ? " was" : "s were"} lost`,
    event: "log lines lost",
    lost: count,
    ...(reason === undefined ? {} : { reason })
  }) + "\n"

/** Which file each file logger writes to, so that a logger set never holds two writing the same file. */
const fileOf = new WeakMap<Logger.Logger<unknown, any>, LogFile>()

/** @internal */
export const fileLogger = (file: LogFile, redact: (s: string) => string): Logger.Logger<unknown, void> => {
  const logger = makeFileLogger(file, redact)
  fileOf.set(logger, file)
  return logger
}

const makeFileLogger = (file: LogFile, redact: (s: string) => string): Logger.Logger<unknown, void> =>
  Logger.make((options) => {
    let line: string
    try {
      line = formatLine(options, redact)
    } catch (error) {
      // a value that cannot be rendered must not cost the event
      line = JSON.stringify({
        timestamp: options.date.toISOString(),
        level: options.logLevel.label,
        fiberId: FiberId.threadName(options.fiberId),
        message: redact(String(Array.isArray(options.message) ? options.message[0] : options.message)),
        renderError: redact(describe(error))
      })
    }
    file.write(line + "\n")
  })

/** @internal */
export const defaultMaxBufferedBytes = 8 * 1024 * 1024

/**
 * The error for a log file that cannot be opened, naming the setting as the configuration wrote it.
 *
 * @internal
 */
export const openError = (path: string, error: Error, setting: string) =>
  new PoolConfigError({
    issues: [
      {
        field: "logFile",
        env: Settings.envOf.logFile,
        setting,
        value: path,
        message:
          `${setting} (${path}) cannot be opened for appending (${error.message}): ` +
          `point it to a file in a writable directory, or unset it`
      }
    ]
  })

/**
 * The loggers of a fiber that logs to `file` and never to the console: the console loggers and any other logger
 * of the same file (a `PoolLogger` layer the pool was built under) give way to `logger`; the rest stay.
 *
 * @internal
 */
export const routeTo = (
  loggers: HashSet.HashSet<Logger.Logger<unknown, any>>,
  file: LogFile,
  logger: Logger.Logger<unknown, void>
): HashSet.HashSet<Logger.Logger<unknown, any>> =>
  HashSet.add(
    HashSet.filter(withoutConsoleLoggers(loggers), (other) => fileOf.get(other) !== file),
    logger
  )

/**
 * How the pool's own fibers log, from its configuration: to `logFile` (opened here, closed with the scope) and
 * nowhere else, at `logLevel` when set. Applied around the pool's construction, it reaches every fiber the pool
 * forks — they inherit the loggers of the fiber that built the pool's runtime — whatever the layers around it.
 *
 * @internal
 */
export const poolLogging = (
  config: PoolConfig
): Effect.Effect<<A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>, PoolConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const level = config.logLevel
    const path = config.logFile
    if (path === undefined) {
      return (self) => (level === undefined ? self : Effect.locally(self, FiberRef.currentMinimumLogLevel, level))
    }
    const file = LogFile.open(path, defaultMaxBufferedBytes)
    if (file instanceof Error) return yield* openError(path, file, config.settingNames.logFile)
    yield* Effect.addFinalizer(() => file.close())
    const password = config.password === undefined ? [] : [Redacted.value(config.password)]
    const logger = fileLogger(file, makeRedactor(password))
    return <A, E, R>(self: Effect.Effect<A, E, R>) => {
      const routed = Effect.locallyWith(self, FiberRef.currentLoggers, (loggers) => routeTo(loggers, file, logger))
      return level === undefined ? routed : Effect.locally(routed, FiberRef.currentMinimumLogLevel, level)
    }
  })
