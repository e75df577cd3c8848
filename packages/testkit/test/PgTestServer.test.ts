import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Net from "node:net"
import * as Path from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { PgTestServer } from "../src/index.js"
import * as Registry from "../src/internal/registry.js"
import { connect, dockerAnswers, eventually, failureOf, isAlive, query, queryOnce } from "./utils.js"

/** The data directory and postmaster pid of the server behind `url`, as the server itself reports them. */
const serverProcess = (url: Redacted.Redacted<string>) =>
  Effect.gen(function* () {
    const [row] = yield* queryOnce<{ dir: string }>(url, "SELECT current_setting('data_directory') AS dir")
    const dataDir = row!.dir
    const pid = Number(Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])
    return { dataDir, pid }
  })

/** Rows inserted into `table` according to the cumulative statistics, which survive a clean shutdown only. */
const insertsCounted = (url: Redacted.Redacted<string>, table: string) =>
  Effect.map(
    queryOnce<{ n: string }>(url, `SELECT n_tup_ins AS n FROM pg_stat_user_tables WHERE relname = '${table}'`),
    (rows) => Number(rows[0]!.n)
  )

const startedAt = (url: Redacted.Redacted<string>) =>
  Effect.map(queryOnce<{ at: Date }>(url, "SELECT pg_postmaster_start_time() AS at"), (rows) => rows[0]!.at.getTime())

