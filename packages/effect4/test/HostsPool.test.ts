/**
 * The Effect 4 pool on several hosts, on the real topology (the testkit's primary and streaming standby): every
 * `target_session_attrs` against both roles whichever host is listed first, the per-host statistics, and a standby
 * pool whose standby is promoted (its sessions learn of it from the server's ParameterStatus and are evicted).
 */
import { Db, Health, PoolStatistics } from "@effect-pg-pool/effect4"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option } from "effect"
import * as Net from "node:net"
import { Reactivity } from "effect/reactivity"
import { afterAll, beforeAll } from "vitest"
import { eventually, type Node, type Pair, realSleep, startPair, urlOf } from "./utils/primaryStandby.js"

const makeDb = (url: ReturnType<typeof urlOf>, options: Omit<Db.DbOptions, "url"> = {}) =>
  Db.make({ url, reconnect: { initialDelay: "100 millis", maxDelay: "1 second" }, ...options }).pipe(
    Effect.provide(Layer.merge(Reactivity.layer, Logger.layer([])))
  )

const whereAmI = (sql: Db.Service["sql"]) =>
  Effect.map(
    sql<{ port: number; recovery: boolean }>`SELECT inet_server_port() AS port, pg_is_in_recovery() AS recovery`,
    (rows) => ({ port: rows[0]!.port, role: rows[0]!.recovery ? "standby" : "primary" })
  )

describe("target_session_attrs on a primary and a standby", () => {
  let pair: Pair
  beforeAll(async () => {
    pair = await startPair()
  }, 120_000)
  afterAll(() => pair?.close())

  it.live("each target reaches its role, whichever host is listed first; statistics show both hosts", () =>
    Effect.gen(function* () {
      const { primary, standby } = pair
      const expected: ReadonlyArray<readonly [string, Node, Node]> = [
        ["read-write", primary, primary],
        ["primary", primary, primary],
        ["read-only", standby, standby],
        ["standby", standby, standby],
        ["prefer-standby", standby, standby],
        ["any", primary, standby]
      ]
      for (const [target, whenPrimaryFirst, whenStandbyFirst] of expected) {
        for (const [order, node] of [
          [[primary, standby], whenPrimaryFirst],
          [[standby, primary], whenStandbyFirst]
        ] as const) {
          const db = yield* makeDb(urlOf(pair, order, target), { minSize: 2, maxSize: 2 })
          const seen = yield* Effect.all(
            Array.from({ length: 2 }, () => db.withConnection((sql) => Effect.andThen(realSleep(30), whereAmI(sql)))),
            { concurrency: "unbounded" }
          )
          const label = `${target}, ${order[0]!.port === primary.port ? "primary" : "standby"} listed first`
          const role = node === primary ? "primary" : "standby"
          assert.deepStrictEqual(
            seen,
            [
              { port: node.port, role },
              { port: node.port, role }
            ],
            label
          )
          const stats = yield* db.statistics
          const hosts = stats.hosts.map((h) => [h.port, h.sessions, h.up])
          assert.deepStrictEqual(
            hosts,
            order.map((n) => [n.port, n === node ? stats.total : 0, true]),
            label
          )
          assert.strictEqual(stats.hosts.find((h) => h.port === node.port)!.role, role, label)
        }
      }
    }).pipe(Effect.scoped)
  )

  it.live("load_balance_hosts=random spreads the sessions over the hosts (each open shuffles them once)", () =>
    Effect.gen(function* () {
      const db = yield* makeDb(urlOf(pair, [pair.primary, pair.standby], "any", "&load_balance_hosts=random"), {
        minSize: 16,
        maxSize: 16
      })
      yield* eventually(
        "16 sessions are open",
        Effect.map(db.statistics, (stats) => stats.total === 16)
      )
      // all 16 on one host by chance: 2 in 2^16
      const sessions = (yield* db.statistics).hosts.map((h) => h.sessions)
      assert.strictEqual(sessions[0]! + sessions[1]!, 16)
      assert.isAbove(sessions[0]!, 0, String(sessions))
      assert.isAbove(sessions[1]!, 0, String(sessions))
    }).pipe(Effect.scoped)
  )

  it.live("a host that is down is skipped, and shown down with its error", () =>
    Effect.gen(function* () {
      const { primary, standby } = pair
      const dead = { ...primary, port: 1 } as Node
      const db = yield* makeDb(urlOf(pair, [dead, standby, primary], "read-write"), {
        minSize: 1,
        maxSize: 1,
        connectTimeout: "1 second"
      })
      assert.deepStrictEqual(yield* whereAmI(db.sql), { port: primary.port, role: "primary" })
      const stats = yield* db.statistics
      const [down, skipped, serving] = stats.hosts
      assert.deepStrictEqual([down!.port, down!.up, down!.failures > 0], [1, false, true])
      assert.isTrue(down!.lastError._tag === "Some")
      assert.deepStrictEqual([skipped!.port, skipped!.role, skipped!.sessions], [standby.port, "standby", 0])
      assert.deepStrictEqual([serving!.port, serving!.role, serving!.sessions], [primary.port, "primary", 1])
      // health carries the same per-host part, and both encode it for an endpoint
      const health = yield* db.health
      assert.deepStrictEqual(
        Health.encode(health).statistics.hosts.map((h) => [h.port, h.role, h.up, h.sessions]),
        [
          [1, "unknown", false, 0],
          [standby.port, "standby", true, 0],
          [primary.port, "primary", true, 1]
        ]
      )
      assert.include(PoolStatistics.encode(stats).hosts[0]!.lastError ?? "", "127.0.0.1:1")
    }).pipe(Effect.scoped)
  )
})

