/**
 * A fresh real PostgreSQL for an Effect 4 test suite: the only module of the Effect 4 tests that knows where the
 * server comes from. It wraps the testkit's runtime-free core (`@effect-pg-pool/testkit/core`, Promises, no Effect 3)
 * in an Effect 4 layer.
 *
 * - `DATABASE_URL` set (or `PG_TEST_BACKEND=external` with `PG_TEST_URL`): a fresh database on that server per
 *   build, dropped when the layer's scope closes.
 * - otherwise the backend `PG_TEST_BACKEND` names: an embedded server of its own by default (or a container), closed
 *   and its files removed when the layer's scope closes.
 */
import { TestServer } from "@effect-pg-pool/testkit/core"
import { PgConnection } from "@effect/sql-pg"
import type { Scope } from "effect"
import { Context, Data, Effect, Layer, Redacted } from "effect"
import * as Crypto from "node:crypto"

/** Starting or reaching the test server failed; `message` says which step. */
export class PgServerError extends Data.TaggedError("PgServerError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** Where the suite's database is, and the server's controls. */
export interface Info {
  readonly url: Redacted.Redacted
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password: Redacted.Redacted
  readonly database: string
  /** PostgreSQL's fast shutdown (or its crash stop with `immediate`): connections fail until `start`. */
  readonly stop: (mode?: "fast" | "immediate") => Effect.Effect<void, PgServerError>
  /** Brings a stopped server back on the same port with its data. */
  readonly start: Effect.Effect<void, PgServerError>
}

/** The suite's database. */
export class PgServer extends Context.Service<PgServer, Info>()("@effect-pg-pool/effect4/test/PgServer") {}

const attempt = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (cause) =>
      new PgServerError({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
  })

const urlOf = (server: { host: string; port: number; user: string; password: string }, database: string) =>
  `postgres://${encodeURIComponent(server.user)}:${encodeURIComponent(server.password)}@${server.host}:${server.port}/${encodeURIComponent(
    database
  )}`

// One session on the server's own database, for CREATE/DROP DATABASE.
const onServer = (url: string, sql: string): Effect.Effect<void, PgServerError> =>
  PgConnection.make({ url: Redacted.make(url) }).pipe(
    Effect.flatMap((connection) => connection.query(sql, [], false)),
    Effect.scoped,
    Effect.mapError((cause) => new PgServerError({ message: `${sql} failed: ${cause.message}`, cause })),
    Effect.asVoid
  )

const make: Effect.Effect<Info, PgServerError, Scope.Scope> = Effect.gen(function* () {
  const databaseUrl = process.env.DATABASE_URL
  const server = yield* Effect.acquireRelease(
    attempt("the test server did not start", () =>
      TestServer.startServer(
        databaseUrl !== undefined && databaseUrl !== "" ? { backend: "external", url: databaseUrl } : {}
      )
    ),
    (server) => Effect.promise(() => server.close())
  )
  // A server shared with others gets a database of this suite's own.
  let database = server.database
  if (server.backend === "external") {
    database = `effect4_test_${process.pid}_${Crypto.randomBytes(4).toString("hex")}`
    const name = database
    yield* Effect.acquireRelease(onServer(server.url, `CREATE DATABASE "${name}"`), () =>
      Effect.ignore(onServer(server.url, `DROP DATABASE "${name}" WITH (FORCE)`))
    )
  }
  return {
    url: Redacted.make(urlOf(server, database)),
    host: server.host,
    port: server.port,
    username: server.user,
    password: Redacted.make(server.password),
    database,
    stop: (mode = "fast") => attempt(`stopping the test server (${mode})`, () => server.stop({ mode })),
    start: attempt("restarting the test server", () => server.start())
  }
})

/** A fresh database per build: its own embedded server, or a new database on `DATABASE_URL`. */
export const layer: Layer.Layer<PgServer, PgServerError> = Layer.effect(PgServer)(make)

/** A layer built on the suite's server, e.g. `PgServer.layerWith((server) => PgClient.layer({ url: server.url }))`. */
export const layerWith = <ROut, E>(
  f: (server: Info) => Layer.Layer<ROut, E>
): Layer.Layer<ROut | PgServer, E | PgServerError> =>
  Layer.unwrap(Effect.map(PgServer, f)).pipe(Layer.provideMerge(layer))
