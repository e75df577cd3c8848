/**
 * Credentials that change, against a real PostgreSQL: the password as an Effect evaluated for each new connection
 * (as `PgClient.layer` takes it), and `Db.refresh`, which retires every connection — idle ones at once, busy ones on
 * release — without failing a caller. The rotation is the real one: `ALTER ROLE … PASSWORD` on the server while 20
 * callers keep the pool busy.
 */
import { Db } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { PgConnection } from "@effect/sql-pg"
import { Deferred, Effect, Exit, Fiber, Layer, Logger, Redacted, Ref } from "effect"
import { Reactivity } from "effect/reactivity"
import { afterAll, beforeAll } from "vitest"
import { uniqueAppName } from "./utils/pools.js"
import { startServer, type TestServer } from "./utils/server.js"

let server: TestServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.close())

const realSleep = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

/** Polls `check` on the real clock until it holds, failing with `what` after `timeoutMillis`. */
const eventually = <R>(what: string, check: Effect.Effect<boolean, never, R>, timeoutMillis = 10_000) =>
  Effect.gen(function* () {
    const deadline = performance.now() + timeoutMillis
    while (!(yield* check)) {
      if (performance.now() > deadline) return yield* Effect.die(new Error(`not within ${timeoutMillis} ms: ${what}`))
      yield* realSleep(20)
    }
  })

const adminUrl = () =>
  `postgres://${encodeURIComponent(server.user)}:${encodeURIComponent(server.password)}@${server.host}:${server.port}/${server.database}`

/** One statement on a fresh admin session. */
const admin = (sql: string, params: ReadonlyArray<unknown> = []) =>
  PgConnection.make({ url: Redacted.make(adminUrl()) }).pipe(
    Effect.flatMap((connection) => connection.query(sql, params, false)),
    Effect.scoped,
    Effect.orDie
  )

const backendPids = (applicationName: string) =>
  Effect.map(admin("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [applicationName]), (result) =>
    result.rows.map((row) => Number(row.pid))
  )

/** Can `password` log in as `role` right now? Asked outside the pool. */
const logsIn = (role: string, password: string) =>
  PgConnection.make({
    host: server.host,
    port: server.port,
    database: server.database,
    username: role,
    password: Redacted.make(password)
  }).pipe(Effect.scoped, Effect.exit, Effect.map(Exit.isSuccess))

let roleCounter = 0
/** A login role of its own, with a password, so that rotating it touches no other test. */
const makeRole = (password: string) =>
  Effect.gen(function* () {
    const role = `e4_rotating_${process.pid}_${++roleCounter}`
    yield* admin(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`)
    yield* Effect.addFinalizer(() =>
      Effect.andThen(
        admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", [role]),
        admin(`DROP ROLE IF EXISTS ${role}`)
      ).pipe(Effect.ignore)
    )
    return role
  })

describe("password provider and refresh", () => {
  it.live(
    "a password rotated on the server while 20 callers run: provider switched, Db.refresh, zero failed calls",
    () =>
      Effect.gen(function* () {
        const role = yield* makeRole("old-secret")
        const applicationName = uniqueAppName("refresh")
        const current = yield* Ref.make(Redacted.make("old-secret"))
        const provided = yield* Ref.make(0)
        const db = yield* Db.make({
          host: server.host,
          port: server.port,
          database: server.database,
          user: role,
          password: Effect.andThen(
            Ref.update(provided, (n) => n + 1),
            Ref.get(current)
          ),
          minSize: 4,
          maxSize: 8,
          applicationName
        }).pipe(Effect.provide(Layer.merge(Reactivity.layer, Logger.layer([]))))
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
        let stop = false
        let calls = 0
        const failures: Array<unknown> = []
        const caller = Effect.gen(function* () {
          while (!stop) {
            const exit = yield* Effect.exit(db.sql`SELECT pg_sleep(0.002), pg_backend_pid() AS pid`)
            calls++
            if (Exit.isFailure(exit)) failures.push(exit.cause)
          }
        })
        const callers = yield* Effect.forkScoped(
          Effect.all(
            Array.from({ length: 20 }, () => caller),
            { concurrency: 20 }
          )
        )
        yield* realSleep(500)

        const before = yield* backendPids(applicationName)
        assert.include(before, heldPid)
        yield* admin(`ALTER ROLE ${role} PASSWORD 'new-secret'`)
        assert.isFalse(yield* logsIn(role, "old-secret"), "the old password no longer logs in")
        yield* Ref.set(current, Redacted.make("new-secret"))
        yield* db.refresh

        // the busy ones go as their callers release them; all but the one held is replaced while the load runs
        yield* eventually(
          "every connection but the held one is replaced",
          Effect.map(backendPids(applicationName), (pids) =>
            pids.every((pid) => pid === heldPid || !before.includes(pid))
          ),
          20_000
        )
        yield* realSleep(500)
        assert.include(yield* backendPids(applicationName), heldPid, "the held connection survives until its release")
        yield* Deferred.succeed(letGo, undefined)
        yield* Fiber.join(holder)
        yield* eventually(
          "the held connection is closed once released",
          Effect.map(backendPids(applicationName), (pids) => !pids.includes(heldPid)),
          10_000
        )
        yield* realSleep(300)
        stop = true
        yield* Fiber.join(callers)

        assert.deepStrictEqual(failures, [], "no caller failed")
        assert.isAbove(calls, 200, "the callers kept the pool busy")
        const after = yield* backendPids(applicationName)
        assert.isAbove(after.length, 0)
        for (const pid of after) assert.notInclude(before, pid, `backend ${pid} predates the refresh`)
        const stats = yield* db.statistics
        assert.isAtLeast(stats.connectionsClosed.refreshed, before.length)
        assert.strictEqual(stats.connectionsClosed.broken, 0)
        assert.strictEqual(stats.connectionsClosed.validation, 0)
        // the provider ran once per connection opened, and never more
        assert.strictEqual(yield* Ref.get(provided), stats.connectionsCreated)
      }).pipe(Effect.scoped)
  )

  it.live("Db.refresh from the context retires the idle sessions at once and the pool opens new ones", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("refresh-idle")
      const layer = Db.layer({ url: Redacted.make(adminUrl()), minSize: 2, maxSize: 2, applicationName }).pipe(
        Layer.provide(Logger.layer([]))
      )
      yield* Effect.gen(function* () {
        yield* eventually(
          "two sessions open",
          Effect.map(Db.statistics, (s) => s.total === 2)
        )
        const before = yield* backendPids(applicationName)
        yield* Db.refresh
        yield* eventually(
          "both replaced",
          Effect.map(
            backendPids(applicationName),
            (pids) => pids.length === 2 && pids.every((pid) => !before.includes(pid))
          )
        )
        const stats = yield* Db.statistics
        assert.strictEqual(stats.connectionsClosed.refreshed, 2)
      }).pipe(Effect.provide(layer))
    })
  )
})
