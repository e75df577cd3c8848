/**
 * The pg driver: one session over a `pg.Client` — open (connect, TLS negotiation, `onConnect`), query with
 * server-side cancellation on interruption, the internal round trips (ping, reset), cancel, close, the closed
 * signal, the transaction status and the backend identity. It is the only code that reads pg's private fields
 * (`_queryable`, `_ending`, `processID`, `secretKey`, `_queryQueue`, the ReadyForQuery messages). The engine
 * decides when (through internal/pool.ts); this module knows how.
 *
 * @internal
 */
import { Classify, Messages } from "@effect-pg-pool/engine"
import * as Cause from "effect/Cause"
import type * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Net from "node:net"
import * as Pg from "pg"
import type { CloseReason } from "../PoolStatistics.js"
import { failAfter, timeoutOption } from "./deadline.js"
import * as Tls from "./tls.js"

/** @internal */
export interface ConnectOptions {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  readonly password: string | undefined
  /** Evaluated for each new connection (a short-lived token), instead of `password`. */
  readonly passwordProvider?: PasswordProvider | undefined
  readonly ssl: Tls.TlsSettings
  readonly applicationName: string
  readonly statementTimeoutMillis: number | undefined
  readonly connectTimeoutMillis: number
  readonly keepAlive: boolean
  readonly types: Pg.CustomTypesConfig | undefined
  /** How the configuration named the connection (`url`, `DATABASE_URL`, a `Config` key): rejections' remedies name it. */
  readonly settingNames?: { readonly url: string } | undefined
}

/**
 * One session over a `pg.Client` (the driver's `Session`): what the adapter reads off it — transaction status,
 * whether it still works, statements in flight, queries run, the backend to cancel — and the slots the adapter
 * keeps beside it. The engine decides everything about it; this records only what the socket says. Mutable on
 * purpose: it is only ever touched from the pool's synchronous bookkeeping.
 *
 * @internal
 */
export class PooledConnection {
  queries = 0
  /** ReadyForQuery transaction status: I = idle, T = in a transaction, E = in a failed transaction. */
  transactionStatus: "I" | "T" | "E" = "I"
  /** Set when a statement may have left session state behind (SET, temp tables, LISTEN, advisory locks…). */
  sessionDirty = false
  /** Set when the socket errored or ended, or a cancellation failed: never hand it out again. */
  broken: unknown = undefined
  inFlight = 0
  /** The cursor (stream) open on it, if any: pg runs nothing else on the connection until it has finished. */
  cursor: { readonly state: string } | undefined = undefined
  /** The acquisition holding it exclusively (0: none), as the engine granted it. */
  holder = 0
  /** `queries` when it was granted: the release reports the difference. */
  queriesAtGrant = 0
  /** Where the current holder acquired it, captured only when leak detection is on. */
  acquisitionSite: string | undefined = undefined
  /** Performance-clock time of the last hand-out, for use-time metrics. */
  acquiredAtPerf = 0
  /** Completes when the reset the engine asked for after the last release has run. */
  resetDone: Deferred.Deferred<void> | undefined = undefined
  /** Pool-private slot for a per-connection cache (the bound statement constructor). */
  cache: unknown = undefined

  constructor(
    /** The engine's name for the session. */
    readonly id: number,
    readonly client: Pg.Client
  ) {}

  private cancelTo: CancelTarget | undefined = undefined

  /**
   * Keeps `transactionStatus` current from every ReadyForQuery message (pg keeps it to itself), from the start:
   * what `onConnect` leaves is the session's baseline.
   */
  trackTransactionStatus(): void {
    ;(this.client as any).connection.on("readyForQuery", (msg: { status: string }) => {
      this.transactionStatus = msg.status as "I" | "T" | "E"
    })
  }

  /** Whether a statement may still be sent: pg marks a client that errored or is ending, and its socket dies. */
  isQueryable(): boolean {
    const c = this.client as any
    return c._queryable !== false && c._ending !== true && c.connection?.stream?.destroyed !== true
  }

  /** Neither marked broken by the pool nor dead in pg: fit to be handed out. */
  isUsable(): boolean {
    return this.broken === undefined && this.isQueryable()
  }

