/**
 * What a pool of several hosts keeps per host, and the decisions it takes from it: the order of the next
 * connection attempt (libpq's, with hosts in backoff and hosts known to be of the wrong role moved to the end),
 * which sessions to evict when a host's role changes, where a read-only pool routes and when it leaves its
 * fallback. No clock: `now` (monotonic millis) comes with every call; no randomness: `random` too.
 *
 * @internal
 */
import type { Classified } from "./classify.js"
import * as target from "./hostsTarget.js"
import type { Attempt, Host, LoadBalanceHosts, Observed, Outcome, Role, TargetSessionAttrs } from "./hostsTarget.js"

/** @internal */
export interface TableConfig {
  readonly hosts: ReadonlyArray<Host>
  readonly target: TargetSessionAttrs
  readonly loadBalance: LoadBalanceHosts
  /** The first per-host backoff after a failure; it doubles with each failure in a row, up to the max. */
  readonly hostBackoffInitialMillis: number
  readonly hostBackoffMaxMillis: number
  /** How often a pool serving on a fallback host looks again for a host of the role it prefers. */
  readonly recheckIntervalMillis: number
  /**
   * How often the role of a host that cannot report a promotion (no `in_hot_standby` ParameterStatus: PostgreSQL
   * before 14) is checked again while the pool has sessions there.
   */
  readonly roleCheckIntervalMillis: number
}

/** @internal */
export const tableDefaults = {
  target: "any",
  loadBalance: "disable",
  hostBackoffInitialMillis: 500,
  hostBackoffMaxMillis: 30_000,
  recheckIntervalMillis: 5_000,
  roleCheckIntervalMillis: 30_000
} as const satisfies Omit<TableConfig, "hosts">

/** @internal */
export interface Eviction {
  readonly session: number
  readonly host: Host
  readonly reason: string
}

/** @internal */
export interface HostHealth {
  readonly host: Host
  readonly label: string
  readonly role: Role
  /** No failure since its last success (or never tried), and not waiting out a backoff. */
  readonly up: boolean
  readonly sessions: number
  /** Failures in a row. */
  readonly failures: number
  readonly lastFailure: string | undefined
  readonly lastFailureAt: number | undefined
  /** When a try is worth it again (≤ now when it is). */
  readonly retryAt: number
  /** When its role was last seen. */
  readonly observedAt: number | undefined
}

interface HostState {
  readonly host: Host
  readonly index: number
  readonly label: string
  failures: number
  lastFailure: string | undefined
  lastFailureAt: number | undefined
  retryAt: number
  observed: Observed
  observedAt: number | undefined
  /** When `roleChecks` last asked for this host. */
  roleCheckedAt: number
  readonly sessions: Set<number>
}

interface SessionState {
  readonly host: HostState
  /** `default_transaction_read_only` as this session last reported it, and when: a SET changes it for it alone. */
  readOnly: boolean | undefined
  readOnlyAt: number
  reported: Record<string, string | undefined>
  /** Already evicted: it closes when idle or released, and is neither evicted again nor counted as serving. */
  leaving: boolean
}

/** @internal */
export class Table {
  private readonly states: ReadonlyArray<HostState>
  private readonly sessions = new Map<number, SessionState>()
  private lastRecheckAt = Number.NEGATIVE_INFINITY

  constructor(readonly config: TableConfig) {
    this.states = config.hosts.map((host, index) => ({
      host,
      index,
      label: target.hostLabel(host),
      failures: 0,
      lastFailure: undefined,
      lastFailureAt: undefined,
      retryAt: Number.NEGATIVE_INFINITY,
      observed: target.unknown,
      observedAt: undefined,
      roleCheckedAt: Number.NEGATIVE_INFINITY,
      sessions: new Set()
    }))
  }

  /**
   * The tries of the next connection attempt: libpq's order (as listed, or shuffled once with
   * `load_balance_hosts=random`), then, keeping that order within each group, hosts known to be of the wrong role
   * after the others and hosts waiting out a backoff last. Every host stays in: a stale role or a host back early
   * is still found, only later.
   */
  attempts(now: number, random: () => number): ReadonlyArray<Attempt> {
    const listed = this.states.map((state) => ({ host: state.host, index: state.index }))
    const ordered = this.config.loadBalance === "random" ? target.shuffle(listed, random) : listed
    const first = this.config.target === "prefer-standby" ? "standby" : this.config.target
    const rank = (index: number): number => {
      const state = this.states[index]!
      return (state.retryAt > now ? 2 : 0) + (target.stillMatches(first, state.observed) ? 0 : 1)
    }
    const ranked = ordered.map((entry, position) => ({ entry, position, rank: rank(entry.index) }))
    ranked.sort((a, b) => a.rank - b.rank || a.position - b.position)
    return target.passes(
      ranked.map(({ entry }) => entry),
      this.config.target
    )
  }

  /**
   * What the tries of one connection attempt came to (the driver's outcomes, whether or not a later try gave a
   * session): failures back off, mismatches record the role seen.
   */
  record(now: number, outcomes: ReadonlyArray<Outcome>): ReadonlyArray<Eviction> {
    const evicted: Array<Eviction> = []
    for (const outcome of outcomes) {
      if (outcome._tag === "Failed") this.failed(now, outcome.attempt.index, outcome.failure)
      else evicted.push(...this.mismatched(now, outcome.attempt.index, outcome.observed))
    }
    return evicted
  }

