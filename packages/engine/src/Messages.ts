/**
 * The messages of the pool's errors, written once for every edition: each says what happened, with the figures,
 * names the setting as the user wrote it, and says what to do next. An edition's error class (`PoolError`) keeps
 * its fields and returns one of these as its `message`, so a fix to a message is made here and reaches both.
 *
 * @since 0.1.0
 */
import type { PoolState } from "./Assessment.js"
import { formatMillis } from "./internal/settings/values.js"

/**
 * How the configuration named the settings a message may tell the user to change: the option (`url`, `init`,
 * `maxSize`, or an alias such as `maxConnections`), a `Config` key, or the environment variable. Editions pass
 * their configuration's `settingNames`; a name left out reads as its environment variable.
 *
 * @example
 * ```ts
 * import type { Messages } from "@effect-pg-pool/engine"
 *
 * // a pool configured in code: the advice names the options
 * const names: Messages.SettingNames = { url: "url", init: "init", maxSize: "maxConnections" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface SettingNames {
  readonly url?: string | undefined
  readonly connectTimeout?: string | undefined
  readonly init?: string | undefined
  readonly maxSize?: string | undefined
  readonly acquireTimeout?: string | undefined
}

const envNames = {
  url: "DATABASE_URL",
  connectTimeout: "DB_POOL_CONNECT_TIMEOUT",
  init: "DB_POOL_INIT",
  maxSize: "DB_POOL_MAX_SIZE",
  acquireTimeout: "DB_POOL_ACQUIRE_TIMEOUT"
} as const

const nameOf = (names: SettingNames | undefined, setting: keyof SettingNames): string =>
  names?.[setting] ?? envNames[setting]

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`

/**
 * The message of `PoolConfigError`: every problem, one a line, each already naming its setting.
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * Messages.poolConfigError([{ message: "minSize (5) must be ≤ maxSize (2): lower minSize or raise maxSize" }])
 * // "Invalid database pool configuration (1 problem):\n  - minSize (5) must be ≤ maxSize (2): …"
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const poolConfigError = (issues: ReadonlyArray<{ readonly message: string }>): string =>
  `Invalid database pool configuration (${plural(issues.length, "problem")}):\n` +
  issues.map((issue) => `  - ${issue.message}`).join("\n")

/**
 * What `DatabaseUnreachable` carries: an eager start gave up on the database.
 *
 * @example
 * ```ts
 * import type { Messages } from "@effect-pg-pool/engine"
 *
 * const line = (error: Messages.DatabaseUnreachableFields) =>
 *   `no database at ${error.host}:${error.port} after ${error.attempts} attempts`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DatabaseUnreachableFields {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly attempts: number
  readonly elapsedMillis: number
  /** The last attempt's error, with any password removed. */
  readonly lastCause: string
  /** How the configuration named the URL and `init`; the environment variables when absent. */
  readonly settingNames?: Pick<SettingNames, "url" | "init"> | undefined
}

/**
 * The message of `DatabaseUnreachable`: where, how many attempts over how long, the last error, and the advice
 * naming the settings as the user wrote them (`url` or `DATABASE_URL`, `init` or `DB_POOL_INIT`).
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * Messages.databaseUnreachable({
 *   host: "db", port: 5432, database: "app", attempts: 5, elapsedMillis: 31_000, lastCause: "connect ECONNREFUSED",
 *   settingNames: { url: "url", init: "init" }
 * }) // "… after 5 attempts over 31.0 s; … Check … that the url option (or host, port and database) is right, …"
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const databaseUnreachable = (error: DatabaseUnreachableFields): string => {
  const url = nameOf(error.settingNames, "url")
  const init = nameOf(error.settingNames, "init")
  // an option is named as code writes it (the variable too: the same program often runs from the environment);
  // a variable or a Config key as its assignment
  const where = url === "url" ? "the url option (or host, port and database)" : url
  const lazy =
    init === "init" ? `init: "lazy" in the pool's options (DB_POOL_INIT=lazy from the environment)` : `${init}=lazy`
  return (
    `Could not connect to PostgreSQL at ${error.host}:${error.port}/${error.database} after ` +
    `${plural(error.attempts, "attempt")} over ${(error.elapsedMillis / 1000).toFixed(1)} s; last error: ` +
    `${error.lastCause}. Check that the server is running and reachable and that ${where} is right, ` +
    `or set ${lazy} to start without it and connect in the background.`
  )
}

/**
 * What `ConnectionRejected` carries: the server refused the login for a reason retrying cannot cure.
 *
 * @example
 * ```ts
 * import type { Messages } from "@effect-pg-pool/engine"
 *
 * const explain = (error: Messages.ConnectionRejectedFields) =>
 *   `fix the configuration (SQLSTATE ${error.code ?? "none"}): ${error.remedy}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionRejectedFields {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  /** The SQLSTATE (e.g. `28P01`), or Node's code for a TLS error, when there is one. */
  readonly code: string | undefined
  /** What the server (or the TLS layer) said, with any password removed. */
  readonly serverMessage: string
  /** What to change. */
  readonly remedy: string
  readonly attempts: number
  readonly elapsedMillis: number
}

