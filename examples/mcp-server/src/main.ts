/**
 * The MCP server over stdio: `DatabaseLive` from the environment (an embedded PostgreSQL when `DATABASE_URL` is not
 * set), the pool's events and the server's own to `DB_POOL_LOG_FILE` (nowhere when it is not set).
 *
 * Silent end to end: stdout carries JSON-RPC and nothing else, and nothing reaches stderr — not the pool's logs,
 * not Node's warnings, not a startup failure. `NodeRuntime.runMain` would report a failure with its own logger,
 * outside every layer, on the console: its report is turned off, and the failure is logged to the file instead,
 * inside the logger's layer. The exit code still says it: 1 after a failure, 0 after the client closed stdin.
 *
 *   DB_POOL_LOG_FILE=/tmp/mcp-server.jsonl tsx src/main.ts
 */
// Subpath imports, not the barrels: a host starts the server for every session, and @effect/platform-node's barrel
// alone loads its whole HTTP stack.
import * as PoolLogger from "@effect-pg-pool/effect3/PoolLogger"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Crypto from "node:crypto"
import * as Database from "./Database.js"
import * as McpServer from "./McpServer.js"

// Chosen here rather than by the testkit, so that the logger redacts it from its first line.
const embeddedPassword = Redacted.make(Crypto.randomBytes(18).toString("base64url"))

const LoggerLive = PoolLogger.layerFromEnv({ redact: [embeddedPassword] })

/**
 * Node prints its warnings (deprecations, MaxListenersExceeded…) on stderr: they go to the log file instead, for as
 * long as the server runs.
 */
const NodeWarningsLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    const onWarning = (warning: Error) => Runtime.runFork(runtime)(Effect.logWarning("Node.js warning", warning))
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const previous = process.listeners("warning")
        process.removeAllListeners("warning")
        process.on("warning", onWarning)
        return previous
      }),
      (previous) =>
        Effect.sync(() => {
          process.off("warning", onWarning)
          for (const listener of previous) process.on("warning", listener)
        })
    )
  })
)

const logFailure = (what: string) => (cause: unknown) => Effect.logError(what, cause)

// The logger goes under everything else (`Layer.provide`), so that the pool's background fibers, the embedded
// server's start and every tool call inherit it.
const MainLive = Database.layer(embeddedPassword).pipe(
  Layer.tapErrorCause(logFailure("the MCP server could not start")),
  Layer.provideMerge(NodeWarningsLive),
  Layer.provide(LoggerLive)
)

McpServer.serveStdio.pipe(
  Effect.tapErrorCause(logFailure("the MCP server stopped on a failure")),
  Effect.scoped,
  Effect.provide(MainLive),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
