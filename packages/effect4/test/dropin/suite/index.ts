/**
 * The drop-in suite: what code written for @effect/sql-pg 4's `PgClient.layer` relies on, run on any layer that
 * claims to replace it. Each run gets a fresh server of its own.
 */
import { layer } from "@effect/vitest"
import * as PgServer from "../../support/PgServer.js"
import * as ClientIntegration from "./ClientIntegration.js"
import type { MakeLayer } from "./MakeLayer.js"

export type { MakeLayer } from "./MakeLayer.js"

/** Runs every part of the suite on `makeLayer`, under `name`. */
export const dropInSuite = (name: string, makeLayer: MakeLayer): void =>
  layer(PgServer.layer, { timeout: "60 seconds" })(name, (it) => {
    ClientIntegration.suite(it, makeLayer)
  })
