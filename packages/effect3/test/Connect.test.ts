/**
 * Opening connections: which failures are outages and which are rejections (and what each does to init,
 * health and the backoff), the bounded and leak-free `onConnect`, defects in background opens, and counters
 * that must add up.
 */
import { Reactivity } from "@effect/experimental"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, describe, it, layer } from "@effect/vitest"
import {
  Deferred,
  Effect,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  HashSet,
  Logger,
  Option,
  Redacted,
  Scope,
  TestClock
} from "effect"
import Dns from "node:dns"
import * as Net from "node:net"
import type * as Pg from "pg"
import * as Db from "../src/Db.js"
import { classifyConnectError, errorMessage } from "../src/internal/connection.js"
import * as InternalPool from "../src/internal/pool.js"
import * as PoolConfig from "../src/PoolConfig.js"
import { ConnectionRejected, DatabaseUnreachable } from "../src/PoolError.js"
import type { PoolStatistics } from "../src/PoolStatistics.js"
import {
  adminClient,
  adminQuery,
  backendPids,
  eventually,
  failureOf,
  freePort,
  makeDb,
  makePool,
  realSleep,
  uniqueAppName,
  waitingIs
} from "./utils.js"

const sqlError = (code: string, message: string) => Object.assign(new Error(message), { code, severity: "FATAL" })

/** Node's own error for a refused `localhost` that resolves to `::1` and `127.0.0.1`: an empty-message AggregateError. */
const refusedOnBothFamilies = Effect.async<unknown>((resume) => {
  const socket = Net.connect({
    host: "localhost",
    port: 1,
    lookup: (_host, _options, callback: any) =>
      callback(null, [
        { address: "::1", family: 6 },
        { address: "127.0.0.1", family: 4 }
      ])
  })
  socket.on("error", (error) => resume(Effect.succeed(error)))
})

/** The server's URL with another password or database. */
const urlWith = (url: Redacted.Redacted<string>, change: { password?: string; database?: string }) => {
  const parsed = new URL(Redacted.value(url))
  if (change.password !== undefined) parsed.password = change.password
  if (change.database !== undefined) parsed.pathname = `/${change.database}`
  return Redacted.make(parsed.toString())
}

/**
 * Moves the TestClock on in 100 ms steps, letting real sockets answer in between, until `done` holds: a backoff
 * step sleeps in short slices, which one big adjustment would not all run.
 */
const driveUntil = <E, R>(what: string, done: Effect.Effect<boolean, E, R>, maxMillis = 20_000) =>
  Effect.gen(function* () {
    for (let elapsed = 0; !(yield* done); elapsed += 100) {
      if (elapsed > maxMillis) return yield* Effect.fail(new Error(`the clock ran ${maxMillis} ms without: ${what}`))
      yield* TestClock.adjust("100 millis")
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2)))
    }
  })

/** Every connection the pool ever created is open or closed for a reason. */
const assertCountsAddUp = (stats: PoolStatistics) => {
  const closed = Object.values(stats.connectionsClosed).reduce((a: number, b) => a + (b as number), 0)
  assert.strictEqual(stats.connectionsCreated, closed + stats.total, JSON.stringify(stats.connectionsClosed))
}

