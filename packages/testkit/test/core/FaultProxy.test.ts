import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { FaultProxy, TestServer } from "../../src/core.js"
import { connect, end, eventually, queryOnce, rejection } from "./pg.js"

describe("FaultProxy.start", () => {
  let server: TestServer.EmbeddedServer
  let proxy: FaultProxy.FaultProxy
  beforeAll(async () => {
    server = await TestServer.startEmbedded()
    proxy = await FaultProxy.start({ host: server.host, port: server.port, url: server.url })
  })
  afterAll(async () => {
    await proxy?.close()
    await server?.close()
  })

  it("passes sessions through with the server's credentials; refuse, blackhole and resetAll break them", async () => {
    const url = new URL(proxy.url)
    expect(Number(url.port)).toBe(proxy.port)
    expect(decodeURIComponent(url.password)).toBe(server.password)
    const client = await connect(proxy.url)
    expect(proxy.openConnections()).toBe(1)

    proxy.refuse()
    expect(proxy.mode()).toEqual({ _tag: "Refuse" })
    expect((await rejection(queryOnce(proxy.url, "SELECT 1"))).message).toMatch(/ECONNRESET|terminated/i)
    expect((await client.query("SELECT 2 AS two")).rows).toEqual([{ two: 2 }])

    proxy.blackhole()
    const held = client.query("SELECT 3 AS three")
    await new Promise((resolve) => setTimeout(resolve, 200))
    proxy.restore()
    expect((await held).rows).toEqual([{ three: 3 }])

    proxy.resetAll()
    expect((await rejection(client.query("SELECT 1"))).message).toMatch(/ECONNRESET|terminated|not queryable/i)
    expect(await eventually(() => proxy.openConnections() === 0, 2_000)).toBe(true)
    await end(client)
    expect(await queryOnce(proxy.url, "SELECT 4 AS four")).toEqual([{ four: 4 }])
  })

  it("latency delays each direction", async () => {
    const client = await connect(proxy.url)
    try {
      proxy.latency(100)
      expect(proxy.mode()).toEqual({ _tag: "Latency", millis: 100 })
      const started = performance.now()
      await client.query("SELECT 1")
      expect(performance.now() - started).toBeGreaterThanOrEqual(2 * 100 - 5)
    } finally {
      proxy.restore()
      await end(client)
    }
  })
})
