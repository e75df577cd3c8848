import { Reactivity } from "@effect/experimental"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Logger, Redacted, Stream } from "effect"
import * as Db from "../src/Db.js"
import { adminClient, backendPids, eventually, realSleep, uniqueAppName } from "./utils.js"
import { errorResponse, queryText, wireProxy } from "./wireProxy.js"

/**
 * A pool behind a proxy that answers every LISTEN as a hot standby would ("cannot execute LISTEN during
 * recovery", SQLSTATE 25006) or swallows it, and the pool's log lines as logfmt text, as a user would read them.
 */
const setup = (initial: "pass" | "refuse" | "swallow") =>
  Effect.gen(function* () {
    const mode = { now: initial }
    const server = yield* PgTestServer.PgTestServer
    const password = Redacted.value(server.password)
    const listens = { seen: 0 }
    const { url } = yield* wireProxy({
      fromClient: (message, reply) => {
        if (mode.now === "pass" || !queryText(message)?.startsWith("LISTEN")) return message
        listens.seen++
        // the refusal quotes the connection URL, password and all: the log must not
        if (mode.now === "refuse") {
          reply(errorResponse("25006", `cannot execute LISTEN during recovery (${Redacted.value(server.url)})`))
        }
        return undefined
      }
    })
    const lines: Array<string> = []
    const capture = Logger.map(Logger.logfmtLogger, (line) => {
      lines.push(line)
    })
    const applicationName = uniqueAppName("listen-fails")
    const db = yield* Db.make({
      url,
      applicationName,
      minSize: 1,
      maxSize: 1,
      reconnect: { initialDelay: "50 millis", maxDelay: "100 millis" }
    }).pipe(Effect.provide([Reactivity.layer, Logger.replace(Logger.defaultLogger, capture)]))
    const admin = yield* adminClient
    // the LISTEN connection takes no pool slot: every backend beyond the pool's own is the listener's
    const listenerBackends = Effect.flatMap(backendPids(admin, applicationName), (pids) =>
      Effect.map(db.statistics, (s) => pids.length - s.total)
    )
    return { db, mode, listens, lines, password, listenerBackends }
  })

layer(PgTestServer.layer, { timeout: 60_000, excludeTestServices: true })("the LISTEN connection", (it) => {
  it.scoped("a refused LISTEN closes its connection before the retry, and logs the error's text and SQLSTATE", () =>
    Effect.gen(function* () {
      const { db, listens, lines, password, listenerBackends } = yield* setup("refuse")
      assert.isAbove(password.length, 0, "a password the log could leak")
      const fiber = yield* Effect.forkScoped(Stream.runDrain(db.sql.listen("standby_events")))
      yield* eventually(
        "five LISTENs were refused",
        Effect.sync(() => listens.seen >= 5)
      )
      // each attempt logged in, was refused and must have logged out again: at most the attempt in progress is open
      assert.isAtMost(yield* listenerBackends, 1)
      yield* Fiber.interrupt(fiber)
      yield* eventually(
        "no LISTEN connection is left on the server",
        Effect.map(listenerBackends, (n) => n === 0)
      )
      const failures = lines.filter((line) => line.includes("LISTEN connection failed"))
      assert.isAtLeast(failures.length, 4)
      for (const line of failures) {
        assert.include(line, "level=WARN")
        assert.include(line, "cannot execute LISTEN during recovery")
        assert.include(line, "SQLSTATE 25006")
      }
      for (const line of lines) {
        assert.notInclude(line, "[object Object]")
        assert.notInclude(line, password)
        assert.notInclude(line, encodeURIComponent(password))
      }
    })
  )

  it.scoped("a LISTEN interrupted while it waits for its answer closes its connection", () =>
    Effect.gen(function* () {
      const { db, listens, listenerBackends } = yield* setup("swallow")
      const fiber = yield* Effect.forkScoped(Stream.runDrain(db.sql.listen("silent_events")))
      yield* eventually(
        "the LISTEN was sent",
        Effect.sync(() => listens.seen === 1)
      )
      assert.strictEqual(yield* listenerBackends, 1)
      // the last subscriber leaves while the LISTEN has no answer: the loop is interrupted mid-LISTEN
      yield* Fiber.interrupt(fiber)
      yield* eventually(
        "no LISTEN connection is left on the server",
        Effect.map(listenerBackends, (n) => n === 0)
      )
      yield* realSleep(200)
      assert.strictEqual(yield* listenerBackends, 0)
    })
  )

  it.scoped("a LISTEN refused on the established connection reconnects, so that channel is not silently deaf", () =>
    Effect.gen(function* () {
      const { db, mode, lines } = yield* setup("pass")
      const received: Array<string> = []
      const listen = (channel: string) =>
        Effect.forkScoped(
          db.sql.listen(channel).pipe(
            Stream.tap((payload) => Effect.sync(() => received.push(`${channel}:${payload}`))),
            Stream.runDrain
          )
        )
      const notifyUntil = (channel: string, payload: string) =>
        eventually(
          `${channel}:${payload} arrives`,
          Effect.zipRight(
            Effect.ignore(db.sql.notify(channel, payload)),
            Effect.zipRight(
              realSleep(20),
              Effect.sync(() => received.includes(`${channel}:${payload}`))
            )
          )
        )
      yield* listen("first_events")
      yield* notifyUntil("first_events", "1")
      mode.now = "refuse"
      yield* listen("second_events")
      yield* eventually(
        "the refusal is logged",
        Effect.sync(() => lines.some((line) => line.includes("LISTEN failed; reconnecting")))
      )
      mode.now = "pass"
      yield* notifyUntil("second_events", "2")
      yield* notifyUntil("first_events", "3")
      const refusal = lines.find((line) => line.includes("LISTEN failed; reconnecting"))!
      assert.include(refusal, "level=WARN")
      assert.include(refusal, "SQLSTATE 25006")
    })
  )
})
