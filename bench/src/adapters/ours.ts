/**
 * Our pool, through both of its paths: the @effect/sql `SqlClient` (each statement borrows a connection) and
 * `Db.withConnection` (one connection for the callback) — and the `SqlClient` with pipelining on (`pipeline: 16`
 * statement slots per connection, issue 14's pipelined statement path).
 */
import { Db, Health } from "@effect-pg-pool/effect3"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { type AdapterOptions, blobQuery, type MakeAdapter, rowsQuery } from "../adapter.js"
import { type EffectOps, makeEffectAdapter } from "./effect.js"

const layer = (options: AdapterOptions, pipeline = 0) =>
  Db.layer({
    url: Redacted.make(options.url),
    maxSize: options.maxSize,
    ...(pipeline > 0 ? { pipeline } : {}),
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

const makeSqlWith =
  (pipeline: number): MakeAdapter =>
  (options) =>
    makeEffectAdapter(
      layer(options, pipeline),
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

export const makeSql: MakeAdapter = makeSqlWith(0)

export const makePipelined: MakeAdapter = makeSqlWith(16)

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
