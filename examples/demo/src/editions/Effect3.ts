/**
 * The Effect 3 edition behind the drill's runtime-free boundary (`Edition.ts`): `DatabaseLive` from
 * @effect-pg-pool/effect3 (pg underneath), the query mix on its `SqlClient` and `Db.withConnection`, failures
 * grouped from Effect 3's `Cause`.
 */
import { DatabaseLive, Db, type Health, type PoolStatistics } from "@effect-pg-pool/effect3"
import * as PoolLogger from "@effect-pg-pool/effect3/PoolLogger"
import { SqlClient } from "@effect/sql"
import { Cause, Duration, Effect, Exit, Layer, ManagedRuntime, Option, Predicate } from "effect"
import type * as Edition from "../Edition.js"
import { firstLine, SETUP_STATEMENTS, sqlState, sqlStateKind, TABLE } from "../Edition.js"

/** Groups a failure by its tag, and a SqlError further by what lies beneath it. */
export const classify = (cause: Cause.Cause<unknown>): { readonly kind: string; readonly message: string } => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) {
    const defect = Cause.squash(cause)
    // @effect/sql's withTransaction dies when its COMMIT or ROLLBACK fails, e.g. on a connection the crash broke
    if (Predicate.isTagged(defect, "SqlError")) {
      const { kind, message } = classify(Cause.fail(defect))
      return { kind: `${kind}, as a defect from withTransaction`, message }
    }
    return { kind: "defect", message: firstLine(Cause.pretty(cause)) }
  }
  const error = failure.value
  const message = error instanceof Error ? error.message : String(error)
  if (!Predicate.isTagged(error, "SqlError")) {
    return { kind: Predicate.hasProperty(error, "_tag") ? String(error._tag) : "unknown", message }
  }
  const inner = (error as { readonly cause?: unknown }).cause
  // the pooled SqlClient wraps the pool's own errors in a SqlError
  if (Predicate.isTagged(inner, "AcquireTimeout") || Predicate.isTagged(inner, "PoolClosed")) {
    return { kind: `${inner._tag} (as SqlError)`, message }
  }
  const code = sqlState(inner)
  if (code !== undefined) return { kind: sqlStateKind(code), message }
  if (/Connection lost/.test(message)) return { kind: "SqlError connection lost", message }
  return { kind: "SqlError", message }
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
          Effect.zipRight(
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

export const edition: Edition.Edition = {
  open: async ({ redact }) => {
    // the logger goes under the pool (provideMerge), so that the pool's background fibers inherit it
    const runtime = ManagedRuntime.make(Layer.provideMerge(DatabaseLive, PoolLogger.layerFromEnv({ redact: [redact] })))
    const started = await runtime.runPromiseExit(start)
    if (Exit.isFailure(started)) {
      await runtime.dispose()
      throw new Error(
        Cause.squash(started.cause) instanceof Error
          ? (Cause.squash(started.cause) as Error).message
          : Cause.pretty(started.cause)
      )
    }
    const { db, q, serverVersion, sql } = started.value
    const { config } = db
    return {
      info: {
        edition: "@effect-pg-pool/effect3 (Effect 3, pg)",
        name: config.name,
        host: config.host,
        port: config.port,
        minSize: config.minSize,
        maxSize: config.maxSize,
        acquireTimeoutMillis: Duration.toMillis(config.acquireTimeout),
        applicationName: config.applicationName,
        statementsPerConnection: 1,
        serverVersion
      },
      statistics: () => figures(runtime.runSync(db.statistics)),
      health: () => healthView(runtime.runSync(db.health)),
      run: async (query, worker, signal) => {
        const exit = await runtime.runPromiseExit(q[query](worker), { signal })
        if (Exit.isSuccess(exit)) return { _tag: "Ok" }
        if (Cause.isInterruptedOnly(exit.cause)) return { _tag: "Interrupted" }
        return { _tag: "Failed", ...classify(exit.cause) }
      },
      dropTable: async () => {
        await runtime.runPromiseExit(sql`DROP TABLE IF EXISTS ${sql(TABLE)}`.pipe(Effect.timeout("3 seconds")))
      },
      close: () => runtime.dispose()
    }
  }
}
