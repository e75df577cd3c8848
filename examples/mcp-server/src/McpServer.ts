/**
 * The MCP server: three tools and a resource over the pool in context, on the official TypeScript SDK.
 *
 * - `query` — one read-only SQL statement (see ./ReadOnlyQuery.ts), rows as structured content;
 * - `pool_statistics` — the pool's `PoolStatistics`, read from memory;
 * - `health` — the pool's `HealthStatus`, which never waits for a connection;
 * - resource `pool://health` — the same `HealthStatus` as JSON.
 *
 * A failure is a tool result with `isError: true` that says what happened and what to do, never a crashed server:
 * the database may be down, the session goes on. Each call runs as a fiber of the session, interrupted when the
 * client cancels the request (the pool then cancels its query on the server) or when the session ends.
 */
import * as Db from "@effect-pg-pool/effect3/Db"
import * as Health from "@effect-pg-pool/effect3/Health"
import * as PoolStatistics from "@effect-pg-pool/effect3/PoolStatistics"
import type { SqlError } from "@effect/sql/SqlError"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js"
import {
  type CallToolResult,
  isJSONRPCErrorResponse,
  isJSONRPCNotification,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  type JSONRPCMessage,
  type RequestId
} from "@modelcontextprotocol/sdk/types.js"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as z from "zod"
import * as ReadOnlyQuery from "./ReadOnlyQuery.js"

/** The `query` tool's limits, from `MCP_QUERY_MAX_ROWS` (default 100) and `MCP_QUERY_TIMEOUT` (default 10 s). */
export const limitsFromEnv = Config.all({
  maxRows: Config.integer("MCP_QUERY_MAX_ROWS").pipe(
    Config.withDefault(100),
    Config.validate({ message: "MCP_QUERY_MAX_ROWS must be an integer from 1 to 10000", validation: inRange })
  ),
  timeout: Config.duration("MCP_QUERY_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10)))
})

function inRange(n: number) {
  return n >= 1 && n <= 10_000
}

export const HEALTH_URI = "pool://health"

const statisticsShape = {
  poolName: z.string(),
  total: z.number(),
  idle: z.number(),
  active: z.number(),
  pending: z.number(),
  waiting: z.number(),
  minSize: z.number(),
  maxSize: z.number(),
  peakActive: z.number(),
  peakWaiting: z.number(),
  acquisitions: z.number(),
  acquisitionTimeAvgMs: z.number(),
  acquisitionTimeP95Ms: z.number(),
  acquisitionTimeP99Ms: z.number(),
  acquireTimeouts: z.number(),
  connectionsCreated: z.number(),
  connectionsClosed: z.record(z.string(), z.number()),
  reconnectAttempts: z.number(),
  leaksSuspected: z.number(),
  state: z.enum(["healthy", "degraded", "unhealthy"]),
  lastError: z.string().optional(),
  upSince: z.number().describe("epoch milliseconds"),
  hosts: z
    .array(
      z.object({
        host: z.string(),
        port: z.number(),
        role: z.enum(["primary", "standby", "read-only", "unknown"]),
        up: z.boolean(),
        sessions: z.number(),
        failures: z.number().describe("failures in a row"),
        lastError: z.string().optional()
      })
    )
    .describe("per host, when the pool was given several; empty for one")
}

const healthShape = {
  status: z.enum(["healthy", "degraded", "unhealthy"]),
  reason: z.string().optional().describe("why the pool is not healthy"),
  checkedAt: z.number().describe("epoch milliseconds"),
  database: z.object({
    reachable: z.boolean(),
    latencyMs: z.number().optional().describe("round trip of the last probe"),
    probedAt: z.number().optional()
  }),
  statistics: z.object(statisticsShape)
}

const queryOutputShape = {
  columns: z.array(z.string()),
  rows: z.array(z.record(z.string(), z.unknown())),
  rowCount: z.number().int(),
  truncated: z.boolean().describe("true when the statement had more rows than maxRows"),
  maxRows: z.number().int(),
  elapsedMillis: z.number()
}

const structured = (value: Record<string, unknown>): CallToolResult => ({
  content: [{ type: "text", text: JSON.stringify(value) }],
  structuredContent: value
})

const toolError = (text: string): CallToolResult => ({ content: [{ type: "text", text }], isError: true })

/** What a client (and the model behind it) should read when `query` fails. */
const describeQueryFailure = (error: ReadOnlyQuery.QueryTimeout | SqlError) => {
  if (error._tag !== "SqlError") return error.message
  if (ReadOnlyQuery.sqlState(error) === "25006") {
    return (
      `refused: ${error.message}. The query tool runs every statement in a READ ONLY transaction and cannot ` +
      `change the database.`
    )
  }
  return error.message
}

/**
 * Runs a tool's effect as one call: logged with the tool's name, a defect turned into a tool error (and logged
 * with its cause) rather than a broken session.
 */
const toolCall = <R>(tool: string, effect: Effect.Effect<CallToolResult, never, R>) =>
  effect.pipe(
    Effect.tap((result) =>
      result.isError === true
        ? Effect.logWarning("tool call failed").pipe(
            Effect.annotateLogs({ error: result.content[0]?.type === "text" ? result.content[0].text : "" })
          )
        : Effect.logDebug("tool call")
    ),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.interrupt
        : Effect.as(
            Effect.logError("tool call died", cause),
            toolError(`${tool} failed unexpectedly: ${Cause.squash(cause)}; the server's log has the details`)
          )
    ),
    Effect.withLogSpan(tool),
    Effect.annotateLogs({ tool })
  )

