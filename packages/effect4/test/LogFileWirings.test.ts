/**
 * A user who sets the pool's log file expects the pool's own events there and nowhere else, however the layers are
 * wired, with no other layer (issue 10, items 6 and 21; the Effect 3 edition's PoolLogger.test.ts "with a pool"
 * cases). Each wiring runs in a child process under NodeRuntime.runMain, whose stdout and stderr must stay empty.
 */
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

/** Runs the wiring fixture with `env`; killed after `limitMillis` (a spin or a hang fails the test, not the run). */
const runWiring = (env: Record<string, string>, limitMillis = 60_000) =>
  Effect.callback<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resume) => {
    const child = ChildProcess.spawn(process.execPath, [viteNode, "test/fixtures/wiringProgram.ts"], {
      cwd: Path.join(import.meta.dirname, ".."),
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    const timer = setTimeout(() => child.kill("SIGKILL"), limitMillis)
    child.stdout.on("data", (chunk) => {
      stdout += chunk
    })
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    child.once("close", (code, signal) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, signal, stdout, stderr }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "e4-wiring-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const wirings = ["alone", "provide-array", "merge", "provide", "provideMerge"] as const

describe("the pool's log file, however it is wired", () => {
  for (const wiring of wirings) {
    it.live(`DB_POOL_LOG_FILE (${wiring}): nothing on stdout or stderr, every pool event in the file`, () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir
          const logFile = Path.join(dir, "pool.jsonl")
          const { code, stderr, stdout } = yield* runWiring({
            WIRING: wiring,
            DATABASE_URL: server.url,
            DB_POOL_LOG_FILE: logFile,
            DB_POOL_NAME: `wired-${wiring}`,
            DB_POOL_MIN_SIZE: "1",
            // a typo of DB_POOL_MAX_SIZE: no setting, so the config is valid and the pool warns of it
            DB_POOL_MAXSIZE: "3",
            PROGRAM_LOG_FILE: Path.join(dir, "program.jsonl")
          })
          assert.strictEqual(code, 0, `the program failed:\n${stdout}${stderr}`)
          assert.strictEqual(stdout, "", "the pool printed on stdout")
          assert.strictEqual(stderr, "", "the pool printed on stderr")
          const text = Fs.readFileSync(logFile, "utf8")
          const lines = text
            .trim()
            .split("\n")
            .map((line) => JSON.parse(line))
          const messages = lines.map((line) => String(line.message))
          assert.include(messages, "pool starting")
          assert.include(messages, "pool shut down")
          // the connection the program killed is in the file too
          assert.isTrue(lines.length >= 4, text)
          assert.isTrue(lines.every((line) => line.pool === `wired-${wiring}`))
          assert.notInclude(text, server.password)
          // the typo is reported where the pool's events go, naming the setting it was probably meant as
          const typo = lines.find((line) => line.variable === "DB_POOL_MAXSIZE")
          assert.isDefined(typo, text)
          assert.strictEqual(typo.level, "WARN")
          assert.strictEqual(typo.closest, "DB_POOL_MAX_SIZE")
          assert.include(typo.message, "DB_POOL_MAXSIZE is not a setting of the pool and is ignored")
        })
      )
    )
  }

  for (const wiring of ["alone", "provideMerge"] as const) {
    it.live(`DB_POOL_LOG_FILE under /proc (${wiring}) fails the layer with PoolConfigError, never spins`, () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir
          const resultFile = Path.join(dir, "result.txt")
          const { signal, stderr, stdout } = yield* runWiring(
            {
              WIRING: wiring,
              DATABASE_URL: server.url,
              DB_POOL_LOG_FILE: "/proc/e4-no-such-dir/pool.jsonl",
              RESULT_FILE: resultFile,
              PROGRAM_LOG_FILE: Path.join(dir, "program.jsonl")
            },
            20_000
          )
          assert.isNull(signal, "killed: the layer never settled")
          assert.strictEqual(stdout, "")
          assert.strictEqual(stderr, "")
          const message = Fs.existsSync(resultFile) ? Fs.readFileSync(resultFile, "utf8") : ""
          assert.include(message, "Invalid database pool configuration")
          assert.include(message, "/proc/e4-no-such-dir/pool.jsonl")
          assert.include(message, "DB_POOL_LOG_FILE")
        })
      )
    )
  }
})
