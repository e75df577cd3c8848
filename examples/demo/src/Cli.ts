/**
 * The demo's command line: how long to run, when to take the database down and for how long.
 */
import { Data, Effect } from "effect"
import { parseArgs } from "node:util"

export interface Options {
  readonly help: boolean
  readonly durationMillis: number
  readonly outageAfterMillis: number
  readonly outageForMillis: number
  readonly workers: number
  /** `true`: take the database down; `false`: never; `undefined`: only when the demo runs its own server. */
  readonly outage: boolean | undefined
  readonly stopCommand: string | undefined
  readonly startCommand: string | undefined
  /** Which edition of the pool to drive: @effect-pg-pool/effect3 (the default) or @effect-pg-pool/effect4. */
  readonly effect: 3 | 4
  /** The Effect 4 edition's `multiplex` (DB_POOL_MULTIPLEX): autocommit statements share sessions. */
  readonly multiplex: boolean
  /**
   * The failover drill instead of the outage: an embedded primary and streaming standby, the pool on both
   * (`target_session_attrs=read-write`), the primary killed and the standby promoted.
   */
  readonly failover: boolean
}

export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

export const usage = `Usage: pnpm demo [options]     (pnpm demo -- --help for this text)

Drives the pool (DatabaseLive, of the Effect 3 or the Effect 4 edition) with concurrent workers, crashes the database under load, starts it again, and
shows the pool riding through: live statistics and health, then a summary.

Without DATABASE_URL an embedded PostgreSQL is started (and removed at exit), and the outage runs by default.
With DATABASE_URL that database is used, and the outage runs only with --outage plus a way to stop and start it.
DB_POOL_* variables override the demo's pool settings (maxSize 10, acquireTimeout 15 s, shutdownTimeout 5 s).

Options (durations in seconds, or with an ms/s suffix):
  --duration <s>          total run time                                    default 30
  --outage-after <s>      warm-up before the database is stopped            default 8
  --outage-for <s>        how long it stays down before it is started       default 4
  --workers <n>           concurrent workers                                default 100
  --effect <3|4>          the edition: @effect-pg-pool/effect3 on pg, or
                          @effect-pg-pool/effect4 on @effect/sql-pg 4       default 3
  --multiplex             Effect 4 edition: multiplexed statements (DB_POOL_MULTIPLEX=true)
  --failover              the failover drill: an embedded primary and streaming standby, the pool on
                          host1,host2?target_session_attrs=read-write; at --outage-after the primary is
                          killed (SIGKILL), --outage-for later the standby is promoted
  --outage                take the database down (with DATABASE_URL, needs the two commands below)
  --no-outage             never take the database down
  --stop-command <cmd>    shell command that stops the DATABASE_URL server, e.g. "docker kill -s QUIT pg"
  --start-command <cmd>   shell command that starts it again, e.g. "docker start pg"
  -h, --help              show this help

Ctrl-C stops the run at any time: workers are interrupted, the pool shuts down gracefully, and the embedded
server is stopped.`

const seconds = (name: string, value: string | undefined, fallback: number): Effect.Effect<number, UsageError> => {
  if (value === undefined) return Effect.succeed(fallback * 1000)
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s)?$/.exec(value.trim())
  if (match === null) {
    return Effect.fail(new UsageError({ message: `--${name} (${value}) must be a number of seconds, e.g. 30 or 2.5s` }))
  }
  return Effect.succeed(match[2] === "ms" ? Number(match[1]) : Number(match[1]) * 1000)
}

export const parse = (argv: ReadonlyArray<string>): Effect.Effect<Options, UsageError> =>
  Effect.gen(function* () {
    // `pnpm demo -- --duration 10` passes the `--` through
    const args = argv[0] === "--" ? argv.slice(1) : argv
    const parsed = yield* Effect.try({
      try: () =>
        parseArgs({
          args: [...args],
          strict: true,
          allowPositionals: false,
          options: {
            help: { type: "boolean", short: "h" },
            duration: { type: "string" },
            "outage-after": { type: "string" },
            "outage-for": { type: "string" },
            workers: { type: "string" },
            outage: { type: "boolean" },
            "no-outage": { type: "boolean" },
            "stop-command": { type: "string" },
            "start-command": { type: "string" },
            effect: { type: "string" },
            multiplex: { type: "boolean" },
            failover: { type: "boolean" }
          }
        }).values,
      catch: (error) => new UsageError({ message: error instanceof Error ? error.message : String(error) })
    })
    const durationMillis = yield* seconds("duration", parsed.duration, 30)
    const outageAfterMillis = yield* seconds("outage-after", parsed["outage-after"], 8)
    const outageForMillis = yield* seconds("outage-for", parsed["outage-for"], 4)
    const workers = parsed.workers === undefined ? 100 : Number(parsed.workers)
    if (!Number.isInteger(workers) || workers < 1 || workers > 10_000) {
      return yield* new UsageError({ message: `--workers (${parsed.workers}) must be an integer from 1 to 10000` })
    }
    if (parsed.outage === true && parsed["no-outage"] === true) {
      return yield* new UsageError({ message: "--outage and --no-outage contradict each other: pick one" })
    }
    const effect = parsed.effect === undefined ? 3 : Number(parsed.effect)
    if (effect !== 3 && effect !== 4) {
      return yield* new UsageError({ message: `--effect (${parsed.effect}) must be 3 or 4` })
    }
    if (parsed.multiplex === true && effect !== 4) {
      return yield* new UsageError({
        message:
          "--multiplex is an option of the Effect 4 edition: add --effect 4 (the Effect 3 edition on pg has none)"
      })
    }
    const outage = parsed.outage === true ? true : parsed["no-outage"] === true ? false : undefined
    const failover = parsed.failover === true
    if (failover) {
      if (outage === false) {
        return yield* new UsageError({ message: "--failover and --no-outage contradict each other: pick one" })
      }
      if (parsed["stop-command"] !== undefined || parsed["start-command"] !== undefined) {
        return yield* new UsageError({
          message:
            "--failover runs on the demo's own primary and standby, which it kills and promotes itself: " +
            "--stop-command and --start-command do not apply"
        })
      }
    }
    if (durationMillis < 1000) {
      return yield* new UsageError({ message: `--duration (${durationMillis / 1000} s) must be at least 1 s` })
    }
    if (outage !== false && outageForMillis <= 0) {
      return yield* new UsageError({ message: "--outage-for must be more than 0 s (or pass --no-outage)" })
    }
    return {
      help: parsed.help === true,
      durationMillis,
      outageAfterMillis,
      outageForMillis,
      workers,
      outage,
      stopCommand: parsed["stop-command"],
      startCommand: parsed["start-command"],
      effect,
      multiplex: parsed.multiplex === true,
      failover
    }
  })

/** The outage must fit in the run; checked once it is known that one will run. */
export const checkOutageFits = (options: Options): Effect.Effect<void, UsageError> =>
  options.outageAfterMillis + options.outageForMillis + 1000 > options.durationMillis
    ? Effect.fail(
        new UsageError({
          message:
            `the outage (${options.outageAfterMillis / 1000} s warm-up + ${options.outageForMillis / 1000} s down) ` +
            `must end at least 1 s before the run does (--duration ${options.durationMillis / 1000} s): raise ` +
            `--duration, shorten the outage, or pass --no-outage`
        })
      )
    : Effect.void