describe("classifyConnectError", () => {
  const target = { user: "app", database: "appdb" }

  it("rejections: authentication, missing role or database, refused startup settings, TLS", () => {
    const rejected: ReadonlyArray<[unknown, string]> = [
      [sqlError("28P01", 'password authentication failed for user "app"'), "password"],
      [sqlError("28000", 'role "nobody" does not exist'), "pg_hba.conf"],
      [sqlError("28000", 'no pg_hba.conf entry for host "10.0.0.1"'), "pg_hba.conf"],
      [sqlError("3D000", 'database "appdb" does not exist'), 'CREATE DATABASE "appdb"'],
      [sqlError("42704", 'unrecognized configuration parameter "foo"'), "startup setting"],
      [sqlError("22023", 'invalid value for parameter "statement_timeout"'), "startup setting"],
      [sqlError("0A000", "unsupported frontend protocol 3.9"), "startup setting"],
      [sqlError("08P01", "invalid startup packet layout"), "startup message"],
      [Object.assign(new Error("self-signed certificate"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" }), "sslmode"],
      [Object.assign(new Error("Hostname/IP does not match"), { code: "ERR_TLS_CERT_ALTNAME_INVALID" }), "sslmode"],
      [new Error("The server does not support SSL connections"), "sslmode"],
      [new Error("SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string"), "password"]
    ]
    for (const [cause, remedy] of rejected) {
      const failure = classifyConnectError(cause, target)
      assert.strictEqual(failure.kind, "rejected", failure.message)
      assert.include(failure.remedy, remedy)
      assert.isFalse(failure.probeable)
    }
  })

  it("outages: too many connections, shutting down, starting up, network errors", () => {
    const outages: ReadonlyArray<unknown> = [
      sqlError("53300", "sorry, too many clients already"),
      sqlError("57P01", "terminating connection due to administrator command"),
      sqlError("57P02", "terminating connection because of crash of another server process"),
      sqlError("57P03", "the database system is starting up"),
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
      Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
      new Error("timeout expired"),
      new Error("Connection terminated unexpectedly"),
      "a string"
    ]
    for (const cause of outages) {
      const failure = classifyConnectError(cause, target)
      assert.strictEqual(failure.kind, "outage", failure.message)
      assert.isUndefined(failure.remedy)
    }
    assert.isTrue(classifyConnectError(sqlError("57P03", "the database system is starting up"), target).startingUp)
  })

  it("a server going away: one that says it is shutting down, or a reset on a Unix socket (no middlebox there)", () => {
    const shuttingDown = classifyConnectError(sqlError("57P03", "the database system is shutting down"), target)
    assert.deepStrictEqual([shuttingDown.kind, shuttingDown.goingAway, shuttingDown.probeable], ["outage", true, false])
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })
    assert.isTrue(classifyConnectError(reset, { ...target, host: "/var/run/postgresql" }).goingAway)
    // over TCP a reset may come from a proxy that stays up: only the backoff paces the next attempt
    assert.isFalse(classifyConnectError(reset, { ...target, host: "db.internal" }).goingAway)
  })

  it.effect(
    "an AggregateError (localhost on ::1 and 127.0.0.1) reads as its inner errors, classified by their code",
    () =>
      Effect.gen(function* () {
        const error = yield* refusedOnBothFamilies
        assert.instanceOf(error, AggregateError)
        assert.strictEqual((error as Error).message, "")
        const failure = classifyConnectError(error, target)
        assert.strictEqual(failure.message, "connect ECONNREFUSED ::1:1; connect ECONNREFUSED 127.0.0.1:1")
        assert.strictEqual(failure.code, "ECONNREFUSED")
        assert.isTrue(failure.probeable)
        assert.strictEqual(failure.kind, "outage")
        assert.strictEqual(errorMessage(error), failure.message)
        // without a code of its own, the first inner error's counts
        const bare = new AggregateError([
          Object.assign(new Error("connect EHOSTUNREACH ::1:5432"), { code: "EHOSTUNREACH" })
        ])
        assert.strictEqual(classifyConnectError(bare, target).code, "EHOSTUNREACH")
      })
  )
})

/** Makes `dual.invalid` resolve to both `::1` and `127.0.0.1`, as `localhost` does on many machines. */
const dualStackHost = Effect.acquireRelease(
  Effect.sync(() => {
    const original = Dns.lookup
    ;(Dns as any).lookup = (host: string, options: any, callback: any) => {
      if (host !== "dual.invalid") return (original as any)(host, options, callback)
      if (typeof options === "function") return (Dns as any).lookup(host, {}, options)
      const all = [
        { address: "::1", family: 6 },
        { address: "127.0.0.1", family: 4 }
      ]
      return options.all ? callback(null, all) : callback(null, all[0]!.address, all[0]!.family)
    }
    return original
  }),
  (original) =>
    Effect.sync(() => {
      ;(Dns as any).lookup = original
    })
)

describe("a host on two address families", () => {
  it.scoped("a refused connection reads as both refusals, in the error and the statistics", () =>
    Effect.gen(function* () {
      yield* dualStackHost
      const port = yield* freePort
      const url = Redacted.make(`postgres://app:pw@dual.invalid:${port}/appdb`)
      const error = failureOf(
        yield* Effect.exit(Db.make({ url, reconnect: { initialAttempts: 1 } }).pipe(Effect.provide(Reactivity.layer)))
      )
      assert.instanceOf(error, DatabaseUnreachable)
      const refusals = `connect ECONNREFUSED ::1:${port}; connect ECONNREFUSED 127.0.0.1:${port}`
      assert.include((error as DatabaseUnreachable).message, `last error: ${refusals}.`)
      const db = yield* Db.make({ url, init: "lazy", minSize: 1 }).pipe(Effect.provide(Reactivity.layer))
      yield* eventually(
        "the first attempt failed",
        Effect.map(db.statistics, (s) => Option.isSome(s.lastError))
      )
      assert.strictEqual(Option.getOrThrow((yield* db.statistics).lastError), refusals)
    })
  )
})

it.layer(PgTestServer.layer, { timeout: 60_000 })("rejected logins", (it) => {
  const settles = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
    eventually("init settles without the backoff", Effect.map(Fiber.poll(fiber), Option.isSome))

  it.scoped("a wrong password fails eager init at once with ConnectionRejected, without the password", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const url = urlWith(server.url, { password: "wr0ng-Passw0rd" })
      // no TestClock adjustment: a backoff step would never end
      const fiber = yield* Effect.fork(Db.make({ url }).pipe(Effect.provide(Reactivity.layer)))
      yield* settles(fiber)
      const error = failureOf(yield* Fiber.await(fiber))
      assert.instanceOf(error, ConnectionRejected)
      const rejected = error as ConnectionRejected
      assert.strictEqual(rejected.attempts, 1)
      assert.strictEqual(rejected.code, "28P01")
      assert.deepStrictEqual([rejected.host, rejected.port, rejected.user], [server.host, server.port, server.user])
      assert.include(rejected.message, `password authentication failed for user "${server.user}"`)
      assert.include(rejected.message, "SQLSTATE 28P01")
      assert.include(rejected.message, "check the password")
      assert.include(rejected.message, "not an outage")
      assert.notInclude(rejected.message, "wr0ng-Passw0rd")
    })
  )

  it.scoped("a missing database fails eager init at once, and says to create it", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const url = urlWith(server.url, { database: "no_such_db" })
      const fiber = yield* Effect.fork(Db.make({ url, minSize: 3 }).pipe(Effect.provide(Reactivity.layer)))
      yield* settles(fiber)
      const error = failureOf(yield* Fiber.await(fiber))
      assert.instanceOf(error, ConnectionRejected)
      assert.strictEqual((error as ConnectionRejected).code, "3D000")
      assert.strictEqual((error as ConnectionRejected).attempts, 1)
      assert.include((error as ConnectionRejected).message, 'CREATE DATABASE "no_such_db"')
      // configured in code: the remedy points at the option, not at an environment variable nobody set
      assert.include((error as ConnectionRejected).message, "fix its name in the url option")
    })
  )

  it.scoped("lazy mode keeps retrying and reports a configuration error, not an unreachable database", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const url = urlWith(server.url, { password: "wr0ng-Passw0rd" })
      const db = yield* Db.make({ url, init: "lazy", minSize: 1 }).pipe(Effect.provide(Reactivity.layer))
      yield* eventually(
        "the first attempt failed",
        Effect.map(db.health, (h) => h.status === "unhealthy" && Option.isSome(h.statistics.lastError))
      )
      const health = yield* db.health
      const reason = Option.getOrThrow(health.reason)
      assert.include(reason, "rejected the login (a configuration error, not an outage)")
      assert.include(reason, "SQLSTATE 28P01")
      assert.include(reason, "check the password")
      assert.notInclude(reason, "cannot connect")
      assert.include(Option.getOrThrow(health.statistics.lastError), "configuration error")
      assert.notInclude(JSON.stringify(health), "wr0ng-Passw0rd")
      // still retried, with backoff
      yield* driveUntil(
        "a second attempt",
        Effect.map(db.statistics, (s) => s.reconnectAttempts === 1)
      )
      assert.strictEqual((yield* db.health).status, "unhealthy")
    })
  )
})

