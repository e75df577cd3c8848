/**
 * One physical PostgreSQL connection: opening it, running a query on it with server-side cancellation on
 * interruption, and closing it. The pool (internal/pool.ts) decides when; this module knows how.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Net from "node:net"
import * as Pg from "pg"
import type { CloseReason } from "../PoolStatistics.js"
import { timeoutOption } from "./deadline.js"

/** @internal */
export interface ConnectOptions {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  readonly password: string | undefined
  readonly ssl: false | { readonly rejectUnauthorized: boolean }
  readonly applicationName: string
  readonly statementTimeoutMillis: number | undefined
  readonly connectTimeoutMillis: number
  readonly keepAlive: boolean
  readonly types: Pg.CustomTypesConfig | undefined
}

/**
 * A pooled connection and everything the pool tracks about it. Mutable on purpose: it is only ever touched
 * from the pool's synchronous bookkeeping, never shared across threads.
 *
 * @internal
 */
export class PooledConnection {
  status: "idle" | "active" | "closed" = "idle"
  /** Clock millis of the last hand-out. */
  acquiredAt = 0
  /** Clock millis of the last return to the pool. */
  releasedAt: number
  queries = 0
  /** ReadyForQuery transaction status: I = idle, T = in a transaction, E = in a failed transaction. */
  transactionStatus: "I" | "T" | "E" = "I"
  /** Set when a statement may have left session state behind (SET, temp tables, LISTEN, advisory locks…). */
  sessionDirty = false
  /** Set when the socket errored or ended, or a cancellation failed: never hand it out again. */
  broken: unknown = undefined
  inFlight = 0
  leakReported = false
  /** Where the current holder acquired it, captured only when leak detection is on. */
  acquisitionSite: Error | undefined = undefined
  /** Performance-clock time of the last hand-out, for use-time metrics. */
  acquiredAtPerf = 0
  /** Pool-private slot for a per-connection cache (the bound statement constructor). */
  cache: unknown = undefined

  constructor(
    readonly id: number,
    readonly client: Pg.Client,
    readonly createdAt: number,
    readonly expiresAt: number
  ) {
    this.releasedAt = createdAt
  }

  get processId(): number | undefined {
    return (this.client as any).processID ?? undefined
  }
}

/** @internal */
export interface ConnectFailure {
  readonly _tag: "ConnectFailure"
  readonly cause: unknown
  /** Nothing listens on the port (refused, unreachable): a TCP probe can tell when that changes. */
  readonly probeable: boolean
  /** The server answered but is starting up (57P03 "starting up" / "not yet accepting connections"). */
  readonly startingUp: boolean
}

// A connection that was accepted and then dropped or timed out is NOT probeable: the port answers (a proxy,
// a blackhole, a server refusing sessions), so only the backoff may pace the next attempt.
const probeableCodes = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND"])

/** @internal */
export const classifyConnectError = (cause: unknown): ConnectFailure => {
  const code = (cause as any)?.code as string | undefined
  const message = String((cause as any)?.message ?? cause)
  const probeable = code !== undefined && probeableCodes.has(code)
  const startingUp = code === "57P03" && /starting up|not yet accepting/.test(message)
  return { _tag: "ConnectFailure", cause, probeable, startingUp }
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
  Effect.async<Pg.Client, ConnectFailure>((resume) => {
    const client = new Pg.Client({
      host: options.host,
      port: options.port,
      database: options.database,
      user: options.user,
      ...(options.password !== undefined ? { password: options.password } : {}),
      ssl: options.ssl === false ? false : { rejectUnauthorized: options.ssl.rejectUnauthorized },
      application_name: options.applicationName,
      ...(options.statementTimeoutMillis !== undefined ? { statement_timeout: options.statementTimeoutMillis } : {}),
      connectionTimeoutMillis: options.connectTimeoutMillis,
      keepAlive: options.keepAlive,
      ...(options.types !== undefined ? { types: options.types } : {})
    })
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
        resume(Effect.fail(classifyConnectError(err)))
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
 * Sends a CancelRequest for this connection's own backend over a new socket (never `pg_cancel_backend`
 * through another pooled connection, which may cancel someone else's query: Effect-TS/effect#8068).
 * Completes when the server has closed the cancel socket, which it does after signalling the backend.
 *
 * @internal
 */
export const sendCancelRequest = (
  host: string,
  port: number,
  processId: number,
  secretKey: number
): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const socket = Net.connect({ host, port })
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
      socket.end(packet)
    })
    return Effect.sync(() => {
      done = true
      socket.destroy()
    })
  })

/** @internal */
export interface QueryHooks {
  readonly cancelTimeout: Duration.Duration
  readonly host: string
  readonly port: number
  readonly onCancelFailed: (conn: PooledConnection, reason: CloseReason) => void
}

/**
 * Runs one query on a checked-out connection. On interruption the query is cancelled server-side and the
 * interruption completes only once the backend is idle again, so the connection can be handed to the next
 * caller without a late cancel hitting their query. If that takes longer than `cancelTimeout`, the
 * connection is marked broken and the pool discards it.
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
    let settled = false
    let onSettled: (() => void) | undefined
    conn.inFlight++
    if (counted) conn.queries++
    ;(conn.client as any).query(query, values, (err: Error | undefined, result: any) => {
      conn.inFlight--
      settled = true
      // After a FATAL error the server ends the session; its socket may not have closed yet when the caller
      // releases the connection, which must not go back to the pool.
      if (err != null && isSessionFatal(err)) conn.broken ??= err
      if (onSettled !== undefined) onSettled()
      else resume(onResult(err ?? undefined, result))
    })
    return Effect.suspend(() => {
      if (settled) return Effect.void
      const processId = (conn.client as any).processID as number | null
      const secretKey = (conn.client as any).secretKey as number | null
      if (processId == null || secretKey == null || conn.broken !== undefined) {
        hooks.onCancelFailed(conn, "cancel")
        return Effect.void
      }
      const querySettled = Effect.async<void>((resumeSettled) => {
        if (settled) return resumeSettled(Effect.void)
        onSettled = () => resumeSettled(Effect.void)
      })
      // This runs as the interrupted fiber's finalizer, so only the raced wait may be interruptible: marking the
      // whole canceler interruptible would let the pending interruption abort it at once.
      return Effect.all([sendCancelRequest(hooks.host, hooks.port, processId, secretKey), querySettled], {
        concurrency: 2,
        discard: true
      }).pipe(
        Effect.interruptible,
        (cancelled) => timeoutOption(cancelled, hooks.cancelTimeout),
        Effect.flatMap((completed) =>
          Option.isNone(completed) ? Effect.sync(() => hooks.onCancelFailed(conn, "cancel")) : Effect.void
        )
      )
    })
  })

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

/** @internal */
export { mayLeaveSessionState } from "./sessionState.js"
