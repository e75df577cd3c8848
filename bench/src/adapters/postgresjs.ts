/**
 * postgres.js (`postgres`): tagged templates, `sql.reserve()` + `release()` for a checkout.
 */
import postgres from "postgres"
import { blobQuery, type MakeAdapter, rowsQuery, promiseBusy, promiseLoop, promiseOutage } from "../adapter.js"

export const make: MakeAdapter = (options) => {
  let sql: postgres.Sql | undefined
  const s = () => sql!
  const select = () => s()`SELECT 1`
  const checkout = async () => {
    const reserved = await s().reserve()
    reserved.release()
  }
  const ops = {
    select,
    checkout,
    rows: () => s().unsafe(rowsQuery),
    blob: () => s().unsafe(blobQuery)
  }
  return {
    init: async () => {
      sql = postgres(options.url, { max: options.maxSize, onnotice: () => undefined })
      await sql`SELECT 1`
    },
    loop: (op, callers, deadline, recorder) => promiseLoop(callers, deadline, recorder, ops[op]),
    outage: (callers, control) => promiseOutage(callers, control, select),
    busy: (n) => promiseBusy(n, () => s()`SELECT pg_sleep(1)`),
    close: () =>
      s().end(options.shutdownTimeoutMs === undefined ? undefined : { timeout: options.shutdownTimeoutMs / 1000 })
  }
}
