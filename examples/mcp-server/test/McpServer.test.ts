import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, it as itLive, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Redacted } from "effect"
import * as ChildProcess from "node:child_process"
import * as Net from "node:net"
import * as Path from "node:path"
import {
  assertJsonRpcOnly,
  assertNoSecret,
  makeTempDir,
  parseLog,
  readLog,
  serverCommand,
  type Session,
  startSession,
  textOf
} from "./session.js"

// A distinctive password for the test server, to look for in everything the MCP server writes.
const password = "s3cr3t-PW-mcp-9xq"
const ServerLive = Layer.scoped(
  PgTestServer.PgTestServer,
  PgTestServer.make({ embedded: { password }, container: { password } })
)

let counter = 0
const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

/** The environment an MCP host would give the server for the test database. */
const envFor = (server: PgTestServer.PgTestServer.Service, name: string, extra: Record<string, string> = {}) => ({
  DATABASE_URL: Redacted.value(server.url),
  DB_POOL_NAME: name,
  DB_POOL_APPLICATION_NAME: name,
  ...extra
})

/**
 * Closes the session as a host does (end of stdin) and checks what every session must leave behind: exit code 0,
 * nothing but JSON-RPC on stdout, nothing on stderr, the pool's lifecycle in the log file, and no password
 * anywhere. Returns the log's lines of this pool.
 */
const closeAndAudit = (session: Session, poolName: string, secret: string) =>
  Effect.gen(function* () {
    const exited = yield* session.closeInput
    assert.deepStrictEqual(exited, { code: 0, signal: null }, `the server did not exit cleanly:\n${session.logText()}`)
    assertJsonRpcOnly(session.stdout())
    assert.strictEqual(session.stderr(), "", "stderr")
    const log = session.logText()
    for (const [what, text] of [
      ["stdout", session.stdout()],
      ["stderr", session.stderr()],
      ["the log file", log]
    ] as const) {
      assertNoSecret(what, text, secret)
    }
    const lines = session.logLines().filter((line) => line.pool === poolName)
    const events = lines.map((line) => line.message)
    assert.include(events, "pool ready")
    assert.strictEqual(events.at(-1), "pool shut down")
    return lines
  })

/** Calls `health` in real time until it reports `status`; fails with the last report after `timeoutMillis`. */
const waitForHealth = (session: Session, status: string, timeoutMillis = 20_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMillis
    for (;;) {
      const result = yield* session.callTool("health")
      assert.notStrictEqual(result.isError, true, textOf(result))
      const health = result.structuredContent as Record<string, any>
      if (health.status === status) return health
      if (Date.now() > deadline) return assert.fail(`health still ${health.status}, not ${status}: ${textOf(result)}`)
      yield* Effect.sleep("50 millis")
    }
  })

