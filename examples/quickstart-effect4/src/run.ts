/**
 * Runs `main.ts` as a user would: against `DATABASE_URL` when it is set, else against an embedded PostgreSQL
 * started through the testkit's runtime-free core for the run (stopped and removed afterwards).
 */
import { TestServer } from "@effect-pg-pool/testkit/core"
import * as ChildProcess from "node:child_process"
import * as Url from "node:url"

const main = Url.fileURLToPath(new URL("main.ts", import.meta.url))

const runMain = (env: NodeJS.ProcessEnv) =>
  new Promise<number>((resolve) => {
    const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", main], { env, stdio: "inherit" })
    const forward = (signal: NodeJS.Signals) => child.kill(signal)
    process.on("SIGINT", forward).on("SIGTERM", forward)
    child.on("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128)))
  })

if (process.env.DATABASE_URL !== undefined) {
  process.exitCode = await runMain(process.env)
} else {
  const server = await TestServer.startEmbedded()
  console.log(`DATABASE_URL is not set: running against an embedded PostgreSQL on port ${server.port}`)
  try {
    process.exitCode = await runMain({ ...process.env, DATABASE_URL: server.url })
  } finally {
    await server.close()
  }
}
