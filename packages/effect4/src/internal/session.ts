/**
 * The driver: one PostgreSQL session over @effect/sql-pg 4's `PgConnection`, reached only through its public API.
 *
 * - The socket is ours, handed to `PgConnection.make` through its `stream` option, so a dead socket is seen at
 *   once (its `close` event) instead of at the next statement.
 * - Cancellation: `PgConnection` keeps the backend key data private (only `processId` is public); its public
 *   `interrupt` sends the CancelRequest on a side connection opened through the same `stream` factory, and our
 *   factory opens that one to the address the session's socket is connected to (not a fresh DNS answer).
 * - Transaction status: `PgConnection` does not expose ReadyForQuery's status, so the session follows it from
 *   the statements it runs (BEGIN / COMMIT / ROLLBACK by their first keyword, a failure inside a transaction).
 *
 * @internal
 */
import * as PgConnection from "@effect/sql-pg/PgConnection"
import type * as PgTypes from "@effect/sql-pg/PgTypes"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import type { SqlError } from "effect/sql/SqlError"
import * as Net from "node:net"
import type { ConnectionOptions } from "node:tls"
import * as Pooler from "./pooler.js"
import * as StatementText from "./statementText.js"

/** @internal */
export interface OpenOptions {
  readonly host: string
  readonly port: number
  /** A Unix socket path, used verbatim; wins over host and port. */
  readonly path: string | undefined
  readonly database: string
  readonly user: string
  readonly password: Redacted.Redacted | Effect.Effect<Redacted.Redacted> | undefined
  readonly ssl: boolean | ConnectionOptions
  /** How `ssl` is negotiated (internal/tls.ts): `allow` and `prefer` fall back to the other transport. */
  readonly sslmode?: "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full" | undefined
  readonly connectTimeoutMillis: number
  /** TCP keepalive idle time in milliseconds; undefined disables it. */
  readonly keepAliveMillis: number | undefined
  readonly applicationName: string
  readonly startupParameters: Readonly<Record<string, string>>
  readonly startupOptions: string | undefined
  readonly types: PgTypes.Registry | undefined
  readonly multiplex: boolean
  readonly prepare: boolean | undefined
  readonly preparedStatementCacheSize: number | undefined
  readonly maxMessageSize: number | undefined
  /**
   * Follow the server's ParameterStatus messages (`in_hot_standby`, `default_transaction_read_only`, …), which
   * PgConnection reads and drops: a multi-host pool learns a new session's role from them and hears of a promotion
   * on an open one. Read off the plain-text socket only (a TLS session's bytes are encrypted below PgConnection).
   */
  readonly watchParameters?: boolean | undefined
  /** The pooler in front of the server, if any: see pooler.ts. */
  readonly pooler?: Pooler.Behind | undefined
}

/** @internal */
export type TransactionStatus = "I" | "T" | "E"

/** @internal */
export interface Session {
  readonly id: number
  /** The session as PgConnection exposes it (multiplexed when the pool is). */
  readonly connection: PgConnection.PgConnection
  readonly processId: number
  /** Where the socket is connected: `address:port` or the socket path. */
  readonly remote: string
  readonly openedAt: number
  /** Followed from the statements run; see the module's notes. */
  status: TransactionStatus
  /** Set when the socket has closed (on its own or by `close`). */
  closed: boolean
  /** Set when the socket errored or a statement failed with a connection error: never hand the session out again. */
  broken: boolean
  /** Notes one statement's text and outcome for the transaction status. */
  readonly track: (sql: string, ok: boolean) => void
  /** One cheap round trip. */
  readonly ping: Effect.Effect<void, SqlError>
  /** ROLLBACK and/or the session-state reset; see `resetStatements`. */
  readonly reset: (rollback: boolean, discard: boolean) => Effect.Effect<void, SqlError>
  /** A CancelRequest for what the session runs; never fails. */
  readonly cancel: Effect.Effect<void>
  /** Sends Terminate and ends the socket (after a CancelRequest when `cancelFirst`). */
  readonly close: (cancelFirst: boolean) => Effect.Effect<void>
  /**
   * The ParameterStatus values the server sent so far (with `watchParameters` on a plain-text session; empty
   * otherwise), and the listener of those it sends later.
   */
  readonly parameters: Readonly<Record<string, string>>
  onParameterStatus: ((name: string, value: string) => void) | undefined
}

