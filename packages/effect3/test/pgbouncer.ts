/**
 * Helpers of the PgBouncer suites: a pool on PgBouncer's URL, a client on PgBouncer's admin console (`SHOW
 * CLIENTS`: the client connections PgBouncer holds for one application_name are the pool's connections), and the
 * quiescence check behind a pooler.
 *
 * Behind PgBouncer pg_stat_activity shows PgBouncer's server connections, not ours, and not under our
 * application_name in transaction mode (PgBouncer leaves it empty), so the referee of "nothing leaked" is PgBouncer's
 * own list of clients.
 */
import { Reactivity } from "@effect/experimental"
import { PgBouncer, PgTestServer } from "@effect-pg-pool/testkit"
import { assert } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import * as Pg from "pg"
import * as Db from "../src/Db.js"
import { adminQuery, eventually } from "./utils.js"

/**
 * PgBouncer in front of the file's test server. `server_login_retry` is PgBouncer's wait after a failed server login
 * (15 s by default): at 1 s PgBouncer, like the pool, tries again within a second of the server coming back.
 */
export const bouncerEnv = (poolMode: "session" | "transaction", poolSize = 20) =>
  PgBouncer.layer({ poolMode, poolSize, settings: { server_login_retry: 1 } }).pipe(
    Layer.provideMerge(PgTestServer.layer)
  )

/** A pool on PgBouncer's URL, built in the test's scope. */
export const makeBouncedPool = (options: Omit<Db.DbOptions, "url">) =>
  Effect.gen(function* () {
    const bouncer = yield* PgBouncer.PgBouncer
    return yield* Db.make({ url: bouncer.url, ...options }).pipe(Effect.provide(Reactivity.layer))
  })

const connect = (config: Pg.ClientConfig) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Pg.Client(config)
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

/** PgBouncer's admin console (simple protocol only, which `client.query(text)` uses). */
export const bouncerAdmin = Effect.gen(function* () {
  const bouncer = yield* PgBouncer.PgBouncer
  const server = yield* PgTestServer.PgTestServer
  return yield* connect({
    host: bouncer.host,
    port: bouncer.port,
    user: server.user,
    password: Redacted.value(server.password),
    database: "pgbouncer"
  })
})

/** A plain client through PgBouncer, outside the pool under test. */
export const bouncedClient = (applicationName: string) =>
  Effect.flatMap(PgBouncer.PgBouncer, (bouncer) =>
    connect({ connectionString: Redacted.value(bouncer.url), application_name: applicationName })
  )

/** The client connections PgBouncer holds for one application_name. */
export const bouncerClients = (admin: Pg.Client, applicationName: string) =>
  Effect.promise(() =>
    admin.query("SHOW CLIENTS").then((r) => r.rows.filter((row) => row.application_name === applicationName).length)
  )

/** After quiescence: nothing checked out, nobody waiting, and PgBouncer holds exactly the pool's connections. */
export const assertQuiescentBehind = (db: Db.Db.Service, admin: Pg.Client, applicationName: string) =>
  Effect.gen(function* () {
    yield* eventually(
      "the pool is quiescent",
      Effect.map(db.statistics, (s) => s.active === 0 && s.waiting === 0 && s.pending === 0),
      20_000
    )
    const stats = yield* db.statistics
    assert.strictEqual(stats.total, stats.idle)
    assert.isAtMost(stats.total, stats.maxSize)
    yield* eventually(
      `PgBouncer's clients agree with the pool (${stats.total} connections)`,
      Effect.flatMap(bouncerClients(admin, applicationName), (n) => Effect.map(db.statistics, (s) => n === s.total)),
      20_000
    )
    return stats
  })

/** The tests' `pg_sleep(30)` statements running on the server. */
export const sleepingStatements = (admin: Pg.Client) =>
  Effect.map(
    adminQuery<{ n: number }>(
      admin,
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'"
    ),
    (rows) => rows[0]!.n
  )
