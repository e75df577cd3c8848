/**
 * The external backend: a server somebody else runs (PG_TEST_URL). We connect to it and nothing more.
 *
 * @internal
 */
import * as Net from "node:net"
import type { TestServer } from "../core/TestServer.js"
import * as Connect from "./connect.js"
import { describe, TestServerError } from "./serverError.js"

/** @internal */
export interface Parsed extends Connect.ConnectionParams {
  readonly url: string
}

/**
 * The URL with its password masked, for messages.
 *
 * @internal
 */
export const redactUrl = (url: URL): string => {
  const copy = new URL(url.href)
  if (copy.password !== "") copy.password = "***"
  return copy.href
}

const EXPECTED = "postgres://user:password@host:port/database"

/** @internal */
export const parse = (url: string, source: string): Parsed | TestServerError => {
  const invalid = (text: string) => new TestServerError({ reason: "InvalidConfig", backend: "external", message: text })
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    // The raw value may hold a password: never echo it.
    return invalid(`${source} is not a valid URL: expected ${EXPECTED}.`)
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    return invalid(
      `${source} (${redactUrl(parsed)}) must start with postgres:// or postgresql://: expected ${EXPECTED}.`
    )
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1")
  if (host === "") return invalid(`${source} (${redactUrl(parsed)}) has no host: expected ${EXPECTED}.`)
  const port = parsed.port === "" ? 5432 : Number(parsed.port)
  const user = decodeURIComponent(parsed.username) || "postgres"
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, "")) || user
  return { url, host, port, user, password: decodeURIComponent(parsed.password), database }
}

const canConnect = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host, port })
    const done = (result: boolean) => {
      socket.destroy()
      resolve(result)
    }
    socket.setTimeout(1_000, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

/** @internal */
export const connect = async (url: string, source = "the external PostgreSQL URL"): Promise<TestServer> => {
  const parsed = parse(url, source)
  if (parsed instanceof TestServerError) throw parsed
  const where = `${parsed.host}:${parsed.port}`
  try {
    await Connect.waitForSession(parsed, Date.now() + 10_000)
  } catch (cause) {
    throw new TestServerError({
      reason: "BackendUnavailable",
      backend: "external",
      message:
        `Cannot open a session on the external PostgreSQL at ${where} (database "${parsed.database}", ` +
        `user "${parsed.user}"): ${describe(cause)}. Check that the server is up and that ${source} is right.`,
      cause
    })
  }
  const notSupported = (operation: string) =>
    Promise.reject(
      new TestServerError({
        reason: "NotSupported",
        backend: "external",
        message:
          `Cannot ${operation} the external PostgreSQL at ${where}: this process does not manage it. ` +
          `Tests that take the database down need PG_TEST_BACKEND=embedded (the default) or container; ` +
          `skip them when server.backend === "external".`
      })
    )
  return {
    backend: "external",
    url: parsed.url,
    host: parsed.host,
    port: parsed.port,
    user: parsed.user,
    password: parsed.password,
    database: parsed.database,
    socketDir: parsed.host.startsWith("/") ? parsed.host : undefined,
    stop: () => notSupported("stop"),
    kill: () => notSupported("kill"),
    start: () => notSupported("start"),
    restart: () => notSupported("restart"),
    isRunning: () => canConnect(parsed.host, parsed.port),
    close: async () => undefined
  }
}
