/**
 * @effect/sql-pg 4's own `PgClient.layer` (its native wire protocol and pool), multiplexing off or on.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { blobQuery, type MakeAdapter, rowsQuery } from "../../../src/adapter.js"
import { type EffectOps, makeEffectAdapter } from "./effect.js"

/** The statements every SqlClient-shaped Effect 4 client runs (ours through `Db.layer` as well). */
export const sqlClientOps = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return {
    select: () => sql`SELECT 1`,
    checkout: () => Effect.scoped(sql.reserve),
    rows: () => sql.unsafe(rowsQuery),
    blob: () => sql.unsafe(blobQuery),
    sleep: () => sql`SELECT pg_sleep(1)`
  } satisfies EffectOps
})

export const make =
  (multiplex: boolean): MakeAdapter =>
  (options) =>
    makeEffectAdapter(
      PgClient.layer({ url: Redacted.make(options.url), maxConnections: options.maxSize, multiplex }),
      sqlClientOps
    )
