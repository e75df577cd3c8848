/**
 * The Effect 4 edition behind the drill's runtime-free boundary (examples/demo/src/Edition.ts): `DatabaseLive` from
 * @effect-pg-pool/effect4 (@effect/sql-pg 4's native connections underneath; `DB_POOL_MULTIPLEX=true` for
 * `--multiplex`), the query mix on its `SqlClient` and `Db.withConnection`, failures grouped from Effect 4's
 * `Cause`. Its own package, because effect 4 cannot share examples/demo's `effect` (3.x).
 */
import { DatabaseLive, Db, type Health, PoolLogger, type PoolStatistics } from "@effect-pg-pool/effect4"
import { Cause, Duration, Effect, Exit, Layer, ManagedRuntime, Option, Predicate } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import type * as Edition from "../../demo/src/Edition.js"
import { firstLine, SETUP_STATEMENTS, sqlState, sqlStateKind, TABLE } from "../../demo/src/Edition.js"

const tagOf = (u: unknown): string | undefined => (Predicate.hasProperty(u, "_tag") ? String(u._tag) : undefined)

/** Groups a failure by its tag, and a SqlError further by its reason and what lies beneath it. */
export const classify = (cause: Cause.Cause<unknown>): { readonly kind: string; readonly message: string } => {
  const failure = Cause.findErrorOption(cause)
  if (Option.isNone(failure)) {
    const defect = Cause.squash(cause)
    if (tagOf(defect) === "SqlError") {
      const { kind, message } = classify(Cause.fail(defect))
      return { kind: `${kind}, as a defect`, message }
    }
    return { kind: "defect", message: firstLine(Cause.pretty(cause)) }
  }
  const error = failure.value
  const message = error instanceof Error ? error.message : String(error)
  if (tagOf(error) !== "SqlError") return { kind: tagOf(error) ?? "unknown", message }
  // effect/sql 4's SqlError carries a classified reason (ConnectionError, …) whose cause is the driver's error
  const reason = (error as { readonly reason?: unknown }).reason
  const inner = (reason as { readonly cause?: unknown } | undefined)?.cause
  // the pooled SqlClient wraps the pool's own errors in a SqlError (reason ConnectionError)
  const innerTag = tagOf(inner)
  if (innerTag === "AcquireTimeout" || innerTag === "PoolClosed") return { kind: `${innerTag} (as SqlError)`, message }
  const code = sqlState(reason)
  if (code !== undefined) return { kind: sqlStateKind(code), message }
  return { kind: `SqlError ${tagOf(reason) ?? ""}`.trim(), message }
}

const figures = (s: PoolStatistics.PoolStatistics): Edition.Figures => ({
  total: s.total,
  idle: s.idle,
  active: s.active,
  pending: s.pending,
  waiting: s.waiting,
  minSize: s.minSize,
  maxSize: s.maxSize,
  peakWaiting: s.peakWaiting,
  acquisitionTimeP99Ms: s.acquisitionTimeP99Ms,
  acquisitionTimeAvgMs: s.acquisitionTimeAvgMs,
  acquireTimeouts: s.acquireTimeouts,
  reconnectAttempts: s.reconnectAttempts,
  connectionsCreated: s.connectionsCreated,
  connectionsClosedBroken: s.connectionsClosed.broken,
  hosts: s.hosts.map((h) => ({
    label: `${h.host}:${h.port}`,
    role: h.role,
    up: h.up,
    sessions: h.sessions,
    failures: h.failures
  }))
})

const healthView = (h: Health.HealthStatus): Edition.HealthView => ({
  status: h.status,
  reason: Option.getOrUndefined(h.reason),
  reachable: h.database.reachable,
  latencyMs: Option.getOrUndefined(h.database.latencyMs),
  probedAt: Option.getOrUndefined(Option.map(h.database.probedAt, (at) => at.getTime()))
})

const queries = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const db = yield* Db.Db
  const table = sql(TABLE)
  return {
    sleep: () => sql`SELECT pg_sleep(0.002)`,
    insert: (worker: number) => sql`INSERT INTO ${table} ${sql.insert({ worker, note: "via SqlClient" })}`,
    count: (worker: number) => sql`SELECT count(*)::int AS n FROM ${table} WHERE worker = ${worker}`,
    session: (worker: number) =>
      db.withConnection((conn) =>
        conn.withTransaction(
          Effect.andThen(
            conn`INSERT INTO ${table} ${conn.insert({ worker, note: "via Db.withConnection" })}`,
            conn`SELECT count(*)::int AS n FROM ${table} WHERE worker = ${worker}`
          )
        )
      )
  } satisfies Record<Edition.Query, (worker: number) => Effect.Effect<unknown, unknown>>
})

const start = Effect.gen(function* () {
  const db = yield* Db.Db
  const sql = yield* SqlClient.SqlClient
  for (const statement of SETUP_STATEMENTS) yield* sql.unsafe(statement)
  const [row] = yield* sql<{ readonly version: string }>`SELECT current_setting('server_version') AS version`
  return { db, sql, q: yield* queries, serverVersion: row?.version ?? "unknown" }
})

const errorMessage = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : Cause.pretty(cause)
}

/** The Effect 4 edition for `pnpm demo -- --effect 4`. */
export const edition: Edition.Edition = {
  // the pool writes its own log to DB_POOL_LOG_FILE when set (and redacts DATABASE_URL's password there); every
  // other logger is removed, so nothing of the library's reaches the terminal
  open: async () => {
    const runtime = ManagedRuntime.make(Layer.provideMerge(DatabaseLive, PoolLogger.layerSilent))
    const started = await runtime.runPromiseExit(start)
    if (Exit.isFailure(started)) {
      await runtime.dispose()
      throw new Error(errorMessage(started.cause))
    }
    const { db, q, serverVersion, sql } = started.value
    const { config } = db
    return {
      info: {
        edition: `@effect-pg-pool/effect4 (Effect 4, @effect/sql-pg 4${config.multiplex ? ", multiplexed" : ""})`,
        name: config.name,
        host: config.host,
        port: config.port,
        minSize: config.minSize,
        maxSize: config.maxSize,
        acquireTimeoutMillis: Duration.toMillis(config.acquireTimeout),
        applicationName: config.applicationName,
        statementsPerConnection: config.multiplex ? config.multiplexConcurrency : 1,
        serverVersion
      },
      statistics: () => figures(runtime.runSync(db.statistics)),
      health: () => healthView(runtime.runSync(db.health)),
      run: async (query, worker, signal) => {
        const exit = await runtime.runPromiseExit(q[query](worker), { signal })
        if (Exit.isSuccess(exit)) return { _tag: "Ok" }
        if (Cause.hasInterruptsOnly(exit.cause)) return { _tag: "Interrupted" }
        return { _tag: "Failed", ...classify(exit.cause) }
      },
      dropTable: async () => {
        await runtime.runPromiseExit(sql`DROP TABLE IF EXISTS ${sql(TABLE)}`.pipe(Effect.timeout("3 seconds")))
      },
      close: () => runtime.dispose()
    }
  }
}
