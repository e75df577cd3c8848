/**
 * The password never appears in a log line, an error, a statistic, a health report or a span attribute (the
 * Effect 3 edition's test/Redaction.test.ts). Every check renders the value the ways a user or a tool would —
 * `String`, `JSON.stringify`, `util.inspect`, `Cause.pretty`, a schema encoding — and looks for the password, plain
 * and percent-encoded. The logs are read twice: as the file logger writes them (given no secret to redact) and as a
 * naive logger renders the raw events.
 */
import { Db, Health, PoolConfig, PoolError, PoolLogger, PoolStatistics } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Logger, Option, Redacted, References, Schedule, Schema, Tracer } from "effect"
import { SqlClient } from "effect/sql"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Util from "node:util"
import { afterAll, beforeAll } from "vitest"
import { uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

const password = "s3cr3t-PW-xyz"
const wrongPassword = "wr0ng-PW-abc"

let server: TestServer
const role = `redact4_${process.pid}`
beforeAll(async () => {
  server = await startServer()
  await Effect.runPromise(
    Effect.provide(
      Db.withConnection((sql) =>
        sql.unsafe(
          `DO $$ BEGIN CREATE ROLE ${role} LOGIN PASSWORD '${password}'; ` +
            `EXCEPTION WHEN duplicate_object THEN NULL; END $$`
        )
      ),
      Db.layer({ url: server.url, minSize: 0, maxSize: 1 }).pipe(Layer.provide(Logger.layer([])))
    )
  )
})
afterAll(() => server?.close())

const urlOf = (secret: string, port = server.port) =>
  Redacted.make(`postgres://${role}:${encodeURIComponent(secret)}@${server.host}:${port}/${server.database}`)

const forms = (secret: string) => [secret, encodeURIComponent(secret)]

/** Every way a value is commonly turned into text. */
const renderings = (value: unknown): Array<string> => {
  const out = [String(value), Util.inspect(value, { depth: 20 })]
  try {
    out.push(JSON.stringify(value) ?? "")
  } catch (error) {
    out.push(`not JSON: ${error}`)
  }
  if (value instanceof Error) out.push(Cause.pretty(Cause.fail(value)), value.stack ?? "")
  return out
}

const assertClean = (what: string, value: unknown, secrets: ReadonlyArray<string> = [password, wrongPassword]) => {
  for (const text of renderings(value)) {
    for (const secret of secrets) {
      for (const form of forms(secret)) assert.notInclude(text, form, `${what} holds the password`)
    }
  }
}

const failureOf = <E>(exit: Exit.Exit<unknown, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  return Option.getOrThrow(Exit.findErrorOption(exit as Exit.Exit<unknown, E>))
}

/** The file logger's file, the raw events as a naive logger renders them, and the spans. */
const makeCapture = Effect.gen(function* () {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "redaction4-"))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )
  const path = Path.join(dir, "pool.jsonl")
  const raw: Array<string> = []
  const rawLogger = Logger.make(({ cause, fiber, logLevel, message }) => {
    raw.push(
      Util.inspect(
        {
          level: logLevel,
          message,
          annotations: { ...fiber.getRef(References.CurrentLogAnnotations) },
          cause: cause.reasons.length === 0 ? undefined : Cause.pretty(cause)
        },
        { depth: 20 }
      )
    )
  })
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return {
    file: () => (Fs.existsSync(path) ? Fs.readFileSync(path, "utf8") : ""),
    raw,
    spans,
    tracer,
    logging: Logger.layer([PoolLogger.make(path), rawLogger])
  }
})
type Capture = Effect.Success<typeof makeCapture>

/** Runs `effect` with the capture's logging (from Debug) and tracer; the logs are complete once it returns. */
const captured = <A, E, R>(capture: Capture, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provide(capture.logging),
    Effect.provideService(References.MinimumLogLevel, "Debug"),
    Effect.withTracer(capture.tracer)
  )