/**
 * Builds the SDK's `McpServer` with the tools and the resource; each call runs in the given runner, on the pool of
 * the context the runner was made in.
 */
const build = (
  limits: ReadOnlyQuery.Limits,
  run: (effect: Effect.Effect<CallToolResult, never, Db.Db>, signal: AbortSignal) => Promise<CallToolResult>
): McpServer => {
  const server = new McpServer(
    { name: "effect-pg-pool", version: "0.1.0" },
    {
      instructions:
        "Read-only access to a PostgreSQL database through a connection pool. Use `query` for SELECTs " +
        `(at most ${limits.maxRows} rows, ${Duration.format(limits.timeout)} per statement), \`health\` to see ` +
        "whether the database is reachable, `pool_statistics` for the pool's figures."
    }
  )

  server.registerTool(
    "query",
    {
      title: "Read-only SQL query",
      description:
        "Runs one SQL statement in a READ ONLY transaction and returns its rows (writes are refused). " +
        `At most ${limits.maxRows} rows (the result says when more were left out); the statement is cancelled ` +
        `after ${Duration.format(limits.timeout)}.`,
      inputSchema: {
        sql: z.string().min(1).describe("one SQL statement, e.g. SELECT * FROM pg_tables LIMIT 10"),
        maxRows: z.number().int().min(1).max(limits.maxRows).optional().describe(`default ${limits.maxRows}`)
      },
      outputSchema: queryOutputShape,
      annotations: { readOnlyHint: true, openWorldHint: false }
    },
    ({ maxRows, sql }, extra) =>
      run(
        toolCall(
          "query",
          ReadOnlyQuery.run(sql, { ...limits, maxRows: maxRows ?? limits.maxRows }).pipe(
            Effect.match({
              onFailure: (error) => toolError(describeQueryFailure(error)),
              onSuccess: (result) => structured({ ...result })
            })
          )
        ),
        extra.signal
      )
  )

  server.registerTool(
    "pool_statistics",
    {
      title: "Connection pool statistics",
      description:
        "The pool's figures, read from memory: connections total/idle/active/pending, callers waiting, " +
        "acquisition times, connections created and closed by reason, reconnect attempts, state, last error.",
      outputSchema: statisticsShape,
      annotations: { readOnlyHint: true, openWorldHint: false }
    },
    (extra) =>
      run(
        toolCall(
          "pool_statistics",
          Effect.map(Db.statistics, (stats) => structured(PoolStatistics.encode(stats)))
        ),
        extra.signal
      )
  )

  server.registerTool(
    "health",
    {
      title: "Database health",
      description:
        "Whether the database is usable: healthy, degraded or unhealthy with the reason, the last probe's " +
        "round trip, and the pool's statistics. Answers at once, even while the database is down.",
      outputSchema: healthShape,
      annotations: { readOnlyHint: true, openWorldHint: false }
    },
    (extra) =>
      run(
        toolCall(
          "health",
          Effect.map(Db.health, (health) => structured(Health.encode(health)))
        ),
        extra.signal
      )
  )

  server.registerResource(
    "pool-health",
    HEALTH_URI,
    {
      title: "Database health",
      description: "The connection pool's HealthStatus as JSON (status, reason, last probe, statistics)",
      mimeType: "application/json"
    },
    async (uri, extra) => {
      const result = await run(
        toolCall(
          "resource pool-health",
          Effect.map(Db.health, (health) => structured(Health.encode(health)))
        ),
        extra.signal
      )
      const text = result.content[0]?.type === "text" ? result.content[0].text : ""
      // a resource has no error result: the SDK answers a thrown error with a JSON-RPC error
      if (result.isError === true) throw new Error(text)
      return { contents: [{ uri: uri.href, mimeType: "application/json", text }] }
    }
  )

  return server
}

/**
 * A read-only transaction does not stop a superuser from acting outside the database (a `DO` block can run
 * `COPY … TO PROGRAM`): say so in the log, where the operator looks, once per session.
 */
const warnIfSuperuser = Effect.gen(function* () {
  const { sql } = yield* Db.Db
  const rows = yield* sql<{
    superuser: boolean
  }>`SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user`
  if (rows[0]?.superuser === true) {
    yield* Effect.logWarning(
      "connected as a superuser: the query tool's read-only transaction does not stop functions and commands that " +
        "act outside the database; give the server a role that may only read (see the example's README)"
    )
  }
}).pipe(Effect.ignore)