// excludeTestServices: these tests talk to a real server on real time, not under TestClock.
layer(PgTestServer.layerEmbedded(), { timeout: "60 seconds", excludeTestServices: true })("embedded", (it) => {
  it.effect("serves sessions on 127.0.0.1 as postgres, with its own password and max_connections 200", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      assert.strictEqual(server.backend, "embedded")
      assert.strictEqual(server.host, "127.0.0.1")
      assert.strictEqual(server.user, "postgres")
      assert.strictEqual(server.database, "postgres")
      const url = new URL(Redacted.value(server.url))
      assert.strictEqual(url.hostname, server.host)
      assert.strictEqual(Number(url.port), server.port)
      assert.strictEqual(decodeURIComponent(url.password), Redacted.value(server.password))
      assert.isAtLeast(Redacted.value(server.password).length, 16)

      const rows = yield* queryOnce(
        server.url,
        "SELECT current_user AS who, current_setting('max_connections')::int AS max, inet_server_port() AS port"
      )
      assert.deepStrictEqual(rows, [{ who: "postgres", max: 200, port: server.port }])

      url.password = "not-the-password"
      const error = failureOf(yield* Effect.exit(queryOnce(Redacted.make(url.href), "SELECT 1")))
      assert.match(error.message, /password authentication failed/)
    })
  )

  it.effect("stop makes connections fail; start brings it back on the same port with its data", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      yield* queryOnce(server.url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")

      yield* server.stop()
      assert.isFalse(yield* server.isRunning)
      const refused = failureOf(yield* Effect.exit(queryOnce(server.url, "SELECT 1")))
      assert.strictEqual(refused.code, "ECONNREFUSED")
      // stopping a stopped server is a no-op
      yield* server.stop()

      yield* server.start
      assert.isTrue(yield* server.isRunning)
      const rows = yield* queryOnce(server.url, "SELECT n, inet_server_port() AS port FROM kept")
      assert.deepStrictEqual(rows, [{ n: 42, port: server.port }])
      // a clean shutdown keeps the statistics (a crash discards them)
      assert.deepStrictEqual(yield* insertsCounted(server.url, "kept"), 1)
      // starting a running server is a no-op: same postmaster
      const before = yield* startedAt(server.url)
      yield* server.start
      assert.strictEqual(yield* startedAt(server.url), before)
    })
  )

  it.scoped("an immediate stop kills sessions at once and the next start recovers committed data", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      yield* queryOnce(server.url, "CREATE TABLE crash (n int); INSERT INTO crash VALUES (7)")
      const client = yield* connect(server.url)
      const lost = Effect.runPromise(
        Effect.async<Error>((resume) => {
          client.once("error", (error) => resume(Effect.succeed(error)))
        })
      )

      yield* server.stop({ mode: "immediate" })
      assert.isFalse(yield* server.isRunning)
      const error = yield* Effect.promise(() => lost)
      assert.match(error.message, /terminat|ECONNRESET|shutdown/i)

      yield* server.start
      assert.deepStrictEqual(yield* queryOnce(server.url, "SELECT n FROM crash"), [{ n: 7 }])
      // it was a crash: PostgreSQL discarded its statistics while recovering
      assert.deepStrictEqual(yield* insertsCounted(server.url, "crash"), 0)
    })
  )

  it.scoped("restart ends open sessions and serves new ones on the same port", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const client = yield* connect(server.url)
      const before = yield* startedAt(server.url)

      yield* server.restart

      const broken = failureOf(yield* Effect.exit(query(client, "SELECT 1")))
      assert.match(broken.message, /terminat|not queryable|ECONNRESET/i)
      assert.isTrue(yield* server.isRunning)
      assert.isAbove(yield* startedAt(server.url), before)
      assert.deepStrictEqual(yield* queryOnce(server.url, "SELECT inet_server_port() AS port"), [{ port: server.port }])
    })
  )

  it.effect("external: queries work, and stop, start and restart fail with NotSupported", () =>
    Effect.gen(function* () {
      const embedded = yield* PgTestServer.PgTestServer
      const server = yield* PgTestServer.makeExternal(embedded.url)
      assert.strictEqual(server.backend, "external")
      assert.strictEqual(server.port, embedded.port)
      assert.strictEqual(Redacted.value(server.password), Redacted.value(embedded.password))
      assert.deepStrictEqual(yield* queryOnce(server.url, "SELECT 1 AS one"), [{ one: 1 }])
      assert.isTrue(yield* server.isRunning)

      for (const operation of [server.stop(), server.stop({ mode: "immediate" }), server.start, server.restart]) {
        const error = failureOf(yield* Effect.exit(operation))
        assert.strictEqual(error._tag, "PgTestServerError")
        assert.strictEqual(error.reason, "NotSupported")
        assert.strictEqual(error.backend, "external")
      }
      // and it did not touch the server
      assert.deepStrictEqual(yield* queryOnce(embedded.url, "SELECT 1 AS one"), [{ one: 1 }])
    })
  )

  it.effect("make reads PG_TEST_BACKEND=external and PG_TEST_URL", () =>
    Effect.gen(function* () {
      const embedded = yield* PgTestServer.PgTestServer
      const env = new Map([
        ["PG_TEST_BACKEND", "external"],
        ["PG_TEST_URL", Redacted.value(embedded.url)]
      ])
      const server = yield* PgTestServer.make().pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(env)),
        Effect.scoped
      )
      assert.strictEqual(server.backend, "external")
      assert.strictEqual(server.port, embedded.port)
    })
  )
})

class ServerPort extends Context.Tag("test/ServerPort")<ServerPort, number>() {}

// A layer built from the server, and the server itself, from one call: what a pool on the test database needs.
layer(
  PgTestServer.layerWith((server) => Layer.succeed(ServerPort, server.port)),
  { timeout: "60 seconds", excludeTestServices: true }
)("layerWith", (it) => {
  it.effect("builds the layer from the running server and provides both", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      assert.strictEqual(yield* ServerPort, server.port)
      const rows = yield* queryOnce(server.url, "SELECT 1 AS one")
      assert.deepStrictEqual(rows, [{ one: 1 }])
    })
  )
})

