/**
 * What the pool shows of itself, beside the engine's figures: the acquisition times as callers saw them (measured
 * at resume on the performance clock, so a caller's own scheduling counts and a TestClock does not freeze them),
 * the last health probe's answer, and the `PoolStatistics` / `HealthStatus` built from the engine's snapshot and
 * assessment.
 *
 * @internal
 */
import type { Engine } from "@effect-pg-pool/engine"
import { Statistics } from "@effect-pg-pool/engine"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"
import { DatabaseReachability, HealthStatus } from "../Health.js"
import type { PoolConfig } from "../PoolConfig.js"
import { ClosedByReason, type HostStatistics, PoolStatistics } from "../PoolStatistics.js"

/** How many acquisition times are kept for the percentiles. */
const latencySamples = 1024

/**
 * The engine's leak warning: the edition counts it and names where the acquisition was made.
 *
 * @internal
 */
export const leakMessage = "connection held longer than the leak detection threshold"

/** @internal */
export class Observed {
  private acquisitions = 0
  private acquisitionTimeTotal = 0
  private readonly latencies = new Statistics.LatencyWindow(latencySamples)
  /** The last failure reported to the engine: health words a rejected login differently from an outage. */
  lastFailureKind: "outage" | "rejected" | undefined = undefined
  /** The last TCP probe's connect latency, when it answered. */
  tcpLatencyMillis: number | undefined = undefined
  private probe: { reachable: boolean; latencyMs: number | undefined; at: number | undefined } = {
    reachable: false,
    latencyMs: undefined,
    at: undefined
  }

  constructor(
    private readonly name: string,
    private readonly engine: Engine.Engine,
    /** Wall-clock millis at which the pool was built. */
    private readonly startedAt: number
  ) {}

  acquired(waitedMillis: number): void {
    this.acquisitions++
    this.acquisitionTimeTotal += waitedMillis
    this.latencies.record(waitedMillis)
  }

  /** The health probe's round trip on an idle session. */
  probed(ok: boolean, latencyMillis: number, at: number): void {
    this.probe = { reachable: ok, latencyMs: ok ? latencyMillis : this.probe.latencyMs, at }
  }

  /** No session was free: the pool's own evidence answers. */
  probeAnswered(reachable: boolean, at: number): void {
    this.probe = { ...this.probe, reachable, at }
  }

  /** The pool held no session: a TCP connect to the port answered (with its latency) or not. */
  tcpProbed(latencyMillis: number | undefined, notReconnecting: boolean, at: number): void {
    if (latencyMillis !== undefined) this.tcpLatencyMillis = latencyMillis
    const open = latencyMillis !== undefined
    this.probe = {
      reachable: open && notReconnecting,
      latencyMs: open ? this.tcpLatencyMillis : this.probe.latencyMs,
      at
    }
  }

  /** The engine's snapshot as `PoolStatistics`, with the acquisition times callers saw. */
  statistics(
    snapshot: Statistics.Snapshot,
    config: PoolConfig,
    hosts: ReadonlyArray<HostStatistics> = []
  ): PoolStatistics {
    const [p95, p99] = this.latencies.percentiles()
    const lastError =
      snapshot.lastError !== undefined && this.lastFailureKind === "rejected"
        ? `the server rejected the login (a configuration error, not an outage): ${snapshot.lastError}`
        : snapshot.lastError
    return new PoolStatistics(
      {
        poolName: this.name,
        total: snapshot.total,
        idle: snapshot.idle,
        active: snapshot.active,
        pending: snapshot.pending,
        waiting: snapshot.waiting,
        minSize: config.minSize,
        maxSize: config.maxSize,
        peakActive: snapshot.peakActive,
        peakWaiting: snapshot.peakWaiting,
        acquisitions: this.acquisitions,
        acquisitionTimeAvgMs: this.acquisitions === 0 ? 0 : this.acquisitionTimeTotal / this.acquisitions,
        acquisitionTimeP95Ms: p95,
        acquisitionTimeP99Ms: p99,
        acquireTimeouts: snapshot.acquireTimeouts,
        connectionsCreated: snapshot.connectionsCreated,
        connectionsClosed: new ClosedByReason({ ...snapshot.connectionsClosed }, true),
        reconnectAttempts: snapshot.reconnectAttempts,
        leaksSuspected: snapshot.leaksSuspected,
        state: snapshot.state,
        lastError: Option.fromNullable(lastError),
        upSince: new Date(this.startedAt),
        hosts
        // built from typed fields: skipping Schema's re-validation makes a snapshot ~20× cheaper
      },
      true
    )
  }

  /** Health from the engine's assessment and the last background probe; see Health.ts for the rules. */
  health(
    now: number,
    config: PoolConfig,
    wallClockMillis: number,
    hosts: ReadonlyArray<HostStatistics> = []
  ): HealthStatus {
    const { reason, status } = this.engine.assess(now)
    const { reconnecting, total } = this.engine.gauges
    return new HealthStatus(
      {
        status,
        reason: Option.fromNullable(reason),
        checkedAt: new Date(wallClockMillis),
        database: new DatabaseReachability(
          {
            // a failed open is fresher evidence than the last probe (up to one probe period old); a rejected
            // login came from a server that answered
            reachable: this.probe.reachable && !(reconnecting && total === 0 && this.lastFailureKind !== "rejected"),
            latencyMs: Option.fromNullable(this.probe.latencyMs),
            probedAt: Option.fromNullable(this.probe.at === undefined ? undefined : new Date(this.probe.at))
          },
          true
        ),
        statistics: this.statistics(this.engine.statistics(now), config, hosts)
      },
      true
    )
  }
}

/**
 * Where an acquisition was made, for the leak warning: its span and their parents, and the stack the span captured.
 *
 * @internal
 */
export const acquisitionSite = (span: Tracer.AnySpan | undefined): string | undefined => {
  if (span === undefined) return undefined
  const names: Array<string> = []
  let current: Tracer.AnySpan | undefined = span
  while (current !== undefined && names.length < 8) {
    names.push(current._tag === "Span" ? current.name : `external ${current.spanId}`)
    current = current._tag === "Span" && current.parent._tag === "Some" ? current.parent.value : undefined
  }
  const top = span
  const stack = top._tag === "Span" ? top.attributes.get("code.stacktrace") : undefined
  return names.join(" < ") + (typeof stack === "string" ? ` at ${stack}` : "")
}
