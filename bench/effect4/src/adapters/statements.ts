/**
 * The statements every SqlClient-shaped Effect 4 client runs: @effect/sql-pg 4's and ours through `Db.layer`. A
 * module of its own, so that loading it does not load @effect/sql-pg's modules into our client's import time.
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import { blobQuery, rowsQuery } from "../../../src/adapter.js"
import type { EffectOps } from "./effect.js"

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