  /** A try failed before a session was checked: the host waits out a backoff that doubles with each failure. */
  failed(now: number, index: number, failure: Classified): void {
    const state = this.state(index)
    state.failures++
    state.lastFailure = failure.message
    state.lastFailureAt = now
    const delay = Math.min(
      this.config.hostBackoffMaxMillis,
      this.config.hostBackoffInitialMillis * 2 ** Math.min(30, state.failures - 1)
    )
    state.retryAt = now + delay
  }

  /**
   * A try reached the server and found it of the wrong role: the host is up (no backoff), and its role is known.
   * Sessions there that this role no longer serves are evicted.
   */
  mismatched(now: number, index: number, observed: Observed): ReadonlyArray<Eviction> {
    const state = this.state(index)
    this.up(state)
    return this.leave(this.observeHost(now, state, observed))
  }

  /**
   * A session opened on that host and matched (`observed`: what its check found; `parameters`: its startup
   * ParameterStatus values, the baseline of later `reported` changes). What a fresh session shows is the
   * server's state: sessions already there that it no longer serves are evicted; for `prefer-standby`, a standby
   * session ends the fallback, and the sessions on other hosts are evicted so that reads move back to standbys.
   */
  opened(
    now: number,
    session: number,
    index: number,
    observed: Observed,
    parameters: Readonly<Record<string, string | undefined>> = {}
  ): ReadonlyArray<Eviction> {
    const state = this.state(index)
    this.up(state)
    this.sessions.set(session, {
      host: state,
      readOnly: undefined,
      readOnlyAt: now,
      reported: { ...parameters },
      leaving: false
    })
    state.sessions.add(session)
    return this.leave([...this.observeHost(now, state, observed), ...this.endFallback(state, observed)])
  }

  /**
   * A scout (a throwaway connection for `recheck` or `roleChecks`) reached that host and found it `observed`: the
   * host is up and its role known. Sessions there that this role no longer serves are evicted; for
   * `prefer-standby`, a standby found ends the fallback, as a session opened there would.
   */
  scouted(now: number, index: number, observed: Observed): ReadonlyArray<Eviction> {
    const state = this.state(index)
    this.up(state)
    return this.leave([...this.observeHost(now, state, observed), ...this.endFallback(state, observed)])
  }

  /**
   * The tries of the role checks due: one scout per host the pool has sessions on that cannot report a promotion
   * (a session there started without `in_hot_standby`: PostgreSQL before 14), once per `roleCheckIntervalMillis`
   * since its role was last seen, each for the pool's target (its first pass for `prefer-standby`). libpq checks
   * the role only at connect; a pool keeps sessions for hours, so it asks again. A target of `any` takes every
   * role: no checks.
   */
  roleChecks(now: number): ReadonlyArray<Attempt> {
    if (this.config.target === "any") return []
    const require = this.config.target === "prefer-standby" ? "standby" : this.config.target
    const due: Array<Attempt> = []
    for (const state of this.states) {
      if (state.retryAt > now) continue
      const seenAt = Math.max(state.observedAt ?? Number.NEGATIVE_INFINITY, state.roleCheckedAt)
      if (now < seenAt + this.config.roleCheckIntervalMillis) continue
      const silent = [...state.sessions].some((id) => {
        const entry = this.sessions.get(id)!
        return !entry.leaving && entry.reported["in_hot_standby"] === undefined
      })
      if (!silent) continue
      state.roleCheckedAt = now
      due.push({ host: state.host, index: state.index, require })
    }
    return due
  }

  // prefer-standby: a standby up again ends the fallback; the sessions on the other hosts are evicted so that reads
  // move back to standbys (their replacements try the standbys first)
  private endFallback(state: HostState, observed: Observed): ReadonlyArray<Eviction> {
    if (this.config.target !== "prefer-standby" || observed.inHotStandby !== true) return []
    const evicted: Array<Eviction> = []
    for (const other of this.states) {
      if (other === state || other.observed.inHotStandby === true) continue
      for (const id of other.sessions) {
        if (this.sessions.get(id)!.leaving) continue
        evicted.push({
          session: id,
          host: other.host,
          reason:
            `a standby is up again (${state.label}): sessions on ${other.label} were a fallback for ` +
            "target_session_attrs=prefer-standby"
        })
      }
    }
    return evicted
  }