/**
 * Follows the framing of the backend's messages (a type byte, a length that counts itself, the body) and hands
 * each ParameterStatus (`S`: name NUL value NUL) to `onParameter`; every other message is skipped unread.
 */
const parameterTap = (onParameter: (name: string, value: string) => void) => {
  const header = Buffer.alloc(5)
  let headerFill = 0
  let remaining = 0
  let body: Buffer | undefined
  let bodyFill = 0
  const finish = () => {
    const nul = body!.indexOf(0)
    if (nul > 0) onParameter(body!.toString("utf8", 0, nul), body!.toString("utf8", nul + 1, body!.length - 1))
    body = undefined
  }
  return (chunk: Buffer): void => {
    let i = 0
    while (i < chunk.length) {
      if (remaining > 0) {
        const n = Math.min(remaining, chunk.length - i)
        if (body !== undefined) {
          chunk.copy(body, bodyFill, i, i + n)
          bodyFill += n
        }
        i += n
        remaining -= n
        if (remaining === 0 && body !== undefined) finish()
        continue
      }
      header[headerFill++] = chunk[i++]!
      if (headerFill < 5) continue
      headerFill = 0
      remaining = Math.max(0, header.readInt32BE(1) - 4)
      // ParameterStatus bodies are a name and a short value: anything larger is not one worth reading
      if (header[0] === 0x53 && remaining > 1 && remaining < 8_192) {
        body = Buffer.allocUnsafe(remaining)
        bodyFill = 0
      }
    }
  }
}

/**
 * The session-state reset: `DISCARD ALL` minus its `DEALLOCATE ALL`, one statement at a time (the extended
 * protocol takes one per message). PgConnection caches prepared statements by name; deallocating them behind its
 * back would make the next holder's first use of each fail, and inside a transaction that failure aborts it.
 *
 * @internal
 */
export const resetStatements: ReadonlyArray<string> = [
  "CLOSE ALL",
  "SET SESSION AUTHORIZATION DEFAULT",
  "RESET ALL",
  "UNLISTEN *",
  "SELECT pg_advisory_unlock_all()",
  "DISCARD PLANS",
  "DISCARD TEMP",
  "DISCARD SEQUENCES"
]

/** The status after `sql` ran, from its first keyword; multi-statement texts are not supported by PgConnection. */
const nextStatus = (status: TransactionStatus, sql: string, ok: boolean): TransactionStatus => {
  const keyword = StatementText.read(sql).firstKeyword
  if (!ok) {
    // a failed COMMIT ends the transaction; any other failure inside one aborts it
    if (keyword === "COMMIT" || keyword === "END") return "I"
    return status === "I" ? "I" : "E"
  }
  switch (keyword) {
    case "BEGIN":
    case "START":
      return "T"
    case "COMMIT":
    case "END":
    case "ABORT":
      return "I"
    case "ROLLBACK":
      // ROLLBACK TO SAVEPOINT stays in the transaction, and clears its failure
      return /^\s*ROLLBACK\s+(?:WORK\s+|TRANSACTION\s+)?TO\b/i.test(sql) ? "T" : "I"
    case "PREPARE":
      return /^\s*PREPARE\s+TRANSACTION\b/i.test(sql) ? "I" : status
    default:
      return status
  }
}

/**
 * Opens a session: the socket, TLS, startup and authentication under `connectTimeoutMillis`. `onClosed` is called
 * once when the socket closes on its own (error, end, server shutdown), never after `close`.
 *
 * @internal
 */
