/**
 * The real topology for this package's multi-host tests: the testkit's runtime-free primary and streaming standby
 * (Promises), wrapped for Effect 4: a pair per suite, closed when the suite's scope closes.
 */
import { PrimaryStandby } from "@effect-pg-pool/testkit/core"
import { Effect, Redacted } from "effect"

export type Pair = PrimaryStandby.PrimaryStandby
export type Node = Pair["primary"]

export const startPair = (): Promise<Pair> => PrimaryStandby.start()

/** `postgres://…@h1:p1,h2:p2/db?target_session_attrs=…` on the pair, in the order given. */
export const urlOf = (pair: Pair, nodes: ReadonlyArray<Node>, target: string, extra = "") => {
  const hosts = nodes.map((node) => `${node.host}:${node.port}`).join(",")
  const password = encodeURIComponent(pair.primary.password)
  return Redacted.make(
    `postgres://${pair.primary.user}:${password}@${hosts}/${pair.primary.database}?target_session_attrs=${target}${extra}`
  )
}

export const realSleep = (millis: number) =>
  Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

/** Polls `check` on the real clock until it holds; dies naming `what` after `timeoutMillis`. */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, timeoutMillis = 10_000) =>
  Effect.gen(function* () {
    const deadline = performance.now() + timeoutMillis
    while (!(yield* check)) {
      if (performance.now() > deadline) return yield* Effect.die(new Error(`not within ${timeoutMillis} ms: ${what}`))
      yield* realSleep(20)
    }
  })