/**
 * The message of `ConnectionRejected`: who was refused by which server, what it said, and the remedy.
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * Messages.connectionRejected({
 *   host: "db", port: 5432, database: "shop", user: "app", code: "28P01", attempts: 1, elapsedMillis: 40,
 *   serverMessage: "password authentication failed", remedy: "check the password of user \"app\""
 * }) // 'PostgreSQL at db:5432 rejected the connection of user "app" to database "shop": … (SQLSTATE 28P01). …'
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const connectionRejected = (error: ConnectionRejectedFields): string =>
  `PostgreSQL at ${error.host}:${error.port} rejected the connection of user "${error.user}" to database ` +
  `"${error.database}": ${error.serverMessage}${error.code === undefined ? "" : ` (SQLSTATE ${error.code})`}. ` +
  `This is a configuration error, not an outage, so the pool stopped after ${plural(error.attempts, "attempt")} ` +
  `instead of retrying: ${error.remedy}.`

/**
 * What the `AcquireTimeout` message reads: the wait, the pool's figures at that instant (an edition's
 * statistics will do), and how the remedy's settings were named.
 *
 * @example
 * ```ts
 * import type { Messages } from "@effect-pg-pool/engine"
 *
 * // every connection busy: more connections or shorter transactions would help, not the database
 * const saturated = (timeout: Messages.AcquireTimeoutFields) =>
 *   timeout.statistics.active >= timeout.statistics.maxSize
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface AcquireTimeoutFields {
  readonly waitedMillis: number
  readonly statistics: {
    readonly active: number
    readonly total: number
    readonly maxSize: number
    readonly waiting: number
    readonly state: PoolState
    /** The last connection error: as a string, or as an edition's statistics carry it, an `Option` of one. */
    readonly lastError:
      | string
      | undefined
      | { readonly _tag: "Some"; readonly value: string }
      | { readonly _tag: "None" }
  }
  readonly settingNames?: Pick<SettingNames, "maxSize" | "acquireTimeout"> | undefined
}

/**
 * The message of `AcquireTimeout`: a saturated pool (every connection busy) is told apart from one that could not
 * open connections, each with its own remedy.
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * const statistics = { active: 10, total: 10, maxSize: 10, waiting: 4, state: "degraded", lastError: undefined } as const
 * Messages.acquireTimeout({ waitedMillis: 30_000, statistics })
 * // "Timed out after 30000 ms waiting for a database connection: all 10 of 10 connections stayed busy …"
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const acquireTimeout = (timeout: AcquireTimeoutFields): string => {
  const s = timeout.statistics
  const maxSize = nameOf(timeout.settingNames, "maxSize")
  const acquireTimeout = nameOf(timeout.settingNames, "acquireTimeout")
  const lastError =
    typeof s.lastError === "object" ? (s.lastError._tag === "Some" ? s.lastError.value : undefined) : s.lastError
  // a saturated pool reports itself degraded, but its connections are fine: they were all busy
  const cause =
    s.active >= s.maxSize
      ? `all ${s.active} of ${s.maxSize} connections stayed busy (${s.waiting} callers waiting). ` +
        `Raise ${maxSize}, shorten transactions, or raise ${acquireTimeout}.`
      : `the pool is ${s.state}${lastError === undefined ? "" : ` (last error: ${lastError})`}; ` +
        `${s.total} of ${s.maxSize} connections open, ${s.waiting} callers waiting. Check the database.`
  return `Timed out after ${timeout.waitedMillis} ms waiting for a database connection: ${cause}`
}

/**
 * The message of `PoolClosed`.
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * Messages.poolClosed("orders")
 * // 'The database pool "orders" is shutting down or closed and accepts no new work. …'
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const poolClosed = (poolName: string): string =>
  `The database pool "${poolName}" is shutting down or closed and accepts no new work. ` +
  `Acquire connections only while the layer that provides it is alive.`

/**
 * How many parameters one statement may carry: the wire protocol counts them in 16 bits.
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * // a list longer than this goes as one array parameter (= ANY($1)) instead
 * const fits = (values: ReadonlyArray<unknown>) => values.length <= Messages.maxParameters
 * ```
 *
 * @since 0.1.0
 * @category statements
 */
