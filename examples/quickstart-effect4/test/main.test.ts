import { type TestServer, TestServer as Server } from "@effect-pg-pool/testkit/core"
import * as ChildProcess from "node:child_process"
import * as Url from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const packageDir = Url.fileURLToPath(new URL("..", import.meta.url))

/** `node --import tsx src/main.ts` as the README runs it, with only DATABASE_URL added to the environment. */
const runQuickstart = (databaseUrl: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: packageDir,
      env: { ...process.env, DATABASE_URL: databaseUrl }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })

describe("the Effect 4 quickstart", () => {
  let server: TestServer.TestServer
  beforeAll(async () => {
    server = await Server.startServer()
  })
  afterAll(() => server?.close())

  it("runs as written: creates its table, inserts, reads, and exits 0 (twice: the table is kept)", async () => {
    const first = await runQuickstart(server.url)
    expect(first.code, first.stdout + first.stderr).toBe(0)
    expect(first.stdout).toContain("greetings: 1, connections: 2, health: healthy")
    const second = await runQuickstart(server.url)
    expect(second.code, second.stdout + second.stderr).toBe(0)
    expect(second.stdout).toContain("greetings: 2, connections: 2, health: healthy")
  })
})
