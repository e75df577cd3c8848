/**
 * The effect 4 side's worker: our Effect 4 edition and @effect/sql-pg 4.0.5, from bench/effect4's node_modules
 * (effect 4.1). Same measurements (bench/src/workerCore.ts) and IPC protocol as bench/src/worker.ts.
 */
import type { LoadAdapter } from "../../src/adapter.js"
import { runWorker } from "../../src/workerCore.js"

const loadAdapter: LoadAdapter = async (client) => {
  switch (client) {
    case "sql-pg4":
      return (await import("./adapters/sqlpg.js")).make(false)
    case "sql-pg4-mux":
      return (await import("./adapters/sqlpg.js")).make(true)
    case "ours4":
      return (await import("./adapters/ours.js")).make(false)
    case "ours4-mux":
      return (await import("./adapters/ours.js")).make(true)
    default:
      throw new Error(`${client} runs in bench/'s worker, not this one`)
  }
}

runWorker(loadAdapter)