layer(ServerLive, { timeout: 60_000, excludeTestServices: true })("mcp-server over stdio", (it) => {
  it.scoped("initializes, lists its tools and resource, and answers each tool with structured content", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const name = uniqueName("session")
      const session = yield* startSession(envFor(server, name, { MCP_QUERY_MAX_ROWS: "50" }))

      assert.strictEqual(session.client.getServerVersion()?.name, "effect-pg-pool")
      assert.isDefined(session.client.getServerCapabilities()?.tools)

      const { tools } = yield* Effect.promise(() => session.client.listTools())
      assert.deepStrictEqual(tools.map((tool) => tool.name).sort(), ["health", "pool_statistics", "query"])
      for (const tool of tools) {
        assert.strictEqual(tool.outputSchema?.type, "object", `${tool.name} has an output schema`)
        assert.strictEqual(tool.annotations?.readOnlyHint, true, `${tool.name} is marked read-only`)
      }
      const query = tools.find((tool) => tool.name === "query")!
      assert.deepStrictEqual(query.inputSchema.required, ["sql"])

      const rows = yield* session.callTool("query", {
        sql: "SELECT g AS n, 'row ' || g AS label, '\\x00ff'::bytea AS bytes FROM generate_series(1, 60) g ORDER BY g"
      })
      assert.notStrictEqual(rows.isError, true, textOf(rows))
      const result = rows.structuredContent as Record<string, any>
      assert.deepStrictEqual(result.columns, ["n", "label", "bytes"])
      assert.strictEqual(result.rowCount, 50, "MCP_QUERY_MAX_ROWS caps the rows")
      assert.isTrue(result.truncated)
      assert.deepStrictEqual(result.rows[0], { n: 1, label: "row 1", bytes: "\\x00ff" })
      // the text block carries the same result, for clients that read text only
      assert.deepStrictEqual(JSON.parse(textOf(rows)), result)

      const few = yield* session.callTool("query", { sql: "SELECT 1 AS one", maxRows: 5 })
      assert.deepStrictEqual((few.structuredContent as Record<string, any>).rows, [{ one: 1 }])
      assert.isFalse((few.structuredContent as Record<string, any>).truncated)

      const stats = (yield* session.callTool("pool_statistics")).structuredContent as Record<string, any>
      assert.strictEqual(stats.poolName, name)
      assert.strictEqual(stats.state, "healthy")
      assert.isAtLeast(stats.acquisitions, 2)
      assert.strictEqual(stats.active, 0)

      const health = yield* waitForHealth(session, "healthy")
      assert.isTrue(health.database.reachable)
      assert.strictEqual(health.statistics.poolName, name)

      const { resources } = yield* Effect.promise(() => session.client.listResources())
      assert.deepStrictEqual(
        resources.map((resource) => resource.uri),
        ["pool://health"]
      )
      const read = yield* Effect.promise(() => session.client.readResource({ uri: "pool://health" }))
      const content = read.contents[0]!
      assert.strictEqual(content.mimeType, "application/json")
      assert.strictEqual(JSON.parse((content as { text: string }).text).status, "healthy")

      yield* closeAndAudit(session, name, Redacted.value(server.password))
    })
  )

  it.scoped("refuses writes and stops slow statements with tool errors, and goes on serving", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const name = uniqueName("write")
      const session = yield* startSession(envFor(server, name, { MCP_QUERY_TIMEOUT: "1 second" }))
      const table = `mcp_written_${process.pid}`
      const exists = Effect.map(
        session.callTool("query", { sql: `SELECT to_regclass('${table}') IS NOT NULL AS present` }),
        (result) => (result.structuredContent as Record<string, any>).rows[0].present as boolean
      )

      const create = yield* session.callTool("query", { sql: `CREATE TABLE ${table} (a int)` })
      assert.isTrue(create.isError)
      assert.include(textOf(create), "cannot execute CREATE TABLE in a read-only transaction")
      assert.include(textOf(create), "SQLSTATE 25006")

      // a second statement cannot end the read-only transaction and write after it
      const chained = yield* session.callTool("query", { sql: `SELECT 1; COMMIT; CREATE TABLE ${table} (a int)` })
      assert.isTrue(chained.isError)
      assert.include(textOf(chained), "cannot insert multiple commands into a prepared statement")

      // a superuser's UPDATE of a catalog, which would succeed outside the read-only transaction
      const update = yield* session.callTool("query", {
        sql: "UPDATE pg_catalog.pg_description SET description = description WHERE false"
      })
      assert.isTrue(update.isError)
      assert.include(textOf(update), "cannot execute UPDATE in a read-only transaction")

      // COPY would crash node-postgres' cursor: the pool refuses it before it reaches the database
      const copy = yield* session.callTool("query", { sql: "/* export */ copy (SELECT 1) TO STDOUT" })
      assert.isTrue(copy.isError)
      assert.include(textOf(copy), "COPY cannot run as a stream")

      assert.isFalse(yield* exists, "nothing was written")

      const slow = yield* session.callTool("query", { sql: "SELECT pg_sleep(20)" })
      assert.isTrue(slow.isError)
      assert.include(textOf(slow), "did not finish within 1s and was cancelled")
      const after = yield* session.callTool("query", { sql: "SELECT 2 AS two" })
      assert.deepStrictEqual((after.structuredContent as Record<string, any>).rows, [{ two: 2 }])
      yield* closeAndAudit(session, name, Redacted.value(server.password))
    })
  )

  it.scoped("cancels the query on the server when the client cancels its request", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const name = uniqueName("cancel")
      // far beyond the test: only the cancellation can end the statement in time
      const session = yield* startSession(envFor(server, name, { MCP_QUERY_TIMEOUT: "120 seconds" }))
      const running = Effect.map(
        session.callTool("query", {
          sql:
            "SELECT count(*)::int AS n FROM pg_stat_activity " +
            "WHERE state = 'active' AND query LIKE '%cancel_me%' AND pid <> pg_backend_pid()"
        }),
        (result) => (result.structuredContent as Record<string, any>).rows[0].n as number
      )
      const waitUntilRunning = (expected: number) =>
        Effect.gen(function* () {
          const deadline = Date.now() + 15_000
          for (;;) {
            const n = yield* running
            if (n === expected) return
            if (Date.now() > deadline) return assert.fail(`${n} statements running, not ${expected}`)
            yield* Effect.sleep("50 millis")
          }
        })

      const controller = new AbortController()
      const call = yield* Effect.fork(
        Effect.promise(() =>
          session.client
            .callTool({ name: "query", arguments: { sql: "SELECT pg_sleep(120) AS cancel_me" } }, undefined, {
              signal: controller.signal
            })
            .then(
              () => "answered",
              () => "rejected"
            )
        )
      )
      yield* waitUntilRunning(1)
      controller.abort()
      assert.strictEqual(yield* Fiber.join(call), "rejected")
      yield* waitUntilRunning(0)
      const lines = yield* closeAndAudit(session, name, Redacted.value(server.password))
      // the statement stopped, so its connection came back to the pool instead of being given up
      assert.isFalse(lines.some((line) => line.message === "connection closed" && line.reason === "broken"))
    })
  )

  it.scoped("rides through a database outage: unhealthy and failing calls while it is down, both recover after", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const name = uniqueName("outage")
      const session = yield* startSession(
        envFor(server, name, {
          DB_POOL_ACQUIRE_TIMEOUT: "1s",
          DB_POOL_RECONNECT_INITIAL_DELAY: "50ms",
          DB_POOL_RECONNECT_MAX_DELAY: "200ms"
        })
      )
      yield* waitForHealth(session, "healthy")

      yield* server.stop()
      const down = yield* Effect.gen(function* () {
        const health = yield* waitForHealth(session, "unhealthy")
        const query = yield* session.callTool("query", { sql: "SELECT 1 AS one" })
        return { health, query }
      }).pipe(
        Effect.ensuring(
          Effect.flatMap(server.isRunning, (running) => (running ? Effect.void : Effect.orDie(server.start)))
        )
      )
      assert.include(down.health.reason, "cannot connect")
      assert.isTrue(down.query.isError, "query fails with a tool error, not a protocol error")
      assert.include(textOf(down.query), "waiting for a database connection")

      yield* waitForHealth(session, "healthy")
      const back = yield* session.callTool("query", { sql: "SELECT 1 AS one" })
      assert.notStrictEqual(back.isError, true, textOf(back))
      assert.deepStrictEqual((back.structuredContent as Record<string, any>).rows, [{ one: 1 }])

      const lines = yield* closeAndAudit(session, name, Redacted.value(server.password))
      assert.isTrue(
        lines.some((line) => line.message === "connection closed" && line.reason === "broken"),
        "the log has the connections the outage broke"
      )
    })
  )

  it.scoped("answers the requests received before the client closed stdin, then exits 0", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const name = uniqueName("drain")
      const session = yield* startSession(envFor(server, name))
      // not awaited: the client closes its side while the query runs
      const pending = session.callTool("query", { sql: "SELECT pg_sleep(0.3), 'answered' AS marker" })
      yield* Effect.forkScoped(Effect.ignore(pending))
      while (!session.sent().some((message) => JSON.stringify(message).includes("'answered' AS marker"))) {
        yield* Effect.sleep("10 millis")
      }
      yield* closeAndAudit(session, name, Redacted.value(server.password))
      const answers = assertJsonRpcOnly(session.stdout()).filter((message) => "result" in message)
      assert.isTrue(
        answers.some((message) => JSON.stringify(message.result).includes('"marker":"answered"')),
        "the query's answer was written before the server exited"
      )
    })
  )

  it.scoped("writes Node's own warnings to the log file, not to stderr", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const name = uniqueName("warning")
      const session = yield* startSession(envFor(server, name), {
        preload: `process.on("SIGUSR2", () => process.emitWarning("a warning from the test"))`
      })
      process.kill(session.pid, "SIGUSR2")
      const deadline = Date.now() + 10_000
      while (!session.logText().includes("a warning from the test")) {
        if (Date.now() > deadline) return assert.fail(`no warning in the log file:\n${session.logText()}`)
        yield* Effect.sleep("20 millis")
      }
      const warning = session.logLines().find((line) => line.message === "Node.js warning")
      assert.strictEqual(warning?.level, "WARN")
      yield* closeAndAudit(session, name, Redacted.value(server.password))
    })
  )

  it.scoped("a startup failure writes nothing on stdout or stderr, logs the error to the file and exits 1", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const logFile = Path.join(yield* makeTempDir, "mcp-server.jsonl")
      const { code, stderr, stdout } = yield* runToExit({
        ...envFor(server, uniqueName("broken")),
        DB_POOL_MAX_SIZE: "0",
        DB_POOL_LOG_FILE: logFile
      })
      assert.strictEqual(code, 1)
      assert.strictEqual(stdout, "", "stdout")
      assert.strictEqual(stderr, "", "stderr")
      const text = readLog(logFile)
      assertNoSecret("the log file", text, Redacted.value(server.password))
      const failure = parseLog(text).find((line) => line.message === "the MCP server could not start")
      assert.isDefined(failure, `the failure is in the log file:\n${text}`)
      assert.strictEqual(failure!.level, "ERROR")
      assert.include(JSON.stringify(failure), "DB_POOL_MAX_SIZE (0)")
    })
  )
})

