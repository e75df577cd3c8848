// Plain-Promise client helpers for the core's tests (no Effect anywhere on this path).
import pg from "pg"

/** A connected client; its 'error' events are swallowed (the tests break servers under it on purpose). */
export const connect = async (config: string | pg.ClientConfig): Promise<pg.Client> => {
  const client = new pg.Client(
    typeof config === "string" ? { connectionString: config, connectionTimeoutMillis: 5_000 } : config
  )
  client.on("error", () => undefined)
  await client.connect()
  return client
}

// pg's end() can wait forever on a socket that was reset under it.
export const end = (client: pg.Client): Promise<unknown> =>
  Promise.race([client.end().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1_000))])

/** Connects, runs one statement, disconnects. */
export const queryOnce = async <A = Record<string, unknown>>(
  config: string | pg.ClientConfig,
  sql: string
): Promise<Array<A>> => {
  const client = await connect(config)
  try {
    return (await client.query(sql)).rows as Array<A>
  } finally {
    await end(client)
  }
}

/** The rejection of `promise`, or a failure if it resolves. */
export const rejection = async (promise: Promise<unknown>): Promise<Error & { code?: string }> => {
  try {
    await promise
  } catch (error) {
    return error as Error & { code?: string }
  }
  throw new Error("expected a rejection, got a success")
}

/** Polls `condition` every 20 ms until it holds or `millis` pass; returns whether it held. */
export const eventually = async (condition: () => boolean | Promise<boolean>, millis: number): Promise<boolean> => {
  const deadline = Date.now() + millis
  while (!(await condition())) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return true
}
