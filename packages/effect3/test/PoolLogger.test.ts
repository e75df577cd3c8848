import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, describe, it, layer } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, FiberRef, HashSet, Layer, Logger, LogLevel, Redacted } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Db from "../src/Db.js"
import { PoolClosed, PoolConfigError } from "../src/PoolError.js"
import * as PoolLogger from "../src/PoolLogger.js"
import { uniqueAppName } from "./utils.js"

/** A fresh directory, removed with the test's scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "pool-logger-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const readLines = (path: string): Array<Record<string, any>> =>
  Fs.readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line))

const currentLoggers = FiberRef.get(FiberRef.currentLoggers)

/** What `NodeRuntime.runMain` leaves installed: its pretty console logger instead of the default one. */
const asUnderRunMain = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.locallyWith(effect, FiberRef.currentLoggers, (loggers) =>
    loggers.pipe(HashSet.remove(Logger.defaultLogger), HashSet.add(Logger.prettyLoggerDefault))
  )

describe("PoolLogger", () => {
  it.scoped("writes one JSON object per line: timestamp, level, fiber, message, annotations at the top, spans", () =>
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
    })
  )

  it.scoped("keeps the stack of an Error logged as a message and of a logged Cause", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      const died = yield* Effect.exit(Effect.die(new Error("kaboom")))
      yield* Effect.gen(function* () {
        yield* Effect.logError("query failed", new Error("boom", { cause: new Error("root cause") }))
        yield* Effect.logError("crashed", Exit.isFailure(died) ? died.cause : Cause.empty)
        yield* Effect.logWarning(Cause.fail(new PoolClosed({ poolName: "orders" })))
        yield* Effect.log("figures", { active: 3, idle: 1 })
      }).pipe(Effect.provide(PoolLogger.layer(path)))
      const [error, crash, closed, figures] = readLines(path)

      assert.strictEqual(error!.message, "query failed")
      assert.strictEqual(error!.exception.name, "Error")
      assert.strictEqual(error!.exception.message, "boom")
      assert.include(error!.exception.stack, "Error: boom\n    at ")
      assert.include(error!.exception.stack, "PoolLogger.test.ts")
      assert.strictEqual(error!.exception.cause.message, "root cause")
      assert.include(error!.exception.cause.stack, "at ")

      assert.strictEqual(crash!.message, "crashed")
      assert.include(crash!.cause, "Error: kaboom")
      assert.include(crash!.cause, "PoolLogger.test.ts")

      // a Cause alone: the message is its error's
      assert.include(closed!.message, `The database pool "orders" is shutting down or closed`)
      assert.include(closed!.cause, "PoolClosed")

      assert.strictEqual(figures!.message, "figures")
      assert.deepStrictEqual(figures!.details, { active: 3, idle: 1 })
    })
  )

  it.scoped("replaces the console loggers — the default one and runMain's pretty one — and keeps the others", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      const mine = Logger.make(() => {})
      const inside = yield* currentLoggers.pipe(
        Effect.provide(PoolLogger.layer(path)),
        Effect.provide(Logger.add(mine)),
        asUnderRunMain
      )
      assert.isFalse(HashSet.has(inside, Logger.prettyLoggerDefault))
      assert.isFalse(HashSet.has(inside, Logger.defaultLogger))
      assert.isTrue(HashSet.has(inside, mine))
      assert.isTrue(HashSet.has(inside, Logger.tracerLogger))
      assert.strictEqual(HashSet.size(inside), 3, "the tracer's, mine and the file logger")

      // the console loggers of Logger.json and friends go too
      for (const consoleLayer of [Logger.json, Logger.logFmt, Logger.structured, Logger.pretty]) {
        const loggers = yield* currentLoggers.pipe(Effect.provide(PoolLogger.layer(path)), Effect.provide(consoleLayer))
        assert.strictEqual(HashSet.size(loggers), 2, "the tracer's and the file logger")
      }
      // and all is back as it was when the layer's scope closes
      const after = yield* asUnderRunMain(currentLoggers)
      assert.isTrue(HashSet.has(after, Logger.prettyLoggerDefault))
    })
  )

  it.scoped("appends to an existing file, and creates a missing one with its directories", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "a", "b", "c", "pool.jsonl")
      yield* Effect.log("first run").pipe(Effect.provide(PoolLogger.layer(path)))
      yield* Effect.log("second run").pipe(Effect.provide(PoolLogger.layer(path)))
      assert.deepStrictEqual(
        readLines(path).map((line) => line.message),
        ["first run", "second run"]
      )
    })
  )

  it.scoped("never writes a password it was given, in any form, nor the password of any postgres URL", () =>
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
        yield* Effect.log(Redacted.make(password), password).pipe(Effect.withLogSpan(`span ${password}`))
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
    })
  )

  it.scoped("minimumLogLevel lowers (or raises) the level logged for the whole program", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const logBoth = Effect.zipRight(Effect.logDebug("debug line"), Effect.logInfo("info line"))
      yield* logBoth.pipe(Effect.provide(PoolLogger.layer(Path.join(dir, "default.jsonl"))))
      yield* logBoth.pipe(Effect.provide(PoolLogger.layer(Path.join(dir, "debug.jsonl"), { minimumLogLevel: "Debug" })))
      yield* logBoth.pipe(
        Effect.provide(PoolLogger.layer(Path.join(dir, "warn.jsonl"), { minimumLogLevel: "Warning" }))
      )
      const messages = (file: string) => readLines(Path.join(dir, file)).map((line) => line.message)
      assert.deepStrictEqual(messages("default.jsonl"), ["info line"])
      assert.deepStrictEqual(messages("debug.jsonl"), ["debug line", "info line"])
      assert.deepStrictEqual(messages("warn.jsonl"), [])
    })
  )

  it.scoped("layerFromEnv: DB_POOL_LOG_FILE and DB_POOL_LOG_LEVEL, redacting DATABASE_URL's and PGPASSWORD's", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "logs", "pool.jsonl")
      const env = new Map([
        ["DB_POOL_LOG_FILE", path],
        ["DB_POOL_LOG_LEVEL", "debug"],
        ["DATABASE_URL", "postgres://app:url-pass%2F1@db:5432/app"],
        ["PGPASSWORD", "pg-pass-2"]
      ])
      yield* Effect.logDebug("url-pass/1 pg-pass-2 url-pass%2F1").pipe(
        Effect.provide(PoolLogger.layerFromEnv()),
        Effect.withConfigProvider(ConfigProvider.fromMap(env))
      )
      assert.deepStrictEqual(
        readLines(path).map((line) => line.message),
        ["*** *** ***"]
      )
    })
  )

  it.scoped("layerFromEnv without DB_POOL_LOG_FILE logs nowhere — and still not to the console", () =>
    Effect.gen(function* () {
      const loggers = yield* currentLoggers.pipe(
        Effect.provide(PoolLogger.layerFromEnv()),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
        asUnderRunMain
      )
      assert.deepStrictEqual([...loggers], [Logger.tracerLogger])
    })
  )

  it.scoped("fails with PoolConfigError naming the setting when the file cannot be opened", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const blocker = Path.join(dir, "not-a-directory")
      Fs.writeFileSync(blocker, "")
      const path = Path.join(blocker, "logs", "pool.jsonl")
      const exit = yield* Effect.exit(Effect.provide(Effect.void, PoolLogger.layer(path)))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(error, PoolConfigError)
      assert.include((error as PoolConfigError).message, `the log file (${path}) cannot be opened for appending`)
      const fromEnv = yield* Effect.exit(
        Effect.provide(Effect.void, PoolLogger.layerFromEnv()).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DB_POOL_LOG_FILE", path]])))
        )
      )
      assert.include(Exit.isFailure(fromEnv) ? Cause.squash(fromEnv.cause) + "" : "", `DB_POOL_LOG_FILE (${path})`)

      const badLevel = yield* Effect.exit(
        Effect.provide(Effect.void, PoolLogger.layerFromEnv()).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DB_POOL_LOG_LEVEL", "loud"]])))
        )
      )
      assert.isTrue(Exit.isFailure(badLevel))
      assert.include(Exit.isFailure(badLevel) ? Cause.squash(badLevel.cause) + "" : "", "DB_POOL_LOG_LEVEL (loud)")
    })
  )

  it.scoped("writes every line when its scope closes, however many were still buffered", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      const count = 20_000
      yield* Effect.gen(function* () {
        for (let i = 0; i < count; i++) yield* Effect.log(`line ${i}`)
      }).pipe(Effect.provide(PoolLogger.layer(path)))
      const lines = readLines(path)
      assert.strictEqual(lines.length, count)
      assert.strictEqual(lines[count - 1]!.message, `line ${count - 1}`)
    })
  )

  it.scoped.skipIf(!Fs.existsSync("/dev/full"))("a failing disk never fails the program", () =>
    Effect.gen(function* () {
      // every write to /dev/full fails with ENOSPC
      const result = yield* Effect.gen(function* () {
        for (let i = 0; i < 100; i++) yield* Effect.log(`line ${i}`)
        return 42
      }).pipe(Effect.provide(PoolLogger.layer("/dev/full")), Effect.exit)
      assert.deepStrictEqual(result, Exit.succeed(42))
    })
  )

  it.scoped("drops what the buffer cannot hold, and says how many lines were lost", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      yield* Effect.gen(function* () {
        for (let i = 0; i < 10; i++) yield* Effect.log(`line ${i} ${"x".repeat(100)}`)
      }).pipe(Effect.provide(PoolLogger.layer(path, { maxBufferedBytes: 500 })))
      const lines = readLines(path)
      const notice = lines.find((line) => line.event === "log lines lost")!
      const kept = lines.filter((line) => line.message.startsWith("line "))
      assert.isAbove(kept.length, 0)
      assert.strictEqual(notice.level, "WARN")
      assert.strictEqual(notice.lost + kept.length, 10)
      assert.strictEqual(notice.message, `${notice.lost} log lines were lost`)
    })
  )

  it.scoped("lines logged after the scope closed are still appended", () =>
    Effect.gen(function* () {
      const path = Path.join(yield* tempDir, "pool.jsonl")
      // a fiber that outlives the layer keeps the logger it started with, as the pool's background fibers do
      const late = yield* Effect.gen(function* () {
        const logger = yield* currentLoggers
        yield* Effect.log("inside")
        return logger
      }).pipe(Effect.provide(PoolLogger.layer(path)))
      yield* Effect.locally(Effect.log("after close"), FiberRef.currentLoggers, late)
      assert.deepStrictEqual(
        readLines(path).map((line) => line.message),
        ["inside", "after close"]
      )
    })
  )
})

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("PoolLogger with a pool", (it) => {
  const connectionEvents = (lines: ReadonlyArray<Record<string, any>>, applicationName: string) =>
    lines.filter((line) => line.message === "connection opened" && line.pool === applicationName).length

  it.scoped("composed sequentially, it receives the pool's background events; merged, they go to the console", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const server = yield* PgTestServer.PgTestServer
      const name = uniqueAppName("logger")
      // Effect's console loggers write through the Console service: capture what would reach stdout
      const printed: Array<string> = []
      const base = yield* Effect.console
      const capture = (...args: ReadonlyArray<unknown>) => void printed.push(args.map(String).join(" "))
      const testConsole = { ...base, unsafe: { ...base.unsafe, log: capture, info: capture, error: capture } }
      const DbLive = Db.layer({ url: server.url, name, minSize: 2 })
      const query = Db.withConnection((sql) => sql`SELECT 1 AS one`)

      const sequential = Path.join(dir, "sequential.jsonl")
      yield* query.pipe(
        Effect.provide(DbLive.pipe(Layer.provideMerge(PoolLogger.layer(sequential)))),
        Logger.withMinimumLogLevel(LogLevel.Debug),
        Effect.withConsole(testConsole)
      )
      assert.strictEqual(connectionEvents(readLines(sequential), name), 2)
      assert.deepStrictEqual(printed, [])

      const merged = Path.join(dir, "merged.jsonl")
      yield* query.pipe(
        Effect.provide(Layer.merge(DbLive, PoolLogger.layer(merged))),
        Logger.withMinimumLogLevel(LogLevel.Debug),
        Effect.withConsole(testConsole)
      )
      assert.strictEqual(connectionEvents(readLines(merged), name), 0)
      assert.isTrue(printed.some((line) => line.includes("connection opened")))
    })
  )

  it.scoped("with logFile set, the pool's events go to that file only, once, however PoolLogger is wired", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const server = yield* PgTestServer.PgTestServer
      const printed: Array<string> = []
      const base = yield* Effect.console
      const capture = (...args: ReadonlyArray<unknown>) => void printed.push(args.map(String).join(" "))
      const testConsole = { ...base, unsafe: { ...base.unsafe, log: capture, info: capture, error: capture } }
      const query = Db.withConnection((sql) => sql`SELECT 1 AS one`)
      const run = (wire: (db: Layer.Layer<Db.Db, unknown>, path: string) => Layer.Layer<Db.Db, unknown>) =>
        Effect.gen(function* () {
          const name = uniqueAppName("routed")
          const path = Path.join(dir, `${name}.jsonl`)
          const DbLive = Db.layer({ url: server.url, name, minSize: 2, logFile: path, logLevel: "Debug" })
          yield* query.pipe(Effect.provide(wire(DbLive, path)), Effect.withConsole(testConsole))
          return readLines(path).filter((line) => line.pool === name)
        })
      const wirings = {
        alone: (db: Layer.Layer<Db.Db, unknown>) => db,
        merged: (db: Layer.Layer<Db.Db, unknown>, path: string) => Layer.merge(db, PoolLogger.layer(path)),
        sequential: (db: Layer.Layer<Db.Db, unknown>, path: string) =>
          db.pipe(Layer.provideMerge(PoolLogger.layer(path)))
      }
      for (const [wiring, wire] of Object.entries(wirings)) {
        const lines = yield* run(wire)
        const events = lines.map((line) => line.message)
        assert.strictEqual(events.filter((event) => event === "connection opened").length, 2, wiring)
        assert.strictEqual(events.filter((event) => event === "pool starting").length, 1, wiring)
        assert.strictEqual(events.at(-1), "pool shut down", wiring)
      }
      assert.deepStrictEqual(printed, [])
    })
  )

  it.scoped("fails with PoolConfigError, at once, for a logFile under a directory that cannot be made", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const dir = yield* tempDir
      const blocker = Path.join(dir, "file")
      Fs.writeFileSync(blocker, "")
      const exit = yield* Effect.exit(
        Effect.provide(Db.statistics, Db.layer({ url: server.url, logFile: Path.join(blocker, "a", "pool.jsonl") }))
      )
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(error, PoolConfigError)
      assert.include(String(error), `logFile (${Path.join(blocker, "a", "pool.jsonl")}) cannot be opened`)
    })
  )

  const viteNode = Path.join(
    Path.dirname(
      Module.createRequire(Module.createRequire(import.meta.url).resolve("vitest/package.json")).resolve(
        "vite-node/package.json"
      )
    ),
    "vite-node.mjs"
  )

  /**
   * Runs a fixture program to its end with only the given environment (plus PATH and HOME); one still running
   * after `timeoutMillis` is killed, and reported with `code` null.
   */
  const runFixture = (file: string, env: Record<string, string>, timeoutMillis = 60_000) =>
    Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
      const child = ChildProcess.spawn(process.execPath, [viteNode, file], {
        cwd: Path.join(import.meta.dirname, ".."),
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMillis)
      child.stdout.on("data", (chunk) => (stdout += chunk))
      child.stderr.on("data", (chunk) => (stderr += chunk))
      child.once("close", (code) => {
        clearTimeout(timer)
        resume(Effect.succeed({ code, stdout, stderr }))
      })
      return Effect.sync(() => {
        clearTimeout(timer)
        child.kill("SIGKILL")
      })
    })

  for (const wiring of ["alone", "provide-array", "merge", "provide", "provideMerge"]) {
    it.scoped(
      `DatabaseLive with DB_POOL_LOG_FILE (${wiring}): nothing on stdout or stderr, the pool's events in the file`,
      () =>
        Effect.gen(function* () {
          const server = yield* PgTestServer.PgTestServer
          const logFile = Path.join(yield* tempDir, "logs", "pool.jsonl")
          const name = uniqueAppName("wiring")
          const { code, stderr, stdout } = yield* runFixture("test/fixtures/wiringProgram.ts", {
            WIRING: wiring,
            DATABASE_URL: Redacted.value(server.url),
            DB_POOL_LOG_FILE: logFile,
            DB_POOL_LOG_LEVEL: "debug",
            DB_POOL_NAME: name,
            DB_POOL_APPLICATION_NAME: name,
            DB_POOL_MAXSIZE: "3"
          })
          assert.strictEqual(code, 0, `the program failed:\n${stdout}${stderr}`)
          assert.strictEqual(stdout, "", "stdout")
          assert.strictEqual(stderr, "", "stderr")
          const pool = readLines(logFile).filter((line) => line.pool === name)
          const events = pool.map((line) => line.message)
          assert.strictEqual(events.filter((event) => event === "pool starting").length, 1, "one line per event")
          assert.isAtLeast(events.filter((event) => event === "connection opened").length, 3)
          assert.isTrue(pool.some((line) => line.message === "connection closed" && line.reason === "broken"))
          assert.strictEqual(events.at(-1), "pool shut down")
          // the typo is reported where the pool's events go, naming the setting it was probably meant as
          const typo = pool.find((line) => line.variable === "DB_POOL_MAXSIZE")!
          assert.strictEqual(typo.level, "WARN")
          assert.strictEqual(typo.closest, "DB_POOL_MAX_SIZE")
        }),
      { timeout: 90_000 }
    )
  }

  for (const wiring of ["alone", "provideMerge"]) {
    it.scoped(`DB_POOL_LOG_FILE under /proc (${wiring}) fails the layer with PoolConfigError, never spins`, () =>
      Effect.gen(function* () {
        const server = yield* PgTestServer.PgTestServer
        const result = Path.join(yield* tempDir, "result.txt")
        const { code, stderr, stdout } = yield* runFixture(
          "test/fixtures/wiringProgram.ts",
          {
            WIRING: wiring,
            RESULT_FILE: result,
            DATABASE_URL: Redacted.value(server.url),
            DB_POOL_LOG_FILE: "/proc/effect-pg-pool/logs/pool.jsonl"
          },
          30_000
        )
        assert.strictEqual(code, 0, `the program did not end by itself:\n${stdout}${stderr}`)
        assert.strictEqual(stdout + stderr, "")
        assert.include(
          Fs.readFileSync(result, "utf8"),
          "DB_POOL_LOG_FILE (/proc/effect-pg-pool/logs/pool.jsonl) cannot be opened for appending"
        )
      })
    )
  }

  it.scoped(
    "a real program under NodeRuntime.runMain writes nothing to stdout or stderr, every event to the file",
    () =>
      Effect.gen(function* () {
        const server = yield* PgTestServer.PgTestServer
        const logFile = Path.join(yield* tempDir, "logs", "pool.jsonl")
        const name = uniqueAppName("child")
        const { code, stderr, stdout } = yield* runFixture("test/fixtures/fileLoggerProgram.ts", {
          DATABASE_URL: Redacted.value(server.url),
          DB_POOL_LOG_FILE: logFile,
          DB_POOL_LOG_LEVEL: "debug",
          DB_POOL_NAME: name,
          DB_POOL_APPLICATION_NAME: name,
          DB_POOL_MIN_SIZE: "2"
        })
        assert.strictEqual(code, 0, `the program failed:\n${stdout}${stderr}`)
        assert.strictEqual(stdout, "", "stdout")
        assert.strictEqual(stderr, "", "stderr")

        const text = Fs.readFileSync(logFile, "utf8")
        assert.notInclude(text, Redacted.value(server.password))
        const lines = readLines(logFile)
        const pool = lines.filter((line) => line.pool === name)
        const events = pool.map((line) => line.message)
        const closedFor = (reason: string) =>
          pool.filter((line) => line.message === "connection closed" && line.reason === reason)

        assert.strictEqual(events[0], "pool starting")
        assert.strictEqual(pool[0]!.port, server.port)
        assert.include(events, "pool ready")
        assert.isAtLeast(events.filter((event) => event === "connection opened").length, 3)
        assert.isAtLeast(closedFor("broken").length, 2)
        assert.strictEqual(closedFor("broken")[0]!.level, "WARN")
        assert.isNumber(closedFor("broken")[0]!.connectionId)
        assert.isAtLeast(closedFor("shutdown").length, 2)
        assert.include(events, "pool shutting down")
        assert.strictEqual(events.at(-1), "pool shut down")
        const summary = pool.at(-1)!
        assert.isNumber(summary.elapsedMillis)
        assert.isAtLeast(summary.connectionsCreated, 3)

        // the program's own lines: in the file too, the lost statement with its stack
        const messages = lines.map((line) => line.message)
        assert.include(messages, "program started")
        const failed = lines.find((line) => line.message === "statement failed")!
        assert.strictEqual(failed.level, "ERROR")
        assert.include(failed.cause, "SqlError")
        assert.include(failed.cause, "    at ")
        assert.deepStrictEqual(
          lines.filter((line) => line.message === "program done").map((line) => line.answer),
          [42]
        )
      })
  )
})
