/**
 * The container backend: @testcontainers/postgresql, loaded on demand (it is an optional dependency and takes half
 * a second to import).
 *
 * The official image runs PostgreSQL as the container's main process, so stopping PostgreSQL would stop the
 * container and lose its port mapping. We run it under a small shell that keeps the container alive instead, and
 * stop/start the server inside with pg_ctl: same port, same data, like the embedded backend.
 *
 * @internal
 */
import * as Crypto from "node:crypto"
import type { ContainerOptions, StopMode, TestServer } from "../core/TestServer.js"
import * as Connect from "./connect.js"
import { describe, makeLock, type Reason, TestServerError } from "./serverError.js"

type Module = typeof import("@testcontainers/postgresql")

const USER = "postgres"
const DATABASE = "postgres"

const fail = (reason: Reason, message: string, cause?: unknown) =>
  new TestServerError({ reason, backend: "container", message, cause })

// PID 1: starts the image's entrypoint in the background and outlives the server; on `docker stop` it stops the
// server first so that the container exits at once.
const ENTRYPOINT = `
trap 'pid=$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null); [ -n "$pid" ] && kill -INT "$pid"; exit 0' TERM INT
docker-entrypoint.sh "$@" &
while :; do sleep 3600 & wait $!; done
`

/** @internal */
export type Options = ContainerOptions

const flagsOf = (options: Options): Array<string> =>
  Object.entries({
    max_connections: options.maxConnections ?? 200,
    fsync: "off",
    full_page_writes: "off",
    ...options.settings
  }).flatMap(([key, value]) => ["-c", `${key}=${typeof value === "boolean" ? (value ? "on" : "off") : value}`])

const isRuntimeMissing = (cause: unknown): boolean =>
  /container runtime strategy|docker daemon|docker\.sock|DOCKER_HOST|ECONNREFUSED|ENOENT/i.test(describe(cause))

const shellQuote = (value: string) => `'${value.replace(/'/g, "'\\''")}'`

/** @internal */
export const start = async (options: Options = {}): Promise<TestServer> => {
  let mod: Module
  try {
    mod = await import("@testcontainers/postgresql")
  } catch (cause) {
    throw fail(
      "BackendUnavailable",
      `PG_TEST_BACKEND=container needs @testcontainers/postgresql, which failed to load: ${describe(cause)}. ` +
        `Install it (testcontainers 11.x on Node 20, 12.x needs Node ≥ 22.22), or use PG_TEST_BACKEND=embedded.`,
      cause
    )
  }
  const image = options.image ?? "postgres:17-alpine"
  const password = options.password ?? Crypto.randomBytes(16).toString("hex")
  const flags = flagsOf(options)
  const startTimeoutMillis = options.startTimeoutMillis ?? 120_000

  let container: Awaited<ReturnType<InstanceType<Module["PostgreSqlContainer"]>["start"]>>
  try {
    container = await new mod.PostgreSqlContainer(image)
      .withUsername(USER)
      .withPassword(password)
      .withDatabase(DATABASE)
      .withEntrypoint(["sh", "-c", ENTRYPOINT, "testkit-entrypoint"])
      .withCommand(["postgres", ...flags])
      .withStartupTimeout(startTimeoutMillis)
      .start()
  } catch (cause) {
    throw isRuntimeMissing(cause)
      ? fail(
          "BackendUnavailable",
          `PG_TEST_BACKEND=container needs a Docker engine (or another container runtime), and none is ` +
            `reachable: ${describe(cause)}. Start Docker or set DOCKER_HOST, or use PG_TEST_BACKEND=embedded ` +
            `(no Docker needed).`,
          cause
        )
      : fail("StartFailed", `The ${image} container did not start: ${describe(cause)}`, cause)
  }

  const host = container.getHost()
  const port = container.getPort()
  const params: Connect.ConnectionParams = { host, port, user: USER, password, database: DATABASE }
  let running = true

  const pgCtl = async (args: string, failure: Reason, what: string) => {
    try {
      const result = await container.exec(["sh", "-c", `pg_ctl -D "$PGDATA" ${args}`], { user: USER })
      if (result.exitCode !== 0) throw new Error(`pg_ctl exited with ${result.exitCode}: ${result.output.trim()}`)
    } catch (cause) {
      throw fail(failure, `Cannot ${what} PostgreSQL in container ${container.getId()}: ${describe(cause)}`, cause)
    }
  }

  const lock = makeLock()
  const stopUnlocked = async (mode: StopMode) => {
    if (!running) return
    await pgCtl(`stop -m ${mode} -w -t 60`, "StopFailed", "stop")
    running = false
  }
  const startUnlocked = async () => {
    if (running) return
    await pgCtl(
      `start -w -t ${Math.ceil(startTimeoutMillis / 1000)} -l /tmp/testkit-postgres.log -o ${shellQuote(flags.join(" "))}`,
      "StartFailed",
      "start"
    )
    try {
      await Connect.waitForSession(params, Date.now() + startTimeoutMillis)
    } catch (cause) {
      throw fail("StartFailed", `PostgreSQL restarted but no session opened: ${describe(cause)}`)
    }
    running = true
  }

  let closed: Promise<void> | undefined
  return {
    backend: "container",
    url: `postgres://${USER}:${encodeURIComponent(password)}@${host}:${port}/${DATABASE}`,
    host,
    port,
    user: USER,
    password,
    database: DATABASE,
    socketDir: undefined,
    stop: (opts) => lock(() => stopUnlocked(opts?.mode ?? "fast")),
    kill: () =>
      Promise.reject(
        fail(
          "NotSupported",
          `Cannot kill the PostgreSQL in container ${container.getId()}: its processes live in the container's ` +
            `namespace. Use stop({ mode: "immediate" }) (a crash stop), or the embedded backend.`
        )
      ),
    start: () => lock(startUnlocked),
    restart: () =>
      lock(async () => {
        await stopUnlocked("fast")
        await startUnlocked()
      }),
    isRunning: async () => running,
    close: () => {
      closed ??= lock(() =>
        container.stop().then(
          () => undefined,
          () => undefined
        )
      )
      return closed
    }
  }
}