const assertLogsClean = (capture: Capture) => {
  const file = capture.file()
  assert.isAbove(file.length, 0, "the file logger wrote nothing")
  assertClean("the log file", file)
  // every logged error has its message (issue 10, item 12: no object rendered as [object Object])
  assert.notInclude(file, "[object Object]")
  assert.isAbove(capture.raw.length, 0)
  for (const [i, line] of capture.raw.entries()) {
    assertClean(`raw log event ${i}`, line)
    assert.notInclude(line, "[object Object]", `raw log event ${i}`)
  }
}

describe("configuration errors", () => {
  it.effect("PoolConfigError shows the URL with its password masked, and never a password field", () =>
    Effect.gen(function* () {
      const fromCode = failureOf(
        yield* Effect.exit(
          PoolConfig.make({
            url: `postgres://app:${password}@db.internal:notaport/app?sslmode=bogus`,
            minSize: 5,
            maxSize: 2
          })
        )
      )
      assert.instanceOf(fromCode, PoolError.PoolConfigError)
      assert.isAtLeast(fromCode.issues.length, 2)
      assertClean("PoolConfigError", fromCode)
      assertClean("PoolConfigError issues", fromCode.issues)
      const explicit = failureOf(
        yield* Effect.exit(PoolConfig.make({ host: "db", port: -1, user: "app", password, maxSize: 0 }))
      )
      assertClean("PoolConfigError (explicit password)", explicit)
      const saved = { ...process.env }
      process.env.DATABASE_URL = `mysql://app:${password}@db/app`
      process.env.PGPASSWORD = wrongPassword
      process.env.DB_POOL_MAX_SIZE = "many"
      const fromEnv = failureOf(yield* Effect.exit(PoolConfig.fromEnv))
      process.env = saved
      assert.instanceOf(fromEnv, PoolError.PoolConfigError)
      assertClean("PoolConfigError (env)", fromEnv)
    })
  )
})

