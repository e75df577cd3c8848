/**
 * The outage drill that the README's first command runs.
 *
 * Without DATABASE_URL it starts an embedded PostgreSQL, drives `DatabaseLive` (of the Effect 3 edition, or with
 * `--effect 4` of the Effect 4 edition, through the runtime-free boundary in Edition.ts) with 100 concurrent workers for
 * 30 s, crashes the database after 8 s, starts it again 4 s later, and shows the pool riding through: a live view
 * of its statistics and health, then a summary — queries ok and failed by error type, downtime, time from the
 * database's return to the first successful query, and leaked connections, checked against the server's
 * pg_stat_activity. The exit code is 0 when the invariants hold, 1 otherwise.
 *
 * With DATABASE_URL it uses that database and takes it down only when asked (`--outage` with the commands that
 * stop and start it). `pnpm demo -- --help` lists the options.
 *
 * With `--failover` it runs the failover drill instead: an embedded primary and streaming standby, the pool on both
 * with `target_session_attrs=read-write`, the primary killed and the standby promoted, and the verdict adds that no
 * session is left on the old role.
 */
import * as PoolLogger from "@effect-pg-pool/effect3/PoolLogger"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Data, Duration, Effect, Fiber, Layer, Redacted } from "effect"
import * as Cli from "./Cli.js"
import * as Drill from "./Drill.js"
import type { Edition, Pool } from "./Edition.js"
import * as Target from "./Target.js"
import * as View from "./View.js"

class PoolStartError extends Data.TaggedError("PoolStartError")<{ readonly message: string }> {}

/**
 * The demo's pool settings, each overridable by its DB_POOL_* variable. acquireTimeout is longer than the outage,
 * so callers wait for the database instead of failing.
 */
const demoSettings: Record<string, string> = {
  DB_POOL_NAME: "demo",
  DB_POOL_MAX_SIZE: "10",
  DB_POOL_ACQUIRE_TIMEOUT: "15s",
  DB_POOL_SHUTDOWN_TIMEOUT: "5s",
  // unique per run, so that the leak check counts this run's sessions only
  DB_POOL_APPLICATION_NAME: `effect-pg-pool-demo-${process.pid}`
}

/**
 * The failover drill's one more: the reconnect backoff capped at 1 s (from the default 16 s), so that the pool
 * tries again within 1 s of the promotion however long the primary was gone. The default's steps (1, 2, 4 s…)
 * would find the new primary at the next one, seconds later; an application that fails over wants the cap too.
 */
const failoverSettings: Record<string, string> = {
  DB_POOL_RECONNECT_MAX_DELAY: "1s"
}

/**
 * Both editions run `DatabaseLive`, configured from the environment as always: the demo fills in its defaults
 * where no DB_POOL_* variable is set, `--multiplex`, and the embedded server's URL.
 */
const configureEnvironment = (options: Cli.Options, target: Target.Target) => {
  for (const [name, value] of Object.entries(demoSettings)) process.env[name] ??= value
  if (options.failover) for (const [name, value] of Object.entries(failoverSettings)) process.env[name] ??= value
  if (options.multiplex) process.env.DB_POOL_MULTIPLEX = "true"
  if (target.kind !== "external") process.env.DATABASE_URL = Redacted.value(target.url)
}

/** Each edition's adapter is loaded only when asked for: the other's runtime never starts. */
const loadEdition = (effect: 3 | 4): Promise<Edition> =>
  effect === 3
    ? import("./editions/Effect3.js").then((module) => module.edition)
    : import("@effect-pg-pool/example-demo-effect4").then((module) => module.edition)

/**
 * Keeps Ctrl-C graceful. `runMain` turns the first SIGINT/SIGTERM into an interruption (workers stop, the pool
 * shuts down, the server stops) but removes its listener while doing so; the testkit's own signal handler then
 * sees itself alone, kills the embedded server at once and re-raises the signal, which kills the process before
 * any finalizer has run. A listener of ours keeps it from concluding that. A second Ctrl-C, a second or more after
 * the first (relays through npx, pnpm and tsx can deliver one press twice), forces the exit; the testkit's exit
 * handler still stops the server then.
 */