it.layer(PgTestServer.layer, { timeout: 60_000 })("onConnect", (it) => {
  it.scoped("a hook that never completes is cut at connectTimeout: the connection fails, nothing leaks", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("hung-hook")
      const admin = yield* adminClient
      const db = yield* makeDb({ init: "lazy", minSize: 1, applicationName, onConnect: () => Effect.never })
      yield* eventually(
        "the hook runs on a live backend",
        Effect.map(backendPids(admin, applicationName), (pids) => pids.length === 1)
      )
      assert.strictEqual((yield* db.statistics).pending, 1)
      yield* driveUntil(
        "the open failed",
        Effect.map(db.statistics, (s) => s.pending === 0 && s.state === "unhealthy")
      )
      const stats = yield* db.statistics
      assert.include(Option.getOrThrow(stats.lastError), "onConnect hook did not finish within 5s")
      assert.deepStrictEqual([stats.total, stats.connectionsCreated], [0, 0])
      yield* eventually(
        "no backend left",
        Effect.map(backendPids(admin, applicationName), (pids) => pids.length === 0)
      )
    })
  )

  it.scoped("eager init with a hung hook settles: it fails after the initial attempts", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const fiber = yield* Effect.fork(
        Db.make({ url: server.url, reconnect: { initialAttempts: 1 }, onConnect: () => Effect.never }).pipe(
          Effect.provide(Reactivity.layer)
        )
      )
      yield* eventually("the hook started", Effect.map(Fiber.poll(fiber), Option.isNone))
      yield* driveUntil("init settled", Effect.map(Fiber.poll(fiber), Option.isSome))
      const error = failureOf(yield* Fiber.await(fiber))
      assert.instanceOf(error, DatabaseUnreachable)
      assert.include((error as DatabaseUnreachable).message, "onConnect hook did not finish within 5s")
    })
  )

  it.scoped("shutdown during a slow hook leaks no socket and no backend", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("slow-hook")
      const admin = yield* adminClient
      const scope = yield* Scope.make()
      yield* makeDb({
        init: "lazy",
        minSize: 2,
        applicationName,
        onConnect: (sql) => sql`SELECT pg_sleep(30)`
      }).pipe(Scope.extend(scope))
      yield* eventually(
        "both hooks sleep on the server",
        Effect.map(
          adminQuery<{ n: number }>(
            admin,
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%'",
            [applicationName]
          ),
          (rows) => rows[0]!.n === 2
        )
      )
      yield* Scope.close(scope, Exit.void)
      yield* eventually(
        "no backend left",
        Effect.map(backendPids(admin, applicationName), (pids) => pids.length === 0)
      )
    })
  )

  it.scoped("a reconnect attempt made moot by a recovery is interrupted without leaking its connection", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("moot-attempt")
      const admin = yield* adminClient
      const gate = yield* Deferred.make<void>()
      let calls = 0
      const db = yield* makeDb({
        init: "lazy",
        minSize: 2,
        maxSize: 2,
        applicationName,
        // first wave: one hook fails (the pool starts reconnecting), one waits at the gate; the reconnect loop's
        // attempt hangs in its hook until the gated one completes and the recovery interrupts the loop
        onConnect: () => {
          const call = ++calls
          if (call === 1) return Effect.fail("no")
          if (call === 2) return Deferred.await(gate)
          if (call === 3) return Effect.never
          return Effect.void
        }
      })
      yield* driveUntil(
        "the reconnect attempt runs its hook",
        Effect.sync(() => calls === 3)
      )
      yield* eventually(
        "the gated and the hung hook each on a backend",
        Effect.map(backendPids(admin, applicationName), (pids) => pids.length === 2)
      )
      yield* Deferred.succeed(gate, undefined)
      yield* eventually(
        "two connections, and only theirs on the server",
        Effect.flatMap(db.statistics, (s) =>
          Effect.map(
            backendPids(admin, applicationName),
            (pids) => s.total === 2 && s.pending === 0 && pids.length === 2
          )
        )
      )
      assert.strictEqual(calls, 4)
      assertCountsAddUp(yield* db.statistics)
    })
  )

  it.scoped("a connection broken during onConnect is a failed open, not a broken pool connection", () =>
    Effect.gen(function* () {
      let calls = 0
      const db = yield* makeDb({
        minSize: 1,
        maxSize: 1,
        // the first hook's backend is terminated under it: the socket ends while the hook runs
        onConnect: (sql) => (++calls === 1 ? sql`SELECT pg_terminate_backend(pg_backend_pid())` : Effect.void)
      }).pipe(Effect.fork)
      yield* driveUntil("init settled", Effect.map(Fiber.poll(db), Option.isSome))
      const ready = yield* Fiber.join(db)
      const stats = yield* ready.statistics
      assert.strictEqual(calls, 2)
      assert.deepStrictEqual([stats.connectionsCreated, stats.total, stats.connectionsClosed.broken], [1, 1, 0])
      assertCountsAddUp(stats)
    })
  )
})

