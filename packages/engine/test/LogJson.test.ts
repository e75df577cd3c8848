import { assert, describe, it } from "vitest"
import * as LogJson from "../src/LogJson.js"

const secret = { secret: "hunter2" }
const render = LogJson.make((u) => u === secret)
const redact = (s: string) => s.replaceAll("hunter2", "<redacted>")

describe("LogJson", () => {
  it("redacts every string, keys included, and renders the runtime's secrets as <redacted>", () => {
    assert.deepStrictEqual(
      render.toJson(
        { hunter2: "postgres://app:hunter2@db", password: secret, n: 1n, f: function named() {} },
        redact,
        0,
        new Set()
      ),
      { "<redacted>": "postgres://app:<redacted>@db", password: "<redacted>", n: "1", f: "[Function named]" }
    )
  })

  it("renders errors with their fields, cause and stack, maps, sets and toJSON", () => {
    const error = Object.assign(new Error("bad hunter2", { cause: new Error("inner") }), { code: "28P01" })
    const json = render.errorJson(error, redact, 0, new Set())
    assert.strictEqual(json.message, "bad <redacted>")
    assert.strictEqual(json.code, "28P01")
    assert.strictEqual((json.cause as { message: string }).message, "inner")
    assert.include(json.stack as string, "bad <redacted>")
    assert.deepStrictEqual(render.toJson(new Map([["a", new Set([1, 2])]]), redact, 0, new Set()), { a: [1, 2] })
    assert.strictEqual(render.toJson(new Date(0), redact, 0, new Set()), "1970-01-01T00:00:00.000Z")
  })

  it("bounds cycles and depth", () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    assert.deepStrictEqual(render.toJson(cyclic, redact, 0, new Set()), { self: "[Circular]" })
    let deep: unknown = "leaf"
    for (let i = 0; i < LogJson.maxDepth + 1; i++) deep = [deep]
    assert.include(JSON.stringify(render.toJson(deep, redact, 0, new Set())), '"[Object]"')
    assert.isTrue(LogJson.reserved.has("message"))
  })
})
