/**
 * Placeholder demo until the outage drill lands: boots an embedded PostgreSQL when DATABASE_URL is not set,
 * runs one query through the pool and prints the server version.
 */
import { Db } from "@effect-pg-pool/core"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Redacted } from "effect"

const databaseUrl = process.env.DATABASE_URL

const DbLive = databaseUrl
  ? Db.layer({ url: Redacted.make(databaseUrl) })
  : Layer.unwrapScoped(Effect.map(PgTestServer.makeEmbedded(), (server) => Db.layer({ url: server.url })))

const program = Effect.gen(function* () {
  const rows = yield* Db.withConnection((sql) => sql<{ version: string }>`SELECT version() AS version`)
  const stats = yield* Db.statistics
  console.log(rows[0]!.version)
  console.log(`pool: ${stats.total} connections (${stats.idle} idle), state ${stats.state}`)
})

program.pipe(Effect.provide(DbLive), NodeRuntime.runMain({ disableErrorReporting: false, disablePrettyLogger: true }))
