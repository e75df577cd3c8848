/**
 * Our pool, through both of its paths: the @effect/sql `SqlClient` (each statement borrows a connection) and
 * `Db.withConnection` (one connection for the callback).
 */
import { Db, Health } from "@effect-pg-pool/effect3"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { type AdapterOptions, blobQuery, type MakeAdapter, rowsQuery } from "../adapter.js"
import { type EffectOps, makeEffectAdapter } from "./effect.js"

const layer = (options: AdapterOptions) =>
  Db.layer({
    url: Redacted.make(options.url),
    maxSize: options.maxSize,
    ...(options.shutdownTimeoutMs !== undefined ? { shutdownTimeout: options.shutdownTimeoutMs } : {})
  })

const common = Effect.gen(function* () {
  const db = yield* Db.Db
  const sql = yield* SqlClient.SqlClient
  return {
    db,
    sql,
    health: db.health,
    healthJson: Effect.map(db.health, (status) => JSON.stringify(Health.encode(status))),
    sleep: () => sql`SELECT pg_sleep(1)`
  }
})

export const makeSql: MakeAdapter = (options) =>
  makeEffectAdapter(
    layer(options),
    Effect.map(
      common,
      ({ health, healthJson, sleep, sql }): EffectOps => ({
        select: () => sql`SELECT 1`,
        checkout: () => Effect.scoped(sql.reserve),
        rows: () => sql.unsafe(rowsQuery),
        blob: () => sql.unsafe(blobQuery),
        sleep,
        health,
        healthJson
      })
    )
  )

export const makeConn: MakeAdapter = (options) =>
  makeEffectAdapter(
    layer(options),
    Effect.map(
      common,
      ({ db, health, healthJson, sleep }): EffectOps => ({
        select: () => db.withConnection((sql) => sql`SELECT 1`),
        checkout: () => db.withConnection(() => Effect.void),
        rows: () => db.withConnection((sql) => sql.unsafe(rowsQuery)),
        blob: () => db.withConnection((sql) => sql.unsafe(blobQuery)),
        sleep,
        health,
        healthJson
      })
    )
  )