  /** Whether an unfinished cursor holds the connection: anything else sent now would wait for it forever. */
  blockedByCursor(): boolean {
    const state = this.cursor?.state
    return state !== undefined && state !== "done" && state !== "error"
  }

  /**
   * Where a CancelRequest for this session goes: the address its socket is connected to (a host name may
   * resolve to several addresses, each maybe another server), or its Unix socket; undefined before the
   * server sent the backend key.
   */
  cancelTarget(): CancelTarget | undefined {
    if (this.cancelTo !== undefined) return this.cancelTo
    const client = this.client as any
    const processId = client.processID as number | null | undefined
    const secretKey = client.secretKey as number | null | undefined
    if (processId == null || secretKey == null) return undefined
    const socket = client.connection?.stream as Net.Socket | undefined
    const host = client.host as string
    const port = client.port as number
    const address =
      socket?.remoteAddress !== undefined
        ? { host: socket.remoteAddress, port: socket.remotePort ?? port }
        : host.startsWith("/")
          ? { path: `${host}/.s.PGSQL.${port}` }
          : { host, port }
    this.cancelTo = { address, processId, secretKey }
    return this.cancelTo
  }
}

/** @internal */
export interface CancelTarget {
  readonly address: { readonly host: string; readonly port: number } | { readonly path: string }
  readonly processId: number
  readonly secretKey: number
}

/**
 * Why a connection could not be opened, classified once, by the engine's rules (`Classify.classifyConnectError`),
 * for the pool and the LISTEN connection alike.
 *
 * - `outage`: the server is down, unreachable, starting up, overloaded or dropped us: retrying with backoff
 *   is the cure.
 * - `rejected`: the server answered and refused this configuration — the password, the role, the database,
 *   a startup parameter, TLS. Retrying the same login gives the same answer until someone fixes the
 *   configuration (or the server's), so eager initialisation fails at once instead of backing off.
 *
 * @internal
 */
export interface ConnectFailure extends Classify.Classified {
  readonly _tag: "ConnectFailure"
  readonly cause: unknown
  readonly kind: "outage" | "rejected"
}

/**
 * The text of an error, never empty (an `AggregateError` of a refused multi-address host lists its causes).
 *
 * @internal
 */
export const errorMessage: (cause: unknown) => string = Classify.errorMessage

/**
 * Outage or rejection, by SQLSTATE and error class (the engine's rules); `target` names who logged in where, for
 * the remedy's wording, and the host. A Unix socket has no middlebox: a connection reset on it is the server
 * going away, like one that says it is shutting down.
 *
 * @internal
 */
export const classifyConnectError = (
  cause: unknown,
  target: {
    readonly user: string
    readonly database: string
    readonly host?: string
    readonly settingNames?: { readonly url: string } | undefined
  }
): ConnectFailure => {
  const classified = Classify.classifyConnectError(cause, target)
  const resetOnSocket =
    target.host?.startsWith("/") === true && (classified.code === "ECONNRESET" || classified.code === "EPIPE")
  return {
    ...classified,
    _tag: "ConnectFailure",
    cause,
    kind: classified.kind === "rejected" ? "rejected" : "outage",
    goingAway: classified.goingAway || resetOnSocket
  }
}

/**
 * Opens a client. The `error` and `end` listeners are attached before connecting and stay for the client's
 * life: an `error` event without a listener crashes Node, and an idle socket can error at any time.
 *
 * @internal
 */
export const connect = (
  options: ConnectOptions,
  onBroken: (client: Pg.Client, cause: unknown) => void
): Effect.Effect<Pg.Client, ConnectFailure> =>
  options.passwordProvider === undefined
    ? Tls.negotiate(options.ssl, (ssl) => connectWith(options, ssl, onBroken))
    : Effect.flatMap(providedPassword(options.passwordProvider, options.connectTimeoutMillis), (password) =>
        // once per connection: a TLS fallback's second attempt logs in with the same password
        Tls.negotiate(options.ssl, (ssl) => connectWith({ ...options, password }, ssl, onBroken))
      )

/**
 * A password provider (the `password` option given as an Effect): evaluated for each new connection, e.g. for a
 * short-lived IAM authentication token.
 *
 * @internal
 */
