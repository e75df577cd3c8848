/**
 * The drop-in suite: what code written for @effect/sql-pg 4's `PgClient.layer` relies on, run on any layer that
 * claims to replace it. Each run gets a fresh server of its own.
 */
import { layer } from "@effect/vitest"
import * as PgServer from "../../support/PgServer.js"
import * as ClientIntegration from "./ClientIntegration.js"
import * as Errors from "./Errors.js"
import * as EventLog from "./EventLog.js"
import * as Interruption from "./Interruption.js"
import * as Listen from "./Listen.js"
import * as Migrator from "./Migrator.js"
import * as Options from "./Options.js"
import * as Persistence from "./Persistence.js"
import * as Queries from "./Queries.js"
import * as Restart from "./Restart.js"
import * as Transactions from "./Transactions.js"
import type { MakeLayer } from "./MakeLayer.js"

export type { MakeLayer } from "./MakeLayer.js"

/** Runs every part of the suite on `makeLayer`, under `name`. */
export const dropInSuite = (name: string, makeLayer: MakeLayer): void =>
  layer(PgServer.layer, { timeout: "60 seconds" })(name, (it) => {
    ClientIntegration.suite(it, makeLayer)
    Errors.suite(it, makeLayer)
    Queries.suite(it, makeLayer)
    Transactions.suite(it, makeLayer)
    Interruption.suite(it, makeLayer)
    Listen.suite(it, makeLayer)
    Options.suite(it, makeLayer)
    Migrator.suite(it, makeLayer)
    Persistence.suite(it, makeLayer)
    EventLog.suite(it, makeLayer)
    Restart.suite(it, makeLayer)
  })