const SignalGuardLive = Layer.scopedDiscard(
  Effect.acquireRelease(
    Effect.sync(() => {
      let firstAt: number | undefined
      const onSignal = () => {
        const now = Date.now()
        if (firstAt === undefined) firstAt = now
        else if (now - firstAt > 1000) {
          process.stdout.write("\nForced exit.\n")
          process.exit(130)
        }
      }
      process.on("SIGINT", onSignal)
      process.on("SIGTERM", onSignal)
      return onSignal
    }),
    (onSignal) =>
      Effect.sync(() => {
        process.off("SIGINT", onSignal)
        process.off("SIGTERM", onSignal)
      })
  )
)

const seconds = (millis: number) => `${(millis / 1000).toFixed(1)} s`

/** Workers, the outage and the live view, until the run's time is up. */
const drive = (state: Drill.RunState, pool: Pool, header: ReadonlyArray<string>, out: View.Output) =>
  Effect.scoped(
    Effect.gen(function* () {
      yield* View.show(state, pool, header, out)
      const workers = yield* Drill.startWorkers(state, pool)
      const timeline =
        state.outage === undefined
          ? undefined
          : yield* Effect.forkScoped(Drill.outageTimeline(state, pool, state.outage))
      yield* Effect.sleep(Duration.millis(Math.max(0, state.options.durationMillis - state.elapsed())))
      // a slow start extends the run rather than cutting the recovery short
      if (timeline !== undefined) yield* Fiber.join(timeline)
      state.stopping = true
      state.stoppingAt = state.elapsed()
      state.event("■ time is up: workers finish their current query", "info")
      yield* Effect.timeoutOption(Fiber.join(workers), "20 seconds")
    })
  )

/** How far the run got, for the message after Ctrl-C. */
interface Progress {
  embedded: boolean
  pool: boolean
}

