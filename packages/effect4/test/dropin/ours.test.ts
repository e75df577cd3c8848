// The drop-in suite on our layer: Db.layerPgClient, the Effect 4 edition's replacement for PgClient.layer (same
// options, same error type). A test failing here and passing in official.test.ts is a drop-in difference.
import { Db } from "@effect-pg-pool/effect4"
import { dropInSuite } from "./suite/index.js"

dropInSuite("Db.layerPgClient (@effect-pg-pool/effect4)", Db.layerPgClient)
