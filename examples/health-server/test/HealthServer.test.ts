import { Db } from "@effect-pg-pool/effect3"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { HttpServer } from "@effect/platform"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { makeServerLayer } from "../src/HealthServer.js"

let counter = 0
const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

/** The health server on a free port, over a pool on the test server: its base URL, and the pool. */
const startServer = (options: Omit<Db.DbOptions, "url"> = {}) =>
  Effect.gen(function* () {
    const server = yield* PgTestServer.PgTestServer
    const context = yield* Layer.build(
      makeServerLayer({ port: 0, host: "127.0.0.1" }).pipe(
        Layer.provideMerge(Db.layer({ url: server.url, ...options }))
      )
    )
    const address = Context.get(context, HttpServer.HttpServer).address as HttpServer.TcpAddress
    return { base: `http://127.0.0.1:${address.port}`, db: Context.get(context, Db.Db) }
  })

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, type: response.headers.get("content-type"), body: await response.text() }
  })

/** Polls `url` in real time until it answers `status`; the test fails with the last answer after `timeoutMillis`. */
const waitForStatus = (url: string, status: number, timeoutMillis = 20_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMillis
    for (;;) {
      const response = yield* get(url)
      if (response.status === status) return response
      if (Date.now() > deadline) {
        return assert.fail(`${url} still answers ${response.status}, not ${status}: ${response.body}`)
      }
      yield* Effect.sleep("25 millis")
    }
  })

layer(PgTestServer.layer, { timeout: 120_000, excludeTestServices: true })("health-server", (it) => {
  it.scoped("GET /health answers 200 with the HealthStatus as JSON", () =>
    Effect.gen(function* () {
      const name = uniqueName("health")
      const { base } = yield* startServer({ name, minSize: 2 })
      const response = yield* get(`${base}/health`)
      assert.strictEqual(response.status, 200)
      assert.include(response.type, "application/json")
      const health = JSON.parse(response.body)
      assert.strictEqual(health.status, "healthy")
      assert.isNumber(health.checkedAt)
      assert.strictEqual(health.statistics.poolName, name)
      assert.strictEqual(health.statistics.total, 2)
      assert.property(health.database, "reachable")
    })
  )

  it.scoped("GET /stats answers the PoolStatistics as JSON", () =>
    Effect.gen(function* () {
      const name = uniqueName("stats")
      const { base } = yield* startServer({ name, minSize: 1, maxSize: 7 })
      const response = yield* get(`${base}/stats`)
      assert.strictEqual(response.status, 200)
      const stats = JSON.parse(response.body)
      assert.strictEqual(stats.poolName, name)
      assert.strictEqual(stats.maxSize, 7)
      assert.strictEqual(stats.minSize, 1)
      assert.strictEqual(stats.state, "healthy")
      assert.isNumber(stats.upSince)
      assert.deepStrictEqual(Object.keys(stats.connectionsClosed).sort(), [
        "broken",
        "cancel",
        "idle",
        "lifetime",
        "maxQueries",
        "refreshed",
        "reset",
        "roleChanged",
        "shutdown",
        "validation"
      ])
      assert.strictEqual((yield* get(`${base}/nothing-here`)).status, 404)
    })
  )

  it.scoped("GET /metrics answers Prometheus text with the pool's metrics, labelled with its name", () =>
    Effect.gen(function* () {
      const name = uniqueName("metrics")
      const { base, db } = yield* startServer({ name, minSize: 2, maxSize: 5 })
      yield* db.withConnection((sql) => sql`SELECT 1`)
      const response = yield* get(`${base}/metrics`)
      assert.strictEqual(response.status, 200)
      assert.include(response.type, "text/plain")
      const lines = response.body.split("\n")
      const sample = (metric: string, labels: string) =>
        lines.find((line) => line.startsWith(`${metric}{`) && line.includes(labels))
      const pool = `db_client_connection_pool_name="${name}"`
      assert.include(response.body, "# TYPE db_client_connection_count gauge")
      assert.match(sample("db_client_connection_count", `${pool},db_client_connection_state="idle"`) ?? "", / 2$/)
      assert.match(sample("db_client_connection_max", pool) ?? "", / 5$/)
      assert.match(sample("db_client_connection_idle_min", pool) ?? "", / 2$/)
      assert.match(sample("db_client_connection_pending_requests", pool) ?? "", / 0$/)
      assert.match(sample("db_client_connection_create_time_count", pool) ?? "", / 2$/)
      assert.include(response.body, "# TYPE db_client_connection_wait_time histogram")
      assert.match(sample("db_client_connection_wait_time_count", pool) ?? "", / 1$/)
      assert.match(sample("db_client_connection_use_time_count", pool) ?? "", / 1$/)
    })
  )

  it.scoped("GET /health turns 503 while the database is down, and 200 again once it is back", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const { base } = yield* startServer({
        name: uniqueName("outage"),
        minSize: 2,
        reconnect: { initialDelay: "50 millis", maxDelay: "200 millis" }
      })
      yield* waitForStatus(`${base}/health`, 200)

      yield* server.stop()
      const down = yield* waitForStatus(`${base}/health`, 503).pipe(
        Effect.ensuring(
          Effect.flatMap(server.isRunning, (running) => (running ? Effect.void : Effect.orDie(server.start)))
        )
      )
      const health = JSON.parse(down.body)
      assert.strictEqual(health.status, "unhealthy")
      assert.isString(health.reason)
      assert.include(health.reason, "cannot connect")

      const up = JSON.parse((yield* waitForStatus(`${base}/health`, 200)).body)
      assert.include(["healthy", "degraded"], up.status)
      // answered from memory: /stats stays available throughout
      assert.strictEqual((yield* get(`${base}/stats`)).status, 200)
    })
  )
})