it.layer(PgTestServer.layer, { timeout: 60_000 })("defects and counters", (it) => {
  it.scoped("a defect in a background open (a hook that throws) settles pending, and the pool recovers", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const config = yield* PoolConfig.make({ url: server.url, init: "lazy", minSize: 1, maxSize: 1 })
      let calls = 0
      const pool = yield* InternalPool.make({
        config,
        // the internal contract takes an Effect-returning function: this one throws instead, twice
        onConnect: () => {
          if (++calls <= 2) throw new Error("hook exploded")
          return Effect.void
        }
      })
      yield* pool.initialize()
      yield* eventually(
        "the first open settled",
        Effect.sync(() => calls === 1 && pool.statistics().pending === 0)
      )
      assert.include(Option.getOrThrow(pool.statistics().lastError), "hook exploded")
      // the reconnect loop survives the second one
      yield* driveUntil(
        "recovered",
        Effect.sync(() => pool.statistics().total === 1)
      )
      assert.strictEqual(calls, 3)
      assert.deepStrictEqual([pool.statistics().connectionsCreated, pool.statistics().pending], [1, 0])
    })
  )

  it.scoped("a defect inside connect (the driver throws) settles pending, and the reconnect loop survives it", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const config = yield* PoolConfig.make({ url: server.url, init: "lazy", minSize: 1, maxSize: 1 })
      const pool = yield* InternalPool.make({ config })
      // stands in for a driver that throws synchronously: reading the options blows up, twice
      let reads = 0
      const options = { ...pool.connectOptions }
      Object.defineProperty(options, "types", {
        get: () => {
          if (++reads <= 2) throw new Error("driver exploded")
          return undefined
        }
      })
      ;(pool as any).connectOptions = options
      yield* pool.initialize()
      yield* eventually(
        "the first open settled",
        Effect.sync(() => reads === 1 && pool.statistics().pending === 0)
      )
      assert.include(Option.getOrThrow(pool.statistics().lastError), "driver exploded")
      // the loop goes on with its backoff (1 s, then 2 s), not a restart after maxDelay
      yield* driveUntil(
        "recovered",
        Effect.sync(() => pool.statistics().total === 1),
        5_000
      )
      assert.strictEqual(reads, 3)
      assert.deepStrictEqual([pool.statistics().reconnectAttempts, pool.statistics().pending], [2, 0])
    })
  )

  it.scoped("a connection opened while shutdown waits is counted created and closed", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const gate = yield* Deferred.make<void>()
      let calls = 0
      const db = yield* makePool({
        minSize: 1,
        maxSize: 2,
        shutdownTimeout: "10 seconds",
        onConnect: () => (++calls === 2 ? Deferred.await(gate) : Effect.void)
      }).pipe(Scope.extend(scope))
      const held = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        db.withConnection(() => Effect.zipRight(Deferred.succeed(held, undefined), Effect.never))
      )
      yield* Deferred.await(held)
      // a second caller makes the pool open a connection, whose hook waits at the gate
      const waiter = yield* Effect.fork(db.sql`SELECT 1`)
      yield* eventually(
        "the second open is pending",
        Effect.map(db.statistics, (s) => s.pending === 1 && calls === 2)
      )
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Fiber.await(waiter)
      yield* Deferred.succeed(gate, undefined)
      yield* eventually(
        "the late connection landed",
        Effect.map(db.statistics, (s) => s.pending === 0)
      )
      yield* Fiber.interrupt(holder)
      yield* Fiber.join(closing)
      const stats = yield* db.statistics
      assert.strictEqual(stats.total, 0)
      assert.strictEqual(stats.connectionsCreated, 2)
      assert.strictEqual(stats.connectionsClosed.shutdown, 2)
      assertCountsAddUp(stats)
    })
  )

  it.scoped("a connection handed to a waiter interrupted at that instant is not counted as an acquisition", () =>
    Effect.gen(function* () {
      const db = yield* makePool({ minSize: 1, maxSize: 1 })
      let waiter: Fiber.RuntimeFiber<unknown, unknown> | undefined
      const release = yield* Deferred.make<void>()
      const acquired = yield* Deferred.make<void>()
      // the holder interrupts the waiter and, in the same synchronous step, releases to it
      const holder = yield* Effect.fork(
        db.withConnection(() =>
          Deferred.succeed(acquired, undefined).pipe(
            Effect.zipRight(Deferred.await(release)),
            Effect.zipRight(Effect.sync(() => waiter!.unsafeInterruptAsFork(FiberId.none)))
          )
        )
      )
      yield* Deferred.await(acquired)
      waiter = yield* Effect.fork(db.sql`SELECT 1`)
      yield* waitingIs(db, 1)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(waiter)))
      const stats = yield* db.statistics
      assert.strictEqual(stats.acquisitions, 1)
      assert.deepStrictEqual([stats.total, stats.idle, stats.waiting], [1, 1, 0])
    })
  )
})

