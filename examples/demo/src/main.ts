/**
 * The outage drill that the README's first command runs.
 *
 * Without DATABASE_URL it starts an embedded PostgreSQL, drives `DatabaseLive` with 100 concurrent workers for
 * 30 s, crashes the database after 8 s, starts it again 4 s later, and shows the pool riding through: a live view
 * of its statistics and health, then a summary — queries ok and failed by error type, downtime, time from the
 * database's return to the first successful query, and leaked connections, checked against the server's
 * pg_stat_activity. The exit code is 0 when the invariants hold, 1 otherwise.
 *
 * With DATABASE_URL it uses that database and takes it down only when asked (`--outage` with the commands that
 * stop and start it). `pnpm demo -- --help` lists the options.
 */
import { DatabaseLive, Db } from "@effect-pg-pool/effect3"
import * as PoolLogger from "@effect-pg-pool/effect3/PoolLogger"
import { NodeRuntime } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import {
  ConfigProvider,
  Console,
  Context,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  Fiber,
  Layer,
  Redacted,
  Scope
} from "effect"
import * as Cli from "./Cli.js"
import * as Drill from "./Drill.js"
import * as Target from "./Target.js"
import * as View from "./View.js"

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
 * `DatabaseLive`, configured from the environment as always, with the demo's defaults and the embedded server's
 * URL. Under it the pool's logger: JSON lines to DB_POOL_LOG_FILE when set, otherwise nowhere — never the
 * terminal. It goes under the pool (`provideMerge`), so that the pool's background fibers inherit it.
 */
const poolLayer = (target: Target.Target) => {
  const env = ConfigProvider.fromEnv()
  const defaults = ConfigProvider.fromMap(new Map(Object.entries(demoSettings)))
  const provider =
    target.kind === "embedded"
      ? ConfigProvider.fromMap(new Map([["DATABASE_URL", Redacted.value(target.url)]])).pipe(
          ConfigProvider.orElse(() => env),
          ConfigProvider.orElse(() => defaults)
        )
      : env.pipe(ConfigProvider.orElse(() => defaults))
  return DatabaseLive.pipe(
    Layer.provide(Layer.setConfigProvider(provider)),
    Layer.provideMerge(PoolLogger.layerFromEnv({ redact: [target.password] }))
  )
}

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
const drive = (state: Drill.RunState, db: Db.Db.Service, header: ReadonlyArray<string>, out: View.Output) =>
  Effect.scoped(
    Effect.gen(function* () {
      yield* View.show(state, db, header, out)
      const workers = yield* Drill.startWorkers(state)
      const timeline =
        state.outage === undefined ? undefined : yield* Effect.forkScoped(Drill.outageTimeline(state, state.outage))
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
        Console.log(p.dim("Starting an embedded PostgreSQL (DATABASE_URL is not set)…"))
      )
    )

    // the pool gets its own scope, so that its graceful shutdown can be timed and checked before the server stops
    const poolScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const openedAt = performance.now()
    progress.pool = true
    const context = yield* Layer.buildWithScope(poolLayer(target), poolScope)
    const db = Context.get(context, Db.Db)
    const version = yield* Effect.provide(Drill.setup, context)
    const { config } = db
    yield* Console.log(
      p.dim(
        `PostgreSQL ${version} at ${config.host}:${config.port}; pool "${config.name}" ready in ` +
          `${Drill.formatMillis(performance.now() - openedAt)}.`
      )
    )

    const state = new Drill.RunState(options, target.outage)
    const header = [
      `${p.bold("effect-pg-pool demo")}  ${options.workers} workers → DatabaseLive (maxSize ${config.maxSize}, ` +
        `minSize ${config.minSize}, acquireTimeout ${Duration.format(config.acquireTimeout)}) → ` +
        `${target.kind === "embedded" ? "embedded " : ""}PostgreSQL ${version} on ${config.host}:${config.port}`,
      p.dim(
        target.outage === undefined
          ? `No outage: ${target.noOutageReason}. Run ends at ${seconds(options.durationMillis)}.`
          : `Outage: crash at ${seconds(options.outageAfterMillis)}, start again ` +
              `${seconds(options.outageForMillis)} later; run ends at ${seconds(options.durationMillis)}. Ctrl-C stops.`
      )
    ]
    yield* Effect.provide(drive(state, db, header, out), context)

    const serverSessions = yield* Drill.makeServerView(db.sql.config)
    const leak = yield* Effect.provide(Drill.checkLeaks(serverSessions), context)
    const stats = yield* db.statistics
    if (target.kind === "external") {
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP TABLE IF EXISTS ${sql(Drill.TABLE)}`).pipe(
        Effect.provide(context),
        Effect.timeout("3 seconds"),
        Effect.ignore
      )
    }
    const closingAt = performance.now()
    yield* Scope.close(poolScope, Exit.void)
    const shutdownMillis = performance.now() - closingAt
    const sessionsLeft = yield* Drill.sessionsAfterShutdown(serverSessions, config.applicationName)

    const violations = Drill.violations(state, leak, sessionsLeft, Duration.toMillis(config.acquireTimeout))
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
  if (progress.embedded) yield* Console.log(p.dim("The embedded PostgreSQL is stopped and its files removed."))
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
