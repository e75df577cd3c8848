/**
 * @effect/sql-pg 4's own `PgClient.layer` (its native wire protocol and pool), multiplexing off or on.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Redacted from "effect/Redacted"
import type { MakeAdapter } from "../../../src/adapter.js"
import { makeEffectAdapter } from "./effect.js"
import { sqlClientOps } from "./statements.js"

export const make =
  (multiplex: boolean): MakeAdapter =>
  (options) =>
    makeEffectAdapter(
      PgClient.layer({ url: Redacted.make(options.url), maxConnections: options.maxSize, multiplex }),
      sqlClientOps
    )