/** Runs the server with `env` and stdin left open until it exits by itself. */
const runToExit = (env: Record<string, string>) =>
  Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
    const child = ChildProcess.spawn(serverCommand.command, serverCommand.args, {
      cwd: serverCommand.cwd,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
      stdio: ["pipe", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    child.once("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
const listens = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
  })

itLive.scoped(
  "without DATABASE_URL it starts an embedded PostgreSQL, reports it healthy, and stops it on exit",
  () =>
    Effect.gen(function* () {
      const session = yield* startSession({})
      const health = yield* waitForHealth(session, "healthy")
      assert.strictEqual(health.statistics.poolName, "mcp-server")
      const one = yield* session.callTool("query", { sql: "SELECT current_user AS who" })
      assert.deepStrictEqual((one.structuredContent as Record<string, any>).rows, [{ who: "postgres" }])

      const started = session.logLines().find((line) => line.message?.startsWith("embedded PostgreSQL started"))
      assert.isDefined(started, session.logText())
      assert.isTrue(yield* listens(started!.port))

      const exited = yield* session.closeInput
      assert.deepStrictEqual(exited, { code: 0, signal: null })
      assertJsonRpcOnly(session.stdout())
      assert.strictEqual(session.stderr(), "")
      assert.isFalse(yield* listens(started!.port), "the embedded server is stopped")
      // its password is random: no URL in the log carries one
      assert.notMatch(session.logText(), /postgres(ql)?:\/\/[^:/@\s]+:(?!\*\*\*@)[^@\s"]+@/)
      assert.strictEqual(session.logLines().filter((line) => line.message === "pool shut down").length, 1)
      // the embedded server's user is its superuser, whom a read-only transaction does not contain
      assert.isTrue(session.logLines().some((line) => line.message?.startsWith("connected as a superuser")))
    }),
  60_000
)
