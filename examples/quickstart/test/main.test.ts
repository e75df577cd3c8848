import * as ChildProcess from "node:child_process"
import * as Url from "node:url"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"

const packageDir = Url.fileURLToPath(new URL("..", import.meta.url))

/** `node --import tsx src/main.ts` as the README runs it, with only DATABASE_URL added to the environment. */
const runQuickstart = (databaseUrl: Redacted.Redacted<string>) =>
  Effect.promise(
    () =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
          cwd: packageDir,
          env: { ...process.env, DATABASE_URL: Redacted.value(databaseUrl) }
        })
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (chunk) => (stdout += chunk))
        child.stderr.on("data", (chunk) => (stderr += chunk))
        child.on("exit", (code) => resolve({ code, stdout, stderr }))
      })
  )

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("quickstart", (it) => {
  it.effect("runs as written: creates its table, inserts, reads, and exits 0 (twice: the table is kept)", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const first = yield* runQuickstart(server.url)
      assert.strictEqual(first.code, 0, first.stdout + first.stderr)
      assert.include(first.stdout, "greetings: 1, connections: 2, health: healthy")
      const second = yield* runQuickstart(server.url)
      assert.strictEqual(second.code, 0, second.stdout + second.stderr)
      assert.include(second.stdout, "greetings: 2, connections: 2, health: healthy")
    })
  )
})
