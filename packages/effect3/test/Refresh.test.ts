/**
 * Credentials that change, against a real PostgreSQL: the password as a provider evaluated for each new connection,
 * and `Db.refresh`, which retires every connection — idle ones at once, busy ones on release — without failing a
 * caller. The rotation is the real one: `ALTER ROLE … PASSWORD` on the server while 20 callers keep the pool busy.
 */
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, FiberRef, HashSet, Logger, Redacted, Ref } from "effect"
import * as Pg from "pg"
import { DatabaseUnreachable } from "../src/PoolError.js"
import {
  adminClient,
  adminQuery,
  backendPids,
  eventually,
  failureOf,
  makeDb,
  realSleep,
  uniqueAppName
} from "./utils.js"

let roleCounter = 0
/** A login role of its own, with a password, so that rotating it touches no other test. */
const makeRole = (admin: Pg.Client, password: string) =>
  Effect.gen(function* () {
    const role = `rotating_${process.pid}_${++roleCounter}`
    yield* adminQuery(admin, `CREATE ROLE ${role} LOGIN PASSWORD '${password}'`)
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        adminQuery(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", [role]),
        adminQuery(admin, `DROP ROLE IF EXISTS ${role}`)
      ).pipe(Effect.ignore)
    )
    return role
  })

/** Can `password` log in as `role` right now? Asked with a plain pg client, outside the pool. */
const logsIn = (server: PgTestServer.PgTestServer.Service, role: string, password: string) =>
  Effect.promise(async () => {
    const client = new Pg.Client({
      host: server.host,
      port: server.port,
      database: server.database,
      user: role,
      password
    })
    client.on("error", () => {})
    try {
      await client.connect()
      await client.end()
      return true
    } catch {
      return false
    }
  })

