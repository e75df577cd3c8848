/**
 * The password never appears in a log line, an error, a statistic, a health report or a span attribute.
 * Every check renders the value the ways a user or a tool would — `String`, `JSON.stringify`, `util.inspect`,
 * `Cause.pretty`, a schema encoding — and looks for the password, plain and percent-encoded. The logs are read
 * twice: as the file logger writes them (given no secret to redact: only the pool's own hygiene and the generic
 * URL redaction protect them) and as a naive logger renders the raw events.
 */
import { Reactivity } from "@effect/experimental"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, describe, it, layer } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  type Context,
  Effect,
  Exit,
  HashMap,
  Layer,
  List,
  Logger,
  Option,
  Redacted,
  Schema,
  Tracer
} from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Util from "node:util"
import * as Db from "../src/Db.js"
import { HealthStatus } from "../src/Health.js"
import * as PoolConfig from "../src/PoolConfig.js"
import { AcquireTimeout, ConnectionRejected, DatabaseUnreachable, PoolConfigError } from "../src/PoolError.js"
import * as PoolLogger from "../src/PoolLogger.js"
import { PoolStatistics } from "../src/PoolStatistics.js"
import { adminClient, adminQuery, eventually, uniqueAppName } from "./utils.js"

const password = "s3cr3t-PW-xyz"
const wrongPassword = "wr0ng-PW-abc"

const forms = (secret: string) => [secret, encodeURIComponent(secret)]

/** Every way a value is commonly turned into text. */
const renderings = (value: unknown): Array<string> => {
  const out = [String(value), Util.inspect(value, { depth: 20 })]
  try {
    out.push(JSON.stringify(value) ?? "")
  } catch (error) {
    out.push(`not JSON: ${error}`)
  }
  if (value instanceof Error) out.push(Cause.pretty(Cause.fail(value), { renderErrorCause: true }), value.stack ?? "")
  return out
}

const assertClean = (what: string, value: unknown, secrets: ReadonlyArray<string> = [password, wrongPassword]) => {
  for (const text of renderings(value)) {
    for (const secret of secrets) {
      for (const form of forms(secret)) {
        assert.notInclude(text, form, `${what} holds the password`)
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// capturing logs and spans
// ---------------------------------------------------------------------------------------------------------

class TestSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId = Math.random().toString(16).slice(2)
  readonly traceId: string
  readonly sampled = true
  status: Tracer.SpanStatus
  readonly attributes = new Map<string, unknown>()
  readonly events: Array<{ readonly name: string; readonly attributes: Record<string, unknown> }> = []
  readonly links: Array<Tracer.SpanLink>
  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind
  ) {
    this.traceId = parent._tag === "Some" ? parent.value.traceId : Math.random().toString(16).slice(2)
    this.status = { _tag: "Started", startTime }
    this.links = [...links]
  }
  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>) {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
  }
  attribute(key: string, value: unknown) {
    this.attributes.set(key, value)
  }
  event(name: string, _startTime: bigint, attributes?: Record<string, unknown>) {
    this.events.push({ name, attributes: attributes ?? {} })
  }
  addLinks(links: ReadonlyArray<Tracer.SpanLink>) {
    this.links.push(...links)
  }
}

interface Capture {
  /** The file the file logger wrote, read after its scope closed. */
  readonly file: () => string
  /** Each raw log event as a naive logger renders it: message, annotations and cause, unredacted. */
  readonly raw: Array<string>
  readonly spans: Array<TestSpan>
  /** Logging (file logger, then the raw one) to compose under the layer that logs. */
  readonly logging: Layer.Layer<never, PoolConfigError>
  readonly tracer: Tracer.Tracer
}

const makeCapture = Effect.gen(function* () {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "redaction-"))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )
  const path = Path.join(dir, "pool.jsonl")
  const raw: Array<string> = []
  const rawLogger = Logger.make(({ annotations, cause, logLevel, message, spans }) => {
    raw.push(
      Util.inspect(
        {
          level: logLevel.label,
          message,
          annotations: Object.fromEntries(HashMap.toEntries(annotations)),
          spans: List.toArray(spans).map((span) => span.label),
          cause: Cause.isEmpty(cause) ? undefined : Cause.pretty(cause, { renderErrorCause: true })
        },
        { depth: 20 }
      )
    )
  })
  const spans: Array<TestSpan> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const span = new TestSpan(name, parent, context, links, startTime, kind)
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  const capture: Capture = {
    file: () => (Fs.existsSync(path) ? Fs.readFileSync(path, "utf8") : ""),
    raw,
    spans,
    tracer,
    logging: PoolLogger.layer(path, { minimumLogLevel: "Debug" }).pipe(Layer.provideMerge(Logger.add(rawLogger)))
  }
  return capture
})

