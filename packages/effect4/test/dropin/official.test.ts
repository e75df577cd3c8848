// The drop-in suite on @effect/sql-pg 4.0.5's own PgClient.layer: every test passes here, which proves the suite.
import { PgClient } from "@effect/sql-pg"
import { dropInSuite } from "./suite/index.js"

dropInSuite("PgClient.layer (@effect/sql-pg 4.0.5)", PgClient.layer)
