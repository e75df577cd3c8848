import { Db } from "@effect-pg-pool/effect4"
import { Effect, Layer, Logger, Redacted } from "effect"
import type { TestServer } from "./server.js"

let counter = 0

/** An application_name no other test uses, to find this pool's sessions in pg_stat_activity. */
export const uniqueAppName = (label: string) => `e4-${label}-${process.pid}-${++counter}`

/** A pool on the test server, its logs silenced. */
export const dbLayer = (server: TestServer, options: Db.DbOptions = {}) =>
  Db.layer({
    url: Redacted.make(server.url),
    reconnect: { initialDelay: "100 millis", maxDelay: "1 second" },
    ...options
  }).pipe(Layer.provide(Logger.layer([])))

/** Sessions the server has with that application_name, by state. */
export const serverSessions = (server: TestServer, applicationName: string) =>
  Effect.provide(
    Db.withConnection(
      (sql) =>
        sql<{ state: string | null; query: string }>`
        SELECT state, query FROM pg_stat_activity WHERE application_name = ${applicationName}`
    ),
    dbLayer(server, { minSize: 0, maxSize: 1, applicationName: "e4-observer" })
  )