export type PasswordProvider = Effect.Effect<Redacted.Redacted<string>, unknown>

/**
 * Runs the provider, bounded by connectTimeout. Its failure (or defect, or a value that is no `Redacted` string)
 * fails this open like an outage — retried with backoff, so a provider that recovers brings the pool back — and
 * says the provider failed; the value is never part of a message.
 */
const providedPassword = (provider: PasswordProvider, timeoutMillis: number): Effect.Effect<string, ConnectFailure> => {
  const timeout = Duration.millis(timeoutMillis)
  const bounded = failAfter(
    Effect.suspend(() => provider),
    timeout,
    () => new Error(`it did not answer within ${Duration.format(timeout)} (DB_POOL_CONNECT_TIMEOUT)`)
  )
  return Effect.matchCauseEffect(bounded, {
    onFailure: (cause) => Effect.fail(providerFailure(errorMessage(Cause.squash(cause)))),
    onSuccess: (password) =>
      Redacted.isRedacted(password) && typeof Redacted.value(password) === "string"
        ? Effect.succeed(Redacted.value(password))
        : Effect.fail(providerFailure("it returned no Redacted string (use Redacted.make(token))"))
  })
}

const providerFailure = (reason: string): ConnectFailure => ({
  _tag: "ConnectFailure",
  cause: new Error(`the password provider failed: ${reason}`),
  kind: "outage",
  code: undefined,
  message: `the password provider failed: ${reason}`,
  remedy: "check the Effect given as the password option; the pool retries with backoff until it succeeds",
  sessionLost: false,
  probeable: false,
  startingUp: false,
  goingAway: false
})

const connectWith = (
  options: ConnectOptions,
  ssl: false | Tls.ConnectionOptions,
  onBroken: (client: Pg.Client, cause: unknown) => void
): Effect.Effect<Pg.Client, ConnectFailure> =>
  Effect.async<Pg.Client, ConnectFailure>((resume) => {
    const client = new Pg.Client({
      host: options.host,
      port: options.port,
      database: options.database,
      user: options.user,
      ...(options.password !== undefined ? { password: options.password } : {}),
      ssl,
      application_name: options.applicationName,
      ...(options.statementTimeoutMillis !== undefined ? { statement_timeout: options.statementTimeoutMillis } : {}),
      connectionTimeoutMillis: options.connectTimeoutMillis,
      keepAlive: options.keepAlive,
      ...(options.types !== undefined ? { types: options.types } : {})
    })
    recordParameters(client)
    let settled = false
    client.on("error", (cause) => {
      if (settled) onBroken(client, cause)
    })
    client.on("end", () => {
      if (settled) onBroken(client, new Error("Connection ended by the server"))
    })
    client.connect((err: Error | undefined) => {
      if (settled) return
      settled = true
      if (err) {
        destroy(client)
        resume(Effect.fail(classifyConnectError(err, options)))
      } else {
        resume(Effect.succeed(client))
      }
    })
    return Effect.sync(() => {
      if (!settled) {
        settled = true
        destroy(client)
      }
    })
  })

const parameters = new WeakMap<Pg.Client, Record<string, string>>()

// ParameterStatus messages (server_version, in_hot_standby, default_transaction_read_only, …): pg keeps them to itself
const recordParameters = (client: Pg.Client): void => {
  const seen: Record<string, string> = {}
  parameters.set(client, seen)
  ;(client as any).connection.on("parameterStatus", (msg: { parameterName: string; parameterValue: string }) => {
    seen[msg.parameterName] = msg.parameterValue
  })
}

/**
 * The server's parameters as its ParameterStatus messages last reported them on this client (startup and changes).
 *
 * @internal
 */
export const serverParameters = (client: Pg.Client): Readonly<Record<string, string>> => parameters.get(client) ?? {}

/**
 * Calls `f` on each ParameterStatus the server sends from now on (a promotion turns `in_hot_standby` off; a reload
 * may change `default_transaction_read_only`): reported after the statement that saw the change.
 *
 * @internal
 */
