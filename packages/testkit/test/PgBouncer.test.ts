import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { PgBouncer, PgTestServer } from "../src/index.js"
import { connect, failureOf, query, queryOnce } from "./utils.js"

const Env = PgBouncer.layer({ poolMode: "transaction", poolSize: 4 }).pipe(
  Layer.provideMerge(PgTestServer.layerEmbedded())
)

// excludeTestServices: real processes and sockets on real time
layer(Env, { timeout: "60 seconds", excludeTestServices: true })("PgBouncer layer", (it) => {
  it.scoped("forwards to the test server in transaction mode, and stops and starts on the same port", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const bouncer = yield* PgBouncer.PgBouncer
      assert.strictEqual(bouncer.poolMode, "transaction")
      assert.deepStrictEqual(yield* queryOnce(bouncer.url, "SELECT inet_server_port() AS port"), [
        { port: server.port }
      ])
      // another client holding a transaction sends a's next statement to another backend: transaction mode
      const a = yield* connect(bouncer.url)
      const b = yield* connect(bouncer.url)
      const pid = (client: typeof a) =>
        Effect.map(query<{ pid: number }>(client, "SELECT pg_backend_pid() AS pid"), (rows) => rows[0]!.pid)
      const first = yield* pid(a)
      yield* query(b, "BEGIN")
      yield* pid(b)
      assert.notStrictEqual(yield* pid(a), first)
      yield* query(b, "COMMIT")

      yield* bouncer.stop
      assert.isFalse(yield* bouncer.isRunning)
      assert.strictEqual(failureOf(yield* Effect.exit(queryOnce(bouncer.url, "SELECT 1"))).code, "ECONNREFUSED")
      yield* bouncer.start
      assert.deepStrictEqual(yield* queryOnce(bouncer.url, "SELECT 1 AS one"), [{ one: 1 }])
    })
  )
})