/**
 * A transport that counts the requests received and not answered yet, so that a session whose client has closed
 * its input still answers what it was asked before it ends. A request the client cancelled gets no answer.
 */
class AnsweringTransport implements Transport {
  onclose?: (() => void) | undefined
  onerror?: ((error: Error) => void) | undefined
  onmessage?: Transport["onmessage"]
  private readonly pending = new Set<RequestId>()
  private onAllAnswered: (() => void) | undefined

  constructor(readonly inner: Transport) {}

  start() {
    this.inner.onclose = () => this.onclose?.()
    this.inner.onerror = (error) => this.onerror?.(error)
    this.inner.onmessage = (message, extra) => {
      if (isJSONRPCRequest(message)) this.pending.add(message.id)
      else if (isJSONRPCNotification(message) && message.method === "notifications/cancelled") {
        this.answered(message.params?.requestId as RequestId)
      }
      this.onmessage?.(message, extra)
    }
    return this.inner.start()
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions) {
    await this.inner.send(message, options)
    if (isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) this.answered(message.id)
  }

  close() {
    return this.inner.close()
  }

  private answered(id: RequestId | undefined) {
    if (id !== undefined) this.pending.delete(id)
    if (this.pending.size === 0) this.onAllAnswered?.()
  }

  /** Requests received and not answered yet. */
  get unanswered(): number {
    return this.pending.size
  }

  /** Completes once every request received has been answered (at once when none is waiting). */
  readonly allAnswered: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.pending.size === 0) return resume(Effect.void)
    this.onAllAnswered = () => resume(Effect.void)
    return Effect.sync(() => {
      this.onAllAnswered = undefined
    })
  })
}

/**
 * Serves one MCP session over `transport` with the pool in context. It ends when the transport closes, or once
 * `inputEnded` completes (the client sends nothing more) and the requests already received have been answered —
 * each tool call is bounded by its own timeout. Interrupted, it interrupts the calls still running and closes the
 * transport.
 */
export const serve = (
  transport: Transport,
  inputEnded: Effect.Effect<void> = Effect.never
): Effect.Effect<void, ConfigError.ConfigError, Db.Db | Scope.Scope> =>
  Effect.gen(function* () {
    const limits = yield* limitsFromEnv
    const runFork = yield* FiberSet.makeRuntime<Db.Db>()
    const run = (effect: Effect.Effect<CallToolResult, never, Db.Db>, signal: AbortSignal) =>
      new Promise<CallToolResult>((resolve) => {
        const fiber = runFork(effect)
        const cancel = () => fiber.unsafeInterruptAsFork(FiberId.none)
        signal.addEventListener("abort", cancel, { once: true })
        fiber.addObserver((exit) => {
          signal.removeEventListener("abort", cancel)
          // a failure here is an interruption: the client cancelled (and reads no answer) or the session is ending
          resolve(Exit.isSuccess(exit) ? exit.value : toolError("the call was cancelled"))
        })
      })
    const server = build(limits, run)
    const answering = new AnsweringTransport(transport)
    const closed = yield* Deferred.make<void>()
    server.server.onclose = () => Deferred.unsafeDone(closed, Exit.void)
    yield* Effect.acquireRelease(
      Effect.promise(() => server.connect(answering)),
      () => Effect.promise(() => server.close())
    )
    yield* Effect.log("MCP session open")
    yield* Effect.forkScoped(warnIfSuperuser)
    const drained = inputEnded.pipe(
      Effect.zipRight(
        Effect.suspend(() =>
          Effect.log("client closed its input").pipe(Effect.annotateLogs({ unanswered: answering.unanswered }))
        )
      ),
      Effect.zipRight(answering.allAnswered)
    )
    yield* Effect.raceFirst(Deferred.await(closed), drained)
    yield* Effect.log("MCP session closed")
  })

/**
 * Serves the session on this process' stdin and stdout, until stdin ends (the client closed it, or exited) and
 * the calls received are answered, or stdout breaks (EPIPE: nobody reads the answers any more).
 */
export const serveStdio: Effect.Effect<void, ConfigError.ConfigError, Db.Db | Scope.Scope> = Effect.gen(function* () {
  const transport = new StdioServerTransport()
  // kept for good: an EPIPE on stdout with no listener would be an uncaught exception, printed on stderr
  process.stdout.on("error", () => void transport.close())
  const inputEnded = yield* Deferred.make<void>()
  const onEnd = () => Deferred.unsafeDone(inputEnded, Exit.void)
  yield* Effect.acquireRelease(
    Effect.sync(() => process.stdin.once("end", onEnd)),
    () => Effect.sync(() => process.stdin.off("end", onEnd))
  )
  yield* serve(transport, Deferred.await(inputEnded))
})
