/**
 * The health server: `PORT` (default 3000), the pool from `DATABASE_URL` and `DB_POOL_*` — or an embedded
 * PostgreSQL when `DATABASE_URL` is not set. With `DB_POOL_LOG_FILE` set, the pool's events go to that file as
 * JSON lines instead of the console.
 *
 *   pnpm --filter @effect-pg-pool/example-health-server start
 *   curl -i localhost:3000/health; curl localhost:3000/stats; curl localhost:3000/metrics
 */
import * as PoolLogger from "@effect-pg-pool/effect3/PoolLogger"
import { HttpServer } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Layer } from "effect"
import { HealthServerLive } from "./HealthServer.js"

const port = Number(process.env.PORT ?? 3000)

const LoggingLive = process.env.DB_POOL_LOG_FILE ? PoolLogger.layerFromEnv() : Layer.empty

const announce = HttpServer.addressFormattedWith((address) =>
  Console.log(`health server listening on ${address}: GET /health, /stats, /metrics`)
)

Layer.launch(
  Layer.effectDiscard(announce).pipe(Layer.provideMerge(HealthServerLive(port)), Layer.provide(LoggingLive))
).pipe(NodeRuntime.runMain)