describe("the password never leaks", () => {
  it.live("init with a wrong password: ConnectionRejected and the logs", () =>
    Effect.gen(function* () {
      const capture = yield* makeCapture
      const exit = yield* captured(
        capture,
        Effect.exit(
          Effect.provide(
            Db.statistics,
            Db.layer({
              url: urlOf(wrongPassword),
              applicationName: uniqueAppName("redact-auth"),
              reconnect: { initialAttempts: 2, initialDelay: "10 millis" }
            })
          )
        )
      )
      const error = failureOf(exit)
      assert.instanceOf(error, PoolError.ConnectionRejected)
      assert.include(error.message, "password authentication failed")
      assertClean("ConnectionRejected", error)
      assertClean("the failed build's cause", Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")
      assertLogsClean(capture)
    })
  )

  it.live("init against a closed port: DatabaseUnreachable and the logs", () =>
    Effect.gen(function* () {
      const capture = yield* makeCapture
      const error = failureOf(
        yield* captured(
          capture,
          Effect.exit(
            Effect.provide(
              Db.statistics,
              Db.layer({ url: urlOf(password, 1), reconnect: { initialAttempts: 2, initialDelay: "10 millis" } })
            )
          )
        )
      )
      assert.instanceOf(error, PoolError.DatabaseUnreachable)
      assertClean("DatabaseUnreachable", error)
      assertLogsClean(capture)
    })
  )

  it.live("a lazy pool that cannot log in: statistics, health, AcquireTimeout, SqlError and the logs", () =>
    Effect.gen(function* () {
      const capture = yield* makeCapture
      yield* captured(
        capture,
        Effect.gen(function* () {
          const stats = yield* Effect.repeat(Db.statistics, {
            until: (s) => Option.isSome(s.lastError) && s.reconnectAttempts >= 1,
            schedule: Schedule.spaced("20 millis")
          })
          assert.include(Option.getOrThrow(stats.lastError), "password authentication failed")
          assertClean("PoolStatistics", JSON.stringify(Schema.encodeSync(PoolStatistics.PoolStatistics)(stats)))
          assertClean("PoolStatistics (object)", stats)
          const health = yield* Db.health
          assert.strictEqual(health.status, "unhealthy")
          assertClean("HealthStatus", JSON.stringify(Schema.encodeSync(Health.HealthStatus)(health)))
          assertClean("HealthStatus (object)", health)
          const timeout = failureOf(yield* Effect.exit(Db.withConnection((sql) => sql`SELECT 1`)))
          assert.instanceOf(timeout, PoolError.AcquireTimeout)
          assert.include(timeout.message, "password authentication failed")
          assertClean("AcquireTimeout", timeout)
          const sql = yield* SqlClient.SqlClient
          const sqlError = failureOf(yield* Effect.exit(sql`SELECT 1`))
          assert.strictEqual(sqlError._tag, "SqlError")
          assertClean("SqlError (acquisition)", sqlError)
        }).pipe(
          Effect.provide(
            Db.layer({
              url: urlOf(wrongPassword),
              init: "lazy",
              applicationName: uniqueAppName("redact-lazy"),
              acquireTimeout: "300 millis",
              reconnect: { initialDelay: "20 millis", maxDelay: "100 millis" }
            })
          )
        )
      )
      assertLogsClean(capture)
    })
  )

  it.live("a working pool: failing and lost statements, spans, statistics, health, configs and the logs", () =>
    Effect.gen(function* () {
      const capture = yield* makeCapture
      yield* captured(
        capture,
        Effect.gen(function* () {
          const db = yield* Db.Db
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ user: string }>`SELECT current_user AS user`.pipe(Effect.withSpan("whoami"))
          assert.match(rows[0]!.user, /^redact4_/)
          const division = failureOf(yield* Effect.exit(sql`SELECT 1 / 0`.pipe(Effect.withSpan("division"))))
          assert.strictEqual(division._tag, "SqlError")
          assertClean("SqlError (statement)", division)
          const lost = failureOf(
            yield* Effect.exit(sql`SELECT pg_terminate_backend(pg_backend_pid())`.pipe(Effect.withSpan("suicide")))
          )
          assertClean("SqlError (connection lost)", lost)
          yield* Effect.exit(sql.withTransaction(sql`SELECT 1`))
          yield* Effect.exit(Db.withConnection((sql) => sql`SELECT 2`))
          const listed = yield* Effect.exit(sql`SELECT ${password} = ${password} AS same`.unprepared)
          assert.isTrue(Exit.isSuccess(listed))
          const encodedStats = Schema.encodeSync(PoolStatistics.PoolStatistics)(yield* Db.statistics)
          assertClean("PoolStatistics", JSON.stringify(encodedStats))
          assertClean("HealthStatus", JSON.stringify(Schema.encodeSync(Health.HealthStatus)(yield* Db.health)))
          assertClean("Db.config", db.config)
          assertClean("Db.config.url", db.config.url)
        }).pipe(
          Effect.provide(
            Db.layer({ url: urlOf(password), applicationName: uniqueAppName("redact-ok"), minSize: 1, maxSize: 2 })
          )
        )
      )
      // the statement that compares the password with itself carries it as a parameter, which spans do not record
      assert.isAbove(capture.spans.length, 0, "no span was recorded")
      for (const span of capture.spans) {
        assertClean(`span ${span.name}`, span.name)
        for (const [key, value] of span.attributes) assertClean(`span ${span.name} attribute ${key}`, value)
        assertClean(`span ${span.name} events`, span.events)
        if (span.status._tag === "Ended" && Exit.isFailure(span.status.exit)) {
          assertClean(`span ${span.name} exit`, Cause.pretty(span.status.exit.cause))
        }
      }
      assertLogsClean(capture)
    })
  )
})

it.effect("the checks above see a password when there is one", () =>
  Effect.sync(() => {
    assert.throws(() => assertClean("bait", { nested: [`x${encodeURIComponent(`${password}/`)}`] }))
    assert.throws(() => assertClean("bait", new Error(`postgres://u:${password}@h/db`)))
    assert.doesNotThrow(() => assertClean("clean", Redacted.make(password)))
  })
)
