import * as Http from "node:http"
import { Cause, Data, Effect, Exit, Option, Redacted } from "effect"
import pg from "pg"

export class ClientError extends Data.TaggedError("ClientError")<{
  readonly message: string
  readonly code: string | undefined
}> {}

const toClientError = (cause: unknown) =>
  new ClientError({
    message: cause instanceof Error ? cause.message : String(cause),
    code: (cause as { code?: string } | undefined)?.code
  })

// pg's end() can wait forever on a socket that was reset under it.
const end = (client: pg.Client) =>
  Promise.race([client.end().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1_000))])

/** A connected client, closed with the scope. Its 'error' events are swallowed unless the test listens too. */
export const connect = (url: Redacted.Redacted<string>, options?: { readonly connectionTimeoutMillis?: number }) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new pg.Client({ connectionString: Redacted.value(url), ...options })
        client.on("error", () => undefined)
        try {
          await client.connect()
        } catch (error) {
          await end(client)
          throw error
        }
        return client
      },
      catch: toClientError
    }),
    (client) => Effect.promise(() => end(client))
  )

export const query = <A = Record<string, unknown>>(client: pg.Client, sql: string) =>
  Effect.tryPromise({
    try: () => client.query(sql).then((result) => result.rows as Array<A>),
    catch: toClientError
  })

/** Connects, runs one statement, disconnects. */
export const queryOnce = <A = Record<string, unknown>>(url: Redacted.Redacted<string>, sql: string) =>
  Effect.scoped(Effect.flatMap(connect(url, { connectionTimeoutMillis: 5_000 }), (client) => query<A>(client, sql)))

export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got a success: ${String(exit.value)}`)
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`expected a failure, got: ${Cause.pretty(exit.cause)}`)
  return failure.value
}

/** Whether the process runs (a zombie waiting for its new parent to reap it does not). */
export { isAlive } from "../src/internal/processes.js"

/** Polls `condition` every 20 ms until it holds or `millis` pass; returns whether it held. */
export const eventually = (condition: () => boolean, millis: number) =>
  Effect.promise(async () => {
    const deadline = Date.now() + millis
    while (!condition()) {
      if (Date.now() > deadline) return false
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return true
  })

/** Whether a Docker engine answers /_ping where testcontainers would look first. */
export const dockerAnswers = Effect.promise(
  () =>
    new Promise<boolean>((resolve) => {
      const dockerHost = process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock"
      const target = dockerHost.startsWith("unix://")
        ? { socketPath: dockerHost.slice("unix://".length) }
        : (() => {
            const url = new URL(dockerHost.replace(/^tcp:/, "http:"))
            return { host: url.hostname, port: Number(url.port || 2375) }
          })()
      const request = Http.get({ ...target, path: "/_ping", timeout: 2_000 }, (response) => {
        response.resume()
        resolve(response.statusCode === 200)
      })
      request.on("timeout", () => request.destroy())
      request.on("error", () => resolve(false))
    })
)