layer(PgTestServer.layer, { timeout: 90_000, excludeTestServices: true })("password provider and refresh", (it) => {
  it.scoped(
    "a password rotated on the server while 20 callers run: provider switched, Db.refresh, zero failed calls",
    () =>
      Effect.gen(function* () {
        const server = yield* PgTestServer.PgTestServer
        const admin = yield* adminClient
        const role = yield* makeRole(admin, "old-secret")
        const applicationName = uniqueAppName("refresh")
        const current = yield* Ref.make(Redacted.make("old-secret"))
        const provided = yield* Ref.make(0)
        const db = yield* makeDb({
          host: server.host,
          port: server.port,
          database: server.database,
          user: role,
          password: Effect.zipRight(
            Ref.update(provided, (n) => n + 1),
            Ref.get(current)
          ),
          minSize: 4,
          maxSize: 8,
          applicationName
        })
        // one caller holds a connection across the whole rotation: it must keep it until it lets go
        const gotPid = yield* Deferred.make<number>()
        const letGo = yield* Deferred.make<void>()
        const holder = yield* Effect.forkScoped(
          db.withConnection((sql) =>
            Effect.gen(function* () {
              const rows = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
              yield* Deferred.succeed(gotPid, rows[0]!.pid)
              yield* Deferred.await(letGo)
            })
          )
        )
        const heldPid = yield* Deferred.await(gotPid)

        // 20 callers, each running short statements back to back until told to stop
        const stop = yield* Ref.make(false)
        const calls = yield* Ref.make(0)
        const failures = yield* Ref.make<Array<unknown>>([])
        const caller = Effect.gen(function* () {
          while (!(yield* Ref.get(stop))) {
            const result = yield* Effect.either(db.sql`SELECT pg_sleep(0.002), pg_backend_pid() AS pid`)
            yield* Ref.update(calls, (n) => n + 1)
            if (Either.isLeft(result)) yield* Ref.update(failures, (all) => [...all, result.left])
          }
        })
        const callers = yield* Effect.forkScoped(
          Effect.all(
            Array.from({ length: 20 }, () => caller),
            { concurrency: 20 }
          )
        )
        yield* realSleep(500)

        const before = yield* backendPids(admin, applicationName)
        assert.include(before, heldPid)
        yield* adminQuery(admin, `ALTER ROLE ${role} PASSWORD 'new-secret'`)
        assert.isFalse(yield* logsIn(server, role, "old-secret"), "the old password no longer logs in")
        yield* Ref.set(current, Redacted.make("new-secret"))
        yield* db.refresh

        // the busy ones go as their callers release them; all but the one held is replaced while the load runs
        yield* eventually(
          "every connection but the held one is replaced",
          Effect.map(backendPids(admin, applicationName), (pids) =>
            pids.every((pid) => pid === heldPid || !before.includes(pid))
          ),
          20_000
        )
        yield* realSleep(500)
        const whileHeld = yield* backendPids(admin, applicationName)
        assert.include(whileHeld, heldPid, "the held connection survives until its release")
        yield* Deferred.succeed(letGo, undefined)
        yield* Fiber.join(holder)
        yield* eventually(
          "the held connection is closed once released",
          Effect.map(backendPids(admin, applicationName), (pids) => !pids.includes(heldPid)),
          10_000
        )
        yield* realSleep(300)
        yield* Ref.set(stop, true)
        yield* Fiber.join(callers)

        assert.deepStrictEqual(yield* Ref.get(failures), [], "no caller failed")
        assert.isAbove(yield* Ref.get(calls), 200, "the callers kept the pool busy")
        const after = yield* backendPids(admin, applicationName)
        assert.isAbove(after.length, 0)
        for (const pid of after) assert.notInclude(before, pid, `backend ${pid} predates the refresh`)
        const stats = yield* db.statistics
        assert.isAtLeast(stats.connectionsClosed.refreshed, before.length)
        assert.strictEqual(stats.connectionsClosed.broken, 0)
        assert.strictEqual(stats.connectionsClosed.validation, 0)
        // the provider ran once per connection opened, and never more
        assert.strictEqual(yield* Ref.get(provided), stats.connectionsCreated)
      })
  )

  it.scoped("a failing provider fails the open with a typed error, retried with backoff until it recovers", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const admin = yield* adminClient
      const role = yield* makeRole(admin, "token-1234-secret")
      const applicationName = uniqueAppName("provider-down")
      const down = yield* Ref.make(false)
      const provided = yield* Ref.make(0)
      const logs: Array<string> = []
      const logger = Logger.make(({ annotations, message }) => {
        logs.push(JSON.stringify([message, [...annotations]]))
      })
      const provider = Effect.gen(function* () {
        yield* Ref.update(provided, (n) => n + 1)
        if (yield* Ref.get(down)) return yield* Effect.fail(new Error("token service unavailable (503)"))
        return Redacted.make("token-1234-secret")
      })
      const db = yield* Effect.locallyWith(
        makeDb({
          host: server.host,
          port: server.port,
          database: server.database,
          user: role,
          password: provider,
          minSize: 1,
          maxSize: 2,
          applicationName,
          acquireTimeout: "20 seconds",
          reconnect: { initialDelay: "100 millis", maxDelay: "400 millis" }
        }),
        FiberRef.currentLoggers,
        HashSet.add(logger)
      )
      yield* Ref.set(down, true)
      yield* db.refresh
      yield* eventually(
        "the pool reports the provider's failure",
        Effect.map(db.statistics, (s) => s.reconnectAttempts >= 2),
        10_000
      )
      const stats = yield* db.statistics
      assert.include(stats.lastError._tag === "Some" ? stats.lastError.value : "", "the password provider failed")
      assert.include(stats.lastError._tag === "Some" ? stats.lastError.value : "", "token service unavailable (503)")
      // a caller waits through the outage and is served once the provider answers again
      const served = yield* Effect.forkScoped(db.sql`SELECT 1 AS one`)
      yield* realSleep(300)
      yield* Ref.set(down, false)
      const rows = yield* Fiber.join(served)
      assert.deepStrictEqual(rows, [{ one: 1 }])
      assert.isTrue(logs.some((line) => line.includes("the password provider failed")))
      assert.isFalse(
        logs.some((line) => line.includes("token-1234-secret")),
        "the provided password is never logged"
      )
      const final = yield* db.statistics
      // once per attempt: each open (successful or not) asked the provider once
      assert.isAtLeast(yield* Ref.get(provided), final.connectionsCreated + 2)
    })
  )

  it.scoped("a provider that always fails: start-up fails with DatabaseUnreachable saying the provider failed", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const exit = yield* Effect.exit(
        makeDb({
          host: server.host,
          port: server.port,
          database: server.database,
          password: Effect.fail(new Error("no credentials in the environment")),
          reconnect: { initialDelay: "50 millis", maxDelay: "100 millis", initialAttempts: 2 }
        })
      )
      const error = failureOf(exit)
      assert.instanceOf(error, DatabaseUnreachable)
      assert.include(error!.message, "the password provider failed: no credentials in the environment")
    })
  )
})
