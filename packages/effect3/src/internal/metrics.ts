/**
 * The pool's Effect metrics, named after the OpenTelemetry database-client connection conventions and
 * tagged with the pool name. Updated synchronously from the pool's bookkeeping (`unsafeUpdate`), so the
 * hot path pays no effect allocation for them.
 *
 * @internal
 */
import { Statistics } from "@effect-pg-pool/engine"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import type { CloseReason, PoolState } from "../PoolStatistics.js"

/** @internal */
export interface PoolMetrics {
  /** The connection gauges follow `connections`, which the pool calls when its counts change. */
  readonly acquired: (waitMillis: number) => void
  readonly timedOut: (waitMillis: number) => void
  /** An acquisition that failed otherwise: the pool closed before or while the caller waited. */
  readonly failed: (waitMillis: number) => void
  /** Callers waiting for a connection (the statistics' `waiting`; their `pending` counts connections opening). */
  readonly pendingRequests: (waiting: number) => void
  readonly connections: (idle: number, used: number) => void
  readonly used: (millis: number) => void
  readonly created: (millis: number) => void
  readonly closed: (reason: CloseReason) => void
  readonly reconnectAttempt: () => void
  readonly leak: () => void
  readonly state: (state: PoolState) => void
}

/** @internal */
export const noopMetrics: PoolMetrics = {
  acquired: () => {},
  timedOut: () => {},
  failed: () => {},
  pendingRequests: () => {},
  connections: () => {},
  used: () => {},
  created: () => {},
  closed: () => {},
  reconnectAttempt: () => {},
  leak: () => {},
  state: () => {}
}

const secondsBoundaries = MetricBoundaries.fromIterable(Statistics.secondsBuckets)

/** @internal */
export const names = Statistics.metricNames

/** @internal */
export const poolNameTag = Statistics.poolNameAttribute

/** @internal */
export const make = (poolName: string, minSize: number, maxSize: number): PoolMetrics => {
  // The tags go into each metric's key here, once. `Metric.tagged` would rebuild the key, re-hash it and look it up
  // in the global registry on every update (its tag array is new each time, so Effect's hook cache never hits):
  // microseconds per update, half a dozen updates per checkout.
  const poolLabel = MetricLabel.make(poolNameTag, poolName)
  const keyed = <Type extends MetricKeyType.MetricKeyType<any, any>>(
    key: MetricKey.MetricKey<Type>,
    ...labels: ReadonlyArray<MetricLabel.MetricLabel>
  ) => Metric.fromMetricKey(MetricKey.taggedWithLabels(key, [poolLabel, ...labels]))
  const tag = <M extends Metric.Metric<any, any, any>>(metric: M): M =>
    Metric.tagged(metric, poolNameTag, poolName) as unknown as M
  const countKey = MetricKey.gauge(names.count, { description: "Open connections by state (idle, used)" })
  const idleCount = keyed(countKey, MetricLabel.make("db.client.connection.state", "idle"))
  const usedCount = keyed(countKey, MetricLabel.make("db.client.connection.state", "used"))
  // callers waiting for a connection (the statistics' `waiting`), not connections being opened (their `pending`)
  const pendingRequests = keyed(
    MetricKey.gauge(names.pendingRequests, { description: "Callers waiting for a connection" })
  )
  const timeouts = keyed(
    MetricKey.counter(names.timeouts, { description: "Acquisitions that timed out", incremental: true })
  )
  const histogram = (name: string, description: string) =>
    keyed(MetricKey.histogram(name, secondsBoundaries, description))
  const createTime = histogram(names.createTime, "Time to open a connection, seconds")
  const waitTime = histogram(names.waitTime, "Time to acquire a connection, seconds (timed-out ones included)")
  const useTime = histogram(names.useTime, "Time a connection is held, seconds")
  const closedKey = MetricKey.counter(names.closed, { description: "Connections closed, by reason", incremental: true })
  const closedBy = new Map<CloseReason, Metric.Metric<MetricKeyType.MetricKeyType.Counter<number>, number, unknown>>()
  const closedFor = (reason: CloseReason) => {
    let metric = closedBy.get(reason)
    if (metric === undefined) {
      metric = keyed(closedKey, MetricLabel.make("reason", reason))
      closedBy.set(reason, metric)
    }
    return metric
  }
  const reconnects = tag(Metric.counter(names.reconnects, { description: "Reconnection attempts", incremental: true }))
  const leaks = tag(
    Metric.counter(names.leaks, { description: "Connections held past the leak threshold", incremental: true })
  )
  const state = tag(Metric.gauge(names.state, { description: "0 healthy, 1 degraded, 2 unhealthy" }))

  tag(Metric.gauge(names.max, { description: "Maximum open connections" })).unsafeUpdate(maxSize, [])
  tag(Metric.gauge(names.idleMax, { description: "Maximum idle connections" })).unsafeUpdate(maxSize, [])
  tag(Metric.gauge(names.idleMin, { description: "Minimum idle connections kept open" })).unsafeUpdate(minSize, [])
  idleCount.unsafeUpdate(0, [])
  usedCount.unsafeUpdate(0, [])
  pendingRequests.unsafeUpdate(0, [])

  const connections = (idle: number, used: number) => {
    idleCount.unsafeUpdate(idle, [])
    usedCount.unsafeUpdate(used, [])
  }
  return {
    acquired: (waitMillis) => waitTime.unsafeUpdate(waitMillis / 1000, []),
    timedOut: (waitMillis) => {
      timeouts.unsafeUpdate(1, [])
      waitTime.unsafeUpdate(waitMillis / 1000, [])
    },
    failed: (waitMillis) => waitTime.unsafeUpdate(waitMillis / 1000, []),
    pendingRequests: (waiting) => pendingRequests.unsafeUpdate(waiting, []),
    connections,
    used: (millis) => useTime.unsafeUpdate(millis / 1000, []),
    created: (millis) => createTime.unsafeUpdate(millis / 1000, []),
    closed: (reason) => closedFor(reason).unsafeUpdate(1, []),
    reconnectAttempt: () => reconnects.unsafeUpdate(1, []),
    leak: () => leaks.unsafeUpdate(1, []),
    state: (s) => state.unsafeUpdate(s === "healthy" ? 0 : s === "degraded" ? 1 : 2, [])
  }
}