/**
 * A server that logs anyone in (AuthenticationOk, a ParameterStatus without `in_hot_standby`, as before PostgreSQL
 * 14, ReadyForQuery) and then never answers a query: the target check must give up at the connect timeout.
 */
const stallingServer = () =>
  new Promise<{ readonly port: number; readonly close: () => void }>((resolve) => {
    const message = (type: string, body: Buffer) => {
      const header = Buffer.alloc(5)
      header.write(type, 0, "latin1")
      header.writeInt32BE(body.length + 4, 1)
      return Buffer.concat([header, body])
    }
    const int32 = (...values: Array<number>) => {
      const buffer = Buffer.alloc(4 * values.length)
      for (const [i, value] of values.entries()) buffer.writeInt32BE(value, 4 * i)
      return buffer
    }
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.once("data", () =>
        socket.write(
          Buffer.concat([
            message("R", int32(0)),
            message("S", Buffer.from("server_version\u000013.9\u0000", "latin1")),
            message("K", int32(4242, 1)),
            message("Z", Buffer.from("I", "latin1"))
          ])
        )
      )
    })
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as Net.AddressInfo).port,
        close: () => {
          for (const socket of sockets) socket.destroy()
          server.close()
        }
      })
    )
  })

describe("a host that accepts the login and then stalls", () => {
  let pair: Pair
  beforeAll(async () => {
    pair = await startPair()
  }, 120_000)
  afterAll(() => pair?.close())

  it.live("the target check gives up at the connect timeout and the next host serves", () =>
    Effect.gen(function* () {
      const stalling = yield* Effect.acquireRelease(
        Effect.promise(() => stallingServer()),
        (server) => Effect.sync(() => server.close())
      )
      const staller = { ...pair.primary, port: stalling.port } as Node
      const db = yield* makeDb(urlOf(pair, [staller, pair.primary], "read-write"), {
        minSize: 1,
        maxSize: 1,
        connectTimeout: "1 second"
      })
      assert.deepStrictEqual(yield* whereAmI(db.sql), { port: pair.primary.port, role: "primary" })
      const [stalled] = (yield* db.statistics).hosts
      assert.deepStrictEqual([stalled!.port, stalled!.up, stalled!.failures], [stalling.port, false, 1])
      assert.include(Option.getOrThrow(stalled!.lastError), "the target check got no answer within the connect timeout")
    }).pipe(Effect.scoped)
  )
})

describe("a standby pool when its standby is promoted", () => {
  let pair: Pair
  beforeAll(async () => {
    pair = await startPair()
  }, 120_000)
  afterAll(() => pair?.close())

  it.live(
    "each session learns of the promotion with its next statement, which succeeds, and is evicted at its release",
    () =>
      Effect.gen(function* () {
        const db = yield* makeDb(urlOf(pair, [pair.primary, pair.standby], "standby"), { minSize: 2, maxSize: 2 })
        assert.deepStrictEqual(yield* whereAmI(db.sql), { port: pair.standby.port, role: "standby" })
        yield* eventually(
          "both sessions are open",
          Effect.map(db.statistics, (stats) => stats.total === 2)
        )
        yield* Effect.promise(() => pair.promote())
        // two callers at once take both sessions: each statement runs on the promoted node and succeeds
        const ports = yield* Effect.all(
          Array.from({ length: 2 }, () => db.withConnection((sql) => Effect.andThen(realSleep(50), whereAmI(sql)))),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(
          ports.map((p) => p.port),
          [pair.standby.port, pair.standby.port]
        )
        yield* eventually(
          "both sessions were evicted",
          Effect.map(db.statistics, (stats) => stats.connectionsClosed.roleChanged === 2)
        )
        const host = (yield* db.statistics).hosts.find((h) => h.port === pair.standby.port)!
        assert.strictEqual(host.role, "primary")
      }).pipe(Effect.scoped)
  )
})
