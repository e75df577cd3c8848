/**
 * The pg driver's multi-host connect (internal/hosts.ts) against real servers: two testkit servers, the second
 * made read-only with `default_transaction_read_only = on` (ALTER SYSTEM + reload), sharing one password.
 */
import { Hosts } from "@effect-pg-pool/engine"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, type Exit, Layer, Redacted } from "effect"
import * as Net from "node:net"
import * as Pg from "pg"
import * as Connection from "../src/internal/connection.js"
import { connectAny, type HostsFailure } from "../src/internal/hosts.js"
import { eventually, failureOf, freePort, realSleep } from "./utils.js"

interface Servers {
  readonly writable: Hosts.Host
  readonly readOnly: Hosts.Host
  readonly password: string
  readonly options: Connection.ConnectOptions
}
class TwoServers extends Context.Tag("test/Hosts/TwoServers")<TwoServers, Servers>() {}

const admin = (host: Hosts.Host, password: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Pg.Client({
        host: host.host,
        port: host.port,
        user: "postgres",
        password,
        database: "postgres"
      })
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

const sql = (client: Pg.Client, text: string) => Effect.promise(() => client.query(text))

const TwoServersLive = Layer.scoped(
  TwoServers,
  Effect.gen(function* () {
    const first = yield* PgTestServer.makeEmbedded()
    const second = yield* PgTestServer.makeEmbedded()
    const password = Redacted.value(first.password)
    const client = yield* admin(second, Redacted.value(second.password))
    yield* sql(client, `ALTER ROLE postgres PASSWORD '${password}'`)
    yield* sql(client, "ALTER SYSTEM SET default_transaction_read_only = on")
    yield* sql(client, "SELECT pg_reload_conf()")
    const options: Connection.ConnectOptions = {
      host: "ignored",
      port: 1,
      database: "postgres",
      user: "postgres",
      password,
      ssl: { mode: "disable", options: false },
      applicationName: "hosts-test",
      statementTimeoutMillis: undefined,
      connectTimeoutMillis: 2_000,
      keepAlive: true,
      types: undefined
    }
    return {
      writable: { host: first.host, port: first.port },
      readOnly: { host: second.host, port: second.port },
      password,
      options
    }
  })
)

const tries = (hosts: ReadonlyArray<Hosts.Host>, target: Hosts.TargetSessionAttrs) =>
  Hosts.attempts(hosts, target, "disable", Math.random)

// connects, and closes the session at the end of the test
const reach = (
  options: Connection.ConnectOptions,
  hosts: ReadonlyArray<Hosts.Host>,
  target: Hosts.TargetSessionAttrs
) =>
  Effect.acquireRelease(
    connectAny(options, tries(hosts, target), target, () => {}),
    (reached) => Effect.sync(() => Connection.destroy(reached.client))
  )

const failure = (exit: Exit.Exit<unknown, HostsFailure>): HostsFailure => {
  const error = failureOf(exit)
  if (error === undefined) throw new Error("expected the connect to fail")
  return error
}

const label = Hosts.hostLabel

// A local TCP server with its own connection handler, closed (with its connections) at the end of the test.
const listen = (onConnection: (socket: Net.Socket) => void) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.async<{ server: Net.Server; sockets: Array<Net.Socket> }>((resume) => {
        const sockets: Array<Net.Socket> = []
        const server = Net.createServer((socket) => {
          sockets.push(socket)
          socket.on("error", () => {})
          onConnection(socket)
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
      }),
      ({ server, sockets }) =>
        Effect.async<void>((resume) => {
          // close() waits for every connection to end: end them first
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    ),
    ({ server }) => ({ host: "127.0.0.1", port: (server.address() as Net.AddressInfo).port })
  )

// A FATAL ErrorResponse message of the wire protocol: severity, SQLSTATE, message.
const errorResponse = (code: string, message: string): Buffer => {
  const fields = Buffer.concat(
    [
      ["S", "FATAL"],
      ["V", "FATAL"],
      ["C", code],
      ["M", message]
    ]
      .map(([type, value]) => Buffer.from(`${type}${value}\0`))
      .concat([Buffer.from("\0")])
  )
  const header = Buffer.alloc(5)
  header.write("E", 0)
  header.writeInt32BE(fields.length + 4, 1)
  return Buffer.concat([header, fields])
}

layer(TwoServersLive, { timeout: "90 seconds", excludeTestServices: true })("multi-host connect (pg)", (it) => {
  it.scoped("read-write skips the read-only server, closes that session, and says which host it reached", () =>
    Effect.gen(function* () {
      const { options, readOnly, writable } = yield* TwoServers
      const reached = yield* reach(options, [readOnly, writable], "read-write")
      assert.deepStrictEqual(reached.attempt.host, writable)
      assert.strictEqual(reached.role, "primary")
      assert.deepStrictEqual(
        reached.outcomes.map((o) => [o._tag, o.attempt.index, o._tag === "Mismatch" ? o.reason : ""]),
        [["Mismatch", 0, "session is read-only"]]
      )
      const { rows } = yield* Effect.promise(() => reached.client.query("SHOW transaction_read_only"))
      assert.strictEqual(rows[0].transaction_read_only, "off")
      // the reported parameters are what the check used: no query was needed on PostgreSQL 14+
      assert.strictEqual(reached.parameters["default_transaction_read_only"], "off")
      assert.strictEqual(reached.parameters["in_hot_standby"], "off")
    })
  )

  it.scoped("read-only goes past the writable server to the read-only one", () =>
    Effect.gen(function* () {
      const { options, readOnly, writable } = yield* TwoServers
      const reached = yield* reach(options, [writable, readOnly], "read-only")
      assert.deepStrictEqual(reached.attempt.host, readOnly)
      assert.strictEqual(reached.role, "read-only")
    })
  )

  it.scoped("any and primary take the first server; a read-only primary is still a primary", () =>
    Effect.gen(function* () {
      const { options, readOnly, writable } = yield* TwoServers
      assert.deepStrictEqual((yield* reach(options, [readOnly, writable], "any")).attempt.host, readOnly)
      assert.deepStrictEqual((yield* reach(options, [readOnly, writable], "primary")).attempt.host, readOnly)
    })
  )

  it.scoped("prefer-standby with no standby falls back to any, in the same order", () =>
    Effect.gen(function* () {
      const { options, readOnly, writable } = yield* TwoServers
      const reached = yield* reach(options, [writable, readOnly], "prefer-standby")
      assert.deepStrictEqual([reached.attempt.host, reached.attempt.require], [writable, "any"])
      assert.deepStrictEqual(
        reached.outcomes.map((o) => (o._tag === "Mismatch" ? o.reason : o._tag)),
        ["server is not in hot standby mode", "server is not in hot standby mode"]
      )
    })
  )

  it.scoped("a refused host is skipped for the next one", () =>
    Effect.gen(function* () {
      const { options, writable } = yield* TwoServers
      const down = { host: "127.0.0.1", port: yield* freePort }
      const reached = yield* reach(options, [down, writable], "read-write")
      assert.deepStrictEqual(reached.attempt.host, writable)
      const [first] = reached.outcomes
      assert.strictEqual(first?._tag === "Failed" ? first.failure.code : undefined, "ECONNREFUSED")
    })
  )

  it.scoped("the connect timeout applies per host: a host that never answers costs one timeout, then the next", () =>
    Effect.gen(function* () {
      const { options, writable } = yield* TwoServers
      // accepts the TCP connection and never says a word
      const silentHost = yield* listen(() => {})
      const startedAt = performance.now()
      const reached = yield* reach({ ...options, connectTimeoutMillis: 400 }, [silentHost, writable], "any")
      const elapsed = performance.now() - startedAt
      assert.deepStrictEqual(reached.attempt.host, writable)
      assert.isTrue(elapsed >= 390, `moved on after ${elapsed} ms, before the timeout`)
      assert.strictEqual(reached.outcomes[0]?._tag, "Failed")
    })
  )

  it.scoped(
    "a server answering 57P03 (not accepting connections yet) is skipped for the next host, as libpq does",
    () =>
      Effect.gen(function* () {
        const { options, writable } = yield* TwoServers
        // answers the startup message as a standby that is not hot yet does
        const notReady = yield* listen((socket) =>
          socket.once("data", () =>
            socket.end(errorResponse("57P03", "the database system is not yet accepting connections"))
          )
        )
        const reached = yield* reach(options, [notReady, writable], "any")
        assert.deepStrictEqual(reached.attempt.host, writable)
        const [first] = reached.outcomes
        assert.deepStrictEqual(first?._tag === "Failed" ? [first.failure.code, first.answered] : undefined, [
          "57P03",
          true
        ])
      })
  )

  it.scoped("any other answer from the server ends the attempt there (53300 too many connections), as libpq does", () =>
    Effect.gen(function* () {
      const { options, writable } = yield* TwoServers
      const full = yield* listen((socket) =>
        socket.once("data", () => socket.end(errorResponse("53300", "sorry, too many clients already")))
      )
      const error = failure(yield* Effect.exit(reach(options, [full, writable], "any")))
      assert.strictEqual(error.code, "53300")
      assert.deepStrictEqual(
        error.outcomes.map((o) => o.attempt.index),
        [0]
      )
      assert.match(error.message, /answered with an error, so no further host was tried/)
    })
  )

  it.scoped("no host matching: a typed outage naming each host and what happened there, without the password", () =>
    Effect.gen(function* () {
      const { options, password, readOnly } = yield* TwoServers
      const down = { host: "127.0.0.1", port: yield* freePort }
      const error = failure(yield* Effect.exit(reach(options, [down, readOnly], "read-write")))
      assert.strictEqual(error._tag, "ConnectFailure")
      assert.strictEqual(error.kind, "outage")
      assert.match(
        error.message,
        new RegExp(
          `^no host gave a session for target_session_attrs=read-write \\(2 hosts tried\\): ${label(down)}: connect ` +
            `ECONNREFUSED [^;]+; ${label(readOnly)}: session is read-only \\(read-write\\)$`
        )
      )
      assert.isFalse(error.message.includes(password))
      assert.deepStrictEqual(
        error.outcomes.map((o) => o._tag),
        ["Failed", "Mismatch"]
      )
    })
  )

  it.scoped("a rejected login stops at that host, as libpq does: the next host is not tried", () =>
    Effect.gen(function* () {
      const { options, readOnly, writable } = yield* TwoServers
      const wrong = { ...options, password: "not-the-password" }
      const error = failure(yield* Effect.exit(reach(wrong, [writable, readOnly], "any")))
      assert.strictEqual(error.kind, "rejected")
      assert.strictEqual(error.code, "28P01")
      assert.deepStrictEqual(
        error.outcomes.map((o) => o.attempt.index),
        [0]
      )
      assert.match(error.message, new RegExp(`^${label(writable)} refused the login, so no further host was tried`))
      assert.isFalse(error.message.includes("not-the-password"))
    })
  )

  it.scoped("load_balance_hosts=random: the host the shuffle puts first is the one reached", () =>
    Effect.gen(function* () {
      const { options, readOnly, writable } = yield* TwoServers
      // i=1: j = floor(0.2 * 2) = 0: the two hosts swap
      const swapped = Hosts.attempts([writable, readOnly], "any", "random", () => 0.2)
      const reached = yield* Effect.acquireRelease(
        connectAny(options, swapped, "any", () => {}),
        (r) => Effect.sync(() => Connection.destroy(r.client))
      )
      assert.deepStrictEqual(reached.attempt.host, readOnly)
    })
  )

  it.scoped("a server made read-only under an open session reports it on that session's next statement", () =>
    Effect.gen(function* () {
      const { options, password, writable } = yield* TwoServers
      const reached = yield* reach(options, [writable], "read-write")
      const reports: Array<string> = []
      Connection.onParameterStatus(reached.client, (name, value) => reports.push(`${name}=${value}`))
      const other = yield* admin(writable, password)
      yield* sql(other, "ALTER SYSTEM SET default_transaction_read_only = on")
      yield* sql(other, "SELECT pg_reload_conf()")
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* sql(other, "ALTER SYSTEM RESET default_transaction_read_only")
          yield* sql(other, "SELECT pg_reload_conf()")
        }).pipe(Effect.orDie)
      )
      // the reload reaches the backend asynchronously (SIGHUP): poll with statements until it reports
      yield* eventually(
        "the session reported default_transaction_read_only=on",
        Effect.promise(() => reached.client.query("SELECT 1")).pipe(
          Effect.zipRight(realSleep(20)),
          Effect.map(() => reports.includes("default_transaction_read_only=on"))
        )
      )
      const table = new Hosts.Table({ ...Hosts.tableDefaults, hosts: [writable], target: "read-write" })
      table.opened(0, 1, 0, reached.observed, reached.parameters)
      const evicted = table.reported(1, 1, { default_transaction_read_only: "on" })
      assert.deepStrictEqual(
        evicted.map((e) => e.session),
        [1]
      )
    })
  )

  it.scoped("a session closed here for the wrong role never reaches onBroken", () =>
    Effect.gen(function* () {
      const { options, readOnly, writable } = yield* TwoServers
      const broken: Array<unknown> = []
      const reached = yield* Effect.acquireRelease(
        connectAny(options, tries([readOnly, writable], "read-write"), "read-write", (_client, cause) =>
          broken.push(cause)
        ),
        (r) => Effect.sync(() => Connection.destroy(r.client))
      )
      yield* realSleep(200)
      assert.deepStrictEqual(broken, [])
      assert.deepStrictEqual(reached.attempt.host, writable)
    })
  )
})
