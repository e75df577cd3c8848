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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { ContainerOptions, PgTestServer } from "../PgTestServer.js"
import * as Connect from "./connect.js"
import { describe, PgTestServerError, type Reason } from "./error.js"

type Module = typeof import("@testcontainers/postgresql")
type Started = Awaited<ReturnType<InstanceType<Module["PostgreSqlContainer"]>["start"]>>

const USER = "postgres"
const DATABASE = "postgres"

const fail = (reason: Reason, message: string, cause?: unknown) =>
  new PgTestServerError({ reason, backend: "container", message, cause })

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
export const make = (options: Options = {}): Effect.Effect<PgTestServer.Service, PgTestServerError, Scope.Scope> =>
  Effect.gen(function* () {
    const mod = yield* Effect.tryPromise({
      try: () => import("@testcontainers/postgresql"),
      catch: (cause) =>
        fail(
          "BackendUnavailable",
          `PG_TEST_BACKEND=container needs @testcontainers/postgresql, which failed to load: ${describe(cause)}. ` +
            `Install it (testcontainers 11.x on Node 20, 12.x needs Node ≥ 22.22), or use PG_TEST_BACKEND=embedded.`,
          cause
        )
    })
    const image = options.image ?? "postgres:17-alpine"
    const password =
      options.password === undefined
        ? Crypto.randomBytes(16).toString("hex")
        : Redacted.isRedacted(options.password)
          ? Redacted.value(options.password)
          : options.password
    const flags = flagsOf(options)
    const startTimeoutMillis = Duration.toMillis(options.startTimeout ?? "120 seconds")

    const container = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          new mod.PostgreSqlContainer(image)
            .withUsername(USER)
            .withPassword(password)
            .withDatabase(DATABASE)
            .withEntrypoint(["sh", "-c", ENTRYPOINT, "testkit-entrypoint"])
            .withCommand(["postgres", ...flags])
            .withStartupTimeout(startTimeoutMillis)
            .start(),
        catch: (cause) =>
          isRuntimeMissing(cause)
            ? fail(
                "BackendUnavailable",
                `PG_TEST_BACKEND=container needs a Docker engine (or another container runtime), and none is ` +
                  `reachable: ${describe(cause)}. Start Docker or set DOCKER_HOST, or use PG_TEST_BACKEND=embedded ` +
                  `(no Docker needed).`,
                cause
              )
            : fail("StartFailed", `The ${image} container did not start: ${describe(cause)}`, cause)
      }),
      (started: Started) =>
        Effect.promise(() =>
          started.stop().then(
            () => undefined,
            () => undefined
          )
        )
    )

    const host = container.getHost()
    const port = container.getPort()
    const params: Connect.ConnectionParams = { host, port, user: USER, password, database: DATABASE }
    let running = true

    const pgCtl = (args: string, failure: Reason, what: string) =>
      Effect.tryPromise({
        try: async () => {
          const result = await container.exec(["sh", "-c", `pg_ctl -D "$PGDATA" ${args}`], { user: USER })
          if (result.exitCode !== 0) throw new Error(`pg_ctl exited with ${result.exitCode}: ${result.output.trim()}`)
        },
        catch: (cause) =>
          fail(failure, `Cannot ${what} PostgreSQL in container ${container.getId()}: ${describe(cause)}`, cause)
      })

    const lock = yield* Effect.makeSemaphore(1)
    const stopUnlocked = (mode: "fast" | "immediate") =>
      Effect.suspend(() =>
        running
          ? pgCtl(`stop -m ${mode} -w -t 60`, "StopFailed", "stop").pipe(
              Effect.tap(() => {
                running = false
              })
            )
          : Effect.void
      )
    const startUnlocked = Effect.suspend(() =>
      running
        ? Effect.void
        : pgCtl(
            `start -w -t ${Math.ceil(startTimeoutMillis / 1000)} -l /tmp/testkit-postgres.log -o ${shellQuote(
              flags.join(" ")
            )}`,
            "StartFailed",
            "start"
          ).pipe(
            Effect.zipRight(
              Effect.tryPromise({
                try: () => Connect.waitForSession(params, Date.now() + startTimeoutMillis),
                catch: (cause) => fail("StartFailed", `PostgreSQL restarted but no session opened: ${describe(cause)}`)
              })
            ),
            Effect.tap(() => {
              running = true
            })
          )
    )

    const url = `postgres://${USER}:${encodeURIComponent(password)}@${host}:${port}/${DATABASE}`
    return {
      backend: "container",
      url: Redacted.make(url),
      host,
      port,
      user: USER,
      password: Redacted.make(password),
      database: DATABASE,
      stop: (opts) => lock.withPermits(1)(stopUnlocked(opts?.mode ?? "fast")),
      start: lock.withPermits(1)(startUnlocked),
      restart: lock.withPermits(1)(Effect.zipRight(stopUnlocked("fast"), startUnlocked)),
      isRunning: Effect.sync(() => running)
    } satisfies PgTestServer.Service
  })