/** Runs `effect` with the capture's logging and tracer; the logs are complete once it returns. */
const captured = <A, E, R>(capture: Capture, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(capture.logging), Effect.withTracer(capture.tracer))

const assertLogsClean = (capture: Capture, secrets?: ReadonlyArray<string>) => {
  const file = capture.file()
  assert.isAbove(file.length, 0, "the file logger wrote nothing")
  assertClean("the log file", file, secrets)
  assert.isAbove(capture.raw.length, 0)
  for (const [i, line] of capture.raw.entries()) assertClean(`raw log event ${i}`, line, secrets)
}

const assertSpansClean = (capture: Capture) => {
  assert.isAbove(capture.spans.length, 0, "no span was recorded")
  for (const span of capture.spans) {
    assertClean(`span ${span.name}`, span.name)
    for (const [key, value] of span.attributes) assertClean(`span ${span.name} attribute ${key}`, value)
    assertClean(`span ${span.name} events`, span.events)
    if (span.status._tag === "Ended" && Exit.isFailure(span.status.exit)) {
      assertClean(`span ${span.name} exit`, Cause.pretty(span.status.exit.cause, { renderErrorCause: true }))
    }
  }
}

const failureOf = <E>(exit: Exit.Exit<unknown, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  return Option.getOrThrow(Cause.failureOption((exit as Exit.Failure<unknown, E>).cause))
}