  /**
   * A ParameterStatus on an open session (`parameters`: its latest `in_hot_standby`,
   * `default_transaction_read_only`, …). `in_hot_standby` is the server's, so a change evicts what the host no
   * longer serves; `default_transaction_read_only` may be this session's own SET, so it judges this session
   * alone.
   */
  reported(
    now: number,
    session: number,
    parameters: Readonly<Record<string, string | undefined>>
  ): ReadonlyArray<Eviction> {
    const entry = this.sessions.get(session)
    if (entry === undefined) return []
    entry.reported = { ...entry.reported, ...parameters }
    const seen = target.observe(entry.reported)
    const evicted: Array<Eviction> = []
    if (seen.inHotStandby !== undefined && seen.inHotStandby !== entry.host.observed.inHotStandby) {
      evicted.push(
        ...this.observeHost(now, entry.host, {
          inHotStandby: seen.inHotStandby,
          readOnly: seen.inHotStandby ? true : seen.readOnly
        })
      )
    }
    const readOnly = parameters["default_transaction_read_only"]
    if (readOnly === "on" || readOnly === "off") {
      entry.readOnly = readOnly === "on"
      entry.readOnlyAt = now
      if (!entry.leaving && !evicted.some((e) => e.session === session)) {
        const reason = this.mismatchReason(entry)
        if (reason !== undefined) evicted.push({ session, host: entry.host.host, reason })
      }
    }
    return this.leave(evicted)
  }

  /** The session is gone (closed by the pool or dead). */
  closed(session: number): void {
    const entry = this.sessions.get(session)
    if (entry === undefined) return
    entry.host.sessions.delete(session)
    this.sessions.delete(session)
  }

  /** Which host a session is on. */
  hostOf(session: number): Host | undefined {
    return this.sessions.get(session)?.host.host
  }

  /** A session's role as far as known: its host's, with its own `default_transaction_read_only` when newer. */
  roleOf(session: number): Role {
    const entry = this.sessions.get(session)
    return entry === undefined ? "unknown" : target.roleOf(this.effective(entry))
  }

  /**
   * For a pool serving on a fallback (`prefer-standby` with sessions on a non-standby host): at most once per
   * `recheckIntervalMillis`, the tries of one scout session that looks for a standby again, standbys known to be
   * up first; empty otherwise. The scout's success (`opened` on a standby) evicts the fallback sessions.
   */
  recheck(now: number): ReadonlyArray<Attempt> {
    if (this.config.target !== "prefer-standby") return []
    if (now < this.lastRecheckAt + this.config.recheckIntervalMillis) return []
    const onFallback = this.states.some(
      (state) =>
        state.observed.inHotStandby !== true && [...state.sessions].some((id) => !this.sessions.get(id)!.leaving)
    )
    if (!onFallback) return []
    const candidates = this.states
      .filter((state) => state.retryAt <= now && state.observed.inHotStandby !== false)
      .sort((a, b) => Number(b.observed.inHotStandby === true) - Number(a.observed.inHotStandby === true))
    if (candidates.length === 0) return []
    this.lastRecheckAt = now
    return candidates.map((state) => ({ host: state.host, index: state.index, require: "standby" as const }))
  }

  /** Per-host health for statistics and routing. */
  health(now: number): ReadonlyArray<HostHealth> {
    return this.states.map((state) => ({
      host: state.host,
      label: state.label,
      role: target.roleOf(state.observed),
      up: state.failures === 0 && state.retryAt <= now,
      sessions: state.sessions.size,
      failures: state.failures,
      lastFailure: state.lastFailure,
      lastFailureAt: state.lastFailureAt,
      retryAt: state.retryAt,
      observedAt: state.observedAt
    }))
  }

  private state(index: number): HostState {
    const state = this.states[index]
    if (state === undefined) throw new RangeError(`no host at index ${index} (${this.states.length} hosts)`)
    return state
  }

  private leave(evicted: ReadonlyArray<Eviction>): ReadonlyArray<Eviction> {
    for (const eviction of evicted) this.sessions.get(eviction.session)!.leaving = true
    return evicted
  }

  private up(state: HostState): void {
    state.failures = 0
    state.retryAt = Number.NEGATIVE_INFINITY
  }

  private observeHost(now: number, state: HostState, observed: Observed): ReadonlyArray<Eviction> {
    state.observed = observed
    state.observedAt = now
    const evicted: Array<Eviction> = []
    for (const session of state.sessions) {
      const entry = this.sessions.get(session)!
      if (entry.leaving) continue
      const reason = this.mismatchReason(entry)
      if (reason !== undefined) evicted.push({ session, host: state.host, reason })
    }
    return evicted
  }

  // the host's facts, with the session's own read-only setting when it reported one after the host was last seen
  private effective(entry: SessionState): Observed {
    const host = entry.host.observed
    if (host.inHotStandby === true || entry.readOnly === undefined) return host
    const hostSeenAt = entry.host.observedAt ?? Number.NEGATIVE_INFINITY
    return entry.readOnlyAt >= hostSeenAt ? { ...host, readOnly: entry.readOnly } : host
  }

  private mismatchReason(entry: SessionState): string | undefined {
    const observed = this.effective(entry)
    if (target.stillMatches(this.config.target, observed)) return undefined
    return (
      `${entry.host.label} is ${describe(observed)} now, which target_session_attrs=${this.config.target} ` +
      "does not take"
    )
  }
}

const describe = (observed: Observed): string => {
  switch (target.roleOf(observed)) {
    case "standby":
      return "in hot standby mode"
    case "read-only":
      return "read-only"
    case "primary":
      return "a read-write primary"
    case "unknown":
      return "of unknown role"
  }
}
