/** @internal */
import * as Pg from "pg"

/** @internal */
export interface ConnectionParams {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string
  readonly database: string
}

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

/**
 * One full session: TCP, startup, authentication, and optionally a statement.
 *
 * @internal
 */
export const connectOnce = async (params: ConnectionParams, timeoutMillis: number, sql?: string): Promise<void> => {
  const client = new Pg.Client({ ...params, connectionTimeoutMillis: timeoutMillis, application_name: "testkit" })
  // An unlistened 'error' (the server going away mid-check) would crash the process.
  client.on("error", () => undefined)
  try {
    await client.connect()
    if (sql !== undefined) await client.query(sql)
  } finally {
    await client.end().catch(() => undefined)
  }
}

const isTransient = (error: unknown): boolean => {
  const code = (error as { code?: unknown }).code
  // 57P03: the database system is starting up / in recovery; the others: the listener is not there yet.
  if (code === "57P03" || code === "ECONNREFUSED" || code === "ECONNRESET") return true
  return error instanceof Error && /Connection terminated|timeout/i.test(error.message)
}

/**
 * Retries transient failures until `deadline` (epoch millis); authentication and other definite failures fail at
 * once.
 *
 * @internal
 */
export const waitForSession = async (
  params: ConnectionParams,
  deadline: number,
  options?: { readonly sql?: string | undefined; readonly signal?: AbortSignal | undefined }
): Promise<void> => {
  for (;;) {
    try {
      const remaining = Math.max(250, deadline - Date.now())
      return await connectOnce(params, Math.min(remaining, 5_000), options?.sql)
    } catch (error) {
      if (!isTransient(error) || Date.now() >= deadline || options?.signal?.aborted) throw error
      await sleep(25)
    }
  }
}

/**
 * Runs one statement in a session of its own and returns its rows.
 *
 * @internal
 */
export const query = async <A = Record<string, unknown>>(
  params: ConnectionParams,
  sql: string,
  timeoutMillis = 5_000
): Promise<Array<A>> => {
  const client = new Pg.Client({ ...params, connectionTimeoutMillis: timeoutMillis, application_name: "testkit" })
  client.on("error", () => undefined)
  try {
    await client.connect()
    return (await client.query(sql)).rows as Array<A>
  } finally {
    await client.end().catch(() => undefined)
  }
}