export const onParameterStatus = (client: Pg.Client, f: (name: string, value: string) => void): void => {
  ;(client as any).connection.on("parameterStatus", (msg: { parameterName: string; parameterValue: string }) =>
    f(msg.parameterName, msg.parameterValue)
  )
}

/**
 * Closes a client without waiting on the server: a polite Terminate when the socket is healthy, then the
 * socket is destroyed so a blackholed connection cannot keep us waiting.
 *
 * @internal
 */
export const destroy = (client: Pg.Client): void => {
  const connection = (client as any).connection
  try {
    if (connection?.stream && !connection.stream.destroyed && (client as any)._connected) {
      connection.end()
    }
  } catch {
    // a socket that throws on end is already gone
  }
  try {
    connection?.stream?.destroy()
  } catch {
    // ditto
  }
}

/**
 * Opens a session named `id` and runs `onConnect` on it (the driver's `open`). The hook gets connectTimeout of its
 * own: it is part of opening, but a slow login must not eat the time of its round trips (the worst attempt takes
 * two connectTimeouts), and a timeout then names the hook rather than the network. The client is destroyed on
 * every exit but success — a failure, a defect, an interruption by shutdown or by a recovery that made this
 * attempt moot — or its socket and its backend would outlive the attempt. `onClosed` is the closed signal: the
 * socket errored or ended after the open.
 *
 * @internal
 */
export const open = (
  id: number,
  options: ConnectOptions,
  onConnect: ((conn: PooledConnection) => Effect.Effect<void, unknown>) | undefined,
  hookTimeout: Duration.Duration,
  onClosed: (conn: PooledConnection, cause: unknown) => void,
  /** How the client is reached: one host by default; internal/hosts.ts for several. */
  connectClient: (closed: (client: Pg.Client, cause: unknown) => void) => Effect.Effect<Pg.Client, ConnectFailure> = (
    closed
  ) => connect(options, closed)
): Effect.Effect<PooledConnection, ConnectFailure> =>
  Effect.uninterruptibleMask((restore) => {
    let conn: PooledConnection | undefined
    // the socket may die between the login and the wrapping below; a TLS fallback's first client, closed by the
    // failed attempt, may also report late, and is not this session
    const early = new WeakMap<Pg.Client, unknown>()
    const closed = (client: Pg.Client, cause: unknown) => {
      if (conn?.client === client) {
        conn.broken ??= cause
        onClosed(conn, cause)
      } else if (conn === undefined && !early.has(client)) early.set(client, cause)
    }
    return Effect.flatMap(restore(connectClient(closed)), (client) => {
      conn = new PooledConnection(id, client)
      conn.broken = early.get(client)
      conn.trackTransactionStatus()
      return Effect.onExit(restore(setUp(conn, onConnect, hookTimeout)), (exit) =>
        Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => destroy(client))
      )
    })
  })

const setUp = (
  conn: PooledConnection,
  onConnect: ((conn: PooledConnection) => Effect.Effect<void, unknown>) | undefined,
  timeout: Duration.Duration
): Effect.Effect<PooledConnection, ConnectFailure> => {
  if (onConnect === undefined) return conn.isUsable() ? Effect.succeed(conn) : Effect.fail(brokeDuringSetUp(conn))
  let timedOut: Error | undefined
  const hook = failAfter(
    Effect.suspend(() => onConnect(conn)),
    timeout,
    () => {
      timedOut = new Error(Messages.onConnectTimeout(Duration.toMillis(timeout)))
      // the connection is thrown away: the hook's interrupted query need not wait for the server
      conn.broken ??= timedOut
      return timedOut
    }
  )
  return Effect.matchCauseEffect(hook, {
    onFailure: (cause) => {
      const error = Cause.squash(cause)
      const failure =
        timedOut !== undefined && error === timedOut
          ? timedOut
          : new Error(`the onConnect hook failed: ${errorMessage(error)}`)
      return Effect.fail(setUpFailure(failure))
    },
    onSuccess: () => {
      // the socket may have died while the hook ran: such a connection never joins the pool
      if (!conn.isUsable()) return Effect.fail(brokeDuringSetUp(conn))
      // what the hook sets is the connection's baseline, not state to reset after the first use
      conn.sessionDirty = false
      return Effect.succeed(conn)
    }
  })
}

