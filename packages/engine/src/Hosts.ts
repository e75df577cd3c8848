/**
 * Several hosts: libpq's rules for trying them (`target_session_attrs`, `load_balance_hosts`, what a new session
 * must show and how it is checked, when a failure moves on to the next host), and the per-host state a pool keeps
 * to route and to evict sessions whose server changed role. Pure: the driver connects, runs the check query and
 * reports; time (`now`) and randomness (`random`) come in as arguments.
 *
 * @since 0.1.0
 */
import type { Classified } from "./internal/classify.js"
import * as table from "./internal/hostsTable.js"
import * as target from "./internal/hostsTarget.js"

/**
 * One host of the list: a name or address, or a Unix-socket directory (starting with `/`), and its port.
 *
 * @since 0.1.0
 * @category models
 */
export type Host = target.Host

/**
 * libpq's `target_session_attrs`: which server a session must be on.
 *
 * @since 0.1.0
 * @category models
 */
export type TargetSessionAttrs = target.TargetSessionAttrs

/**
 * libpq's `load_balance_hosts`: `disable` tries the hosts as listed, `random` in an order shuffled once per
 * connection attempt.
 *
 * @since 0.1.0
 * @category models
 */
export type LoadBalanceHosts = target.LoadBalanceHosts

/**
 * What one try of one host must find (`prefer-standby` is two passes: `standby`, then `any`).
 *
 * @since 0.1.0
 * @category models
 */
export type Requirement = target.Requirement

/**
 * One try: the host, its place in the configured list, and what it must find.
 *
 * @since 0.1.0
 * @category models
 */
export type Attempt = target.Attempt

/**
 * What is known of a session's server: `inHotStandby` (in recovery) and `readOnly` (`transaction_read_only` by
 * default), each `undefined` until known.
 *
 * @since 0.1.0
 * @category models
 */
export type Observed = target.Observed

/**
 * A server's role as far as known: `primary`, `standby`, `read-only` (not known to be in recovery), `unknown`.
 *
 * @since 0.1.0
 * @category models
 */
export type Role = target.Role

/**
 * The check of a new session: `Match`, `Mismatch` (with libpq's reason) or `Ask` (run the query, then `answer`).
 *
 * @since 0.1.0
 * @category models
 */
export type Check = target.Check

/**
 * The queries libpq asks when the startup messages did not tell.
 *
 * @since 0.1.0
 * @category models
 */
export type CheckQuery = target.CheckQuery

/**
 * What a try that gave no session came to.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = target.Outcome

/**
 * Nothing known yet.
 *
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
export const check: (require: Requirement, observed: Observed) => Check = target.check

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
 * @since 0.1.0
 * @category checking
 */
export const stillMatches: (target: TargetSessionAttrs, observed: Observed) => boolean = target.stillMatches

/**
 * The role `observed` shows.
 *
 * @since 0.1.0
 * @category checking
 */
export const role: (observed: Observed) => Role = target.role

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
 * @since 0.1.0
 * @category formatting
 */
export const summarize: (outcomes: ReadonlyArray<Outcome>, target: TargetSessionAttrs) => Classified = target.summarize

/**
 * A pool's per-host configuration: the hosts, the target, the shuffle, the per-host backoff and how often a pool
 * on a fallback host looks for a better one.
 *
 * @since 0.1.0
 * @category models
 */
export type TableConfig = table.TableConfig

/**
 * `target` any, `load_balance_hosts` disable, per-host backoff from 500 ms doubling to 30 s, recheck every 5 s.
 *
 * @since 0.1.0
 * @category constructors
 */
export const tableDefaults: typeof table.tableDefaults = table.tableDefaults

/**
 * A session to evict because its host no longer serves the pool's target (or a fallback ended): close it at once
 * when idle, at its release when busy, and never hand it out again.
 *
 * @since 0.1.0
 * @category models
 */
export type Eviction = table.Eviction

/**
 * One host's health: role, up or backing off, sessions, failures in a row, the last failure.
 *
 * @since 0.1.0
 * @category models
 */
export type HostHealth = table.HostHealth

/**
 * The per-host state of one pool and its decisions: `attempts(now, random)` for the next open, `failed` /
 * `mismatched` / `opened` / `reported` / `closed` as the driver reports, evictions out, `recheck(now)` for a pool
 * on a fallback, `health(now)` for statistics.
 *
 * @example
 * ```ts
 * import { Hosts } from "@effect-pg-pool/engine"
 *
 * const hosts = Hosts.makeTable({
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
export const makeTable = (config: TableConfig): Table => new table.Table(config)

/**
 * @since 0.1.0
 * @category models
 */
export type Table = table.Table
