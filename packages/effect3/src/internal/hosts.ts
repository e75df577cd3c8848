/**
 * Opening a session on one of several hosts, as libpq does: the hosts in the order the engine's policy gives
 * (`Hosts.attempts` or a `Hosts.Table`'s), the connect timeout applying to each host, the target checked on the
 * new session (from its ParameterStatus messages, else with libpq's query), a session of the wrong role closed
 * politely before the next host, and a failure that says per host what happened. The decisions are the engine's
 * (`Hosts.check`, `Hosts.afterFailure`, `Hosts.summarize`); this module does the I/O.
 *
 * @internal
 */
import { Classify, Hosts } from "@effect-pg-pool/engine"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Pg from "pg"
import * as Connection from "./connection.js"

/**
 * A session that matched its try: the client, the host it reached (the try, with its place in the list), what its
 * server showed, its role, its startup parameters (the baseline of later `Connection.onParameterStatus` changes),
 * and what the tries before it came to.
 *
 * @internal
 */
export interface Reached {
  readonly client: Pg.Client
  readonly attempt: Hosts.Attempt
  readonly observed: Hosts.Observed
  readonly role: Hosts.Role
  readonly parameters: Readonly<Record<string, string>>
  readonly outcomes: ReadonlyArray<Hosts.Outcome>
}

/**
 * No try gave a session: a `ConnectFailure` (so the pool backs off or fails init as for one host) whose message
 * names every host tried and what happened there, with the outcomes for the per-host table.
 *
 * @internal
 */
export interface HostsFailure extends Connection.ConnectFailure {
  readonly outcomes: ReadonlyArray<Hosts.Outcome>
}

/**
 * Tries `attempts` in order until one gives a session that matches. `options.host` / `options.port` are ignored:
 * each try sets its own. `onBroken` hears only about the client handed out, never about one closed here.
 *
 * @internal
 */
export const connectAny = (
  options: Connection.ConnectOptions,
  attempts: ReadonlyArray<Hosts.Attempt>,
  target: Hosts.TargetSessionAttrs,
  onBroken: (client: Pg.Client, cause: unknown) => void
): Effect.Effect<Reached, HostsFailure> =>
  Effect.suspend(() => {
    let handedOut: Pg.Client | undefined
    const forward = (client: Pg.Client, cause: unknown) => {
      if (client === handedOut) onBroken(client, cause)
    }
    const outcomes: Array<Hosts.Outcome> = []
    const loop = (i: number): Effect.Effect<Reached, HostsFailure> => {
      const attempt = attempts[i]
      if (attempt === undefined) return Effect.fail(failure(outcomes, target))
      return Effect.flatMap(tryHost(options, attempt, forward), (result) => {
        if (result._tag === "Reached") {
          handedOut = result.client
          return Effect.succeed({
            client: result.client,
            attempt,
            observed: result.observed,
            role: Hosts.roleOf(result.observed),
            parameters: Connection.serverParameters(result.client),
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

const failure = (outcomes: ReadonlyArray<Hosts.Outcome>, target: Hosts.TargetSessionAttrs): HostsFailure => {
  const summary = Hosts.summarize(outcomes, target)
  const last = outcomes[outcomes.length - 1]
  return {
    ...summary,
    _tag: "ConnectFailure",
    kind: summary.kind === "rejected" ? "rejected" : "outage",
    cause: last?._tag === "Failed" ? last.failure : undefined,
    outcomes
  }
}

type TryResult =
  | { readonly _tag: "Reached"; readonly client: Pg.Client; readonly observed: Hosts.Observed }
  | Hosts.Outcome

/** One host: connect and check, both within the connect timeout (libpq restarts its timer for each host). */
const tryHost = (
  options: Connection.ConnectOptions,
  attempt: Hosts.Attempt,
  onBroken: (client: Pg.Client, cause: unknown) => void
): Effect.Effect<TryResult> => {
  const connected = Connection.connect({ ...options, host: attempt.host.host, port: attempt.host.port }, onBroken)
  const tried = Effect.matchEffect(connected, {
    onFailure: (failure): Effect.Effect<TryResult> =>
      Effect.succeed({ _tag: "Failed", attempt, failure, answered: failure.cause instanceof Pg.DatabaseError }),
    onSuccess: (client) =>
      checkTarget(client, attempt).pipe(
        Effect.tap((result) =>
          result._tag === "Reached" ? Effect.void : Effect.sync(() => Connection.destroy(client))
        ),
        Effect.onInterrupt(() => Effect.sync(() => Connection.destroy(client)))
      )
  })
  const millis = options.connectTimeoutMillis
  if (!(millis > 0)) return tried
  return Effect.map(Effect.timeout(tried, Duration.millis(millis)).pipe(Effect.option), (result) =>
    Option.getOrElse(
      result,
      (): TryResult => ({
        _tag: "Failed",
        attempt,
        failure: Classify.classifyConnectError(
          Object.assign(new Error(`no session within the connect timeout (${millis} ms, connectTimeout)`), {
            code: "ETIMEDOUT"
          }),
          options
        ),
        answered: false
      })
    )
  )
}

/** libpq's CONNECTION_CHECK_TARGET on the new session: the ParameterStatus facts, else one query at a time. */
const checkTarget = (client: Pg.Client, attempt: Hosts.Attempt): Effect.Effect<TryResult> => {
  const step = (observed: Hosts.Observed): Effect.Effect<TryResult> => {
    const verdict = Hosts.check(attempt.require, observed)
    switch (verdict._tag) {
      case "Match":
        return Effect.succeed({ _tag: "Reached", client, observed })
      case "Mismatch":
        return Effect.succeed({ _tag: "Mismatch", attempt, reason: verdict.reason, observed })
      case "Ask":
        return Effect.flatMap(firstValue(client, verdict.query), (value) => {
          const next = Hosts.answer(observed, verdict.query, value)
          return next === undefined
            ? Effect.succeed({ _tag: "Mismatch", attempt, reason: `"${verdict.query}" failed`, observed } as const)
            : step(next)
        })
    }
  }
  return step(Hosts.observe(Connection.serverParameters(client)))
}

// The first column of the first row as the server's text ("on", "t"), as libpq reads it; undefined when the
// query failed or returned no row.
const rawText = { getTypeParser: () => (value: string) => value }

const firstValue = (client: Pg.Client, text: string): Effect.Effect<string | undefined> =>
  Effect.async<string | undefined>((resume) => {
    client.query({ text, rowMode: "array", types: rawText as any }, (err: Error | undefined, result: any) => {
      const value = err ? undefined : result?.rows?.[0]?.[0]
      resume(Effect.succeed(typeof value === "string" ? value : undefined))
    })
  })
