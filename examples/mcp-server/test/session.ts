/**
 * A real MCP session with the server: the SDK's `Client` over the SDK's `StdioClientTransport`, which spawns
 * `src/main.ts` as an MCP host would. The transport is extended only to record every byte the server writes on
 * stdout (and how it exited), so that a test can check that nothing but JSON-RPC ever reached it.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { type CallToolResult, type JSONRPCMessage, JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js"
import { assert } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import type * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export const packageDir = Path.join(import.meta.dirname, "..")

/** How the server is started: TypeScript through tsx's loader, as `pnpm start` does it. */
export const serverCommand = { command: process.execPath, args: ["--import", "tsx", "src/main.ts"], cwd: packageDir }

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

class RecordingTransport extends StdioClientTransport {
  readonly sent: Array<JSONRPCMessage> = []
  readonly stdoutChunks: Array<Buffer> = []
  readonly stderrChunks: Array<Buffer> = []
  child: ChildProcess.ChildProcess | undefined
  exited: Promise<Exited> | undefined

  constructor(env: Record<string, string>, preload: string | undefined) {
    const args =
      preload === undefined
        ? serverCommand.args
        : ["--import", `data:text/javascript,${preload}`, ...serverCommand.args]
    super({ ...serverCommand, args, env, stderr: "pipe" })
    this.stderr!.on("data", (chunk: Buffer) => this.stderrChunks.push(chunk))
  }

  override async start() {
    await super.start()
    // The SDK keeps its child private; a listener added now, before the next turn of the event loop, sees the
    // first byte like the transport's own.
    const child = (this as unknown as { _process: ChildProcess.ChildProcess })._process
    this.child = child
    child.stdout!.on("data", (chunk: Buffer) => this.stdoutChunks.push(chunk))
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })))
  }

  override async send(message: JSONRPCMessage) {
    await super.send(message)
    this.sent.push(message)
  }
}

export interface Session {
  readonly client: Client
  readonly pid: number
  /** The messages written to the server's stdin so far. */
  readonly sent: () => ReadonlyArray<JSONRPCMessage>
  readonly logFile: string
  readonly callTool: (name: string, args?: Record<string, unknown>) => Effect.Effect<CallToolResult>
  /** Ends the server's stdin, as a host closing the session does, and waits for the process to exit. */
  readonly closeInput: Effect.Effect<Exited>
  readonly stdout: () => string
  readonly stderr: () => string
  readonly logText: () => string
  readonly logLines: () => ReadonlyArray<Record<string, any>>
}

export const makeTempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-server-test-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

export const readLog = (logFile: string) => (Fs.existsSync(logFile) ? Fs.readFileSync(logFile, "utf8") : "")

export const parseLog = (text: string): ReadonlyArray<Record<string, any>> =>
  text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line))

/**
 * Starts the server with `env` (plus DB_POOL_LOG_FILE in a fresh directory) and completes the MCP handshake;
 * `preload` is JavaScript run before the server's code. The process is killed when the scope closes if a test left
 * it running.
 */
export const startSession = (
  env: Record<string, string>,
  options?: { readonly preload?: string }
): Effect.Effect<Session, never, Scope.Scope> =>
  Effect.gen(function* () {
    const logFile = Path.join(yield* makeTempDir, "mcp-server.jsonl")
    const transport = new RecordingTransport({ ...env, DB_POOL_LOG_FILE: logFile }, options?.preload)
    const client = new Client({ name: "mcp-server-test", version: "0.0.0" })
    yield* Effect.acquireRelease(
      Effect.promise(() => client.connect(transport)),
      () =>
        Effect.promise(async () => {
          transport.child?.kill("SIGKILL")
          await client.close()
        })
    )
    const closeInput = Effect.promise(async () => {
      transport.child!.stdin!.end()
      return transport.exited!
    })
    return {
      client,
      pid: transport.child!.pid!,
      sent: () => transport.sent,
      logFile,
      callTool: (name, args) =>
        Effect.promise(() => client.callTool({ name, arguments: args ?? {} }) as Promise<CallToolResult>),
      closeInput,
      stdout: () => Buffer.concat(transport.stdoutChunks).toString("utf8"),
      stderr: () => Buffer.concat(transport.stderrChunks).toString("utf8"),
      logText: () => readLog(logFile),
      logLines: () => parseLog(readLog(logFile))
    }
  })

/** Every byte written on stdout is a newline-terminated JSON-RPC message, as the stdio transport frames them. */
export const assertJsonRpcOnly = (stdout: string): ReadonlyArray<Record<string, any>> => {
  if (stdout === "") return []
  assert.isTrue(stdout.endsWith("\n"), `stdout ends with an unterminated line: ${JSON.stringify(stdout.slice(-200))}`)
  return stdout
    .slice(0, -1)
    .split("\n")
    .map((line) => {
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        return assert.fail(`a line on stdout is not JSON: ${JSON.stringify(line.slice(0, 300))}`)
      }
      const message = JSONRPCMessageSchema.safeParse(parsed)
      assert.isTrue(message.success, `a line on stdout is not a JSON-RPC message: ${line.slice(0, 300)}`)
      return parsed as Record<string, any>
    })
}

/** The password never appears, plain or percent-encoded. */
export const assertNoSecret = (what: string, text: string, secret: string) => {
  for (const form of new Set([secret, encodeURIComponent(secret)])) {
    assert.notInclude(text, form, `${what} holds the password`)
  }
}

/** The text of a tool result's first content block. */
export const textOf = (result: CallToolResult): string => {
  const first = result.content[0]
  return first?.type === "text" ? first.text : ""
}
