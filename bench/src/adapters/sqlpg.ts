/**
 * @effect/sql-pg's own `PgClient.layer` (a `pg.Pool` underneath).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { blobQuery, type MakeAdapter, rowsQuery } from "../adapter.js"
import { type EffectOps, makeEffectAdapter } from "./effect.js"

export const make: MakeAdapter = (options) =>
  makeEffectAdapter(
    PgClient.layer({ url: Redacted.make(options.url), maxConnections: options.maxSize }),
    Effect.map(
      SqlClient.SqlClient,
      (sql): EffectOps => ({
        select: () => sql`SELECT 1`,
        checkout: () => Effect.scoped(sql.reserve),
        rows: () => sql.unsafe(rowsQuery),
        blob: () => sql.unsafe(blobQuery),
        sleep: () => sql`SELECT pg_sleep(1)`
      })
    )
  )
