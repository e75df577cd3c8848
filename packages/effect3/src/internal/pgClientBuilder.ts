/**
 * The one assembly of our `PgClient`, shared by the real client (./client.ts) and DbMock's (./mock.ts): the
 * compiler, the row transforms, the span attributes, our statements (./statement.ts) and transactions
 * (./transaction.ts), the pinned clients' isolation and the PgClient extras (config, json, listen, notify).
 * What differs is only where a statement runs (a `StatementTarget`), where a transaction does (a
 * `TransactionTarget`), what `sql.reserve` hands out, and how `listen` subscribes, so a test against the mock
 * sees the client production runs.
 *
 * @internal
 */
import type * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { PooledConnection } from "./connection.js"
import { makeConstructor, type StatementTarget } from "./statement.js"
import { makeWithTransaction, type TransactionTarget } from "./transaction.js"

type RowTransform = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

const ATTR_DB_SYSTEM_NAME = "db.system.name"
const ATTR_DB_NAMESPACE = "db.namespace"
const ATTR_SERVER_ADDRESS = "server.address"
const ATTR_SERVER_PORT = "server.port"

/** @internal */
export interface BuilderOptions {
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  /** The user's span attributes; every span also names the database (db.system.name, server.address…). */
  readonly spanAttributes?: Record<string, unknown> | undefined
  /** What `sql.config` reports; its database, host and port are the spans' too. */
  readonly config: PgClient.PgClientConfig
  readonly listen: (channel: string) => Stream.Stream<string, SqlError>
  /** The pooled connection behind one of the caller's `SqlConnection`s, for the transactions' COMMIT checks. */
  readonly pooledOf: (connection: SqlConnection.Connection) => PooledConnection | undefined
}

/** @internal */
export interface Builder {
  /** A client whose statements run on `target`, its transactions on `transactions`, `reserve` on `reserve`. */
  readonly build: (
    target: StatementTarget,
    transactions: TransactionTarget,
    reserve: SqlConnection.Connection.Acquirer
  ) => Effect.Effect<PgClient.PgClient, never, Reactivity.Reactivity>
  /**
   * A client pinned to one connection: its statements stay there, and its `withTransaction` opens a transaction
   * there, even inside a transaction another client opened on another connection; statements of other clients
   * inside it join it.
   */
  readonly pinned: (
    connection: SqlConnection.Connection
  ) => Effect.Effect<PgClient.PgClient, never, Reactivity.Reactivity>
}

/** Built once per client: nothing here runs per statement. @internal */
export const make = (options: BuilderOptions): Builder => {
  const compiler = PgClient.makeCompiler(options.transformQueryNames, options.transformJson)
  const transformRows: RowTransform = options.transformResultNames
    ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
    : undefined
  const spanAttributes: ReadonlyArray<readonly [string, unknown]> = [
    ...(options.spanAttributes ? Object.entries(options.spanAttributes) : []),
    [ATTR_DB_SYSTEM_NAME, "postgresql"],
    [ATTR_DB_NAMESPACE, options.config.database],
    [ATTR_SERVER_ADDRESS, options.config.host],
    [ATTR_SERVER_PORT, options.config.port]
  ]

  const extras = (sql: SqlClient.SqlClient) => ({
    [PgClient.TypeId]: PgClient.TypeId as PgClient.TypeId,
    config: options.config,
    json: (value: unknown) => PgJson(value),
    listen: options.listen,
    notify: (channel: string, payload: string) =>
      Effect.asVoid(sql`SELECT pg_notify(${channel}, ${payload})`.withoutTransform)
  })

  // The client's own members come from @effect/sql (reserve, reactivity); its statements are PoolStatements,
  // which run on `target` without a Scope per statement, and its transactions ours, which fail instead of dying
  // when a COMMIT fails.
  const finish = (
    base: SqlClient.SqlClient,
    target: StatementTarget,
    transactions: TransactionTarget,
    transforms: RowTransform
  ): PgClient.PgClient => {
    let withoutTransforms: PgClient.PgClient | undefined
    const sql: PgClient.PgClient = Object.assign(makeConstructor(base, target, spanAttributes, transforms), {
      [SqlClient.TypeId]: SqlClient.TypeId as SqlClient.TypeId,
      safe: undefined as unknown as PgClient.PgClient,
      withTransaction: makeWithTransaction(spanAttributes, transactions),
      reserve: base.reserve,
      withoutTransforms: (): PgClient.PgClient =>
        transforms === undefined
          ? sql
          : (withoutTransforms ??= finish(base.withoutTransforms(), target, transactions, undefined)),
      reactive: base.reactive,
      reactiveMailbox: base.reactiveMailbox,
      ...extras(base)
    })
    return Object.assign(sql, { safe: sql })
  }

  const build: Builder["build"] = (target, transactions, reserve) =>
    Effect.map(
      SqlClient.make({
        acquirer: Effect.succeed(target.connection),
        // what `sql.reserve` hands out (@effect/sql's transactions are replaced by ours in `finish`)
        transactionAcquirer: reserve,
        compiler,
        spanAttributes,
        transformRows
      }),
      (base) => finish(base, target, transactions, transformRows)
    )

  const pinned: Builder["pinned"] = (connection) => {
    const isThis = (other: SqlConnection.Connection) => other === connection
    return build(
      { connection, joinsTransactions: isThis },
      { acquire: () => Effect.succeed([undefined, connection] as const), joins: isThis, pooledOf: options.pooledOf },
      Effect.succeed(connection)
    )
  }

  return { build, pinned }
}

const PgJson = Statement.custom<PgJsonCustom>("PgJson")
interface PgJsonCustom extends Statement.Custom<"PgJson", unknown> {}
