/**
 * The pg driver's multi-host connect on the real topology: a primary and a streaming standby from the testkit,
 * target_session_attrs against both roles, and a promotion.
 */
import { Hosts } from "@effect-pg-pool/engine"
import { PrimaryStandby } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as Connection from "../src/internal/connection.js"
import { connectAny } from "../src/internal/hosts.js"
import { eventually, failureOf, realSleep } from "./utils.js"

const optionsOf = (pair: PrimaryStandby.PrimaryStandby.Service): Connection.ConnectOptions => ({
  host: "ignored",
  port: 1,
  database: pair.primary.database,
  user: pair.primary.user,
  password: Redacted.value(pair.primary.password),
  ssl: { mode: "disable", options: false },
  applicationName: "hosts-failover-test",
  statementTimeoutMillis: undefined,
  connectTimeoutMillis: 2_000,
  keepAlive: true,
  types: undefined
})

const hostOf = (node: PrimaryStandby.PrimaryStandby.Node): Hosts.Host => ({ host: node.host, port: node.port })

const reach = (
  options: Connection.ConnectOptions,
  hosts: ReadonlyArray<Hosts.Host>,
  target: Hosts.TargetSessionAttrs
) =>
  Effect.acquireRelease(
    connectAny(options, Hosts.attempts(hosts, target, "disable", Math.random), target, () => {}),
    (reached) => Effect.sync(() => Connection.destroy(reached.client))
  )

// a fresh pair per suite: the promotion below changes the topology for good
layer(PrimaryStandby.layer(), { timeout: "120 seconds", excludeTestServices: true })(
  "multi-host connect on a primary and a streaming standby",
  (it) => {
    it.scoped("target_session_attrs matrix: each target reaches its role, whichever host is listed first", () =>
      Effect.gen(function* () {
        const pair = yield* PrimaryStandby.PrimaryStandby
        const options = optionsOf(pair)
        const primary = hostOf(pair.primary)
        const standby = hostOf(pair.standby)
        const expected: ReadonlyArray<readonly [Hosts.TargetSessionAttrs, Hosts.Host, Hosts.Host, Hosts.Role]> = [
          ["read-write", primary, primary, "primary"],
          ["primary", primary, primary, "primary"],
          ["read-only", standby, standby, "standby"],
          ["standby", standby, standby, "standby"],
          ["prefer-standby", standby, standby, "standby"]
        ]
        for (const [target, whenPrimaryFirst, whenStandbyFirst, role] of expected) {
          const a = yield* reach(options, [primary, standby], target)
          const b = yield* reach(options, [standby, primary], target)
          assert.deepStrictEqual([a.attempt.host, a.role], [whenPrimaryFirst, role], `${target}, primary listed first`)
          assert.deepStrictEqual([b.attempt.host, b.role], [whenStandbyFirst, role], `${target}, standby listed first`)
        }
        assert.deepStrictEqual((yield* reach(options, [standby, primary], "any")).attempt.host, standby)
        // the standby reports in_hot_standby at startup: no check query was needed
        const onStandby = yield* reach(options, [standby], "standby")
        assert.strictEqual(onStandby.parameters["in_hot_standby"], "on")
      })
    )

    it.scoped(
      "promotion: the primary dies, read-write finds no host until the standby is promoted, then reaches it; a " +
        "standby session there reports the promotion and is evicted",
      () =>
        Effect.gen(function* () {
          const pair = yield* PrimaryStandby.PrimaryStandby
          const options = optionsOf(pair)
          const hosts = [hostOf(pair.primary), hostOf(pair.standby)]
          const table = new Hosts.Table({ ...Hosts.tableDefaults, hosts, target: "standby" })
          const reader = yield* reach(options, hosts, "standby")
          table.opened(0, 1, reader.attempt.index, reader.observed, reader.parameters)
          const reports: Array<Record<string, string>> = []
          Connection.onParameterStatus(reader.client, (name, value) => reports.push({ [name]: value }))

          yield* pair.primary.kill
          const before = failureOf(yield* Effect.exit(reach(options, hosts, "read-write")))
          assert.isDefined(before)
          assert.strictEqual(before!.kind, "outage")
          assert.match(before!.message, /: session is read-only \(read-write\)$/)

          yield* pair.promote
          const after = yield* reach(options, hosts, "read-write")
          assert.deepStrictEqual([after.attempt.index, after.role], [1, "primary"])
          assert.deepStrictEqual(
            after.outcomes.map((o) => o._tag),
            ["Failed"]
          )

          // the standby session learns of the promotion with its next statement's ParameterStatus
          yield* eventually(
            "the standby session reported in_hot_standby=off",
            Effect.promise(() => reader.client.query("SELECT 1")).pipe(
              Effect.zipRight(realSleep(20)),
              Effect.map(() => reports.some((r) => r["in_hot_standby"] === "off"))
            )
          )
          const evicted = reports.flatMap((r) => table.reported(1, 1, r))
          assert.deepStrictEqual(
            evicted.map((e) => e.session),
            [1]
          )
          assert.strictEqual(table.roleOf(1), "primary")
        })
    )
  }
)
