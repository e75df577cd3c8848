import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Redacted } from "effect"
import { FaultProxy, PgTestServer } from "../src/index.js"
import { connect, eventually, failureOf, query, queryOnce } from "./utils.js"

const Env = FaultProxy.layer.pipe(Layer.provideMerge(PgTestServer.layerEmbedded()))

/** Runs a test body with the proxy restored afterwards, whatever happened. */
const withProxy = <A, E, R>(body: (proxy: FaultProxy.FaultProxy.Service) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(FaultProxy.FaultProxy, (proxy) => Effect.ensuring(body(proxy), proxy.restore))

const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const start = performance.now()
    return Effect.map(effect, (a) => [a, performance.now() - start] as const)
  })

// excludeTestServices: sockets, timers and latency are measured on real time, not under TestClock.
layer(Env, { timeout: "60 seconds", excludeTestServices: true })("FaultProxy", (it) => {
  it.scoped("passes sessions through, with the server's credentials, and counts open connections", () =>
    withProxy((proxy) =>
      Effect.gen(function* () {
        const server = yield* PgTestServer.PgTestServer
        const url = new URL(Redacted.value(proxy.url))
        assert.strictEqual(url.hostname, proxy.host)
        assert.strictEqual(Number(url.port), proxy.port)
        assert.notStrictEqual(proxy.port, server.port)
        assert.strictEqual(decodeURIComponent(url.password), Redacted.value(server.password))
        assert.deepStrictEqual(yield* proxy.mode, FaultProxy.Mode.Pass())

        const first = yield* connect(proxy.url)
        const second = yield* connect(proxy.url)
        assert.strictEqual(yield* proxy.openConnections, 2)
        const rows = yield* query(first, "SELECT inet_server_port() AS port, repeat('x', 200000) AS big")
        assert.strictEqual(rows[0]!.port, server.port)
        assert.strictEqual((rows[0]!.big as string).length, 200_000)

        yield* Effect.promise(() => second.end())
        assert.isTrue(yield* eventually(() => Effect.runSync(proxy.openConnections) === 1, 2_000))
      })
    )
  )

  it.scoped("blackhole holds traffic, for open and new connections, until restore delivers it", () =>
    withProxy((proxy) =>
      Effect.gen(function* () {
        const client = yield* connect(proxy.url)
        yield* proxy.blackhole
        assert.deepStrictEqual(yield* proxy.mode, FaultProxy.Mode.Blackhole())

        const pending = yield* Effect.fork(query(client, "SELECT 42 AS answer"))
        const newcomer = yield* Effect.fork(Effect.flatMap(connect(proxy.url), (c) => query(c, "SELECT 1 AS one")))
        yield* Effect.sleep("400 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(pending)), "a query completed through a black hole")
        assert.isTrue(Option.isNone(yield* Fiber.poll(newcomer)), "a connection completed through a black hole")
        // the sockets are still open, only silent
        assert.strictEqual(yield* proxy.openConnections, 2)

        yield* proxy.restore
        assert.deepStrictEqual(yield* Fiber.join(pending), [{ answer: 42 }])
        assert.deepStrictEqual(yield* Fiber.join(newcomer), [{ one: 1 }])
      })
    )
  )

  it.scoped("resetAll breaks every open connection: clients see a connection error", () =>
    withProxy((proxy) =>
      Effect.gen(function* () {
        const client = yield* connect(proxy.url)
        const other = yield* connect(proxy.url)
        const broken = Effect.runPromise(
          Effect.async<Error>((resume) => {
            client.once("error", (error) => resume(Effect.succeed(error)))
          })
        )

        yield* proxy.resetAll

        const error = yield* Effect.promise(() => broken).pipe(Effect.timeout("2 seconds"))
        assert.match(error.message, /ECONNRESET|terminated/i)
        const failure = failureOf(yield* Effect.exit(query(other, "SELECT 1")))
        assert.match(failure.message, /ECONNRESET|terminated|not queryable/i)
        assert.strictEqual(yield* proxy.openConnections, 0)
        // the mode is unchanged: new connections work
        assert.deepStrictEqual(yield* queryOnce(proxy.url, "SELECT 1 AS one"), [{ one: 1 }])
      })
    )
  )

  it.scoped("refuse fails new connections at once while established ones keep working", () =>
    withProxy((proxy) =>
      Effect.gen(function* () {
        const established = yield* connect(proxy.url)
        yield* proxy.refuse
        assert.deepStrictEqual(yield* proxy.mode, FaultProxy.Mode.Refuse())

        const [exit, millis] = yield* elapsed(Effect.exit(queryOnce(proxy.url, "SELECT 1")))
        const error = failureOf(exit)
        assert.match(error.message, /ECONNRESET|terminated/i)
        assert.isBelow(millis, 1_000)
        assert.deepStrictEqual(yield* query(established, "SELECT 2 AS two"), [{ two: 2 }])
        assert.strictEqual(yield* proxy.openConnections, 1)

        yield* proxy.restore
        assert.deepStrictEqual(yield* queryOnce(proxy.url, "SELECT 3 AS three"), [{ three: 3 }])
      })
    )
  )

  it.scoped("latency delays both directions: a round trip grows by at least twice the delay", () =>
    withProxy((proxy) =>
      Effect.gen(function* () {
        const client = yield* connect(proxy.url)
        const roundTrip = Effect.map(elapsed(query(client, "SELECT 1")), ([, millis]) => millis)
        yield* roundTrip
        const baseline = yield* roundTrip

        yield* proxy.latency(200)
        assert.deepStrictEqual(yield* proxy.mode, FaultProxy.Mode.Latency({ millis: 200 }))
        const delayed = yield* roundTrip
        // One chunk each way, each held 200 ms; timers never fire early, so only clock granularity is slack.
        assert.isAtLeast(delayed, 2 * 200 - 5, `round trip ${delayed} ms, baseline ${baseline} ms`)

        // a result spread over many chunks arrives intact: chunks are delayed, never reordered
        const [row] = yield* query<{ list: string }>(
          client,
          "SELECT string_agg(i::text, ',' ORDER BY i) AS list FROM generate_series(1, 100000) AS i"
        )
        assert.strictEqual(row!.list, Array.from({ length: 100_000 }, (_, i) => i + 1).join(","))

        yield* proxy.restore
        assert.isBelow(yield* roundTrip, 200)
      })
    )
  )

  it.scoped("make targets any host and port, with a bare URL when none is given", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const proxy = yield* FaultProxy.make({ host: server.host, port: server.port })
      assert.strictEqual(Redacted.value(proxy.url), `postgres://127.0.0.1:${proxy.port}/`)
      const url = new URL(Redacted.value(server.url))
      url.port = String(proxy.port)
      assert.deepStrictEqual(yield* queryOnce(Redacted.make(url.href), "SELECT 1 AS one"), [{ one: 1 }])
    })
  )
})