export const open = (
  id: number,
  options: OpenOptions,
  now: () => number,
  onClosed: (error: unknown) => void
): Effect.Effect<Session, SqlError> =>
  Effect.suspend(() => {
    const scope = Scope.makeUnsafe()
    let socket: Net.Socket | undefined
    let lastError: unknown
    let closedByUs = false
    let session: Session | undefined
    const parameters: Record<string, string> = {}
    const watch = options.watchParameters === true && options.ssl === false
    const connectTo = (): Net.Socket =>
      options.path !== undefined
        ? Net.connect({ path: options.path })
        : options.host.startsWith("/")
          ? Net.connect({ path: `${options.host}/.s.PGSQL.${options.port}` })
          : Net.connect({
              host: options.host,
              port: options.port,
              noDelay: true,
              ...(options.keepAliveMillis !== undefined && {
                keepAlive: true,
                keepAliveInitialDelay: options.keepAliveMillis
              })
            })
    // the first call opens the session's socket; later ones are CancelRequest side connections, sent where the
    // session's socket is connected
    const stream = (): Net.Socket => {
      if (socket === undefined) {
        const own = connectTo()
        socket = own
        if (watch) {
          own.on(
            "data",
            parameterTap((name, value) => {
              parameters[name] = value
              session?.onParameterStatus?.(name, value)
            })
          )
        }
        let notified = false
        // once, at the first sign: a destroy (PgConnection destroys the socket the moment it finds the session
        // dead, and its 'close' follows a tick later — long enough for queued callers to be handed the dead
        // session one after another), an error, or the close
        const dead = (error: unknown) => {
          if (session !== undefined) session.broken = true
          if (notified || closedByUs || session === undefined) return
          notified = true
          onClosed(error)
        }
        const destroy = own.destroy.bind(own)
        own.destroy = ((error?: Error) => {
          dead(error ?? lastError ?? Object.assign(new Error("the connection was closed"), { code: "ECONNRESET" }))
          return destroy(error)
        }) as typeof own.destroy
        own.on("error", (error) => {
          lastError = error
          dead(error)
        })
        own.once("close", () => {
          if (session !== undefined) session.closed = true
          dead(lastError ?? Object.assign(new Error("the server closed the connection"), { code: "ECONNRESET" }))
        })
        return own
      }
      const address = socket.remoteAddress
      const port = socket.remotePort
      if (address !== undefined && port !== undefined) return Net.connect({ host: address, port, noDelay: true })
      return connectTo()
    }
    const config: PgConnection.Config = {
      host: options.host,
      port: options.port,
      path: options.path,
      database: options.database,
      username: options.user,
      password: options.password,
      // PgConnection spreads the options: the resolved private key is not enumerable (kept out of JSON and logs)
      ssl:
        typeof options.ssl === "object" && options.ssl.key !== undefined
          ? { ...options.ssl, key: options.ssl.key }
          : options.ssl,
      connectTimeout: options.connectTimeoutMillis,
      applicationName: options.applicationName,
      startupParameters: options.startupParameters,
      startupOptions: options.startupOptions,
      stream,
      types: options.types,
      multiplex: options.multiplex,
      prepare: Pooler.prepare(options.pooler, options.prepare),
      preparedStatementCacheSize: options.preparedStatementCacheSize,
      maxMessageSize: options.maxMessageSize
    }
    const discards = Pooler.resetStatements(options.pooler, resetStatements)
    const closeNow = (cancelFirst: boolean) =>
      Effect.suspend(() => {
        if (closedByUs) return Effect.void
        closedByUs = true
        const cancel = cancelFirst && session !== undefined ? session.cancel : Effect.void
        return Effect.andThen(
          cancel,
          Effect.andThen(
            Scope.close(scope, Exit.void),
            Effect.sync(() => {
              // Terminate was written and the socket ended; a peer that never answers must not keep it open
              setTimeout(() => socket?.destroy(), 1_000).unref()
            })
          )
        )
      })
    return PgConnection.make(config).pipe(
      Effect.tap((connection) => Pooler.checkLogin(connection, options.pooler, options.connectTimeoutMillis)),
      Scope.provide(scope),
      Effect.onExit((exit) =>
        Exit.isSuccess(exit)
          ? Effect.void
          : Effect.andThen(
              Scope.close(scope, exit),
              Effect.sync(() => {
                closedByUs = true
                socket?.destroy()
              })
            )
      ),
      Effect.map((connection) => {
        const remote =
          socket?.remoteAddress !== undefined
            ? `${socket.remoteAddress}:${socket.remotePort}`
            : (options.path ?? `${options.host}/.s.PGSQL.${options.port}`)
        const self: Session = {
          id,
          connection: Pooler.guard(connection, options.pooler),
          processId: connection.processId,
          remote,
          openedAt: now(),
          status: "I",
          closed: false,
          broken: false,
          track: (sql, ok) => {
            self.status = nextStatus(self.status, sql, ok)
          },
          ping: Effect.asVoid(connection.query("SELECT 1", [], false)),
          reset: (rollback, discard) =>
            Effect.gen(function* () {
              if (rollback) yield* connection.query("ROLLBACK", [], false)
              self.status = "I"
              if (discard) for (const sql of discards) yield* connection.query(sql, [], false)
            }),
          cancel: connection.interrupt,
          close: closeNow,
          parameters,
          onParameterStatus: undefined
        }
        session = self
        // the socket may have died between ReadyForQuery and here
        if (socket === undefined || socket.destroyed) self.closed = true
        return self
      })
    )
  })
