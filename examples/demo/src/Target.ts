/**
 * The database the demo drives, and the means to take it down and bring it back (or, for the failover drill, a
 * primary and a standby, and the means to kill the one and promote the other).
 *
 * Without DATABASE_URL the demo runs its own embedded PostgreSQL (the testkit's), which it can crash and restart.
 * With DATABASE_URL it uses that server and can only take it down through commands the user supplies: the demo
 * cannot stop a server it did not start.
 */
import { PgTestServer, PrimaryStandby } from "@effect-pg-pool/testkit"
import { Config, Data, Effect, Option, Redacted, type Scope } from "effect"
import * as ChildProcess from "node:child_process"
import type { Options } from "./Cli.js"
import { checkOutageFits, UsageError } from "./Cli.js"

export class OutageError extends Data.TaggedError("OutageError")<{ readonly message: string }> {}

export interface OutageControl {
  /** What a stop does, for a human. */
  readonly stopDescription: string
  readonly stop: Effect.Effect<void, OutageError>
  /** Starts the server and returns once it accepts sessions again (the failover drill: promotes the standby). */
  readonly start: Effect.Effect<void, OutageError>
}

/**
 * The failover drill's pair: its outage's `stop` kills the primary (SIGKILL to the postmaster and every backend)
 * and its `start` promotes the standby (`pg_ctl promote`, returning once it accepts writes).
 */
export interface Failover {
  /** `host:port` of the node started as the primary, and of the standby that is promoted. */
  readonly oldPrimary: string
  readonly newPrimary: string
}

export interface Target {
  /** `pair`: the failover drill's embedded primary and streaming standby. */
  readonly kind: "embedded" | "external" | "pair"
  /** What the pool connects to: for the pair, both hosts with `target_session_attrs=read-write`. */
  readonly url: Redacted.Redacted<string>
  /** One server, for the leak check's separate client: for the pair, the standby (the primary after the drill). */
  readonly checkUrl: Redacted.Redacted<string>
  /** The embedded server's password, to keep out of the logs (DATABASE_URL's is known to the logger already). */
  readonly password: Redacted.Redacted<string> | undefined
  readonly outage: OutageControl | undefined
  readonly failover: Failover | undefined
  /** Why no outage runs, when none does. */
  readonly noOutageReason: string | undefined
}

const tail = (text: string) => text.trim().split("\n").slice(-5).join("\n")

/** Runs a shell command to completion; its output is kept for the error message only, never shown live. */
const runCommand = (label: string, command: string): Effect.Effect<void, OutageError> =>
  Effect.async<void, OutageError>((resume) => {
    let output = ""
    const child = ChildProcess.spawn(command, { shell: true, stdio: ["ignore", "pipe", "pipe"] })
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString("utf8")).slice(-4000)
    }
    child.stdout?.on("data", collect)
    child.stderr?.on("data", collect)
    child.once("error", (error) =>
      resume(Effect.fail(new OutageError({ message: `${label} "${command}" could not run: ${error.message}` })))
    )
    child.once("exit", (code, signal) =>
      resume(
        code === 0
          ? Effect.void
          : Effect.fail(
              new OutageError({
                message: `${label} "${command}" failed (${signal ?? `exit code ${code}`})${output ? `: ${tail(output)}` : ""}`
              })
            )
      )
    )
    return Effect.sync(() => {
      child.kill()
    })
  })

/** Opens (and closes) sessions until one succeeds: the server is back when it accepts sessions, not just TCP. */
const waitForSessions = (url: Redacted.Redacted<string>): Effect.Effect<void, OutageError> =>
  PgTestServer.makeExternal(url).pipe(
    Effect.retry({ times: 5 }),
    Effect.asVoid,
    Effect.mapError(
      (error) =>
        new OutageError({ message: `the database did not accept sessions after the start command: ${error.message}` })
    )
  )

const commandControl = (url: Redacted.Redacted<string>, stopCommand: string, startCommand: string): OutageControl => ({
  stopDescription: `stop command: ${stopCommand}`,
  stop: runCommand("the stop command", stopCommand),
  start: Effect.zipRight(runCommand("the start command", startCommand), waitForSessions(url))
})

const hostPort = (node: PrimaryStandby.PrimaryStandby.Node) => `${node.host}:${node.port}`

/**
 * The failover drill's topology: an embedded primary and a streaming standby of it (the testkit's; stopped and
 * removed when the scope closes), and the multi-host URL a read-write pool takes, as libpq writes it.
 */
