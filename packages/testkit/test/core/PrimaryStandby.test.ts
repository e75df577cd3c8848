import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { PrimaryStandby } from "../../src/core.js"
import { queryOnce, rejection } from "./pg.js"

describe("PrimaryStandby.start", () => {
  let pair: PrimaryStandby.PrimaryStandby
  beforeAll(async () => {
    pair = await PrimaryStandby.start()
  })
  afterAll(() => pair?.close())

  it("the standby is in recovery, streams from the primary, and refuses writes", async () => {
    const { primary, standby } = pair
    expect(standby.port).not.toBe(primary.port)
    expect(await queryOnce(primary.url, "SELECT pg_is_in_recovery() AS recovery")).toEqual([{ recovery: false }])
    expect(await queryOnce(standby.url, "SELECT pg_is_in_recovery() AS recovery")).toEqual([{ recovery: true }])
    // the standby streams over the replication role, on the slot kept for it
    const senders = await queryOnce<{ usename: string; slot: string }>(
      primary.url,
      "SELECT usename, (SELECT slot_name FROM pg_replication_slots WHERE active) AS slot FROM pg_stat_replication"
    )
    expect(senders).toEqual([{ usename: pair.replicationUser, slot: "testkit_standby" }])
    const error = await rejection(queryOnce(standby.url, "CREATE TABLE nope (n int)"))
    expect(error.code).toBe("25006") // read_only_sql_transaction
    expect(error.message).toContain("read-only transaction")
  })

  it("a row written on the primary appears on the standby once waitForReplay resolves", async () => {
    await queryOnce(pair.primary.url, "CREATE TABLE replicated (n int); INSERT INTO replicated VALUES (1), (2)")
    await pair.waitForReplay()
    expect(await queryOnce(pair.standby.url, "SELECT n FROM replicated ORDER BY n")).toEqual([{ n: 1 }, { n: 2 }])
  })

  it("a standby that was stopped catches up from the slot when it starts again", async () => {
    await pair.standby.stop()
    await queryOnce(pair.primary.url, "CREATE TABLE while_down AS SELECT generate_series(1, 1000) AS n")
    await pair.standby.start()
    await pair.waitForReplay()
    expect(await queryOnce(pair.standby.url, "SELECT count(*)::int AS n FROM while_down")).toEqual([{ n: 1000 }])
  })

  it("after the primary is killed and the standby promoted, the standby accepts writes and keeps the data", async () => {
    await queryOnce(pair.primary.url, "INSERT INTO replicated VALUES (3)")
    await pair.waitForReplay()
    await pair.primary.kill()
    expect(await pair.primary.isRunning()).toBe(false)
    // still a standby: writes refused until the promotion
    expect((await rejection(queryOnce(pair.standby.url, "INSERT INTO replicated VALUES (4)"))).code).toBe("25006")

    await pair.promote()

    expect(await queryOnce(pair.standby.url, "SELECT pg_is_in_recovery() AS recovery")).toEqual([{ recovery: false }])
    await queryOnce(pair.standby.url, "INSERT INTO replicated VALUES (4)")
    expect(await queryOnce(pair.standby.url, "SELECT n FROM replicated ORDER BY n")).toEqual(
      [1, 2, 3, 4].map((n) => ({ n }))
    )
    // the new primary survives its own restart as a primary (standby.signal is gone)
    await pair.standby.restart()
    expect(await queryOnce(pair.standby.url, "SELECT pg_is_in_recovery() AS recovery")).toEqual([{ recovery: false }])
  })
})
