/**
 * Several hosts over TLS, on the real topology (the testkit's primary and streaming standby, both with a
 * certificate): a TLS session's ParameterStatus messages are encrypted below PgConnection, so the target is checked
 * with libpq's queries (`SHOW transaction_read_only`, `pg_is_in_recovery()`), and a promotion is found by the hosts
 * table's role checks (a throwaway session every `roleCheckIntervalMillis`, 30 s) instead of the server's report.
 */
import { Db } from "@effect-pg-pool/effect4"
import { PrimaryStandby } from "@effect-pg-pool/testkit/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger } from "effect"
import { Reactivity } from "effect/reactivity"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll } from "vitest"
import { eventually, type Node, type Pair, urlOf } from "./utils/primaryStandby.js"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-pg-pool-e4-hosts-tls-"))
const openssl = (...args: ReadonlyArray<string>) =>
  ChildProcess.execFileSync("/usr/bin/openssl", args, { cwd: dir, stdio: "pipe" })
// a self-signed certificate for 127.0.0.1: sslmode=require encrypts without checking it
openssl(
  "req",
  "-x509",
  "-newkey",
  "ec",
  "-pkeyopt",
  "ec_paramgen_curve:prime256v1",
  "-nodes",
  "-keyout",
  "server.key",
  "-out",
  "server.crt",
  "-days",
  "2",
  "-subj",
  "/CN=127.0.0.1"
)
const read = (name: string) => Fs.readFileSync(Path.join(dir, name), "utf8")
const ssl = { ssl: true, ssl_cert_file: "server.crt", ssl_key_file: "server.key" }

let pair: Pair
beforeAll(async () => {
  // the standby is a copy of the primary's data directory: the certificate files come with it
  pair = await PrimaryStandby.start({
    primary: { files: { "server.crt": read("server.crt"), "server.key": read("server.key") }, settings: ssl },
    standby: { settings: ssl }
  })
}, 120_000)
afterAll(async () => {
  await pair?.close()
  Fs.rmSync(dir, { recursive: true, force: true })
})

const makeDb = (nodes: ReadonlyArray<Node>, target: string, options: Omit<Db.DbOptions, "url"> = {}) =>
  Db.make({ url: urlOf(pair, nodes, target, "&sslmode=require"), ...options }).pipe(
    Effect.provide(Layer.merge(Reactivity.layer, Logger.layer([])))
  )

const whereAmI = (sql: Db.Service["sql"]) =>
  Effect.map(
    sql<{ port: number; ssl: boolean; recovery: boolean }>`
      SELECT inet_server_port() AS port, ssl, pg_is_in_recovery() AS recovery
      FROM pg_stat_ssl WHERE pid = pg_backend_pid()`,
    (rows) => rows[0]!
  )

describe("several hosts over TLS", () => {
  it.live("each target reaches its role, checked with libpq's queries", () =>
    Effect.gen(function* () {
      const { primary, standby } = pair
      for (const [target, node] of [
        ["read-write", primary],
        ["primary", primary],
        ["read-only", standby],
        ["standby", standby],
        ["prefer-standby", standby]
      ] as const) {
        for (const order of [
          [primary, standby],
          [standby, primary]
        ]) {
          const db = yield* makeDb(order, target, { minSize: 1, maxSize: 1 })
          const seen = yield* whereAmI(db.sql)
          assert.deepStrictEqual(
            seen,
            { port: node.port, ssl: true, recovery: node === standby },
            `${target}, ${order[0] === primary ? "primary" : "standby"} first`
          )
        }
      }
    }).pipe(Effect.scoped)
  )

  it.live(
    "a standby pool's sessions are evicted after a promotion, found by the table's role check",
    () =>
      Effect.gen(function* () {
        const db = yield* makeDb([pair.primary, pair.standby], "standby", { minSize: 2, maxSize: 2 })
        assert.deepStrictEqual(yield* whereAmI(db.sql), { port: pair.standby.port, ssl: true, recovery: true })
        yield* eventually(
          "both sessions are open",
          Effect.map(db.statistics, (stats) => stats.total === 2)
        )
        yield* Effect.promise(() => pair.promote())
        yield* eventually(
          "both sessions were evicted",
          Effect.map(db.statistics, (stats) => stats.connectionsClosed.roleChanged === 2),
          45_000
        )
        const host = (yield* db.statistics).hosts.find((h) => h.port === pair.standby.port)!
        assert.strictEqual(host.role, "primary")
      }).pipe(Effect.scoped),
    90_000
  )
})