/** Terminates every session of `applicationName` as soon as it shows up, for `millis` of real time. */
const killSessionsFor = (admin: Pg.Client, applicationName: string, millis: number) =>
  Effect.gen(function* () {
    const until = Date.now() + millis
    while (Date.now() < until) {
      yield* adminQuery(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [
        applicationName
      ])
      yield* realSleep(5)
    }
  })

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("short-lived sessions", (it) => {
  it.scoped("a server that kills every new session gets connection attempts paced by the backoff", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("killed")
      const admin = yield* adminClient
      const db = yield* makeDb({
        minSize: 1,
        maxSize: 2,
        applicationName,
        reconnect: { initialDelay: "200 millis", maxDelay: "800 millis" }
      })
      // from now on every session of the pool is terminated as soon as it shows up, for 3 s
      yield* killSessionsFor(admin, applicationName, 3_000)
      const during = yield* db.statistics
      // backoff 200, 400, 800, 800… ms: about six recoveries in 3 s; churning would open one per round trip
      assert.isAtMost(during.connectionsCreated, 15, `${during.connectionsCreated} connections in 3 s`)
      assert.isAtLeast(during.reconnectAttempts, 2)
      yield* eventually(
        "serving again",
        Effect.map(db.statistics, (s) => s.state === "healthy")
      )
      assert.deepStrictEqual(yield* db.sql<{ n: number }>`SELECT 1::int AS n`, [{ n: 1 }])
    })
  )

  it.scoped("a recovery that held resets the backoff: the next short-lived session starts from initialDelay", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("killed-twice")
      const admin = yield* adminClient
      const delays: Array<number> = []
      const logger = Logger.make(({ annotations, message }) => {
        if ((Array.isArray(message) ? message[0] : message) !== "reconnect attempt scheduled") return
        delays.push([...annotations].find(([key]) => key === "delayMillis")![1] as number)
      })
      const db = yield* Effect.locallyWith(
        makeDb({
          minSize: 1,
          maxSize: 1,
          applicationName,
          reconnect: { initialDelay: "100 millis", maxDelay: "5 seconds" }
        }),
        FiberRef.currentLoggers,
        HashSet.add(logger)
      )
      // sessions that die young grow the backoff: 100, 200, 400, 800 ms…
      yield* killSessionsFor(admin, applicationName, 2_000)
      yield* eventually(
        "healthy",
        Effect.map(db.statistics, (s) => s.state === "healthy"),
        20_000
      )
      assert.isAtLeast(Math.max(...delays), 400, `delays ${delays}`)
      // the recovery holds past its probation; then the server kills sessions again
      yield* realSleep(1_500)
      const before = delays.length
      yield* killSessionsFor(admin, applicationName, 300)
      yield* eventually(
        "a reconnect scheduled",
        Effect.sync(() => delays.length > before)
      )
      assert.strictEqual(delays[before], 100, `delays ${delays}`)
    })
  )
})

