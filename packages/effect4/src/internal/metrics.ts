/**
 * The pool's Effect metrics, named as the Effect 3 edition's (the OpenTelemetry database-client connection
 * conventions), each with the pool name as an attribute. Updated synchronously from the adapter
 * (`updateUnsafe`), which runs inside the engine's dispatch.
 *
 * @internal
 */
import { Statistics } from "@effect-pg-pool/engine"
import type * as Context from "effect/Context"
import * as Metric from "effect/Metric"
import type { CloseReason } from "../PoolStatistics.js"

/** @internal */
export const names = Statistics.metricNames

/** @internal */
export const poolNameAttribute = Statistics.poolNameAttribute

const secondsBoundaries = Statistics.secondsBuckets

/** @internal */
export interface Metrics {
  readonly counts: (idle: number, used: number, waiting: number) => void
  readonly timedOut: () => void
  readonly created: (seconds: number) => void
  readonly waited: (seconds: number) => void
  readonly used: (seconds: number) => void
  readonly closed: (reason: CloseReason) => void
  readonly reconnect: () => void
  readonly leak: () => void
  readonly state: (state: "healthy" | "degraded" | "unhealthy") => void
}

/** @internal */
export const make = (poolName: string, minSize: number, maxSize: number, context: Context.Context<never>): Metrics => {
  const attributes = { [poolNameAttribute]: poolName }
  const gauge = (name: string, description: string, extra: Record<string, string> = {}) =>
    Metric.gauge(name, { description, attributes: { ...attributes, ...extra } })
  const counter = (name: string, description: string, extra: Record<string, string> = {}) =>
    Metric.counter(name, { description, attributes: { ...attributes, ...extra }, incremental: true })
  const histogram = (name: string, description: string) =>
    Metric.histogram(name, { description, attributes, boundaries: secondsBoundaries })
  const idleCount = gauge(names.count, "Open connections by state (idle, used)", {
    "db.client.connection.state": "idle"
  })
  const usedCount = gauge(names.count, "Open connections by state (idle, used)", {
    "db.client.connection.state": "used"
  })
  const pending = gauge(names.pendingRequests, "Callers waiting for a connection")
  const timeouts = counter(names.timeouts, "Acquisitions that timed out")
  const createTime = histogram(names.createTime, "Time to open a connection, seconds")
  const waitTime = histogram(names.waitTime, "Time to acquire a connection, seconds (timed-out ones included)")
  const useTime = histogram(names.useTime, "Time a connection is held, seconds")
  const closedBy = new Map<CloseReason, Metric.Counter<number>>()
  const reconnects = counter(names.reconnects, "Reconnection attempts")
  const leaks = counter(names.leaks, "Connections held past the leak threshold")
  const state = gauge(names.state, "0 healthy, 1 degraded, 2 unhealthy")
  gauge(names.max, "Maximum open connections").updateUnsafe(maxSize, context)
  gauge(names.idleMax, "Maximum idle connections").updateUnsafe(maxSize, context)
  gauge(names.idleMin, "Minimum idle connections kept open").updateUnsafe(minSize, context)
  return {
    counts: (idle, used, waiting) => {
      idleCount.updateUnsafe(idle, context)
      usedCount.updateUnsafe(used, context)
      pending.updateUnsafe(waiting, context)
    },
    timedOut: () => timeouts.updateUnsafe(1, context),
    created: (seconds) => createTime.updateUnsafe(seconds, context),
    waited: (seconds) => waitTime.updateUnsafe(seconds, context),
    used: (seconds) => useTime.updateUnsafe(seconds, context),
    closed: (reason) => {
      let metric = closedBy.get(reason)
      if (metric === undefined) {
        metric = counter(names.closed, "Connections closed, by reason", { reason })
        closedBy.set(reason, metric)
      }
      metric.updateUnsafe(1, context)
    },
    reconnect: () => reconnects.updateUnsafe(1, context),
    leak: () => leaks.updateUnsafe(1, context),
    state: (value) => state.updateUnsafe(value === "healthy" ? 0 : value === "degraded" ? 1 : 2, context)
  }
}
