/**
 * One client under test, as the worker drives it. Each implementation lives in its own module under `adapters/`
 * and is imported dynamically, so a worker process loads only the library it measures (fair RSS and CPU).
 */
import type { ClientName } from "./protocol.js"
import type { Recorder } from "./stats.js"

/**
 * `select`: `SELECT 1`; `checkout`: borrow a connection and give it back, no query; `rows`: {@link rowsQuery};
 * `blob`: {@link blobQuery}.
 */
export type Operation = "select" | "checkout" | "rows" | "blob"

/** 100 rows × 10 columns of the common types (ints, text, bool, float, numeric, timestamptz, uuid, jsonb). */
export const rowsQuery = "SELECT * FROM bench_rows"
/** One row whose one column is 1 MB of text. */
export const blobQuery = "SELECT payload FROM bench_blob"

/** The tables behind {@link rowsQuery} and {@link blobQuery}; the orchestrator runs this once per server. */
export const rowsSetup = `
DROP TABLE IF EXISTS bench_rows, bench_blob;
CREATE TABLE bench_rows AS SELECT
  g AS id,
  g::int8 * 1000003 AS big,
  'name ' || g AS name,
  'user' || g || '@example.com' AS email,
  g % 2 = 0 AS active,
  g / 7.0::float8 AS score,
  (g * 12.345)::numeric(12, 3) AS amount,
  timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute' AS created,
  md5(g::text)::uuid AS ref,
  jsonb_build_object('g', g, 'tags', jsonb_build_array('a', 'b')) AS meta
FROM generate_series(1, 100) AS g;
CREATE TABLE bench_blob AS SELECT repeat('x', 1048576) AS payload;
ANALYZE bench_rows, bench_blob;
`

/** The adapter cannot run in this checkout (its package does not export what it needs yet): reported, not faked. */
export class NotAvailable extends Error {
  override readonly name = "NotAvailable"
}

export interface OutageControl {
  stopped: boolean
  readonly onOk: () => void
  readonly onFail: () => void
}

export interface Adapter {
  /** Builds the pool and runs the first `SELECT 1`. */
  readonly init: () => Promise<void>
  /** `callers` concurrent closed loops of `op` until `deadline` (performance.now()); returns the error count. */
  readonly loop: (op: Operation, callers: number, deadline: number, recorder: Recorder) => Promise<number>
  /** Closed loops of `SELECT 1` that record every outcome and keep going through failures until stopped. */
  readonly outage: (callers: number, control: OutageControl) => Promise<void>
  /** In-process health check, `iterations` times; only clients that have one. */
  readonly health?: ((iterations: number, recorder: Recorder) => Promise<void>) | undefined
  /** The health check answer as JSON, for the HTTP server (ours only). */
  readonly healthJson?: (() => string) | undefined
  /** Starts `SELECT pg_sleep(1)` `n` times; resolves with the outcomes once all have settled. */
  readonly busy: (n: number) => Promise<{ ok: number; failed: number }>
  /** Shuts the pool down (the layer's scope, `pool.end()`, `sql.end()`). */
  readonly close: () => Promise<void>
}

export interface AdapterOptions {
  readonly url: string
  readonly maxSize: number
  /** Our pool's shutdownTimeout and postgres.js's `end({ timeout })`; the others have no such setting. */
  readonly shutdownTimeoutMs?: number | undefined
}

export type MakeAdapter = (options: AdapterOptions) => Adapter

/** A worker's registry: the adapter of each client it runs; throws {@link NotAvailable} for one it cannot run. */
export type LoadAdapter = (client: ClientName) => Promise<MakeAdapter>

/** Closed loops over a promise-returning operation. */
export const promiseLoop = async (
  callers: number,
  deadline: number,
  recorder: Recorder,
  op: () => Promise<unknown>
): Promise<number> => {
  let errors = 0
  const caller = async () => {
    while (performance.now() < deadline) {
      const started = performance.now()
      try {
        await op()
        recorder.record(performance.now() - started)
      } catch {
        errors++
      }
    }
  }
  await Promise.all(Array.from({ length: callers }, caller))
  return errors
}

const yieldMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve))

export const promiseOutage = async (
  callers: number,
  control: OutageControl,
  op: () => Promise<unknown>
): Promise<void> => {
  const caller = async () => {
    while (!control.stopped) {
      try {
        await op()
        control.onOk()
      } catch {
        control.onFail()
        // a failure can settle within the microtask queue: let timers and IPC run
        await yieldMacrotask()
      }
    }
  }
  await Promise.all(Array.from({ length: callers }, caller))
}

export const promiseBusy = async (n: number, op: () => Promise<unknown>): Promise<{ ok: number; failed: number }> => {
  const outcomes = await Promise.allSettled(Array.from({ length: n }, op))
  const ok = outcomes.filter((o) => o.status === "fulfilled").length
  return { ok, failed: n - ok }
}