const pair: Effect.Effect<Target, PgTestServer.PgTestServerError, Scope.Scope> = Effect.gen(function* () {
  const nodes = yield* PrimaryStandby.make()
  const { primary, standby } = nodes
  const password = encodeURIComponent(Redacted.value(primary.password))
  const url = Redacted.make(
    `postgres://${encodeURIComponent(primary.user)}:${password}@${hostPort(primary)},${hostPort(standby)}/` +
      `${encodeURIComponent(primary.database)}?target_session_attrs=read-write`
  )
  const outageError = (e: { readonly message: string }) => new OutageError({ message: e.message })
  return {
    kind: "pair",
    url,
    checkUrl: standby.url,
    password: primary.password,
    outage: {
      stopDescription: "SIGKILL to its postmaster and every backend, a power cut",
      stop: Effect.mapError(primary.kill, outageError),
      start: Effect.mapError(nodes.promote, outageError)
    },
    failover: { oldPrimary: hostPort(primary), newPrimary: hostPort(standby) },
    noOutageReason: undefined
  }
})

/**
 * The embedded server when DATABASE_URL is not set (stopped and removed when the scope closes), else the
 * server DATABASE_URL names.
 */
export const make = (
  options: Options,
  onEmbeddedStart: Effect.Effect<void>
): Effect.Effect<Target, UsageError | PgTestServer.PgTestServerError, Scope.Scope> =>
  Effect.gen(function* () {
    const databaseUrl = yield* Config.option(Config.redacted("DATABASE_URL")).pipe(
      Effect.map(Option.filter((url) => Redacted.value(url).trim() !== "")),
      Effect.orElseSucceed(() => Option.none<Redacted.Redacted<string>>())
    )
    if (options.failover) {
      if (Option.isSome(databaseUrl)) {
        return yield* new UsageError({
          message:
            "--failover runs on an embedded primary and streaming standby that the demo starts, kills and promotes " +
            "itself: unset DATABASE_URL (a server of yours is not killed)"
        })
      }
      yield* checkOutageFits(options)
      yield* onEmbeddedStart
      return yield* pair
    }
    if (Option.isNone(databaseUrl)) {
      if (options.stopCommand !== undefined || options.startCommand !== undefined) {
        return yield* new UsageError({
          message: "--stop-command and --start-command apply to a DATABASE_URL server; the embedded one needs neither"
        })
      }
      if (options.outage !== false) yield* checkOutageFits(options)
      yield* onEmbeddedStart
      const server = yield* PgTestServer.makeEmbedded()
      return {
        kind: "embedded",
        url: server.url,
        checkUrl: server.url,
        password: server.password,
        failover: undefined,
        outage:
          options.outage === false
            ? undefined
            : {
                stopDescription: "immediate shutdown: SIGQUIT, a crash",
                stop: Effect.mapError(
                  server.stop({ mode: "immediate" }),
                  (e) => new OutageError({ message: e.message })
                ),
                start: Effect.mapError(server.start, (e) => new OutageError({ message: e.message }))
              },
        noOutageReason: options.outage === false ? "--no-outage" : undefined
      }
    }
    const url = databaseUrl.value
    if (options.outage === true) {
      if (options.stopCommand === undefined || options.startCommand === undefined) {
        return yield* new UsageError({
          message:
            "--outage with DATABASE_URL needs a way to stop and start that server, and this process does not " +
            "manage it. Pass both commands, e.g.\n" +
            `  --stop-command "docker kill --signal QUIT my-postgres" --start-command "docker start my-postgres"\n` +
            `  --stop-command "pg_ctl -D /path/to/data stop -m immediate" --start-command "pg_ctl -D /path/to/data start"\n` +
            "or unset DATABASE_URL to run the outage against an embedded PostgreSQL."
        })
      }
      yield* checkOutageFits(options)
      return {
        kind: "external",
        url,
        checkUrl: url,
        password: undefined,
        failover: undefined,
        outage: commandControl(url, options.stopCommand, options.startCommand),
        noOutageReason: undefined
      }
    }
    if (options.stopCommand !== undefined || options.startCommand !== undefined) {
      return yield* new UsageError({ message: "--stop-command and --start-command take effect only with --outage" })
    }
    return {
      kind: "external",
      url,
      checkUrl: url,
      password: undefined,
      failover: undefined,
      outage: undefined,
      noOutageReason:
        options.outage === false
          ? "--no-outage"
          : "DATABASE_URL is set: the demo does not stop a server it did not start (pass --outage with " +
            "--stop-command and --start-command to take it down)"
    }
  })
