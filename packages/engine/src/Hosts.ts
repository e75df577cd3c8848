/**
 * Several hosts: libpq's rules for trying them (`target_session_attrs`, `load_balance_hosts`, what a new session
 * must show and how it is checked, when a failure moves on to the next host), and the per-host state a pool keeps
 * to route and to evict sessions whose server changed role. Pure: the driver connects, runs the check query and
 * reports; time (`now`) and randomness (`random`) come in as arguments.
 *
 * How a pool uses it (one `Table` per pool; a read-only client is a second pool on the same hosts with
 * `target: "prefer-standby"`, its own statistics): each open tries `table.attempts(now, Math.random)` with the
 * driver's multi-host connect; the driver's outcomes go to `table.record` (also those before a success), the
 * session that matched to `table.opened` (its host index, what it showed, its startup parameters), every later
 * ParameterStatus on it to `table.reported`, its end to `table.closed`. Each of these returns the sessions to
 * evict: send the engine `SessionEvicted` for each (idle ones close at once, busy ones at their release, none is
 * handed out again, counted `roleChanged`). On each housekeeping tick, `table.recheck(now)` gives the tries of one
 * scout (a throwaway connection, not a pool session) when a `prefer-standby` pool sits on its fallback, and
 * `table.roleChecks(now)` one scout per host that cannot report a promotion (before PostgreSQL 14); the driver
 * connects and checks as for a session, sends the outcomes to `table.record` and a match to `table.scouted`, then
 * closes the scout. `table.health(now)` is the per-host part of the statistics and of health.
 *
 * @since 0.1.0
 */
import type { Classified } from "./internal/classify.js"
import * as table from "./internal/hostsTable.js"
import * as target from "./internal/hostsTarget.js"

/**
 * One host of the list: a name or address, or a Unix-socket directory (starting with `/`), and its port.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const hosts: ReadonlyArray<Hosts.Host> = [
 *   { host: "db1.internal", port: 5432 },
 *   { host: "/run/postgresql", port: 5432 }
 * ]
 * ```
 * @since 0.1.0
 * @category models
 */
export type Host = target.Host

/**
 * libpq's `target_session_attrs`: which server a session must be on.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const writes: Hosts.TargetSessionAttrs = "read-write"
 * const reads: Hosts.TargetSessionAttrs = "prefer-standby" // standbys first, else any
 * ```
 * @since 0.1.0
 * @category models
 */
export type TargetSessionAttrs = target.TargetSessionAttrs

/**
 * libpq's `load_balance_hosts`: `disable` tries the hosts as listed, `random` in an order shuffled once per
 * connection attempt.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const spread: Hosts.LoadBalanceHosts = "random" // shuffled once per connection attempt
 * const listed: Hosts.LoadBalanceHosts = "disable" // in order (the default)
 * ```
 * @since 0.1.0
 * @category models
 */
export type LoadBalanceHosts = target.LoadBalanceHosts

/**
 * What one try of one host must find (`prefer-standby` is two passes: `standby`, then `any`).
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const firstPass: Hosts.Requirement = "standby" // prefer-standby's first pass
 * const secondPass: Hosts.Requirement = "any"
 * ```
 * @since 0.1.0
 * @category models
 */
export type Requirement = target.Requirement

/**
 * One try: the host, its place in the configured list, and what it must find.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const attempt: Hosts.Attempt = { host: { host: "h2", port: 5433 }, index: 1, require: "read-write" }
 * Hosts.hostLabel(attempt.host) // "h2:5433"
 * ```
 * @since 0.1.0
 * @category models
 */
export type Attempt = target.Attempt

/**
 * What is known of a session's server: `inHotStandby` (in recovery) and `readOnly` (`transaction_read_only` by
 * default), each `undefined` until known.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const standby: Hosts.Observed = { inHotStandby: true, readOnly: true }
 * const unknownYet: Hosts.Observed = { inHotStandby: undefined, readOnly: undefined }
 * ```
 * @since 0.1.0
 * @category models
 */
export type Observed = target.Observed

/**
 * A server's role as far as known: `primary`, `standby`, `read-only` (not known to be in recovery), `unknown`.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const role: Hosts.Role = Hosts.roleOf({ inHotStandby: true, readOnly: true }) // "standby"
 * const unknownYet: Hosts.Role = Hosts.roleOf(Hosts.unknown) // "unknown"
 * ```
 * @since 0.1.0
 * @category models
 */
export type Role = target.Role

/**
 * The verdict on a new session: `Match`, `Mismatch` (with libpq's reason) or `Ask` (run the query, then `answer`).
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const step: Hosts.Verdict = Hosts.check("read-only", Hosts.unknown)
 * const query = step._tag === "Ask" ? step.query : undefined // "SHOW transaction_read_only"
 * ```
 * @since 0.1.0
 * @category models
 */
export type Verdict = target.Verdict

