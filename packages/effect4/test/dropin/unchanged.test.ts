// An Effect 4 program written for PgClient.layer runs unchanged on our layer: the same source (program/orders.ts),
// each run on a fresh server, only the layer differs.
import { Db } from "@effect-pg-pool/effect4"
import { PgClient } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as PgServer from "../support/PgServer.js"
import type { MakeLayer } from "./suite/index.js"
import { program, type Report } from "./program/orders.js"

const expected: Report = {
  created: [
    { id: 1, item: "lamp" },
    { id: 2, item: "desk" },
    { id: 3, item: "chair" }
  ],
  rolledBack: "ConstraintError",
  committedTotal: 17,
  streamed: ["lamp", "desk", "chair"],
  notified: ["lamp", "desk"],
  perCustomer: [
    { customer: "ada", orders: 2 },
    { customer: "bob", orders: 1 }
  ]
}

// Db.layer as well as Db.layerPgClient: they differ only in the error type of a failed start, which this program
// never meets.
const layers: ReadonlyArray<readonly [string, MakeLayer]> = [
  ["PgClient.layer", PgClient.layer],
  ["Db.layerPgClient", Db.layerPgClient],
  ["Db.layer", Db.layer]
]

for (const [name, makeLayer] of layers) {
  layer(PgServer.layer, { timeout: "60 seconds" })(`an unchanged PgClient.layer program on ${name}`, (it) => {
    it.effect("runs and sees what it sees on PgClient.layer", () =>
      Effect.gen(function* () {
        const server = yield* PgServer.PgServer
        const report = yield* program.pipe(Effect.provide(makeLayer({ url: server.url })), TestClock.withLive)
        assert.deepStrictEqual(report, expected)
      })
    )
  })
}
