/**
 * libpq's multi-host connection rules (src/interfaces/libpq/fe-connect.c, PostgreSQL 17), as pure functions: the
 * order in which the hosts are tried, what a new session must show for each `target_session_attrs`, and whether a
 * failure on one host moves on to the next or ends the attempt.
 *
 * @internal
 */
import type { Classified } from "./classify.js"
import { type Host, isSocket, type LoadBalanceHosts, type TargetSessionAttrs } from "./settings/hosts.js"

// one definition of the host list and the two settings: the one the configuration resolves to
/** @internal */
export type { Host, LoadBalanceHosts, TargetSessionAttrs } from "./settings/hosts.js"

/**
 * What one try of one host must find. `prefer-standby` is not one: libpq tries every host for `standby`, then
 * every host again for `any` (its SERVER_TYPE_PREFER_STANDBY_PASS2).
 *
 * @internal
 */
export type Requirement = Exclude<TargetSessionAttrs, "prefer-standby">

/** @internal */
export interface Attempt {
  readonly host: Host
  /** Its place in the configured list. */
  readonly index: number
  readonly require: Requirement
}

/** @internal */
export const hostLabel = (host: Host): string =>
  isSocket(host.host) ? `${host.host}/.s.PGSQL.${host.port}` : `${host.host}:${host.port}`

/**
 * libpq's "inside-out" Fisher-Yates shuffle, once per connection attempt (pqConnectOptions2): each host in turn
 * swaps with a random one at or before it. `random` returns a number in [0, 1).
 *
 * @internal
 */
export const shuffle = <A>(items: ReadonlyArray<A>, random: () => number): Array<A> => {
  const out = [...items]
  for (let i = 1; i < out.length; i++) {
    const j = Math.min(i, Math.floor(random() * (i + 1)))
    const swapped = out[j]!
    out[j] = out[i]!
    out[i] = swapped
  }
  return out
}

/**
 * The tries of one connection attempt, in order: the hosts as listed (or shuffled once), each for the target;
 * for `prefer-standby` the same order twice, first for `standby`, then for `any`.
 *
 * @internal
 */
export const attempts = (
  hosts: ReadonlyArray<Host>,
  target: TargetSessionAttrs,
  loadBalance: LoadBalanceHosts,
  random: () => number
): ReadonlyArray<Attempt> => {
  const listed = hosts.map((host, index) => ({ host, index }))
  const ordered = loadBalance === "random" ? shuffle(listed, random) : listed
  return passes(ordered, target)
}

/** @internal */
export const passes = (
  ordered: ReadonlyArray<{ readonly host: Host; readonly index: number }>,
  target: TargetSessionAttrs
): ReadonlyArray<Attempt> =>
  target === "prefer-standby"
    ? [
        ...ordered.map(({ host, index }) => ({ host, index, require: "standby" as const })),
        ...ordered.map(({ host, index }) => ({ host, index, require: "any" as const }))
      ]
    : ordered.map(({ host, index }) => ({ host, index, require: target }))

/**
 * What is known of a session's server. `undefined` = not known yet (libpq's PG_BOOL_UNKNOWN).
 *
 * - `inHotStandby`: the server is in recovery (a standby);
 * - `readOnly`: the session is read-only by default (`transaction_read_only`: a standby, or
 *   `default_transaction_read_only = on`).
 *
 * @internal
 */
export interface Observed {
  readonly inHotStandby: boolean | undefined
  readonly readOnly: boolean | undefined
}

/** @internal */
export const unknown: Observed = { inHotStandby: undefined, readOnly: undefined }

/**
 * What the server's ParameterStatus messages at startup tell (PostgreSQL 14 and later report `in_hot_standby` and
 * `default_transaction_read_only`). As libpq: read-only-ness is known only when both were reported; a server
 * before 9.0 has no standby mode.
 *
 * @internal
 */
export const observe = (parameters: Readonly<Record<string, string | undefined>>): Observed => {
  const standby = flag(parameters["in_hot_standby"])
  const defaultReadOnly = flag(parameters["default_transaction_read_only"])
  const version = versionNumber(parameters["server_version"])
  return {
    inHotStandby: standby ?? (version !== undefined && version < 90000 ? false : undefined),
    readOnly: standby !== undefined && defaultReadOnly !== undefined ? standby || defaultReadOnly : undefined
  }
}