/**
 * The queries libpq asks when the startup messages did not tell.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const query: Hosts.CheckQuery = "SELECT pg_catalog.pg_is_in_recovery()"
 * Hosts.answer(Hosts.unknown, query, "f") // { inHotStandby: false, readOnly: undefined }
 * ```
 * @since 0.1.0
 * @category models
 */
export type CheckQuery = target.CheckQuery

/**
 * What a try that gave no session came to.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const outcome: Hosts.Outcome = {
 *   _tag: "Mismatch",
 *   attempt: { host: { host: "h2", port: 5433 }, index: 1, require: "read-write" },
 *   reason: "session is read-only",
 *   observed: { inHotStandby: false, readOnly: true }
 * }
 * ```
 * @since 0.1.0
 * @category models
 */
export type Outcome = target.Outcome

/**
 * Nothing known yet.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * Hosts.check("primary", Hosts.unknown) // Ask "SELECT pg_catalog.pg_is_in_recovery()"
 * Hosts.check("any", Hosts.unknown) // Match: any server will do
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const unknown: Observed = target.unknown

/**
 * `host:port`, or the socket path for a Unix-socket directory: how hosts are named in messages.
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * Hosts.hostLabel({ host: "db1", port: 5432 }) // "db1:5432"
 * Hosts.hostLabel({ host: "/run/postgresql", port: 5432 }) // "/run/postgresql/.s.PGSQL.5432"
 * ```
 *
 * @since 0.1.0
 * @category formatting
 */
export const hostLabel: (host: Host) => string = target.hostLabel

/**
 * libpq's inside-out Fisher-Yates shuffle with the given source of numbers in [0, 1).
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const draws = [0.9, 0.1]
 * Hosts.shuffle(["a", "b", "c"], () => draws.shift()!) // ["c", "b", "a"]
 * ```
 * @since 0.1.0
 * @category ordering
 */
export const shuffle: <A>(items: ReadonlyArray<A>, random: () => number) => Array<A> = target.shuffle

/**
 * The tries of one connection attempt, in libpq's order: as listed (or shuffled once with `random`), each for the
 * target; `prefer-standby` tries every host for `standby`, then every host again for `any`.
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const hosts = [{ host: "h1", port: 5432 }, { host: "h2", port: 5433 }]
 * Hosts.attempts(hosts, "prefer-standby", "disable", Math.random).map((a) => `${a.host.host} ${a.require}`)
 * // ["h1 standby", "h2 standby", "h1 any", "h2 any"]
 * ```
 *
 * @since 0.1.0
 * @category ordering
 */
export const attempts: (
  hosts: ReadonlyArray<Host>,
  target: TargetSessionAttrs,
  loadBalance: LoadBalanceHosts,
  random: () => number
) => ReadonlyArray<Attempt> = target.attempts

/**
 * What the startup ParameterStatus messages tell (`in_hot_standby` and `default_transaction_read_only`, reported
 * by PostgreSQL 14 and later; `server_version`): read-only-ness only when both were reported, as in libpq.
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * Hosts.observe({ in_hot_standby: "on", default_transaction_read_only: "off" })
 * // { inHotStandby: true, readOnly: true }
 * Hosts.observe({ server_version: "13.9" }) // { inHotStandby: undefined, readOnly: undefined }: ask
 * ```
 *
 * @since 0.1.0
 * @category checking
 */
export const observe: (parameters: Readonly<Record<string, string | undefined>>) => Observed = target.observe

/**
 * libpq's CONNECTION_CHECK_TARGET: whether a new session matches, or which query to ask first.
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * Hosts.check("read-write", { inHotStandby: false, readOnly: true }) // Mismatch "session is read-only"
 * Hosts.check("standby", Hosts.unknown) // Ask "SELECT pg_catalog.pg_is_in_recovery()"
 * Hosts.check("any", Hosts.unknown) // Match
 * ```
 *
 * @since 0.1.0
 * @category checking
 */
export const check: (require: Requirement, observed: Observed) => Verdict = target.check

/**
 * What the check query's one value says; `undefined` in (the query failed) gives `undefined` out: libpq moves
 * on to the next host.
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * Hosts.answer(Hosts.unknown, "SHOW transaction_read_only", "off") // { inHotStandby: false, readOnly: false }
 * Hosts.answer(Hosts.unknown, "SELECT pg_catalog.pg_is_in_recovery()", "t") // { inHotStandby: true, readOnly: true }
 * ```
 *
 * @since 0.1.0
 * @category checking
 */
export const answer: (observed: Observed, query: CheckQuery, value: string | undefined) => Observed | undefined =
  target.answer

/**
 * Whether a session on a server showing `observed` still serves a pool of that target (unknown facts match).
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * Hosts.stillMatches("read-write", { inHotStandby: true, readOnly: true }) // false: evict
 * Hosts.stillMatches("prefer-standby", { inHotStandby: false, readOnly: false }) // true
 * ```
 * @since 0.1.0
 * @category checking
 */
