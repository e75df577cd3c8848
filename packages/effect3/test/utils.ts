import { Reactivity } from "@effect/experimental"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import * as Net from "node:net"
import * as Pg from "pg"
import * as Db from "../src/Db.js"

/** A pool on the file's test server, built in the caller's scope (and so under its TestClock). */
export const makeDb = (options: Omit<Db.DbOptions, "url"> = {}) =>
  Effect.flatMap(PgTestServer.PgTestServer, (server) => Db.make({ url: server.url, ...options })).pipe(
    Effect.provide(Reactivity.layer)
  )

/** The same as a layer on top of the test server. */
export const dbLayer = (options: Omit<Db.DbOptions, "url"> = {}) =>
  Layer.unwrapEffect(Effect.map(PgTestServer.PgTestServer, (server) => Db.layer({ url: server.url, ...options })))

/** A TCP port nothing listens on (it was free a moment ago): a server that is down. */
export const freePort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const server = Net.createServer()
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as Net.AddressInfo).port
        server.close(() => resolve(port))
      })
    })
)

/** Real-time pause, independent of the TestClock: for waiting on sockets. */
export const realSleep = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

/** Polls `check` in real time until it holds; fails the test with `what` after `timeoutMillis`. */
export const eventually = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  timeoutMillis = 10_000
): Effect.Effect<void, E | Error, R> =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMillis
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.fail(new Error(`timed out waiting until ${what}`))
      yield* realSleep(5)
    }
  })

/** A plain pg client to the test server, outside the pool under test: the referee. */
export const adminClient = Effect.gen(function* () {
  const server = yield* PgTestServer.PgTestServer
  return yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Pg.Client({ connectionString: Redacted.value(server.url) })
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )
})

/** Runs a statement on the referee connection. */
export const adminQuery = <A = any>(client: Pg.Client, text: string, values: Array<unknown> = []) =>
  Effect.promise(() => client.query(text, values).then((r) => r.rows as Array<A>))

/** How many statements the server runs for one application_name. */
export const activeQueries = (client: Pg.Client, applicationName: string) =>
  Effect.map(
    adminQuery<{ n: number }>(
      client,
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
      [applicationName]
    ),
    (rows) => rows[0]!.n
  )

/** The typed failure of an exit, if it failed with one. */
export const failureOf = <E>(exit: Exit.Exit<unknown, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Backend pids the server has for one application_name. */
export const backendPids = (client: Pg.Client, applicationName: string) =>
  Effect.map(
    adminQuery<{ pid: number }>(client, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", [
      applicationName
    ]),
    (rows) => rows.map((r) => r.pid).sort()
  )

let appCounter = 0
/** A unique application_name per pool, so server-side checks see only that pool's backends. */
export const uniqueAppName = (prefix: string) => `${prefix}-${process.pid}-${++appCounter}`

/**
 * Holds one connection until the returned `release` is completed. The holder lives in the test's scope, so a
 * failed assertion does not leave the pool's shutdown waiting on it.
 */
export const hold = (db: Db.Db.Service) =>
  Effect.gen(function* () {
    const acquired = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkScoped(
      db.withConnection(() => Effect.zipRight(Deferred.succeed(acquired, undefined), Deferred.await(release)))
    )
    yield* Deferred.await(acquired)
    return { release: Effect.zipRight(Deferred.succeed(release, undefined), Fiber.join(fiber)), fiber }
  })

export const waitingIs = (db: Db.Db.Service, n: number) =>
  eventually(
    `${n} callers wait`,
    Effect.map(db.statistics, (s) => s.waiting === n)
  )

/**
 * The pool runs a health probe as soon as it is up (and every 5 s): wait for that round trip, so it does not
 * race what a test checks next.
 */
export const probed = (db: Db.Db.Service) =>
  eventually(
    "the first health probe is done",
    Effect.map(
      db.health,
      (h) => Option.isSome(h.database.probedAt) && h.statistics.active === 0 && h.statistics.pending === 0
    )
  )

/** A pool on the test server, once its first probe is done. */
export const makePool = (options: Omit<Db.DbOptions, "url">) => Effect.tap(makeDb(options), probed)