it.layer(PgTestServer.layer, { timeout: 60_000 })("init logs", (it) => {
  const scheduledAttempts = (initialAttempts: number) =>
    Effect.gen(function* () {
      const port = yield* freePort
      const lines: Array<{ message: unknown; attempt: unknown; annotations: Array<string> }> = []
      const logger = Logger.make(({ annotations, message }) => {
        lines.push({
          message: Array.isArray(message) ? message[0] : message,
          attempt: [...annotations].find(([key]) => key === "attempt")?.[1],
          annotations: [...annotations].map(([key]) => key)
        })
      })
      const fiber = yield* Effect.fork(
        Effect.locallyWith(
          Db.make({ url: Redacted.make(`postgres://app:pw@127.0.0.1:${port}/appdb`), reconnect: { initialAttempts } }),
          FiberRef.currentLoggers,
          HashSet.add(logger)
        ).pipe(Effect.provide(Reactivity.layer))
      )
      yield* driveUntil("init settled", Effect.map(Fiber.poll(fiber), Option.isSome))
      assert.instanceOf(failureOf(yield* Fiber.await(fiber)), DatabaseUnreachable)
      assert.isTrue(lines.every((line) => !line.annotations.includes("event")))
      assert.isTrue(lines.some((line) => line.message === "pool initialisation failed"))
      return lines.filter((line) => line.message === "reconnect attempt scheduled").map((line) => line.attempt)
    })

  it.scoped("eager init announces only the attempts it makes", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* scheduledAttempts(1), [])
      assert.deepStrictEqual(yield* scheduledAttempts(3), [2, 3])
    })
  )
})