// ---------------------------------------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------------------------------------

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
      assert.instanceOf(fromCode, PoolConfigError)
      assert.isAtLeast(fromCode.issues.length, 2)
      assertClean("PoolConfigError", fromCode)
      assertClean("PoolConfigError issues", fromCode.issues)

      const explicit = failureOf(
        yield* Effect.exit(PoolConfig.make({ host: "db", port: -1, user: "app", password, maxSize: 0 }))
      )
      assertClean("PoolConfigError (explicit password)", explicit)

      const fromEnv = failureOf(
        yield* Effect.exit(
          PoolConfig.fromEnv.pipe(
            Effect.withConfigProvider(
              ConfigProvider.fromMap(
                new Map([
                  ["DATABASE_URL", `mysql://app:${password}@db/app`],
                  ["PGPASSWORD", wrongPassword],
                  ["DB_POOL_MAX_SIZE", "many"]
                ])
              )
            )
          )
        )
      )
      assert.instanceOf(fromEnv, PoolConfigError)
      assertClean("PoolConfigError (env)", fromEnv)
    })
  )
})

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("the password never leaks", (it) => {
  /** A login role with the distinctive password, and URLs for it. */
  const role = Effect.gen(function* () {
    const server = yield* PgTestServer.PgTestServer
    const admin = yield* adminClient
    const name = `redact_${process.pid}`
    yield* adminQuery(
      admin,
      `DO $$ BEGIN CREATE ROLE ${name} LOGIN PASSWORD '${password}'; ` +
        `EXCEPTION WHEN duplicate_object THEN NULL; END $$`
    )
    const url = (secret: string, port = server.port) =>
      Redacted.make(`postgres://${name}:${encodeURIComponent(secret)}@${server.host}:${port}/${server.database}`)
    return { name, url }
  })

  it.scoped("init with a wrong password: ConnectionRejected and the logs", () =>
    Effect.gen(function* () {
      const { url } = yield* role
      const capture = yield* makeCapture
      const exit = yield* captured(
        capture,
        Db.make({
          url: url(wrongPassword),
          applicationName: uniqueAppName("redact-auth"),
          reconnect: { initialAttempts: 2, initialDelay: "10 millis" }
        }).pipe(Effect.provide(Reactivity.layer), Effect.scoped, Effect.exit)
      )
      const error = failureOf(exit)
      assert.instanceOf(error, ConnectionRejected)
      assert.include(error.message, "password authentication failed")
      assertClean("ConnectionRejected", error)
      assertClean("the failed build's cause", Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")
      assertLogsClean(capture)
    })
  )

  it.scoped("init against a closed port: DatabaseUnreachable and the logs", () =>
    Effect.gen(function* () {
      const { url } = yield* role
      const capture = yield* makeCapture
      const error = failureOf(
        yield* captured(
          capture,
          Db.make({ url: url(password, 1), reconnect: { initialAttempts: 2, initialDelay: "10 millis" } }).pipe(
            Effect.provide(Reactivity.layer),
            Effect.scoped,
            Effect.exit
          )
        )
      )
      assert.instanceOf(error, DatabaseUnreachable)
      assertClean("DatabaseUnreachable", error)
      assertLogsClean(capture)
    })
  )

  it.scoped("a lazy pool that cannot log in: statistics, health, AcquireTimeout, SqlError and the logs", () =>
    Effect.gen(function* () {
      const { url } = yield* role
      const capture = yield* makeCapture
      yield* captured(
        capture,
        Effect.gen(function* () {
          const db = yield* Db.Db
          yield* eventually(
            "the pool has seen the authentication fail",
            Effect.map(db.statistics, (s) => Option.isSome(s.lastError) && s.reconnectAttempts >= 1)
          )
          const stats = yield* db.statistics
          assert.include(Option.getOrThrow(stats.lastError), "password authentication failed")
          assertClean("PoolStatistics", JSON.stringify(Schema.encodeSync(PoolStatistics)(stats)))
          assertClean("PoolStatistics (object)", stats)

          const health = yield* db.health
          assert.strictEqual(health.status, "unhealthy")
          assertClean("HealthStatus", JSON.stringify(Schema.encodeSync(HealthStatus)(health)))
          assertClean("HealthStatus (object)", health)

          const timeout = failureOf(yield* Effect.exit(db.withConnection((sql) => sql`SELECT 1`)))
          assert.instanceOf(timeout, AcquireTimeout)
          assert.include(timeout.message, "password authentication failed")
          assertClean("AcquireTimeout", timeout)

          const sqlError = failureOf(yield* Effect.exit(db.sql`SELECT 1`))
          assert.strictEqual(sqlError._tag, "SqlError")
          assertClean("SqlError (acquisition)", sqlError)
        }).pipe(
          Effect.provide(
            Db.layer({
              url: url(wrongPassword),
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

  it.scoped("a working pool: failing and lost statements, spans, statistics, health, configs and the logs", () =>
    Effect.gen(function* () {
      const { url } = yield* role
      const capture = yield* makeCapture
      yield* captured(
        capture,
        Effect.gen(function* () {
          const db = yield* Db.Db
          const sql = db.sql
          const rows = yield* sql<{ user: string }>`SELECT current_user AS user`.pipe(Effect.withSpan("whoami"))
          assert.match(rows[0]!.user, /^redact_/)

          const division = failureOf(yield* Effect.exit(sql`SELECT 1 / 0`.pipe(Effect.withSpan("division"))))
          assert.strictEqual(division._tag, "SqlError")
          assertClean("SqlError (statement)", division)

          const lost = failureOf(
            yield* Effect.exit(sql`SELECT pg_terminate_backend(pg_backend_pid())`.pipe(Effect.withSpan("suicide")))
          )
          assertClean("SqlError (connection lost)", lost)

          yield* Effect.exit(sql.withTransaction(sql`SELECT 1`))
          yield* Effect.exit(db.withConnection((sql) => sql`SELECT 2`))
          const listed = yield* Effect.exit(sql`SELECT ${password} = ${password} AS same`.unprepared)
          assert.isTrue(Exit.isSuccess(listed))

          assertClean("PoolStatistics", JSON.stringify(Schema.encodeSync(PoolStatistics)(yield* db.statistics)))
          assertClean("HealthStatus", JSON.stringify(Schema.encodeSync(HealthStatus)(yield* db.health)))
          assertClean("PgClient.config", sql.config)
          assertClean("PgClient.config.url", sql.config.url)
          assertClean("PgClient.config.password", sql.config.password)
          assertClean("Db.config", db.config)
          assertClean("Db.config.url", db.config.url)
        }).pipe(
          Effect.provide(
            Db.layer({ url: url(password), applicationName: uniqueAppName("redact-ok"), minSize: 1, maxSize: 2 })
          )
        )
      )
      // the statement that compares the password with itself carries it as a parameter, which spans do not
      // record: only the statement text is
      assertSpansClean(capture)
      assert.isTrue(capture.spans.some((span) => span.name === "sql.execute"))
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
