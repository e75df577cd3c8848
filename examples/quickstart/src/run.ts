/**
 * Runs `main.ts` as a user would: against `DATABASE_URL` when it is set, else against an embedded PostgreSQL
 * started through the testkit for the run (stopped and removed afterwards).
 */
import * as ChildProcess from "node:child_process"
import * as Url from "node:url"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Redacted } from "effect"

const main = Url.fileURLToPath(new URL("main.ts", import.meta.url))

const runMain = (env: NodeJS.ProcessEnv) =>
  Effect.async<number>((resume) => {
    const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", main], { env, stdio: "inherit" })
    child.on("exit", (code, signal) => resume(Effect.succeed(code ?? (signal === null ? 1 : 128))))
    return Effect.sync(() => child.kill("SIGTERM"))
  })

const program = Effect.gen(function* () {
  if (process.env.DATABASE_URL !== undefined) return yield* runMain(process.env)
  const server = yield* PgTestServer.makeEmbedded()
  console.log(`DATABASE_URL is not set: running against an embedded PostgreSQL on port ${server.port}`)
  return yield* runMain({ ...process.env, DATABASE_URL: Redacted.value(server.url) })
}).pipe(
  Effect.scoped,
  Effect.flatMap((code) => Effect.sync(() => (process.exitCode = code)))
)

NodeRuntime.runMain(program)