describe("configuration", () => {
  const makeWith = (env: ReadonlyArray<readonly [string, string]>) =>
    PgTestServer.make().pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(env))), Effect.scoped)

  it.live("PG_TEST_BACKEND=external without PG_TEST_URL fails with InvalidConfig", () =>
    Effect.gen(function* () {
      const error = failureOf(yield* Effect.exit(makeWith([["PG_TEST_BACKEND", "external"]])))
      assert.strictEqual(error.reason, "InvalidConfig")
      assert.include(error.message, "PG_TEST_URL")
    })
  )

  it.live("an unknown PG_TEST_BACKEND fails with InvalidConfig naming the choices", () =>
    Effect.gen(function* () {
      const error = failureOf(yield* Effect.exit(makeWith([["PG_TEST_BACKEND", "docker"]])))
      assert.strictEqual(error.reason, "InvalidConfig")
      assert.include(error.message, '"docker"')
      assert.include(error.message, "embedded, container, external")
    })
  )

  it.live("a malformed PG_TEST_URL fails with InvalidConfig and never shows the password", () =>
    Effect.gen(function* () {
      for (const url of ["mysql://me:s3cret-pw@db:3306/app", "postgres://me:s3cret-pw@:5432/app", "s3cret-pw"]) {
        const error = failureOf(
          yield* Effect.exit(
            makeWith([
              ["PG_TEST_BACKEND", "external"],
              ["PG_TEST_URL", url]
            ])
          )
        )
        assert.strictEqual(error.reason, "InvalidConfig")
        assert.notInclude(error.message, "s3cret-pw")
      }
    })
  )

  it.live("invalid embedded options fail with InvalidConfig before anything starts", () =>
    Effect.gen(function* () {
      const error = failureOf(yield* Effect.exit(Effect.scoped(PgTestServer.makeEmbedded({ port: 70_000 }))))
      assert.strictEqual(error.reason, "InvalidConfig")
      assert.include(error.message, "70000")
      const outside = failureOf(
        yield* Effect.exit(Effect.scoped(PgTestServer.makeEmbedded({ files: { "../postgresql.conf": "" } })))
      )
      assert.strictEqual(outside.reason, "InvalidConfig")
      assert.include(outside.message, 'files name "../postgresql.conf" must be a plain file name')
    })
  )
})

describe("start failures", () => {
  it.live("a server that cannot start fails with StartFailed, quoting its log, never its password", () =>
    Effect.gen(function* () {
      const password = "hunter2-do-not-print"
      const exit = yield* Effect.exit(
        Effect.scoped(PgTestServer.makeEmbedded({ password, settings: { no_such_setting: 1 } }))
      )
      const error = failureOf(exit)
      assert.strictEqual(error.reason, "StartFailed")
      assert.include(error.message, 'unrecognized configuration parameter "no_such_setting"')
      assert.notInclude(error.message, password)
    })
  )

  it.live("a fixed port that is taken fails with StartFailed naming the port", () =>
    Effect.gen(function* () {
      const blocker = yield* Effect.acquireRelease(
        Effect.async<Net.Server>((resume) => {
          const server = Net.createServer()
          server.listen({ host: "127.0.0.1", port: 0 }, () => resume(Effect.succeed(server)))
        }),
        (server) =>
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
          })
      )
      const port = (blocker.address() as Net.AddressInfo).port
      const error = failureOf(yield* Effect.exit(Effect.scoped(PgTestServer.makeEmbedded({ port }))))
      assert.strictEqual(error.reason, "StartFailed")
      assert.include(error.message, `127.0.0.1:${port}`)
      assert.include(error.message, "Address already in use")
    }).pipe(Effect.scoped)
  )
})

describe("lifecycle", () => {
  it.live("closing the scope stops the server and deletes its files", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const server = yield* PgTestServer.makeEmbedded().pipe(Scope.extend(scope))
      const { dataDir, pid } = yield* serverProcess(server.url)
      assert.isTrue(isAlive(pid))
      assert.isTrue(Registry.readAll().some((entry) => entry.dataDir === dataDir))

      yield* Scope.close(scope, Exit.void)

      assert.isFalse(isAlive(pid), `postmaster ${pid} still alive`)
      assert.isFalse(Fs.existsSync(Path.dirname(dataDir)), `${dataDir} still exists`)
      assert.isFalse(Registry.readAll().some((entry) => entry.dataDir === dataDir))
    })
  )

  it.live("servers whose owner died, or whose owner pid was recycled, are reaped by the next start", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      // Pretend other processes owned these servers: one died, the other died and its pid went to a new process.
      const dead = ChildProcess.spawnSync("true").pid!
      const owners = [{ ownerPid: dead }, { ownerPid: process.ppid, ownerStartTime: "0" }]
      const victims = yield* Effect.forEach(owners, (owner) =>
        Effect.gen(function* () {
          const server = yield* PgTestServer.makeEmbedded().pipe(Scope.extend(scope))
          const victim = yield* serverProcess(server.url)
          const entry = Registry.readAll().find((entry) => entry.dataDir === victim.dataDir)!
          Fs.writeFileSync(
            Path.join(Registry.baseDir(), "servers", `${entry.id}.json`),
            JSON.stringify({ ...entry, ...owner })
          )
          return victim
        })
      )

      yield* Effect.scoped(PgTestServer.makeEmbedded())

      for (const { dataDir, pid } of victims) {
        assert.isFalse(isAlive(pid), `postmaster ${pid} survived its dead owner`)
        assert.isFalse(Fs.existsSync(dataDir))
      }
      // our own finalizers cope with servers that are already gone
      yield* Scope.close(scope, Exit.void)
    })
  )
})

