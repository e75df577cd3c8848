// Ported from the Effect 3 edition's PoolLogger.test.ts: the file layers (console loggers out, others kept, the
// file and its directories created, redaction, the level), the environment's layer, and the pool's own routing.
import { Db, PoolError, PoolLogger } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Cause, ConfigProvider, Console, Effect, Exit, Layer, Logger, Option, Redacted, References } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll } from "vitest"
import { uniqueAppName } from "./utils/pools.js"
import * as InternalLogger from "../src/internal/logger.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

/** A fresh directory, removed with the test's scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "e4-pool-logger-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const readLines = (path: string): Array<Record<string, any>> =>
  Fs.readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line))

const currentLoggers = Effect.gen(function* () {
  return yield* Logger.CurrentLoggers
})

const withEnv = (env: Record<string, string>) =>
  Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

const configError = (exit: Exit.Exit<unknown, unknown>) => {
  const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
  return error instanceof PoolError.PoolConfigError ? error : assert.fail(`expected a PoolConfigError: ${error}`)
}

describe("PoolLogger", () => {
  it.effect("writes one JSON object per line: timestamp, level, fiber, message, annotations at the top, spans", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      yield* Effect.logWarning("connection closed").pipe(
        Effect.annotateLogs({ pool: "orders", connectionId: 7, reason: "broken", level: "clashes with a field" }),
        Effect.withLogSpan("shutdown"),
        Effect.provide(PoolLogger.layer(path))
      )
      const lines = readLines(path)
      assert.strictEqual(lines.length, 1)
      const line = lines[0]!
      assert.strictEqual(line.message, "connection closed")
      assert.strictEqual(line.level, "WARN")
      assert.match(line.fiberId, /^#\d+$/)
      assert.strictEqual(new Date(line.timestamp).toISOString(), line.timestamp)
      assert.strictEqual(line.pool, "orders")
      assert.strictEqual(line.connectionId, 7)
      assert.strictEqual(line.reason, "broken")
      // an annotation named like a field of the line does not overwrite it
      assert.deepStrictEqual(line.annotations, { level: "clashes with a field" })
      assert.deepStrictEqual(Object.keys(line.spans), ["shutdown"])
      assert.isNumber(line.spans.shutdown)
    }).pipe(Effect.scoped)
  )

  it.effect("keeps the stack of an Error logged as a message and of a logged Cause", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      const died = yield* Effect.exit(Effect.die(new Error("kaboom")))
      yield* Effect.gen(function* () {
        yield* Effect.logError("query failed", new Error("boom", { cause: new Error("root cause") }))
        yield* Effect.logError("crashed", Exit.isFailure(died) ? died.cause : Cause.empty)
        yield* Effect.logWarning(Cause.fail(new PoolError.PoolClosed({ poolName: "orders" })))
        yield* Effect.log("figures", { active: 3, idle: 1 })
        yield* Effect.log("traced").pipe(Effect.withSpan("request"))
      }).pipe(Effect.provide(PoolLogger.layer(path)))
      const [error, crash, closed, figures, traced] = readLines(path)

      assert.strictEqual(error!.message, "query failed")
      assert.strictEqual(error!.exception.name, "Error")
      assert.strictEqual(error!.exception.message, "boom")
      assert.include(error!.exception.stack, "Error: boom\n    at ")
      assert.include(error!.exception.stack, "PoolLogger.test.ts")
      assert.strictEqual(error!.exception.cause.message, "root cause")

      assert.strictEqual(crash!.message, "crashed")
      assert.include(crash!.cause, "Error: kaboom")
      assert.include(crash!.cause, "PoolLogger.test.ts")

      // a Cause alone: the message is its error's
      assert.include(closed!.message, `The database pool "orders" is shutting down or closed`)
      assert.include(closed!.cause, "PoolClosed")

      assert.strictEqual(figures!.message, "figures")
      assert.deepStrictEqual(figures!.details, { active: 3, idle: 1 })

      assert.isString(traced!.traceId)
      assert.isString(traced!.spanId)
    }).pipe(Effect.scoped)
  )

  it.effect("replaces Effect's console loggers and keeps the others (the tracer's, yours)", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      const mine = Logger.make(() => {})
      const inside = yield* currentLoggers.pipe(
        Effect.provide(PoolLogger.layer(path)),
        Effect.provide(Logger.layer([mine], { mergeWithExisting: true }))
      )
      assert.isFalse(inside.has(Logger.defaultLogger))
      assert.isTrue(inside.has(mine))
      assert.isTrue(inside.has(Logger.tracerLogger))
      assert.strictEqual(inside.size, 3, "the tracer's, mine and the file logger")
      for (const consoleLogger of [Logger.consoleJson, Logger.consoleLogFmt, Logger.consoleStructured]) {
        const loggers = yield* currentLoggers.pipe(
          Effect.provide(PoolLogger.layer(path)),
          Effect.provide(Logger.layer([consoleLogger], { mergeWithExisting: true }))
        )
        assert.isFalse(loggers.has(consoleLogger))
        assert.strictEqual(loggers.size, 2, "the tracer's and the file logger")
      }
      const silent = yield* currentLoggers.pipe(Effect.provide(PoolLogger.layerSilent))
      assert.deepStrictEqual([...silent], [Logger.tracerLogger])
    }).pipe(Effect.scoped)
  )

  it.effect("appends to an existing file, and creates a missing one with its directories", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "a", "b", "c", "pool.jsonl")
      yield* Effect.log("first run").pipe(Effect.provide(PoolLogger.layer(path)))
      yield* Effect.log("second run").pipe(Effect.provide(PoolLogger.layer(path)))
      assert.deepStrictEqual(
        readLines(path).map((line) => line.message),
        ["first run", "second run"]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("never writes a password it was given, in any form, nor the password of any postgres URL", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      const password = "s3cr3t-PW-xyz"
      const awkward = `qu"o\\te/d@pw`
      yield* Effect.gen(function* () {
        yield* Effect.log(`authenticating with ${password}`).pipe(
          Effect.annotateLogs({
            url: "postgres://app:an0ther-pass@db.internal:5432/app",
            keyword: "host=db password=kw-pass-123 sslpassword='ssl-pass-4' dbname=app",
            nested: { list: [password, { deeper: `x${password}x` }] },
            [`key-${password}`]: 1,
            encoded: encodeURIComponent(awkward),
            awkward
          })
        )
        yield* Effect.logError("failed", new Error(`could not connect to postgres://app:${password}@db/app`))
        yield* Effect.logError(Cause.die(new Error(`stack holds ${awkward}`)))
        yield* Effect.log(Redacted.make(password), password)
      }).pipe(Effect.provide(PoolLogger.layer(path, { redact: [Redacted.make(password), awkward, undefined] })))
      const text = Fs.readFileSync(path, "utf8")
      assert.strictEqual(readLines(path).length, 4)
      for (const secret of [
        password,
        "an0ther-pass",
        "kw-pass-123",
        "ssl-pass-4",
        awkward,
        JSON.stringify(awkward).slice(1, -1)
      ]) {
        assert.notInclude(text, secret)
        assert.notInclude(text, encodeURIComponent(secret))
      }
      assert.include(text, "postgres://app:***@db.internal:5432/app")
      assert.include(text, "authenticating with ***")
    }).pipe(Effect.scoped)
  )

  it.effect("minimumLogLevel lowers (or raises) the level logged for the whole program", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const logBoth = Effect.andThen(Effect.logDebug("debug line"), Effect.logInfo("info line"))
      yield* logBoth.pipe(Effect.provide(PoolLogger.layer(Path.join(dir, "default.jsonl"))))
      yield* logBoth.pipe(Effect.provide(PoolLogger.layer(Path.join(dir, "debug.jsonl"), { minimumLogLevel: "Debug" })))
      yield* logBoth.pipe(Effect.provide(PoolLogger.layer(Path.join(dir, "warn.jsonl"), { minimumLogLevel: "Warn" })))
      const messages = (file: string) => readLines(Path.join(dir, file)).map((line) => line.message)
      assert.deepStrictEqual(messages("default.jsonl"), ["info line"])
      assert.deepStrictEqual(messages("debug.jsonl"), ["debug line", "info line"])
      assert.deepStrictEqual(messages("warn.jsonl"), [])
    }).pipe(Effect.scoped)
  )

  it.effect("layerFromEnv: DB_POOL_LOG_FILE and DB_POOL_LOG_LEVEL, redacting DATABASE_URL's and PGPASSWORD's", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "logs", "pool.jsonl")
      yield* Effect.logDebug("url-pass/1 pg-pass-2 url-pass%2F1").pipe(
        Effect.provide(PoolLogger.layerFromEnv()),
        withEnv({
          DB_POOL_LOG_FILE: path,
          DB_POOL_LOG_LEVEL: "debug",
          DATABASE_URL: "postgres://app:url-pass%2F1@db:5432/app",
          PGPASSWORD: "pg-pass-2"
        })
      )
      assert.deepStrictEqual(
        readLines(path).map((line) => line.message),
        ["*** *** ***"]
      )
      const loggers = yield* currentLoggers.pipe(Effect.provide(PoolLogger.layerFromEnv()), withEnv({}))
      assert.deepStrictEqual([...loggers], [Logger.tracerLogger], "no file: nowhere, and not to the console")
    }).pipe(Effect.scoped)
  )

  it.effect.skipIf(!Fs.existsSync("/dev/full"))("a failing disk never fails the program", () =>
    Effect.gen(function* () {
      // every write to /dev/full fails with ENOSPC
      const result = yield* Effect.gen(function* () {
        for (let i = 0; i < 100; i++) yield* Effect.log(`line ${i}`)
        return 42
      }).pipe(Effect.provide(PoolLogger.layer("/dev/full")), Effect.exit)
      assert.deepStrictEqual(result, Exit.succeed(42))
    }).pipe(Effect.scoped)
  )

  it.effect("says how many lines a failing write lost, in the next line that reaches the file", () =>
    Effect.gen(function* () {
      const file = new InternalLogger.LogFile(Path.join(yield* tempDir, "pool.jsonl"), -1)
      file.write("never written\n")
      file.write("nor this\n")
      file.close()
      // a bad descriptor failed twice; closed, the file is appended by path
      file.write(`${JSON.stringify({ message: "back" })}\n`)
      const [notice, back] = readLines(file.path)
      assert.deepStrictEqual([notice!.level, notice!.event, notice!.lost], ["WARN", "log lines lost", 2])
      assert.strictEqual(notice!.message, "2 log lines were lost")
      assert.strictEqual(back!.message, "back")
    }).pipe(Effect.scoped)
  )

  it.effect("lines logged after the scope closed are still appended", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      // a fiber that outlives the layer keeps the logger it started with, as the pool's background fibers do
      const late = yield* Effect.gen(function* () {
        const loggers = yield* currentLoggers
        yield* Effect.log("inside")
        return loggers
      }).pipe(Effect.provide(PoolLogger.layer(path)))
      // a file opened since may take the closed file's descriptor: nothing of the late line may land in it
      const other = Path.join(path, "..", "other.txt")
      const fd = Fs.openSync(other, "a")
      yield* Effect.provideService(Effect.log("after close"), Logger.CurrentLoggers, late)
      Fs.closeSync(fd)
      assert.deepStrictEqual(
        readLines(path).map((line) => line.message),
        ["inside", "after close"]
      )
      assert.strictEqual(Fs.readFileSync(other, "utf8"), "")
    }).pipe(Effect.scoped)
  )

  it.effect("fails with PoolConfigError naming the setting when the file cannot be opened or the level is wrong", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const blocker = Path.join(dir, "not-a-directory")
      Fs.writeFileSync(blocker, "")
      const path = Path.join(blocker, "logs", "pool.jsonl")
      const direct = configError(yield* Effect.exit(Effect.provide(Effect.void, PoolLogger.layer(path))))
      assert.include(direct.message, `the log file (${path}) cannot be opened for appending`)
      const fromEnv = configError(
        yield* Effect.exit(
          Effect.provide(Effect.void, PoolLogger.layerFromEnv()).pipe(withEnv({ DB_POOL_LOG_FILE: path }))
        )
      )
      assert.include(fromEnv.message, `DB_POOL_LOG_FILE (${path}) cannot be opened for appending`)
      const badLevel = configError(
        yield* Effect.exit(
          Effect.provide(Effect.void, PoolLogger.layerFromEnv()).pipe(withEnv({ DB_POOL_LOG_LEVEL: "loud" }))
        )
      )
      assert.include(badLevel.message, "DB_POOL_LOG_LEVEL (loud) must be trace, debug, info")
    }).pipe(Effect.scoped)
  )
})

describe("PoolLogger with a pool", () => {
  /** The pool's own events, captured by a logger installed around the layer (the program's). */
  const poolEvents = (options: Db.DbOptions, programLevel?: "Info" | "Debug") =>
    Effect.gen(function* () {
      const lines: Array<{ level: string; message: unknown; pool: unknown }> = []
      const capture = Logger.make(({ fiber, logLevel, message }) => {
        const pool = fiber.getRef(References.CurrentLogAnnotations).pool
        lines.push({ level: logLevel, message: Array.isArray(message) ? message[0] : message, pool })
      })
      const name = uniqueAppName("level")
      yield* Db.withConnection((sql) => sql`SELECT 1 AS one`).pipe(
        Effect.provide(Db.layer({ url: Redacted.make(server.url), name, minSize: 2, ...options })),
        Effect.provide(Logger.layer([capture])),
        programLevel === undefined ? (self) => self : Effect.provideService(References.MinimumLogLevel, programLevel)
      )
      return lines.filter((line) => line.pool === name)
    })

  it.live("logLevel sets the lowest level of the pool's own events; without it, the program's applies", () =>
    Effect.gen(function* () {
      const debug = yield* poolEvents({ logLevel: "Debug" })
      assert.strictEqual(debug.filter((line) => line.message === "connection opened").length, 2)
      assert.isTrue(debug.every((line) => line.level !== "Debug" || line.message !== "pool ready"))

      const quiet = yield* poolEvents({ logLevel: "Warn" }, "Debug")
      assert.deepStrictEqual(
        quiet.filter((line) => line.level === "Debug" || line.level === "Info"),
        [],
        "Warn drops the Info and Debug events even in a program at Debug"
      )

      const byDefault = yield* poolEvents({})
      assert.isTrue(byDefault.some((line) => line.message === "pool ready"))
      assert.isFalse(byDefault.some((line) => line.level === "Debug"))
      const programDebug = yield* poolEvents({}, "Debug")
      assert.strictEqual(programDebug.filter((line) => line.message === "connection opened").length, 2)
    })
  )

  it.live("with logFile and logLevel, the pool's events go to that file, once however PoolLogger is wired", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const mine: Array<string> = []
      const capture = Logger.make(({ fiber, message }) => {
        if (fiber.getRef(References.CurrentLogAnnotations).pool !== undefined) mine.push(String(message))
      })
      const printed: Array<string> = []
      const print = (...args: ReadonlyArray<unknown>) => void printed.push(args.map(String).join(" "))
      const testConsole = { ...globalThis.console, log: print, info: print, warn: print, error: print, debug: print }
      const run = (wire: (db: Layer.Layer<Db.Db, unknown>, path: string) => Layer.Layer<Db.Db, unknown>) =>
        Effect.gen(function* () {
          const name = uniqueAppName("file")
          const path = Path.join(dir, name, "events.jsonl")
          const DbLive = Db.layer({
            url: Redacted.make(server.url),
            name,
            minSize: 2,
            logFile: path,
            logLevel: "Debug"
          })
          yield* Db.withConnection((sql) => sql`SELECT 1 AS one`).pipe(
            Effect.provide(wire(DbLive, path)),
            Effect.provide(Logger.layer([capture, Logger.defaultLogger])),
            // Effect's console loggers write through the Console service: capture what would reach stdout
            Effect.provideService(Console.Console, testConsole)
          )
          const lines = readLines(path)
          assert.isTrue(lines.every((line) => line.pool === name))
          assert.notInclude(Fs.readFileSync(path, "utf8"), server.password)
          return lines.map((line) => line.message)
        })
      const wirings = {
        alone: (db: Layer.Layer<Db.Db, unknown>) => db,
        merged: (db: Layer.Layer<Db.Db, unknown>, path: string) => Layer.merge(db, PoolLogger.layer(path)),
        sequential: (db: Layer.Layer<Db.Db, unknown>, path: string) =>
          db.pipe(Layer.provideMerge(PoolLogger.layer(path)))
      }
      for (const [wiring, wire] of Object.entries(wirings)) {
        const events = yield* run(wire)
        assert.strictEqual(events.filter((event) => event === "connection opened").length, 2, wiring)
        assert.strictEqual(events.filter((event) => event === "pool starting").length, 1, wiring)
        assert.strictEqual(events.at(-1), "pool shut down", wiring)
      }
      // a logger of the program's that does not write to the console keeps receiving the pool's events
      assert.include(mine, "pool ready")
      assert.deepStrictEqual(printed, [])
    }).pipe(Effect.scoped)
  )
})