const brokeDuringSetUp = (conn: PooledConnection): ConnectFailure => {
  const broken = conn.broken ?? new Error("the connection closed while onConnect ran")
  return setUpFailure(new Error(`the connection broke during onConnect: ${errorMessage(broken)}`))
}

/** A hook that fails fails that connection: retried with backoff like any failed open, never a rejection. */
const setUpFailure = (cause: Error): ConnectFailure => ({
  _tag: "ConnectFailure",
  cause,
  kind: "outage",
  code: undefined,
  message: cause.message,
  remedy: undefined,
  sessionLost: true,
  probeable: false,
  startingUp: false,
  goingAway: false
})

/**
 * An internal round trip (validation, reset, the health probe): no row mapping, not counted towards maxQueries,
 * bounded by the caller.
 *
 * @internal
 */
export const roundTrip = (conn: PooledConnection, sql: string, hooks: QueryHooks): Effect.Effect<void, unknown> =>
  runQuery(conn, sql, undefined, (err) => (err ? Effect.fail(err) : Effect.void), hooks, false)

/**
 * A TCP connect to the server's port (or its Unix socket, when the host is a directory, as for libpq and pg),
 * closed at once: no session, no backend process. Succeeds with the connect's latency in milliseconds, or
 * undefined when nothing answered within a second.
 *
 * @internal
 */
export const probeTcp = (host: string, port: number): Effect.Effect<number | undefined> =>
  Effect.async<number | undefined>((resume) => {
    const address = host.startsWith("/") ? { path: `${host}/.s.PGSQL.${port}` } : { host, port }
    const startedAt = performance.now()
    const socket = Net.connect(address)
    const timer = setTimeout(() => finish(false), 1_000)
    const finish = (ok: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed(ok ? performance.now() - startedAt : undefined))
    }
    socket.once("connect", () => finish(true))
    socket.once("error", () => finish(false))
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

/**
 * Sends a CancelRequest for this connection's own backend over a new socket (never `pg_cancel_backend`
 * through another pooled connection, which may cancel someone else's query: Effect-TS/effect#8068).
 * Completes when the server has closed the cancel socket, which it does after signalling the backend.
 *
 * @internal
 */
export const sendCancelRequest = ({ address, processId, secretKey }: CancelTarget): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const socket = Net.connect(address)
    let done = false
    const finish = () => {
      if (done) return
      done = true
      socket.destroy()
      resume(Effect.void)
    }
    socket.on("error", finish)
    socket.on("close", finish)
    socket.on("connect", () => {
      const packet = Buffer.alloc(16)
      packet.writeInt32BE(16, 0)
      packet.writeInt32BE(80877102, 4)
      packet.writeInt32BE(processId, 8)
      packet.writeInt32BE(secretKey, 12)
      socket.write(packet)
    })
    return Effect.sync(() => {
      done = true
      socket.destroy()
    })
  })

/** @internal */
export interface QueryHooks {
  readonly cancelTimeout: Duration.Duration
  readonly onCancelFailed: (conn: PooledConnection, reason: CloseReason) => void
}

/**
 * Runs one query on a checked-out connection. On interruption the query is cancelled server-side and the
 * interruption completes only once the backend is idle again, so the connection can be handed to the next
 * caller without a late cancel hitting their query. If that takes longer than `cancelTimeout`, the
 * connection is marked broken and the pool discards it. A query still queued behind another one on the same
 * connection (concurrent statements of one pinned client or transaction) has not been sent: interrupting it
 * takes it out of the queue, unsent, and never cancels what runs — that is a sibling's statement.
 *
 * @internal
 */
