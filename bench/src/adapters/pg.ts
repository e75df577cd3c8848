/**
 * node-postgres's `pg.Pool`: `pool.query` for statements, `connect()` + `release()` for a checkout.
 */
import Pg from "pg"
import { blobQuery, type MakeAdapter, rowsQuery, promiseBusy, promiseLoop, promiseOutage } from "../adapter.js"

export const make: MakeAdapter = (options) => {
  let pool: Pg.Pool | undefined
  const p = () => pool!
  const select = () => p().query("SELECT 1")
  const checkout = async () => {
    const client = await p().connect()
    client.release()
  }
  const ops = {
    select,
    checkout,
    rows: () => p().query(rowsQuery),
    blob: () => p().query(blobQuery)
  }
  return {
    init: async () => {
      pool = new Pg.Pool({ connectionString: options.url, max: options.maxSize })
      // an idle client's socket error is emitted on the pool; unlistened, it would crash the process
      pool.on("error", () => undefined)
      await pool.query("SELECT 1")
    },
    loop: (op, callers, deadline, recorder) => promiseLoop(callers, deadline, recorder, ops[op]),
    outage: (callers, control) => promiseOutage(callers, control, select),
    busy: (n) => promiseBusy(n, () => p().query("SELECT pg_sleep(1)")),
    close: () => p().end()
  }
}
