import { type TestServer, TestServer as Server } from "@effect-pg-pool/testkit/core"
import { Effect, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DbLive, program, SqlLive } from "../src/dropin.js"

// The README's drop-in: the same program, written for PgClient.layer, on PgClient.layer and on Db.layer
describe("a program written for PgClient.layer", () => {
  let server: TestServer.TestServer
  beforeAll(async () => {
    server = await Server.startServer()
  })
  afterAll(() => server?.close())

  const expected = {
    failed: "UnknownError",
    todos: [
      { title: "write", done: false },
      { title: "test", done: false }
    ]
  }

  it("runs on PgClient.layer", async () => {
    const report = await Effect.runPromise(Effect.provide(program, SqlLive(Redacted.make(server.url))))
    expect(report).toEqual(expected)
  })

  it("runs unchanged on Db.layer, and sees the same", async () => {
    const report = await Effect.runPromise(Effect.provide(program, DbLive(Redacted.make(server.url))))
    expect(report).toEqual(expected)
  })
})