export const runQuery = <A>(
  conn: PooledConnection,
  /** The text, or a config object when it needs options (rowMode); a text avoids pg's per-call config copy. */
  query: string | Pg.QueryConfig | Pg.QueryArrayConfig,
  values: ReadonlyArray<unknown> | undefined,
  onResult: (err: Error | undefined, result: any) => Effect.Effect<A, any>,
  hooks: QueryHooks,
  /** Internal round trips (validation, reset, probe) do not count towards maxQueries. */
  counted = true
): Effect.Effect<A, any> =>
  Effect.async<A, any>((resume) => {
    // pg would queue the statement behind the open cursor, which waits for the caller: a deadlock
    if (conn.blockedByCursor()) return resume(settle(onResult, cursorOpenError(), undefined))
    let settled = false
    let onSettled: (() => void) | undefined
    conn.inFlight++
    if (counted) conn.queries++
    const submitted = new Pg.Query(
      query as any,
      values as Array<unknown> | undefined,
      ((err: Error | undefined, result: any) => {
        conn.inFlight--
        settled = true
        // After a FATAL error the server ends the session; its socket may not have closed yet when the caller
        // releases the connection, which must not go back to the pool.
        if (err != null && isSessionFatal(err)) conn.broken ??= err
        if (onSettled !== undefined) onSettled()
        else resume(settle(onResult, err ?? undefined, result))
      }) as any
    )
    conn.client.query(submitted)
    return Effect.suspend(() => {
      if (settled) return Effect.void
      if (unqueue(conn.client, submitted)) {
        settled = true
        conn.inFlight--
        if (counted) conn.queries--
        return Effect.void
      }
      const target = conn.cancelTarget()
      if (target === undefined || conn.broken !== undefined) {
        hooks.onCancelFailed(conn, "cancel")
        return Effect.void
      }
      const querySettled = Effect.async<void>((resumeSettled) => {
        if (settled) return resumeSettled(Effect.void)
        onSettled = () => resumeSettled(Effect.void)
      })
      return cancelAndAwait(target, querySettled, hooks.cancelTimeout, () => hooks.onCancelFailed(conn, "cancel"))
    })
  })

/**
 * Sends the CancelRequest and waits until the statement has settled, both bounded by `cancelTimeout`; calls
 * `onTimeout` if they do not finish by then. Runs as an interrupted fiber's finalizer, so only the raced wait
 * may be interruptible: marking the whole canceler interruptible would let the pending interruption abort it
 * at once.
 *
 * @internal
 */
export const cancelAndAwait = (
  target: CancelTarget,
  settled: Effect.Effect<void>,
  cancelTimeout: Duration.Duration,
  onTimeout: () => void
): Effect.Effect<void> =>
  Effect.all([sendCancelRequest(target), settled], { concurrency: 2, discard: true }).pipe(
    Effect.interruptible,
    (cancelled) => timeoutOption(cancelled, cancelTimeout),
    Effect.flatMap((completed) => (Option.isNone(completed) ? Effect.sync(onTimeout) : Effect.void))
  )

/** The outcome of a statement: a transform (user code) that throws is a defect, never a throw inside pg. */
const settle = <A>(
  onResult: (err: Error | undefined, result: any) => Effect.Effect<A, any>,
  err: Error | undefined,
  result: any
): Effect.Effect<A, any> => {
  try {
    return onResult(err, result)
  } catch (defect) {
    return Effect.die(defect)
  }
}

/**
 * Takes a statement (or cursor) out of pg's queue if it is still there, i.e. not sent yet.
 *
 * @internal
 */
export const unqueue = (client: Pg.Client, query: object): boolean => {
  const queue = (client as any)._queryQueue as Array<unknown> | undefined
  const index = queue === undefined ? -1 : queue.indexOf(query)
  if (index === -1) return false
  queue!.splice(index, 1)
  return true
}

const cursorOpenError = () =>
  new Error(
    "a stream (cursor) is still open on this connection, and PostgreSQL runs nothing else on a connection until " +
      "its cursor is closed: consume or end the stream first, or run this statement on the pool (outside " +
      "withConnection / the transaction)"
  )

/**
 * FATAL/PANIC (e.g. 57P01 terminated by an administrator), class 08 (connection exception), or a protocol error:
 * an error from the connection's parser without a SQLSTATE (pg's "received invalid response") means the client
 * is out of step with the server, and the next statement on it would wait for an answer that never comes.
 */
const isSessionFatal = (err: Error): boolean => {
  const { code, severity } = err as { code?: unknown; severity?: unknown }
  if (typeof code !== "string") return err instanceof Pg.DatabaseError
  return severity === "FATAL" || severity === "PANIC" || code.startsWith("08")
}