const run = (options: Cli.Options, out: View.Output, progress: Progress) =>
  Effect.gen(function* () {
    const p = View.paint(out)
    const target = yield* Target.make(
      options,
      Effect.zipRight(
        Effect.sync(() => {
          progress.embedded = true
        }),
        Console.log(
          p.dim(
            options.failover
              ? "Starting an embedded PostgreSQL primary and a streaming standby of it…"
              : "Starting an embedded PostgreSQL (DATABASE_URL is not set)…"
          )
        )
      )
    )
    configureEnvironment(options, target)
    const edition = yield* Effect.promise(() => loadEdition(options.effect))

    // closed explicitly, so that its graceful shutdown can be timed and checked before the server stops; the
    // finalizer closes it when the run is interrupted before that
    const openedAt = performance.now()
    progress.pool = true
    let closing: Promise<void> | undefined
    const close = (pool: Pool) => {
      closing ??= pool.close()
      return closing
    }
    const pool = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          edition.open({ redact: target.password === undefined ? undefined : Redacted.value(target.password) }),
        catch: (error) => new PoolStartError({ message: error instanceof Error ? error.message : String(error) })
      }),
      (pool) => Effect.promise(() => close(pool))
    )
    const { info } = pool
    const { failover } = target
    const servers =
      failover === undefined
        ? `${info.host}:${info.port}`
        : `primary ${failover.oldPrimary} and standby ${failover.newPrimary}`
    yield* Console.log(
      p.dim(
        `PostgreSQL ${info.serverVersion} at ${servers}; pool "${info.name}" ready in ` +
          `${Drill.formatMillis(performance.now() - openedAt)}.`
      )
    )

    const state = new Drill.RunState(options, target.outage, failover)
    state.statementsPerConnection = info.statementsPerConnection
    const header = [
      `${p.bold("effect-pg-pool demo")}  ${options.workers} workers → ${info.edition} DatabaseLive ` +
        `(maxSize ${info.maxSize}, minSize ${info.minSize}, acquireTimeout ${Duration.format(info.acquireTimeoutMillis)}) → ` +
        (failover === undefined
          ? `${target.kind === "embedded" ? "embedded " : ""}PostgreSQL ${info.serverVersion} on ${info.host}:${info.port}`
          : `embedded PostgreSQL ${info.serverVersion} on ${failover.oldPrimary},${failover.newPrimary}` +
            "?target_session_attrs=read-write"),
      p.dim(
        failover !== undefined
          ? `Failover: the primary ${failover.oldPrimary} is killed at ${seconds(options.outageAfterMillis)}, the ` +
              `standby ${failover.newPrimary} promoted ${seconds(options.outageForMillis)} later; reconnect backoff ` +
              `capped at ${process.env.DB_POOL_RECONNECT_MAX_DELAY}; run ends at ${seconds(options.durationMillis)}. ` +
              "Ctrl-C stops."
          : target.outage === undefined
            ? `No outage: ${target.noOutageReason}. Run ends at ${seconds(options.durationMillis)}.`
            : `Outage: crash at ${seconds(options.outageAfterMillis)}, start again ` +
              `${seconds(options.outageForMillis)} later; run ends at ${seconds(options.durationMillis)}. Ctrl-C stops.`
      )
    ]
    yield* drive(state, pool, header, out)

    // after a failover the old primary is dead: its sessions cannot outlive it, the promoted standby is checked
    const serverSessions = yield* Drill.makeServerView(target.checkUrl)
    const leak = yield* Drill.checkLeaks(pool, serverSessions)
    const stats = pool.statistics()
    if (target.kind === "external") yield* Effect.promise(() => pool.dropTable())
    const closingAt = performance.now()
    yield* Effect.promise(() => close(pool))
    const shutdownMillis = performance.now() - closingAt
    const sessionsLeft = yield* Drill.sessionsAfterShutdown(serverSessions, info.applicationName)

    const violations = Drill.violations(state, leak, sessionsLeft, info.acquireTimeoutMillis, stats)
    yield* Console.log(View.summary({ state, stats, leak, shutdownMillis, sessionsLeft, violations }, p).join("\n"))
    return violations.length === 0
  })

const main = Effect.gen(function* () {
  const options = yield* Cli.parse(process.argv.slice(2))
  if (options.help) return yield* Console.log(Cli.usage)
  const out = View.output()
  const p = View.paint(out)
  const progress: Progress = { embedded: false, pool: false }
  const ok = yield* Effect.scoped(run(options, out, progress)).pipe(
    Effect.onInterrupt(() =>
      Console.log(
        [
          ...(progress.pool ? ["Pool shut down."] : []),
          ...(progress.embedded ? ["Embedded PostgreSQL stopped and removed."] : []),
          ...(progress.pool || progress.embedded ? [] : ["Interrupted before anything started."])
        ].join(" ")
      )
    )
  )
  if (progress.embedded) {
    yield* Console.log(
      p.dim(
        options.failover
          ? "The embedded primary and standby are stopped and their files removed."
          : "The embedded PostgreSQL is stopped and its files removed."
      )
    )
  }
  if (!ok) process.exitCode = 1
}).pipe(
  Effect.catchAll((error) =>
    Effect.sync(() => {
      console.error(error._tag === "UsageError" ? error.message : `\n${error.message}`)
      if (error._tag === "UsageError") console.error("Run `pnpm demo -- --help` for the options.")
      process.exitCode = error._tag === "UsageError" ? 2 : 1
    })
  )
)

// Nothing else in the program logs; should anything, it goes nowhere rather than onto the live view.
main.pipe(
  Effect.provide(Layer.merge(PoolLogger.layerSilent(), SignalGuardLive)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