/**
 * A ParameterStatus that arrives later on an open session (the server reports a change of either setting after
 * the statement that saw it: a promotion turns `in_hot_standby` off, a reload can turn
 * `default_transaction_read_only` on). `reported` holds both values as last seen on that session.
 *
 * @internal
 */
export const observeChange = (reported: Readonly<Record<string, string | undefined>>, before: Observed): Observed => {
  const now = observe(reported)
  return {
    inHotStandby: now.inHotStandby ?? before.inHotStandby,
    readOnly: now.readOnly ?? (now.inHotStandby === true ? true : before.readOnly)
  }
}

const flag = (value: string | undefined): boolean | undefined =>
  value === "on" ? true : value === "off" ? false : undefined

// "16.4", "9.6.24", "17beta1", "10devel" → 160004, 90624, 170000, 100000 (libpq's PQserverVersion numbering)
const versionNumber = (text: string | undefined): number | undefined => {
  const match = text === undefined ? null : /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(text)
  if (match === null) return undefined
  const major = Number(match[1])
  const minor = Number(match[2] ?? 0)
  return major >= 10 ? major * 10000 + minor : major * 10000 + minor * 100 + Number(match[3] ?? 0)
}

/** @internal */
export type CheckQuery = "SHOW transaction_read_only" | "SELECT pg_catalog.pg_is_in_recovery()"

/**
 * libpq's CONNECTION_CHECK_TARGET for one try:
 * - `Match`: the session is what the try needs;
 * - `Mismatch`: close it politely and try the next host (`reason` in libpq's words);
 * - `Ask`: the startup messages did not tell: run `query` on the session and `answer` with its one value.
 *
 * @internal
 */
export type Verdict =
  | { readonly _tag: "Match" }
  | { readonly _tag: "Mismatch"; readonly reason: string }
  | { readonly _tag: "Ask"; readonly query: CheckQuery }

const match: Verdict = { _tag: "Match" }

/** @internal */
export const check = (require: Requirement, observed: Observed): Verdict => {
  switch (require) {
    case "any":
      return match
    case "read-write":
    case "read-only": {
      if (observed.readOnly === undefined) return { _tag: "Ask", query: "SHOW transaction_read_only" }
      if (require === "read-write" && observed.readOnly) return { _tag: "Mismatch", reason: "session is read-only" }
      if (require === "read-only" && !observed.readOnly) return { _tag: "Mismatch", reason: "session is not read-only" }
      return match
    }
    case "primary":
    case "standby": {
      if (observed.inHotStandby === undefined) return { _tag: "Ask", query: "SELECT pg_catalog.pg_is_in_recovery()" }
      if (require === "primary" && observed.inHotStandby) {
        return { _tag: "Mismatch", reason: "server is in hot standby mode" }
      }
      if (require === "standby" && !observed.inHotStandby) {
        return { _tag: "Mismatch", reason: "server is not in hot standby mode" }
      }
      return match
    }
  }
}

/**
 * What the check query's one value says (undefined: the query failed or returned no row, and libpq moves on to the
 * next host with `"<query>" failed`). libpq compares prefixes: "on…" is read-only, "t…" in recovery. A
 * read-write session is certainly on a primary; a standby is always read-only.
 *
 * @internal
 */
export const answer = (observed: Observed, query: CheckQuery, value: string | undefined): Observed | undefined => {
  if (value === undefined) return undefined
  if (query === "SHOW transaction_read_only") {
    const readOnly = value.startsWith("on")
    return { inHotStandby: readOnly ? observed.inHotStandby : false, readOnly }
  }
  const inHotStandby = value.startsWith("t")
  return { inHotStandby, readOnly: inHotStandby ? true : observed.readOnly }
}

/**
 * Whether a session still serves a pool of that target, from what it shows now (used to evict sessions whose
 * server changed role). Unknown facts count as matching: only what was seen evicts. `prefer-standby` and `any`
 * take every server.
 *
 * @internal
 */
export const stillMatches = (target: TargetSessionAttrs, observed: Observed): boolean => {
  switch (target) {
    case "any":
    case "prefer-standby":
      return true
    case "read-write":
      return observed.readOnly !== true
    case "read-only":
      return observed.readOnly !== false
    case "primary":
      return observed.inHotStandby !== true
    case "standby":
      return observed.inHotStandby !== false
  }
}

/**
 * A server's role as far as it is known: `standby` (in recovery), `primary` (not in recovery and read-write),
 * `read-only` (read-only by default and not known to be in recovery: a primary with
 * `default_transaction_read_only = on`, or either when only `SHOW transaction_read_only` was asked), `unknown`.
 *
 * @internal
 */
