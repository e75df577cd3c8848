import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Path from "node:path"
import type pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { PgBouncer, TestServer } from "../../src/core.js"
import { isAlive } from "../../src/internal/processes.js"
import * as Registry from "../../src/internal/registry.js"
import { connect, end, eventually, queryOnce, rejection } from "./pg.js"

const backendPid = async (client: pg.Client): Promise<number> =>
  ((await client.query("SELECT pg_backend_pid() AS pid")).rows[0] as { pid: number }).pid

let server: TestServer.EmbeddedServer
beforeAll(async () => {
  server = await TestServer.startEmbedded()
})
afterAll(() => server?.close())

describe("PgBouncer in transaction mode", () => {
  let bouncer: PgBouncer.PgBouncer
  beforeAll(async () => {
    bouncer = await PgBouncer.start(server, { poolMode: "transaction", poolSize: 4 })
  })
  afterAll(() => bouncer?.close())

  it("serves queries, authenticating with the server's SCRAM secret (a wrong password is refused)", async () => {
    expect(bouncer.poolMode).toBe("transaction")
    expect(bouncer.version).toMatch(/^1\.\d+/)
    expect(bouncer.userlist).toBe("scram-secret")
    expect(bouncer.port).not.toBe(server.port)
    expect(await queryOnce(bouncer.url, "SELECT inet_server_port() AS port")).toEqual([{ port: server.port }])
    const url = new URL(bouncer.url)
    url.password = "wrong"
    expect((await rejection(queryOnce(url.href, "SELECT 1"))).message).toMatch(
      /SASL authentication failed|password authentication failed/
    )
  })

  it("two statements of one client outside a transaction run on different backends when another holds one", async () => {
    const a = await connect(bouncer.url)
    const b = await connect(bouncer.url)
    try {
      const first = await backendPid(a)
      // b takes a server connection for a whole transaction: a's next statement must run on another one
      await b.query("BEGIN")
      const held = await backendPid(b)
      const second = await backendPid(a)
      await b.query("COMMIT")
      expect(held).toBe(first)
      expect(second).not.toBe(first)
      // and a transaction keeps its backend from BEGIN to COMMIT
      await a.query("BEGIN")
      const inside = [await backendPid(a), await backendPid(a), await backendPid(a)]
      await a.query("COMMIT")
      expect(new Set(inside).size).toBe(1)
    } finally {
      await end(a)
      await end(b)
    }
  })

  it("over several interleaved clients, a client's statements are spread over backends", async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => connect(bouncer.url)))
    try {
      const seen = clients.map(() => new Set<number>())
      for (let round = 0; round < 10; round++) {
        await Promise.all(
          clients.map(async (client, i) => {
            await client.query("SELECT pg_sleep(0.005)")
            seen[i]!.add(await backendPid(client))
          })
        )
      }
      expect(seen.some((pids) => pids.size > 1)).toBe(true)
    } finally {
      await Promise.all(clients.map(end))
    }
  })

  it("stop closes client connections, start brings it back on the same port; close reaps it", async () => {
    const client = await connect(bouncer.url)
    await bouncer.stop()
    expect(await bouncer.isRunning()).toBe(false)
    expect((await rejection(client.query("SELECT 1"))).message).toMatch(/terminat|ECONNRESET|not queryable|closed/i)
    await end(client)
    expect((await rejection(queryOnce(bouncer.url, "SELECT 1"))).code).toBe("ECONNREFUSED")
    await bouncer.start()
    expect(await queryOnce(bouncer.url, "SELECT 1 AS one")).toEqual([{ one: 1 }])
    await bouncer.kill()
    await bouncer.start()

    const entry = Registry.readAll().find((entry) => entry.port === bouncer.port && entry.command === "pgbouncer")!
    expect(entry).toBeDefined()
    const pid = Number(Fs.readFileSync(Path.join(entry.rootDir, "pgbouncer.pid"), "utf8"))
    expect(isAlive(pid)).toBe(true)
    await bouncer.close()
    expect(isAlive(pid)).toBe(false)
    expect(Fs.existsSync(entry.rootDir)).toBe(false)
    expect(Registry.readAll().some((other) => other.id === entry.id)).toBe(false)
  })
})

