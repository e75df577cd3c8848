import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll } from "vitest"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

// the fixture runs under the root's vite-node (TypeScript, this package's resolution)
const rootRequire = Module.createRequire(new URL("../../../package.json", import.meta.url))
const viteNode = Path.join(
  Path.dirname(Module.createRequire(rootRequire.resolve("vitest/package.json")).resolve("vite-node/package.json")),
  "vite-node.mjs"
)

const runFixture = (file: string, env: Record<string, string>) =>
  Effect.callback<{ code: number | null; stdout: string; stderr: string }>((resume) => {
    const child = ChildProcess.spawn(process.execPath, [viteNode, file], {
      cwd: Path.join(import.meta.dirname, ".."),
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.stdout.on("data", (chunk) => {
      stdout += chunk
    })
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    child.once("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

describe("logging", () => {
  it.live("DatabaseLive with DB_POOL_LOG_FILE prints nothing; the file has the pool's events, no password", () =>
    Effect.gen(function* () {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "e4-log-"))
      const logFile = Path.join(dir, "pool.jsonl")
      const { code, stderr, stdout } = yield* runFixture("test/fixtures/silentProgram.ts", {
        DATABASE_URL: server.url,
        DB_POOL_LOG_FILE: logFile,
        DB_POOL_NAME: "silent",
        DB_POOL_MIN_SIZE: "1"
      })
      assert.strictEqual(code, 0, `the program failed:\n${stdout}${stderr}`)
      assert.strictEqual(stdout, "")
      assert.strictEqual(stderr, "")
      const text = Fs.readFileSync(logFile, "utf8")
      const lines = text
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line))
      const messages = lines.map((line) => line.message)
      assert.include(messages, "pool starting")
      assert.include(messages, "pool ready")
      assert.include(messages, "pool shut down")
      assert.isTrue(lines.every((line) => line.pool === "silent"))
      assert.notInclude(text, server.password)
      Fs.rmSync(dir, { recursive: true, force: true })
    })
  )
})
