/**
 * The effect 3 side's worker: our Effect 3 edition, @effect/sql-pg 0.53, pg.Pool and postgres.js, from bench/'s
 * node_modules. The measurements are workerCore.ts; each adapter is imported only by the process that measures it.
 */
import type { LoadAdapter } from "./adapter.js"
import { runWorker } from "./workerCore.js"

const loadAdapter: LoadAdapter = async (client) => {
  switch (client) {
    case "ours-sql":
      return (await import("./adapters/ours.js")).makeSql
    case "ours-pipe":
      return (await import("./adapters/ours.js")).makePipelined
    case "ours-conn":
      return (await import("./adapters/ours.js")).makeConn
    case "effect-sql-pg":
      return (await import("./adapters/sqlpg.js")).make
    case "pg-pool":
      return (await import("./adapters/pg.js")).make
    case "postgres-js":
      return (await import("./adapters/postgresjs.js")).make
    default:
      throw new Error(`${client} runs in bench/effect4's worker, not this one`)
  }
}

runWorker(loadAdapter)