describe("PgBouncer in session mode", () => {
  it("keeps one backend for a client's whole session, however clients interleave", async () => {
    const bouncer = await PgBouncer.start(server, { poolMode: "session", poolSize: 4 })
    const clients = await Promise.all(Array.from({ length: 3 }, () => connect(bouncer.url)))
    try {
      const seen = clients.map(() => new Set<number>())
      for (let round = 0; round < 5; round++) {
        await Promise.all(clients.map(async (client, i) => seen[i]!.add(await backendPid(client))))
      }
      expect(seen.map((pids) => pids.size)).toEqual([1, 1, 1])
      expect(new Set(seen.flatMap((pids) => [...pids])).size).toBe(3)
      // session state carries over between statements, as direct
      await clients[0]!.query("SET application_name = 'kept'")
      expect((await clients[0]!.query("SHOW application_name")).rows).toEqual([{ application_name: "kept" }])
    } finally {
      await Promise.all(clients.map(end))
      await bouncer.close()
    }
  })
})

describe("PgBouncer without its binary", () => {
  it("fails (never skips) with BackendUnavailable saying how to install it", async () => {
    const previous = process.env.PGBOUNCER
    process.env.PGBOUNCER = "/nonexistent/pgbouncer"
    try {
      const error = (await rejection(PgBouncer.start(server))) as TestServer.TestServerError
      expect(error.reason).toBe("BackendUnavailable")
      expect(error.message).toContain("apt-get install -y pgbouncer")
    } finally {
      if (previous === undefined) delete process.env.PGBOUNCER
      else process.env.PGBOUNCER = previous
    }
    expect(PgBouncer.findBinary({ PATH: "/nonexistent" })).toBe(
      ["/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/opt/homebrew/bin", "/usr/bin"]
        .map((dir) => Path.join(dir, "pgbouncer"))
        .find((file) => Fs.existsSync(file))
    )
  })
})

describe("PgBouncer does not outlive its process", () => {
  it("killed with SIGKILL: the watchdog stops PgBouncer and removes its files", async () => {
    const viteNode = Path.join(
      Path.dirname(
        Module.createRequire(Module.createRequire(import.meta.url).resolve("vitest/package.json")).resolve(
          "vite-node/package.json"
        )
      ),
      "vite-node.mjs"
    )
    const child = ChildProcess.spawn(process.execPath, [viteNode, "test/fixtures/holdBouncer.ts"], {
      cwd: Path.join(import.meta.dirname, "..", ".."),
      stdio: ["pipe", "pipe", "pipe"]
    })
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let output = ""
        child.stdout.on("data", (chunk) => {
          output += chunk
          const line = output.split("\n").find((line) => line.startsWith("{"))
          if (line !== undefined) resolve(JSON.parse(line).port as number)
        })
        child.stderr.on("data", (chunk) => {
          output += chunk
        })
        child.once("exit", (code) => reject(new Error(`fixture exited (${code}): ${output}`)))
      })
      const entry = Registry.readAll().find((entry) => entry.port === port && entry.command === "pgbouncer")!
      const pid = Number(Fs.readFileSync(Path.join(entry.rootDir, "pgbouncer.pid"), "utf8"))
      expect(isAlive(pid)).toBe(true)

      child.kill("SIGKILL")

      // the watchdog sends SIGQUIT, and SIGKILL 5 s later if need be
      expect(await eventually(() => !isAlive(pid), 8_000)).toBe(true)
      expect(await eventually(() => !Fs.existsSync(entry.rootDir), 8_000)).toBe(true)
    } finally {
      child.kill("SIGKILL")
    }
  })
})