describe("a server does not outlive its process", () => {
  const viteNode = Path.join(
    Path.dirname(
      Module.createRequire(Module.createRequire(import.meta.url).resolve("vitest/package.json")).resolve(
        "vite-node/package.json"
      )
    ),
    "vite-node.mjs"
  )

  /** Starts the fixture in a child process and waits for its server to be up. */
  const holdServer = Effect.acquireRelease(
    Effect.async<{ child: ChildProcess.ChildProcess; url: Redacted.Redacted<string> }>((resume) => {
      const child = ChildProcess.spawn(process.execPath, [viteNode, "test/fixtures/holdServer.ts"], {
        cwd: Path.join(import.meta.dirname, ".."),
        stdio: ["pipe", "pipe", "pipe"]
      })
      let output = ""
      child.stdout.on("data", (chunk) => {
        output += chunk
        const line = output.split("\n").find((line) => line.startsWith("{"))
        if (line !== undefined) resume(Effect.succeed({ child, url: Redacted.make(JSON.parse(line).url as string) }))
      })
      child.stderr.on("data", (chunk) => {
        output += chunk
      })
      child.once("exit", (code) => resume(Effect.die(new Error(`fixture exited (${code}): ${output}`))))
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  )

  const diesWithOwner = (signal: NodeJS.Signals, within: number) =>
    Effect.gen(function* () {
      const { child, url } = yield* holdServer
      const { dataDir, pid } = yield* serverProcess(url)
      assert.isTrue(isAlive(pid))

      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_, signal) => resolve(signal)))
      child.kill(signal)
      // Killed by the signal itself: the handler re-raised it after cleaning up, rather than swallowing it.
      assert.strictEqual(yield* Effect.promise(() => exited), signal)

      assert.isTrue(yield* eventually(() => !isAlive(pid), within), `postmaster ${pid} outlived its owner (${signal})`)
      assert.isTrue(yield* eventually(() => !Fs.existsSync(dataDir), within), `${dataDir} outlived its owner`)
    })

  // The signal handler cleans up synchronously, before the process dies: all is gone by the time we see the exit
  // (the watchdog, the fallback, needs at least 100 ms).
  it.scopedLive("killed with SIGTERM: gone by the time it exits (signal handler)", () => diesWithOwner("SIGTERM", 0))

  it.scopedLive("killed with SIGKILL: gone soon after (watchdog)", () => diesWithOwner("SIGKILL", 3_000))
})

describe("container", () => {
  it.scopedLive(
    "starts with a Docker engine, and fails with BackendUnavailable without one",
    () =>
      Effect.gen(function* () {
        const docker = yield* dockerAnswers
        const exit = yield* Effect.exit(PgTestServer.makeContainer())
        if (docker) {
          assert.isTrue(Exit.isSuccess(exit), `Docker answers, yet: ${Exit.isFailure(exit) ? exit.cause : ""}`)
          const server = yield* exit
          assert.strictEqual(server.backend, "container")
          assert.deepStrictEqual(yield* queryOnce(server.url, "SELECT 1 AS one"), [{ one: 1 }])
        } else {
          const error = failureOf(exit)
          assert.strictEqual(error.reason, "BackendUnavailable")
          assert.strictEqual(error.backend, "container")
          assert.include(error.message, "Docker")
        }
      }),
    180_000
  )
})
