/**
 * What a drop-in for `PgClient.layer` is, for the suite: a function of `PgClient.layer`'s options to a layer that
 * provides `PgClient` and `SqlClient`.
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect, Layer } from "effect"
import type { SqlClient } from "effect/sql"
import * as PgServer from "../../support/PgServer.js"

/** `PgClient.layer`, or a layer that claims to replace it. */
export type MakeLayer = (
  options: PgClient.PgPoolConfig
) => Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown>

/** The client under test on the suite's server: `url` from the server, the rest as given. */
export const clientOn = (makeLayer: MakeLayer, options: Omit<PgClient.PgPoolConfig, "url"> = {}) =>
  Layer.unwrap(Effect.map(PgServer.PgServer, (server) => makeLayer({ url: server.url, ...options })))