export const maxParameters = 65_535

/**
 * Why a statement cannot be sent, or `undefined` when it can: more parameters than the protocol counts, or a NUL
 * in the text. A driver would send either anyway; the server answers with a protocol violation and the session is
 * lost with it, so editions refuse them before sending, with this message.
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * Messages.unsendable("SELECT 'a\u0000b'", 0)
 * // "The statement's text contains a NUL byte (\0) at character 9, which PostgreSQL cannot accept …"
 * Messages.unsendable("SELECT $1", 1) // undefined
 * ```
 *
 * @since 0.1.0
 * @category statements
 */
export const unsendable = (sql: string, parameters: number): string | undefined => {
  if (parameters > maxParameters) {
    return (
      `The statement has ${parameters} parameters; PostgreSQL accepts at most ${maxParameters} in one ` +
      `statement, so it was not sent: pass a list as one array parameter (\`= ANY(\${ids})\` instead of ` +
      `\`IN \${sql.in(ids)}\`, \`SELECT * FROM unnest(\${a}::int[], \${b}::text[])\` instead of a large ` +
      `\`sql.insert(rows)\`), or split it into batches`
    )
  }
  const nul = sql.indexOf("\0")
  if (nul === -1) return undefined
  return (
    `The statement's text contains a NUL byte (\\0) at character ${nul + 1}, which PostgreSQL cannot accept in ` +
    `a statement, so it was not sent: remove it, or pass the value as a parameter (as bytea if it must keep ` +
    `the NUL)`
  )
}

/**
 * The refusal of a COPY run as a stream: a cursor (or a driver's row stream) cannot carry COPY's data.
 *
 * @example
 * ```ts
 * import { Classify, Messages } from "@effect-pg-pool/engine"
 *
 * // an edition refuses it before opening the cursor
 * const refusal = (sql: string) => (Classify.firstKeyword(sql) === "COPY" ? Messages.copyAsStream : undefined)
 * ```
 *
 * @since 0.1.0
 * @category statements
 */
export const copyAsStream =
  "COPY cannot run as a stream (a cursor cannot carry COPY's data), so it was not sent: stream the rows of the " +
  "SELECT inside it instead"

/**
 * The refusal of a statement sent on a session whose stream (cursor) is still open: PostgreSQL runs nothing else
 * on a session until its cursor is closed, so the statement would wait for a stream that waits for it.
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * // an edition counts the streams open on a session and refuses statements meanwhile
 * const refusal = (streamsOpen: number) => (streamsOpen > 0 ? Messages.streamStillOpen : undefined)
 * ```
 *
 * @since 0.1.0
 * @category statements
 */
export const streamStillOpen =
  "a stream (cursor) is still open on this connection, and PostgreSQL runs nothing else on a connection until " +
  "its cursor is closed: consume or end the stream first, or run this statement on the pool (outside " +
  "withConnection / the transaction)"

/**
 * A rejected login as the statistics' `lastError` and health's reason show it: what the server said, its
 * SQLSTATE, and what to fix (an outage's message stays as it is).
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * Messages.rejectedLogin({ message: "password authentication failed", code: "28P01", remedy: "check the password" })
 * // "password authentication failed (SQLSTATE 28P01) — check the password"
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const rejectedLogin = (failure: {
  readonly message: string
  readonly code: string | undefined
  readonly remedy: string | undefined
}): string =>
  `${failure.message}${failure.code === undefined ? "" : ` (SQLSTATE ${failure.code})`}` +
  (failure.remedy === undefined ? "" : ` — ${failure.remedy}`)

/**
 * Why an open failed when its `onConnect` hook ran past `connectTimeout` (the login's bound bounds the hook too: a
 * hung hook would keep the session opening for good), naming the setting as the user wrote it.
 *
 * @example
 * ```ts
 * import { Messages } from "@effect-pg-pool/engine"
 *
 * Messages.onConnectTimeout(5_000, { connectTimeout: "connectTimeout" })
 * // "the onConnect hook did not finish within 5s (connectTimeout)"
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const onConnectTimeout = (millis: number, names?: Pick<SettingNames, "connectTimeout">): string =>
  `the onConnect hook did not finish within ${formatMillis(millis)} (${nameOf(names, "connectTimeout")})`
