/**
 * Opening a session on one of several hosts, as libpq does, over PgConnection: the hosts in the order the engine's
 * `Hosts.Table` gives, the connect timeout applying to each host (the driver's open is bounded by it), the target
 * checked on the new session (from its ParameterStatus messages when the driver could read them, else with libpq's
 * query), a session of the wrong role closed politely before the next host, and a failure that says per host what
 * happened. The decisions are the engine's (`Hosts.check`, `Hosts.afterFailure`, `Hosts.summarize`); this module
 * does the I/O.
 *
 * @internal
 */
import { type Classify, Hosts } from "@effect-pg-pool/engine"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Driver from "./session.js"

/**
 * A session that matched its try: the session, the host it reached (the try, with its place in the list), what its
 * server showed, its role, and what the tries before it came to.
 *
 * @internal
 */
export interface Reached {
  readonly session: Driver.Session
  readonly attempt: Hosts.Attempt
  readonly observed: Hosts.Observed
  readonly role: Hosts.Role
  readonly outcomes: ReadonlyArray<Hosts.Outcome>
}

/**
 * No try gave a session: the engine's classified summary naming every host tried and what happened there (never a
 * password: hosts and the servers' messages only), and the outcomes for the per-host table.
 *
 * @internal
 */
export interface HostsFailure {
  readonly _tag: "HostsFailure"
  readonly failure: Classify.Classified
  readonly outcomes: ReadonlyArray<Hosts.Outcome>
}

/** The error behind a `SqlError` (its reason's cause: a Node socket error, or the server's fields). @internal */
export const causeOf = (error: unknown): unknown => {
  const reason = (error as any)?.reason
  if (reason !== undefined) return reason.cause ?? reason
  return error
}

/** An ErrorResponse of the server (its fields carry a severity), as opposed to a socket or TLS error. */
const answeredByServer = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && typeof (cause as { severity?: unknown }).severity === "string"

/**
 * Tries `attempts` in order until one gives a session that matches. `open` opens one session on one host (its
 * failure a `SqlError` or a TLS rejection, whose cause `classify` classifies); a session that does not match is
 * closed here and never handed out. The check is bounded by `checkTimeoutMillis` (the connect timeout: libpq's
 * covers the check too), so a server that accepts the login and then stalls moves on to the next host.
 *
 * @internal
 */
export const connectAny = (
  attempts: ReadonlyArray<Hosts.Attempt>,
  target: Hosts.TargetSessionAttrs,
  open: (host: Hosts.Host) => Effect.Effect<Driver.Session, unknown>,
  classify: (cause: unknown) => Classify.Classified,
  checkTimeoutMillis: number
): Effect.Effect<Reached, HostsFailure> =>
  Effect.suspend(() => {
    const outcomes: Array<Hosts.Outcome> = []
    const loop = (i: number): Effect.Effect<Reached, HostsFailure> => {
      const attempt = attempts[i]
      if (attempt === undefined) return Effect.fail(failure(outcomes, target))
      return Effect.flatMap(tryHost(attempt, open, classify, checkTimeoutMillis), (result) => {
        if (result._tag === "Reached") {
          return Effect.succeed({
            session: result.session,
            attempt,
            observed: result.observed,
            role: Hosts.roleOf(result.observed),
            outcomes
          })
        }
        outcomes.push(result)
        if (result._tag === "Failed" && Hosts.afterFailure(result.failure, result.answered) === "stop") {
          return Effect.fail(failure(outcomes, target))
        }
        return loop(i + 1)
      })
    }
    return loop(0)
  })

const failure = (outcomes: ReadonlyArray<Hosts.Outcome>, target: Hosts.TargetSessionAttrs): HostsFailure => ({
  _tag: "HostsFailure",
  failure: Hosts.summarize(outcomes, target),
  outcomes
})

type TryResult =
  | { readonly _tag: "Reached"; readonly session: Driver.Session; readonly observed: Hosts.Observed }
  | Hosts.Outcome

/** One host: open, then check the target; a session of the wrong role (or whose check failed) is closed. */
const tryHost = (
  attempt: Hosts.Attempt,
  open: (host: Hosts.Host) => Effect.Effect<Driver.Session, unknown>,
  classify: (cause: unknown) => Classify.Classified,
  checkTimeoutMillis: number
): Effect.Effect<TryResult> =>
  Effect.matchEffect(open(attempt.host), {
    onFailure: (error): Effect.Effect<TryResult> => {
      const cause = causeOf(error)
      return Effect.succeed({ _tag: "Failed", attempt, failure: classify(cause), answered: answeredByServer(cause) })
    },
    onSuccess: (session) => {
      // on timeout the session is closed first: an interrupted statement would wait for an answer that never comes
      // (and the check that fails on the closed session is then no verdict on the host)
      let timedOut = false
      const timeout = Effect.sleep(Duration.millis(Math.max(1, checkTimeoutMillis))).pipe(
        Effect.andThen(
          Effect.suspend(() => {
            timedOut = true
            return session.close(false)
          })
        ),
        Effect.andThen(Effect.never)
      )
      return Effect.raceFirst(checkTarget(session, attempt), timeout).pipe(
        Effect.map(
          (result): TryResult =>
            timedOut
              ? {
                  _tag: "Failed",
                  attempt,
                  failure: classify(
                    Object.assign(
                      new Error(`the target check got no answer within the connect timeout (${checkTimeoutMillis} ms)`),
                      { code: "ETIMEDOUT" }
                    )
                  ),
                  answered: false
                }
              : result
        ),
        Effect.tap((result) => (result._tag === "Reached" ? Effect.void : session.close(false))),
        Effect.onInterrupt(() => session.close(false))
      )
    }
  })

/** libpq's CONNECTION_CHECK_TARGET on the new session: the ParameterStatus facts, else one query at a time. */
const checkTarget = (session: Driver.Session, attempt: Hosts.Attempt): Effect.Effect<TryResult> => {
  const step = (observed: Hosts.Observed): Effect.Effect<TryResult> => {
    const verdict = Hosts.check(attempt.require, observed)
    switch (verdict._tag) {
      case "Match":
        return Effect.succeed({ _tag: "Reached", session, observed })
      case "Mismatch":
        return Effect.succeed({ _tag: "Mismatch", attempt, reason: verdict.reason, observed })
      case "Ask":
        return Effect.flatMap(firstValue(session, verdict.query), (value) => {
          const next = Hosts.answer(observed, verdict.query, value)
          return next === undefined
            ? Effect.succeed({ _tag: "Mismatch", attempt, reason: `"${verdict.query}" failed`, observed } as const)
            : step(next)
        })
    }
  }
  return step(Hosts.observe(session.parameters))
}

/**
 * The first column of the first row as the server's text ("on", "t"), as libpq reads it; undefined when the query
 * failed or returned no row. PgConnection decodes booleans: they are written back as the server's `t` / `f`.
 */
const firstValue = (session: Driver.Session, text: string): Effect.Effect<string | undefined> =>
  session.connection.queryValues(text, [], false).pipe(
    Effect.map((rows) => {
      const value = rows[0]?.[0]
      return typeof value === "boolean" ? (value ? "t" : "f") : typeof value === "string" ? value : undefined
    }),
    Effect.orElseSucceed(() => undefined)
  )