export type Role = "primary" | "standby" | "read-only" | "unknown"

/** @internal */
export const roleOf = (observed: Observed): Role =>
  observed.inHotStandby === true
    ? "standby"
    : observed.readOnly === true
      ? "read-only"
      : observed.inHotStandby === false || observed.readOnly === false
        ? "primary"
        : "unknown"

/**
 * After a try fails before the session is checked: libpq moves on to the next host when the server could not be
 * reached (a refused or failed connect, a name that does not resolve, the connect timeout) or answered 57P03
 * (starting up, shutting down, not accepting connections yet: a standby that is not hot yet), and gives up on
 * the whole list on any other answer from the server (a wrong password is wrong everywhere; "too many
 * connections" ends it too) and on a TLS failure. One deliberate difference: a connection that the server (or a
 * proxy in front of it) drops during startup moves on too, where libpq gives up — a pool that must fail over
 * cannot stop at a dying server.
 *
 * `answered`: the failure is an ErrorResponse from the server (a SQLSTATE it sent), not a client-side error.
 *
 * @internal
 */
export const afterFailure = (failure: Classified, answered: boolean): "next-host" | "stop" => {
  if (failure.kind === "rejected") return "stop"
  if (answered) return failure.code === "57P03" ? "next-host" : "stop"
  return "next-host"
}

/**
 * What one try came to when it gave no session: a failure before the check (`failure`; `answered` when it is an
 * ErrorResponse from the server), or a session of the wrong role or whose check query failed (`reason`, in
 * libpq's words; `observed`: what its server showed).
 *
 * @internal
 */
export type Outcome =
  | { readonly _tag: "Failed"; readonly attempt: Attempt; readonly failure: Classified; readonly answered: boolean }
  | { readonly _tag: "Mismatch"; readonly attempt: Attempt; readonly reason: string; readonly observed: Observed }

/**
 * One classified failure for a connection attempt that found no session, saying per host what happened, e.g.
 * `no host gave a session for target_session_attrs=read-write (2 hosts tried): h1:5432: connect ECONNREFUSED
 * 10.0.0.1:5432; h2:5433: session is read-only (read-write)`. Its kind is that of the failure that ended the
 * attempt early (a rejected login: fix the configuration), else an outage: no host matches now, which retrying
 * cures once one is back or promoted. A TCP probe can pace the retry only when every try was refused.
 *
 * @internal
 */
export const summarize = (outcomes: ReadonlyArray<Outcome>, target: TargetSessionAttrs): Classified => {
  const hosts = new Set(outcomes.map((outcome) => outcome.attempt.index)).size
  const lines = outcomes.map((outcome) =>
    outcome._tag === "Failed"
      ? `${hostLabel(outcome.attempt.host)}: ${outcome.failure.message}`
      : `${hostLabel(outcome.attempt.host)}: ${outcome.reason} (${outcome.attempt.require})`
  )
  const failures = outcomes.flatMap((outcome) => (outcome._tag === "Failed" ? [outcome.failure] : []))
  const last = outcomes[outcomes.length - 1]
  const stopped =
    last?._tag === "Failed" && afterFailure(last.failure, last.answered) === "stop" ? last.failure : undefined
  const allFailed = failures.length === outcomes.length && outcomes.length > 0
  const headline =
    stopped !== undefined
      ? `${hostLabel(last!.attempt.host)} ${
          stopped.kind === "rejected" ? "refused the login" : "answered with an error"
        }, so no further host was tried (as libpq does)`
      : `no host gave a session for target_session_attrs=${target} (${hosts} ${hosts === 1 ? "host" : "hosts"} tried)`
  return {
    kind: stopped?.kind === "rejected" ? "rejected" : "outage",
    code: stopped?.code ?? failures[failures.length - 1]?.code,
    message: `${headline}: ${lines.join("; ")}`,
    sessionLost: true,
    remedy: stopped?.remedy,
    probeable: allFailed && failures.every((failure) => failure.probeable),
    startingUp:
      allFailed &&
      failures.some((failure) => failure.startingUp) &&
      failures.every((failure) => failure.startingUp || failure.probeable),
    // the readiness probe watches one port close and reopen: with several hosts there is no one port to watch
    goingAway: hosts === 1 && allFailed && failures.every((failure) => failure.goingAway)
  }
}
