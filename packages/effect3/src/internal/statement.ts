/**
 * Our statements: @effect/sql's tagged templates, compiled by the same compiler, but executed without the
 * per-statement work @effect/sql does for an arbitrary driver. Its `StatementPrimitive` opens a `Scope` per
 * statement (our connections are borrowed and returned without one) and looks the connection up through an
 * acquirer effect; together they cost more than the pool itself. A `PoolStatement` wraps the statement
 * @effect/sql built (its segments, its compiler, its `stream`) and runs `commit`, `values`, `raw`,
 * `withoutTransform` and `unprepared` itself, with the same `sql.execute` span, attributes and transaction
 * lookup. Statement transformers (`Statement.withTransformer`) are honoured by handing the statement back to
 * @effect/sql's own execution.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import { identity } from "effect/Function"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"

type RowTransform = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

/** Where a statement runs when no transaction of the fiber says otherwise. */
export interface StatementTarget {
  readonly connection: SqlConnection.Connection
  /**
   * Whether a transaction opened by another client (`TransactionConnection` in the context) takes the
   * statement over. True for the pooled client, as in @effect/sql; false for a client pinned to one connection,
   * whose statements stay on that connection even inside someone else's transaction.
   */
  readonly joinsTransactions: (transaction: SqlConnection.Connection) => boolean
}

type Operation = "execute" | "executeWithoutTransform" | "executeRaw" | "executeValues" | "executeUnprepared"

const ATTR_DB_OPERATION_NAME = "db.operation.name"
const ATTR_DB_QUERY_TEXT = "db.query.text"
const spanOptions: Tracer.SpanOptions = { kind: "client", captureStackTrace: false }
const builtInTracer = Effect.runSync(Effect.tracer)

class PoolStatement<A> extends Effectable.Class<ReadonlyArray<A>, SqlError> implements Statement.Statement<A> {
  constructor(
    /** The statement @effect/sql built from the template: segments, compilation, streaming, fallback. */
    readonly inner: Statement.Statement<A>,
    readonly target: StatementTarget,
    readonly spanAttributes: ReadonlyArray<readonly [string, unknown]>,
    readonly transformRows: RowTransform
  ) {
    super()
  }

  get [Statement.FragmentId]() {
    return identity
  }
  get segments() {
    return this.inner.segments
  }
  compile(withoutTransform?: boolean | undefined) {
    return this.inner.compile(withoutTransform)
  }
  /** A cursor, through @effect/sql; kept off another connection's transaction like the other operations. */
  get stream(): Stream.Stream<A, SqlError> {
    const { inner, target } = this
    return Stream.unwrap(
      Effect.withFiberRuntime((fiber) => {
        const transaction = Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)
        if (transaction._tag === "None" || target.joinsTransactions(transaction.value[0])) {
          return Effect.succeed(inner.stream)
        }
        // @effect/sql's stream takes the transaction's connection when there is one: name ours instead (a stream's
        // context can be overridden, not narrowed)
        return Effect.succeed(
          Stream.provideService(inner.stream, SqlClient.TransactionConnection, [target.connection, 0] as const)
        )
      })
    )
  }

  commit(): Effect.Effect<ReadonlyArray<A>, SqlError> {
    return this.run(
      "execute",
      false,
      () => this.inner,
      (conn, sql, params) => conn.execute(sql, params, this.transformRows)
    )
  }
  get withoutTransform(): Effect.Effect<ReadonlyArray<A>, SqlError> {
    return this.run(
      "executeWithoutTransform",
      true,
      () => this.inner.withoutTransform,
      (conn, sql, params) => conn.execute(sql, params, undefined)
    )
  }
  get raw(): Effect.Effect<unknown, SqlError> {
    return this.run(
      "executeRaw",
      true,
      () => this.inner.raw,
      (conn, sql, params) => conn.executeRaw(sql, params)
    )
  }
  get values(): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> {
    return this.run(
      "executeValues",
      false,
      () => this.inner.values,
      (conn, sql, params) => conn.executeValues(sql, params)
    )
  }
  get unprepared(): Effect.Effect<ReadonlyArray<A>, SqlError> {
    return this.run(
      "executeUnprepared",
      false,
      () => this.inner.unprepared,
      (conn, sql, params) => conn.executeUnprepared(sql, params, this.transformRows)
    )
  }

  private run<X>(
    operation: Operation,
    withoutTransform: boolean,
    /** Built only when a transformer is installed: the getters of @effect/sql build a new effect each time. */
    viaEffectSql: () => Effect.Effect<X, SqlError>,
    execute: (conn: SqlConnection.Connection, sql: string, params: ReadonlyArray<unknown>) => Effect.Effect<X, SqlError>
  ): Effect.Effect<X, SqlError> {
    return Effect.withFiberRuntime((fiber) => {
      // a transformer rewrites the statement before it runs: @effect/sql's own execution applies it
      if (fiber.getFiberRef(Statement.currentTransformer)._tag === "Some") return viaEffectSql()
      const transaction = Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)
      const conn =
        transaction._tag === "Some" && this.target.joinsTransactions(transaction.value[0])
          ? transaction.value[0]
          : this.target.connection
      const [sql, params] = this.inner.compile(withoutTransform)
      // Effect's built-in tracer exports nothing and no code runs inside this span, so under it the span cannot
      // be observed: skip it (a tenth of a statement's CPU). Any installed tracer (OpenTelemetry…) gets it.
      if (fiber.currentTracer === builtInTracer) return execute(conn, sql, params)
      return Effect.useSpan("sql.execute", spanOptions, (span) => {
        for (const [key, value] of this.spanAttributes) span.attribute(key, value)
        span.attribute(ATTR_DB_OPERATION_NAME, operation)
        span.attribute(ATTR_DB_QUERY_TEXT, sql)
        return execute(conn, sql, params)
      })
    })
  }
}

/**
 * Wraps @effect/sql's statement constructor so that templates and `unsafe` build `PoolStatement`s; the
 * helpers (`in`, `insert`, `literal`, identifiers…) are @effect/sql's, unchanged.
 */
export const makeConstructor = (
  base: Statement.Constructor,
  target: StatementTarget,
  spanAttributes: ReadonlyArray<readonly [string, unknown]>,
  transformRows: RowTransform
): Statement.Constructor => {
  const wrap = <A>(inner: Statement.Statement<A>): Statement.Statement<A> =>
    new PoolStatement(inner, target, spanAttributes, transformRows)
  const sql = function sql(strings: unknown, ...args: Array<any>): any {
    const made = (base as any)(strings, ...args)
    return Array.isArray(strings) && "raw" in strings ? wrap(made) : made
  }
  return Object.assign(sql, {
    unsafe: <A extends object>(text: string, params?: ReadonlyArray<unknown>) => wrap(base.unsafe<A>(text, params)),
    literal: base.literal,
    in: base.in,
    insert: base.insert,
    update: base.update,
    updateValues: base.updateValues,
    and: base.and,
    or: base.or,
    csv: base.csv,
    join: base.join,
    onDialect: base.onDialect,
    onDialectOrElse: base.onDialectOrElse
  }) as Statement.Constructor
}