export const stillMatches: (target: TargetSessionAttrs, observed: Observed) => boolean = target.stillMatches

/**
 * The role `observed` shows.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * Hosts.roleOf({ inHotStandby: false, readOnly: true }) // "read-only": default_transaction_read_only on
 * Hosts.roleOf({ inHotStandby: false, readOnly: false }) // "primary"
 * ```
 * @since 0.1.0
 * @category checking
 */
export const roleOf: (observed: Observed) => Role = target.roleOf

/**
 * After a try failed before the check: `next-host` when the server could not be reached or answered 57P03, `stop`
 * on any other answer from the server and on a rejected login or TLS failure (libpq's rule; a connection dropped
 * during startup moves on too, where libpq gives up). `answered`: the error is an ErrorResponse from the server.
 *
 * @example
 * ```ts
 * import { Classify, Hosts } from "@effect-pg-pool/engine"
 *
 * Hosts.afterFailure(Classify.classifyConnectError({ code: "ECONNREFUSED", message: "refused" }), false) // "next-host"
 * Hosts.afterFailure(Classify.classifyConnectError({ code: "28P01", message: "password" }), true) // "stop"
 * ```
 *
 * @since 0.1.0
 * @category checking
 */
export const afterFailure: (failure: Classified, answered: boolean) => "next-host" | "stop" = target.afterFailure

/**
 * One classified failure for an attempt that found no session, naming per host what happened (never a password:
 * hosts and the servers' messages only).
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const attempt = { host: { host: "h2", port: 5433 }, index: 1, require: "read-write" as const }
 * const observed = { inHotStandby: false, readOnly: true }
 * const failure = Hosts.summarize([{ _tag: "Mismatch", attempt, reason: "session is read-only", observed }], "read-write")
 * failure.message // "no host gave a session for target_session_attrs=read-write (1 host tried): h2:5433: …"
 * ```
 * @since 0.1.0
 * @category formatting
 */
export const summarize: (outcomes: ReadonlyArray<Outcome>, target: TargetSessionAttrs) => Classified = target.summarize

/**
 * A pool's per-host configuration: the hosts, the target, the shuffle, the per-host backoff and how often a pool
 * on a fallback host looks for a better one.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const config: Hosts.TableConfig = {
 *   ...Hosts.tableDefaults,
 *   hosts: [{ host: "h1", port: 5432 }, { host: "h2", port: 5432 }],
 *   target: "read-write"
 * }
 * ```
 * @since 0.1.0
 * @category models
 */
export type TableConfig = table.TableConfig

/**
 * `target` any, `load_balance_hosts` disable, per-host backoff from 500 ms doubling to 30 s, a fallback recheck
 * every 5 s, a role check of hosts before PostgreSQL 14 every 30 s.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * Hosts.tableDefaults.hostBackoffInitialMillis // 500, doubling per failure in a row
 * Hosts.tableDefaults.hostBackoffMaxMillis // 30_000
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const tableDefaults: typeof table.tableDefaults = table.tableDefaults

/**
 * A session to evict because its host no longer serves the pool's target (or a fallback ended): close it at once
 * when idle, at its release when busy, and never hand it out again.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const describe = (eviction: Hosts.Eviction): string =>
 *   `session ${eviction.session} on ${Hosts.hostLabel(eviction.host)}: ${eviction.reason}`
 * ```
 * @since 0.1.0
 * @category models
 */
export type Eviction = table.Eviction

/**
 * One host's health: role, up or backing off, sessions, failures in a row, the last failure.
 *
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const line = (health: Hosts.HostHealth): string =>
 *   `${health.label} ${health.role} ${health.up ? "up" : `down (${health.lastFailure})`}, ${health.sessions} sessions`
 * ```
 * @since 0.1.0
 * @category models
 */
export type HostHealth = table.HostHealth

/**
 * The per-host state of one pool and its decisions: `attempts(now, random)` for the next open; `record` (a
 * connect's outcomes), `failed`, `mismatched`, `opened`, `reported`, `scouted` and `closed` as the driver reports,
 * evictions out; `recheck(now)` (a pool on a fallback) and `roleChecks(now)` (hosts before PostgreSQL 14) for the
 * scouts; `health(now)` for statistics.
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const hosts = new Hosts.Table({
 *   ...Hosts.tableDefaults,
 *   hosts: [{ host: "h1", port: 5432 }, { host: "h2", port: 5432 }],
 *   target: "read-write"
 * })
 * hosts.opened(0, 1, 0, { inHotStandby: false, readOnly: false }) // session 1 on h1, a primary
 * hosts.reported(9_000, 1, { in_hot_standby: "on" }) // h1 demoted: [{ session: 1, reason: "h1:5432 is in hot standby mode now, …" }]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const Table: typeof table.Table = table.Table

/**
 * @since 0.1.0
 * @category models
 */
export type Table = table.Table
