import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import * as Pg from "pg"
import * as Pipeline from "../src/internal/pipeline.js"
import { seededRandom, testSeed } from "./faults.js"
import { adminClient, adminQuery, eventually, realSleep, uniqueAppName } from "./utils.js"

const Env = FaultProxy.layer.pipe(Layer.provideMerge(PgTestServer.layer))

interface Slot {
  client: Pg.Client
  session: Pipeline.PipelinedSession
}

/**
 * Ten pipelined sessions through the fault proxy, each statement on the least-loaded sound one, an unsound one
 * replaced once its statements are off the wire: the engine's statement slots in miniature, so that what is under
 * test is the session, not a pool.
 */
const makeSessions = (url: string, applicationName: string, size: number) =>
  Effect.gen(function* () {
    const open = () =>
      Effect.promise(async () => {
        const client = new Pg.Client({ connectionString: url, application_name: applicationName })
        client.on("error", () => {})
        await client.connect()
        return { client, session: Pipeline.make(client) }
      })
    const slots: Array<Slot> = yield* Effect.all(Array.from({ length: size }, open))
    const replacing = new Set<Slot>()
    const replacer = Effect.gen(function* () {
      for (;;) {
        for (const slot of slots) {
          if (slot.session.sound || slot.session.inFlight > 0 || replacing.has(slot)) continue
          replacing.add(slot)
          ;(slot.client as any).connection.stream.destroy()
          const fresh = yield* Effect.exit(open())
          if (Exit.isSuccess(fresh)) Object.assign(slot, fresh.value)
          replacing.delete(slot)
        }
        yield* realSleep(10)
      }
    })
    yield* Effect.forkScoped(replacer)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const slot of slots) (slot.client as any).connection.stream.destroy()
      })
    )
    const pick = Effect.gen(function* () {
      for (;;) {
        let best: Pipeline.PipelinedSession | undefined
        for (const { session } of slots) {
          if (session.sound && (best === undefined || session.inFlight < best.inFlight)) best = session
        }
        if (best !== undefined) return best
        yield* realSleep(5)
      }
    })
    return { slots, pick }
  })

layer(Env, { timeout: 60_000, excludeTestServices: true })("pipelined sessions under faults", (it) => {
  it.scoped(
    "100 callers, interruption storm, socket resets and a terminated backend: every call typed, own result, no hang, every slot back once",
    () =>
      Effect.gen(function* () {
        const proxy = yield* FaultProxy.FaultProxy
        const admin = yield* adminClient
        const applicationName = uniqueAppName("pipeline-faults")
        const random = seededRandom(testSeed("pipeline faults"))
        const { slots, pick } = yield* makeSessions(Redacted.value(proxy.url), applicationName, 10)
        const totals = { ok: 0, interrupted: 0, statementErrors: 0, connectionErrors: 0, wrong: 0, hung: 0 }
        const unexpected: Array<string> = []
        let runs = 0
        const done = new Map<number, number>()
        let running = true
        const caller = Effect.gen(function* () {
          while (running) {
            const id = ++runs
            const n = Math.floor(random() * 1_000_000)
            const failing = random() < 0.05
            const slow = random() < 0.2
            const interrupt = random() < 0.2
            const text = failing
              ? "SELECT $1::int / 0 AS n"
              : slow
                ? "SELECT $1::int AS n FROM pg_sleep(0.002)"
                : "SELECT $1::int AS n"
            let call = Effect.flatMap(pick, (session) =>
              session.run(text, [n], undefined, () => done.set(id, (done.get(id) ?? 0) + 1))
            )
            if (interrupt) call = Effect.timeout(call, 1 + Math.floor(random() * 5)) as typeof call
            const exit = yield* call.pipe(Effect.timeoutOption(5_000), Effect.exit)
            if (Exit.isSuccess(exit)) {
              if (Option.isNone(exit.value)) totals.hung++
              else if ((exit.value.value.rows[0] as any).n !== n || failing) totals.wrong++
              else totals.ok++
              continue
            }
            const error = Option.getOrUndefined(Cause.failureOption(exit.cause)) as any
            if (error?._tag === "TimeoutException" && interrupt) totals.interrupted++
            else if (error?._tag === "PipelineError" && error.reason === "connection") totals.connectionErrors++
            else if (error?._tag === "PipelineError" && error.reason === "statement" && failing)
              totals.statementErrors++
            else unexpected.push(error?._tag ? `${error._tag}: ${error.message}` : Cause.pretty(exit.cause))
          }
        })
        const fibers = yield* Effect.forEach(
          Array.from({ length: 100 }, () => caller),
          Effect.fork
        )
        yield* realSleep(500)
        yield* proxy.resetAll
        yield* realSleep(700)
        yield* proxy.resetAll
        yield* realSleep(700)
        yield* adminQuery(
          admin,
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 LIMIT 1",
          [applicationName]
        )
        yield* realSleep(700)
        running = false
        yield* Fiber.joinAll(fibers)
        process.stdout.write(`[pipeline faults] ${JSON.stringify({ runs, ...totals })}\n`)
        assert.deepStrictEqual(unexpected, [])
        assert.strictEqual(totals.hung, 0)
        assert.strictEqual(totals.wrong, 0)
        assert.isAbove(totals.ok, 200)
        assert.isAbove(totals.interrupted, 20)
        assert.isAbove(totals.statementErrors, 5)
        assert.isAbove(totals.connectionErrors, 0)
        // every statement that was run handed its slot back exactly once, abandoned ones included
        yield* eventually(
          "every statement is off the wire",
          Effect.sync(() => slots.every((slot) => slot.session.inFlight === 0))
        )
        const twice = [...done.values()].filter((count) => count !== 1).length
        assert.strictEqual(twice, 0)
        assert.isAtMost(done.size, runs)
        // the calls that never reached a session (interrupted while none was sound) are the only ones without one
        assert.isAtLeast(done.size, totals.ok + totals.statementErrors)
      })
  )
})
