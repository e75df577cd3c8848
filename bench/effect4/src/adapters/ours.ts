/**
 * Our Effect 4 edition (packages/effect4), through `Db.layer`: a drop-in for @effect/sql-pg 4's `PgClient.layer`
 * (issue 13), so it takes the very options `sqlpg.ts` passes and runs the very same statements. Until the edition
 * exports `Db.layer`, this adapter reports the client as not available (the run lists it; nothing is measured in
 * its place).
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Edition from "@effect-pg-pool/effect4"
import type * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as SqlClient from "effect/sql/SqlClient"
import { type MakeAdapter, NotAvailable } from "../../../src/adapter.js"
import { makeEffectAdapter } from "./effect.js"
import { sqlClientOps } from "./statements.js"

/** What the drop-in promises: `PgClient.layer`'s options in, a layer providing `SqlClient` out. */
interface DropIn {
  readonly Db?: { readonly layer?: (config: PgClient.PgPoolConfig) => Layer.Layer<SqlClient.SqlClient, unknown> }
}

const edition: DropIn = Edition

export const make = (multiplex: boolean): MakeAdapter => {
  const layer = edition.Db?.layer
  if (layer === undefined) throw new NotAvailable("@effect-pg-pool/effect4 does not export Db.layer yet")
  return (options) =>
    makeEffectAdapter(
      layer({ url: Redacted.make(options.url), maxConnections: options.maxSize, multiplex }),
      sqlClientOps
    )
}
