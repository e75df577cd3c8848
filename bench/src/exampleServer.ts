/**
 * examples/health-server in a child process, started through the layer it exports (`makeServerLayer`) on our
 * pool with maxSize 10 — bundled like the workers, so an `--effect3` patch applies to it too. Reports its port over
 * IPC and stops on "finish".
 *
 *   exampleServer.ts <url>
 */
import { Db } from "@effect-pg-pool/effect3"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { makeServerLayer } from "../../examples/health-server/src/HealthServer.js"
import type { FromWorker, ToWorker } from "./protocol.js"

const send = (message: FromWorker) =>
  new Promise<void>((resolve) => (process.send === undefined ? resolve() : process.send(message, () => resolve())))

const main = async () => {
  const url = process.argv[2]
  if (url === undefined) throw new Error("usage: exampleServer.ts <url>")
  const runtime = ManagedRuntime.make(
    makeServerLayer({ port: 0, host: "127.0.0.1" }).pipe(
      Layer.provideMerge(Db.layer({ url: Redacted.make(url), maxSize: 10 }))
    )
  )
  const server = await runtime.runPromise(HttpServer.HttpServer)
  const address = server.address
  await send({ type: "listening", port: address._tag === "TcpAddress" ? address.port : 0 })
  await new Promise<void>((resolve) =>
    process.on("message", (message: ToWorker) => {
      if (message.type === "finish") resolve()
    })
  )
  await runtime.dispose()
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    await send({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) })
    process.exit(1)
  }
)
