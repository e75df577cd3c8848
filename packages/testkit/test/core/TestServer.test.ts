import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { TestServer } from "../../src/core.js"
import { isAlive } from "../../src/internal/processes.js"
import * as Registry from "../../src/internal/registry.js"
import { connect, end, queryOnce, rejection } from "./pg.js"

const postmasterPid = (dataDir: string) =>
  Number(Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])

describe("TestServer.startEmbedded", () => {
  let server: TestServer.EmbeddedServer
  beforeAll(async () => {
    server = await TestServer.startEmbedded({ unixSocket: true })
  })
  afterAll(() => server?.close())

  it("serves sessions over TCP and on its own Unix socket", async () => {
    expect(server.backend).toBe("embedded")
    expect(server.url).toBe(
      `postgres://postgres:${encodeURIComponent(server.password)}@127.0.0.1:${server.port}/postgres`
    )
    expect(await queryOnce(server.url, "SELECT inet_server_port() AS port")).toEqual([{ port: server.port }])
    expect(server.socketDir).toBe(Path.join(Path.dirname(server.dataDir), "socket"))
    const rows = await queryOnce(
      {
        host: server.socketDir!,
        port: server.port,
        user: server.user,
        password: server.password,
        database: "postgres"
      },
      "SELECT inet_server_port() AS port"
    )
    // no TCP port on a Unix-socket session
    expect(rows).toEqual([{ port: null }])
  })

  it("kill: the postmaster and every backend die at once; start recovers committed data", async () => {
    await queryOnce(server.url, "CREATE TABLE killed (n int); INSERT INTO killed VALUES (1)")
    const client = await connect(server.url)
    const [{ pid: backend }] = (await client.query("SELECT pg_backend_pid() AS pid")).rows as Array<{ pid: number }>
    const postmaster = postmasterPid(server.dataDir)

    await server.kill()

    expect(await server.isRunning()).toBe(false)
    expect(isAlive(postmaster)).toBe(false)
    expect(isAlive(backend!)).toBe(false)
    expect((await rejection(client.query("SELECT 1"))).message).toMatch(/terminat|ECONNRESET|not queryable/i)
    await end(client)
    expect((await rejection(queryOnce(server.url, "SELECT 1"))).code).toBe("ECONNREFUSED")

    await server.start()
    expect(await queryOnce(server.url, "SELECT n FROM killed")).toEqual([{ n: 1 }])
    // killing a stopped server is a no-op
    await server.stop()
    await server.kill()
    await server.start()
  })

  it("stop, start and restart run one after the other when called at once", async () => {
    await Promise.all([server.stop({ mode: "immediate" }), server.start(), server.restart()])
    expect(await server.isRunning()).toBe(true)
    expect(await queryOnce(server.url, "SELECT 1 AS one")).toEqual([{ one: 1 }])
  })

  it("an aborted start rejects and leaves the server stopped", async () => {
    await server.stop()
    const controller = new AbortController()
    const starting = server.start({ signal: controller.signal })
    controller.abort()
    const error = await rejection(starting)
    expect(error).toBeInstanceOf(TestServer.TestServerError)
    expect((error as TestServer.TestServerError).reason).toBe("StartFailed")
    await server.start()
    expect(await server.isRunning()).toBe(true)
  })
})

describe("TestServer lifecycle", () => {
  it("close stops the server, deletes its files and its registry entry; a second close is a no-op", async () => {
    const server = await TestServer.startEmbedded()
    const pid = postmasterPid(server.dataDir)
    expect(Registry.readAll().some((entry) => entry.dataDir === server.dataDir)).toBe(true)
    await server.close()
    expect(isAlive(pid)).toBe(false)
    expect(Fs.existsSync(Path.dirname(server.dataDir))).toBe(false)
    expect(Registry.readAll().some((entry) => entry.dataDir === server.dataDir)).toBe(false)
    await server.close()
  })

  it("a start that fails leaves no directory and no registry entry, and never shows the password", async () => {
    const before = Registry.readAll().length
    const error = await rejection(
      TestServer.startEmbedded({ password: "hunter2-core", settings: { no_such_setting: 1 } })
    )
    expect((error as TestServer.TestServerError).reason).toBe("StartFailed")
    expect(error.message).toContain('unrecognized configuration parameter "no_such_setting"')
    expect(error.message).not.toContain("hunter2-core")
    expect(Registry.readAll().length).toBe(before)
  })

  it("startServer reads PG_TEST_BACKEND and PG_TEST_URL from the env it is given", async () => {
    const embedded = await TestServer.startEmbedded()
    try {
      const external = await TestServer.startServer({
        env: { PG_TEST_BACKEND: "external", PG_TEST_URL: embedded.url }
      })
      expect(external.backend).toBe("external")
      expect(external.port).toBe(embedded.port)
      for (const operation of [external.stop(), external.kill(), external.start(), external.restart()]) {
        expect(((await rejection(operation)) as TestServer.TestServerError).reason).toBe("NotSupported")
      }
      await external.close()
      expect(await queryOnce(embedded.url, "SELECT 1 AS one")).toEqual([{ one: 1 }])
    } finally {
      await embedded.close()
    }
    const missing = await rejection(TestServer.startServer({ env: { PG_TEST_BACKEND: "external" } }))
    expect(missing.message).toContain("PG_TEST_URL")
    const unknown = await rejection(TestServer.startServer({ env: { PG_TEST_BACKEND: "docker" } }))
    expect((unknown as TestServer.TestServerError).reason).toBe("InvalidConfig")
    expect(unknown.message).toContain("embedded, container, external")
  })
})
