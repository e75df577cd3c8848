/**
 * `Health.encode` and `PoolStatistics.encode` are hand-written fast paths of `Schema.encodeSync`: they must give the
 * same JSON for every shape of value, including the options and dates.
 */
import { assert, describe, it } from "@effect/vitest"
import { Option, Schema } from "effect"
import * as Health from "../src/Health.js"
import * as PoolStatistics from "../src/PoolStatistics.js"

const closed = (n: number) =>
  new PoolStatistics.ClosedByReason({
    lifetime: n,
    idle: n + 1,
    maxQueries: n + 2,
    broken: n + 3,
    validation: n + 4,
    reset: n + 5,
    cancel: n + 6,
    shutdown: n + 7,
    refreshed: n + 8,
    roleChanged: n + 9
  })

const statistics = (state: PoolStatistics.PoolState, lastError: Option.Option<string>) =>
  new PoolStatistics.PoolStatistics({
    poolName: "orders",
    total: 7,
    idle: 3,
    active: 4,
    pending: 1,
    waiting: 12,
    minSize: 2,
    maxSize: 10,
    peakActive: 10,
    peakWaiting: 40,
    acquisitions: 123_456,
    acquisitionTimeAvgMs: 0.25,
    acquisitionTimeP95Ms: 1.5,
    acquisitionTimeP99Ms: 7.125,
    acquireTimeouts: 3,
    connectionsCreated: 19,
    connectionsClosed: closed(state === "healthy" ? 0 : 5),
    reconnectAttempts: 2,
    leaksSuspected: 1,
    state,
    lastError,
    upSince: new Date(1_700_000_000_123)
  })

const variants = [
  { state: "healthy", reason: Option.none(), lastError: Option.none(), latency: Option.some(0.4), probedAt: true },
  { state: "degraded", reason: Option.some("saturated"), lastError: Option.some("boom"), latency: Option.none() },
  { state: "unhealthy", reason: Option.some("down"), lastError: Option.some("ECONNREFUSED"), latency: Option.none() }
] as const

describe("encode", () => {
  for (const variant of variants) {
    it(`Health.encode and PoolStatistics.encode equal Schema.encodeSync for a ${variant.state} pool`, () => {
      const stats = statistics(variant.state, variant.lastError)
      const health = new Health.HealthStatus({
        status: variant.state,
        reason: variant.reason,
        checkedAt: new Date(1_700_000_100_456),
        database: new Health.DatabaseReachability({
          reachable: variant.state !== "unhealthy",
          latencyMs: variant.latency,
          probedAt: "probedAt" in variant ? Option.some(new Date(1_700_000_099_000)) : Option.none()
        }),
        statistics: stats
      })
      assert.strictEqual(
        JSON.stringify(PoolStatistics.encode(stats)),
        JSON.stringify(Schema.encodeSync(PoolStatistics.PoolStatistics)(stats))
      )
      assert.strictEqual(
        JSON.stringify(Health.encode(health)),
        JSON.stringify(Schema.encodeSync(Health.HealthStatus)(health))
      )
      // and it decodes back to the same value
      assert.deepStrictEqual(Schema.decodeUnknownSync(Health.HealthStatus)(Health.encode(health)), health)
    })
  }
})
