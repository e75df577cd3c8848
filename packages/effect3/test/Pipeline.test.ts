import { FaultProxy, PgTestServer } from "@effect-pg-pool/testkit"
import type { Engine } from "@effect-pg-pool/engine"
import { assert, describe, it as plainIt, layer } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import * as Pg from "pg"
import Cursor from "pg-cursor"
import * as Pipeline from "../src/internal/pipeline.js"
import { adminClient, adminQuery, eventually, realSleep, uniqueAppName } from "./utils.js"

const Env = FaultProxy.layer.pipe(Layer.provideMerge(PgTestServer.layer))

/** A connected client with the listeners the driver attaches (an `error` event must never crash), in the scope. */
interface ConnectOptions {
  readonly viaProxy?: boolean
  readonly applicationName?: string
  readonly statementTimeoutMillis?: number
}

const connect = (options: ConnectOptions = {}) =>
  Effect.gen(function* () {
    const server = yield* PgTestServer.PgTestServer
    const proxy = yield* FaultProxy.FaultProxy
    const url = Redacted.value(options.viaProxy ? proxy.url : server.url)
    return yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new Pg.Client({
          connectionString: url,
          ...(options.applicationName ? { application_name: options.applicationName } : {}),
          ...(options.statementTimeoutMillis ? { statement_timeout: options.statementTimeoutMillis } : {})
        })
        client.on("error", () => {})
        await client.connect()
        return client
      }),
      (client) => Effect.sync(() => (client as any).connection.stream.destroy())
    )
  })

/** A pipelined session on a fresh client, recording every `onDone` it reports. */
const session = (options: ConnectOptions = {}) =>
  Effect.map(connect(options), (client) => {
    const pipeline = Pipeline.make(client)
    const done: Array<Engine.SessionFacts> = []
    // what pg itself has written and not seen answered yet (the statements behind the one it reads): the evidence
    // of pipelining, counted by pg rather than by the module under test
    let maxInFlight = 0
    const run = (text: string, values?: ReadonlyArray<unknown>, rowMode?: "array") =>
      pipeline.run(text, values, rowMode, (facts) => {
        maxInFlight = Math.max(maxInFlight, (client as any)._sentQueryQueue.length + 1)
        done.push(facts)
      })
    return { client, pipeline, done, run, maxInFlight: () => maxInFlight }
  })

const rows = (result: Pipeline.Result) => result.rows as Array<any>

const failure = (exit: Exit.Exit<unknown, Pipeline.PipelineError>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

describe("pipelineable", () => {
  plainIt("takes single autocommit statements", () => {
    for (const sql of [
      "SELECT 1",
      "select $1::int",
      "SELECT 1;",
      "INSERT INTO t VALUES ($1) RETURNING id",
      "  -- c\n(SELECT 1)",
      "WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x",
      "DELETE FROM t WHERE id = ANY($1)"
    ]) {
      assert.isTrue(Pipeline.pipelineable(sql), sql)
    }
  })

  plainIt("refuses transaction control, COPY, session state and several statements", () => {
    for (const sql of [
      "BEGIN",
      "start transaction",
      "COMMIT",
      "ROLLBACK",
      "SAVEPOINT a",
      "COPY t FROM STDIN",
      "copy t to stdout",
      "SET search_path = x",
      "SET LOCAL statement_timeout = 1",
      "LOCK TABLE t",
      "SELECT set_config('a.b', 'c', false)",
      "SELECT pg_advisory_lock(1)",
      "CREATE TEMP TABLE x (a int)",
      "LISTEN c",
      "SELECT 1; SELECT 2",
      "INSERT INTO t VALUES (1); COMMIT",
      "DO $$ BEGIN END $$",
      "",
      "42"
    ]) {
      assert.isFalse(Pipeline.pipelineable(sql), sql)
    }
  })
})

layer(Env, { timeout: 60_000, excludeTestServices: true })("a pipelined session", (it) => {
  it.scoped("runs 200 concurrent statements on one connection, each with its own result", () =>
    Effect.gen(function* () {
      const s = yield* session()
      const results = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        (i) => s.run("SELECT $1::int AS n, pg_backend_pid() AS pid", [i]),
        { concurrency: "unbounded" }
      )
      for (const [i, result] of results.entries()) assert.strictEqual(rows(result)[0].n, i)
      assert.strictEqual(new Set(results.map((r) => rows(r)[0].pid)).size, 1)
      // written before the first answer came back: pipelined, not one round trip each
      assert.isAbove(s.maxInFlight(), 100)
      assert.strictEqual(s.done.length, 200)
      assert.isTrue(
        s.done.every((f) => !f.broken && f.inFlight === 0 && f.queries === 1 && f.transactionStatus === "I")
      )
      assert.strictEqual(s.pipeline.inFlight, 0)
      assert.isTrue(s.pipeline.sound)
    })
  )

  it.scoped("one failing statement among successes fails only itself; the session stays sound", () =>
    Effect.gen(function* () {
      const s = yield* session()
      const exits = yield* Effect.forEach(
        Array.from({ length: 21 }, (_, i) => i),
        (i) => Effect.exit(s.run(i === 10 ? "SELECT 1 / ($1::int - 10) AS n" : "SELECT $1::int AS n", [i])),
        { concurrency: "unbounded" }
      )
      assert.isAbove(s.maxInFlight(), 10)
      exits.forEach((exit, i) => {
        if (i === 10) {
          const error = failure(exit)!
          assert.strictEqual(error.reason, "statement")
          assert.strictEqual((error.cause as any).code, "22012")
          assert.match(error.message, /SQLSTATE 22012.*division by zero/)
        } else {
          assert.isTrue(Exit.isSuccess(exit), `statement ${i}`)
          if (Exit.isSuccess(exit)) assert.strictEqual(rows(exit.value)[0].n, i)
        }
      })
      assert.isTrue(s.pipeline.sound)
      assert.isTrue(s.done.every((f) => !f.broken))
      assert.strictEqual(rows(yield* s.run("SELECT 'after' AS v"))[0].v, "after")
    })
  )

  it.scoped("a statement the server cancels (statement_timeout) fails alone; those behind it run at once", () =>
    Effect.gen(function* () {
      const s = yield* session({ statementTimeoutMillis: 200 })
      const startedAt = Date.now()
      const [slow, ...quick] = yield* Effect.all(
        [
          Effect.exit(s.run("SELECT pg_sleep(5)")),
          ...Array.from({ length: 5 }, (_, i) => Effect.exit(s.run("SELECT $1::int AS n", [i])))
        ],
        { concurrency: "unbounded" }
      )
      assert.isBelow(Date.now() - startedAt, 2000)
      assert.strictEqual(failure(slow!)?.reason, "statement")
      assert.strictEqual((failure(slow!)?.cause as any)?.code, "57014")
      for (const [i, exit] of quick.entries()) {
        assert.isTrue(Exit.isSuccess(exit))
        if (Exit.isSuccess(exit)) assert.strictEqual(rows(exit.value)[0].n, i)
      }
      assert.isTrue(s.pipeline.sound)
      assert.isTrue(s.done.every((f) => !f.broken))
    })
  )

  it.scoped("an error inside pipelined writes rolls back only that statement: the others are committed", () =>
    Effect.gen(function* () {
      const s = yield* session()
      const admin = yield* adminClient
      const table = `pipeline_commit_${process.pid}`
      yield* adminQuery(admin, `DROP TABLE IF EXISTS ${table}`)
      yield* adminQuery(admin, `CREATE TABLE ${table} (id int PRIMARY KEY)`)
      // id 5 is inserted twice: the second insert fails with a unique violation, and nothing else may be lost
      const ids = [1, 2, 3, 4, 5, 5, 6, 7, 8, 9]
      const exits = yield* Effect.forEach(ids, (id) => Effect.exit(s.run(`INSERT INTO ${table} VALUES ($1)`, [id])), {
        concurrency: "unbounded"
      })
      assert.isAbove(s.maxInFlight(), 5)
      assert.strictEqual(failure(exits[5]!)?.reason, "statement")
      assert.strictEqual((failure(exits[5]!)?.cause as any)?.code, "23505")
      assert.strictEqual(exits.filter(Exit.isSuccess).length, 9)
      const stored = yield* adminQuery<{ id: number }>(admin, `SELECT id FROM ${table} ORDER BY id`)
      assert.deepStrictEqual(
        stored.map((r) => r.id),
        [1, 2, 3, 4, 5, 6, 7, 8, 9]
      )
      yield* adminQuery(admin, `DROP TABLE ${table}`)
    })
  )

  it.scoped("a terminated backend fails every statement in flight with a connection error, and nothing after", () =>
    Effect.gen(function* () {
      const applicationName = uniqueAppName("pipeline-kill")
      const s = yield* session({ applicationName })
      const admin = yield* adminClient
      const pid = rows(yield* s.run("SELECT pg_backend_pid() AS pid"))[0].pid
      const fibers = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => Effect.fork(Effect.exit(i === 0 ? s.run("SELECT pg_sleep(10)") : s.run("SELECT $1::int AS n", [i]))),
        { concurrency: "unbounded" }
      )
      yield* eventually(
        "the sleep runs",
        Effect.map(
          adminQuery<{ n: number }>(
            admin,
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_sleep%'",
            [pid]
          ),
          (r) => r[0]!.n === 1
        )
      )
      const startedAt = Date.now()
      yield* adminQuery(admin, "SELECT pg_terminate_backend($1)", [pid])
      const exits = yield* Fiber.joinAll(fibers)
      assert.isBelow(Date.now() - startedAt, 2000)
      for (const exit of exits) {
        const error = failure(exit)
        assert.strictEqual(error?.reason, "connection")
        assert.isTrue(error?.sent)
        assert.match(error!.message, /may or may not have been applied/)
      }
      assert.strictEqual(failure(exits[0]!)?.cause && (failure(exits[0]!)!.cause as any).code, "57P01")
      assert.isFalse(s.pipeline.sound)
      // every slot was handed back, as broken
      assert.strictEqual(s.done.length, 21)
      assert.isTrue(s.done.slice(1).every((f) => f.broken && f.inFlight === 0))
      assert.strictEqual(s.pipeline.inFlight, 0)
      const after = failure(yield* Effect.exit(s.run("SELECT 1")))
      assert.strictEqual(after?.reason, "connection")
      assert.isFalse(after?.sent)
      assert.strictEqual(s.done.length, 22)
      assert.strictEqual(s.done[21]!.queries, 0)
    })
  )

  it.scoped("a reset socket fails the statements in flight with a connection error, none hangs", () =>
    Effect.gen(function* () {
      const proxy = yield* FaultProxy.FaultProxy
      const s = yield* session({ viaProxy: true })
      yield* s.run("SELECT 1")
      const fibers = yield* Effect.forEach(
        Array.from({ length: 30 }, (_, i) => i),
        (i) => Effect.fork(Effect.exit(s.run("SELECT $1::int AS n, pg_sleep(0.05)", [i]))),
        { concurrency: "unbounded" }
      )
      yield* realSleep(100)
      yield* proxy.resetAll
      const exits = yield* Fiber.joinAll(fibers).pipe(Effect.timeout("5 seconds"))
      const failed = exits.filter(Exit.isFailure)
      // the first ones may have come back before the reset; the rest failed as lost, none with a statement error
      assert.isAbove(failed.length, 0)
      for (const exit of failed) assert.strictEqual(failure(exit)?.reason, "connection")
      for (const exit of exits.filter(Exit.isSuccess)) assert.isNumber(rows(exit.value)[0].n)
      assert.isFalse(s.pipeline.sound)
      assert.strictEqual(s.done.length, 31)
      assert.strictEqual(s.pipeline.inFlight, 0)
    })
  )

  it.scoped(
    "an interrupted statement is abandoned, not cancelled: it completes on the server, its slot returns then",
    () =>
      Effect.gen(function* () {
        const s = yield* session()
        const admin = yield* adminClient
        const table = `pipeline_abandon_${process.pid}`
        yield* adminQuery(admin, `DROP TABLE IF EXISTS ${table}`)
        yield* adminQuery(admin, `CREATE TABLE ${table} (id int)`)
        const slow = yield* Effect.fork(s.run(`INSERT INTO ${table} SELECT 1 FROM pg_sleep(0.5)`))
        const behind = yield* Effect.fork(s.run("SELECT 'behind' AS v"))
        yield* realSleep(100)
        const interruptedAt = Date.now()
        const exit = yield* Fiber.interrupt(slow)
        assert.isTrue(Exit.isInterrupted(exit))
        assert.isBelow(Date.now() - interruptedAt, 200)
        // its slot is still taken: the statement is still on the wire
        assert.strictEqual(s.done.length, 0)
        assert.strictEqual(s.pipeline.inFlight, 2)
        assert.strictEqual(rows(yield* Fiber.join(behind))[0].v, "behind")
        // never cancelled: the insert ran to its end
        const stored = yield* adminQuery<{ n: number }>(admin, `SELECT count(*)::int AS n FROM ${table}`)
        assert.strictEqual(stored[0]!.n, 1)
        assert.strictEqual(s.done.length, 2)
        assert.isTrue(s.done.every((f) => !f.broken && f.inFlight === 0))
        assert.isTrue(s.pipeline.sound)
        assert.strictEqual(rows(yield* s.run("SELECT 2 AS n"))[0].n, 2)
        yield* adminQuery(admin, `DROP TABLE ${table}`)
      })
  )

  it.scoped("parameters of every kind, array rows, and a parameter that cannot be serialised fails only itself", () =>
    Effect.gen(function* () {
      const s = yield* session()
      const circular: Record<string, unknown> = {}
      circular.self = circular
      const [typed, array, unserialisable, after] = yield* Effect.all(
        [
          s.run("SELECT $1::int AS i, $2::text AS t, $3::int AS n, $4::int[] AS a, $5::jsonb AS j, $6::bytea AS b", [
            7,
            "x'y",
            null,
            [1, 2],
            { k: [1] },
            Buffer.from([0, 255])
          ]),
          s.run("SELECT 1 AS a, 'two' AS b", undefined, "array"),
          Effect.exit(s.run("SELECT $1::jsonb AS j", [circular])),
          s.run("SELECT $1::text AS v", ["after"])
        ],
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(rows(typed)[0], {
        i: 7,
        t: "x'y",
        n: null,
        a: [1, 2],
        j: { k: [1] },
        b: Buffer.from([0, 255])
      })
      assert.deepStrictEqual(rows(array), [[1, "two"]])
      assert.strictEqual(failure(unserialisable)?.reason, "statement")
      assert.match(failure(unserialisable)!.message, /circular/i)
      // still in step: the statement behind it got its own answer, and each slot came back once
      assert.strictEqual(rows(after)[0].v, "after")
      assert.strictEqual(s.done.length, 4)
      assert.isTrue(s.pipeline.sound)
      assert.strictEqual(rows(yield* s.run("SELECT $1::int AS n", [3]))[0].n, 3)
      assert.strictEqual(s.done.length, 5)
    })
  )

  it.scoped("large results between small ones: each statement gets its own rows", () =>
    Effect.gen(function* () {
      const s = yield* session()
      const [small1, many, small2, big, small3] = yield* Effect.all(
        [
          s.run("SELECT 1 AS n"),
          s.run("SELECT g, repeat('x', 100) AS pad FROM generate_series(1, $1::int) g", [50_000]),
          s.run("SELECT 2 AS n"),
          s.run("SELECT repeat('y', 1048576) AS mb"),
          s.run("SELECT 3 AS n")
        ],
        { concurrency: "unbounded" }
      )
      assert.strictEqual(rows(small1)[0].n, 1)
      assert.strictEqual(rows(many).length, 50_000)
      assert.strictEqual(rows(many)[49_999].g, 50_000)
      assert.strictEqual(rows(small2)[0].n, 2)
      assert.strictEqual(rows(big)[0].mb.length, 1_048_576)
      assert.strictEqual(rows(small3)[0].n, 3)
      assert.isAbove(s.maxInFlight(), 3)
    })
  )

  it.scoped("send writes at once: the wait may start late, or be interrupted before it starts, and onDone comes", () =>
    Effect.gen(function* () {
      const s = yield* session()
      const done: Array<string> = []
      const late = s.pipeline.send("SELECT 1 AS n", undefined, undefined, () => done.push("late"))
      // the caller's pattern: granted inside an uninterruptible region, only the wait interruptible; the
      // interruption is already pending when the grant arrives (the gate), so the wait never runs
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.uninterruptibleMask((restore) =>
          Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)).pipe(
            Effect.flatMap(() =>
              restore(s.pipeline.send("SELECT 2 AS n", undefined, undefined, () => done.push("interrupted")))
            )
          )
        )
      )
      yield* Deferred.await(started)
      yield* Fiber.interruptFork(fiber)
      yield* realSleep(20)
      yield* Deferred.succeed(gate, undefined)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(fiber)))
      yield* eventually(
        "both statements are off the wire",
        Effect.sync(() => done.length === 2)
      )
      assert.deepStrictEqual(done, ["late", "interrupted"])
      // the answer that came before anyone waited is kept for the wait
      assert.strictEqual(rows(yield* late)[0].n, 1)
      assert.strictEqual(s.pipeline.inFlight, 0)
    })
  )

  it.scoped("a throwing onDone breaks the session instead of escaping into the socket handler", () =>
    Effect.gen(function* () {
      const s = yield* session()
      const result = yield* s.pipeline.run("SELECT 1 AS n", undefined, undefined, () => {
        throw new Error("a bug in the caller's release")
      })
      assert.strictEqual(rows(result)[0].n, 1)
      yield* eventually(
        "the session is marked broken",
        Effect.sync(() => !s.pipeline.sound)
      )
      assert.match(String(s.pipeline.broken), /a bug in the caller's release/)
      assert.strictEqual(failure(yield* Effect.exit(s.run("SELECT 1")))?.reason, "connection")
    })
  )

  it.scoped("refuses what cannot be pipelined without sending it; the client serves a cursor afterwards", () =>
    Effect.gen(function* () {
      const s = yield* session()
      const fibers = yield* Effect.forEach(
        ["SELECT 1 AS n", "BEGIN", "COPY (SELECT 1) TO STDOUT", "SET search_path = x", "SELECT 1; SELECT 2"],
        (sql) => Effect.exit(s.run(sql)),
        { concurrency: "unbounded" }
      )
      assert.isTrue(Exit.isSuccess(fibers[0]!))
      for (const exit of fibers.slice(1)) {
        assert.strictEqual(failure(exit)?.reason, "refused")
        assert.isFalse(failure(exit)?.sent)
      }
      assert.strictEqual(s.pipeline.queries, 1)
      assert.deepStrictEqual(s.done.map((f) => f.queries).sort(), [0, 0, 0, 0, 1])
      assert.strictEqual(rows(yield* s.run("SHOW search_path"))[0].search_path, '"$user", public')
      // off the pipeline, pg runs what it refuses in pipeline mode: an exclusive checkout's cursor
      assert.isFalse(s.client.pipeline)
      const cursor = s.client.query(new Cursor("SELECT generate_series(1, 3) AS g"))
      const read = yield* Effect.promise(() => cursor.read(10))
      assert.deepStrictEqual(
        read.map((r: any) => r.g),
        [1, 2, 3]
      )
      yield* Effect.promise(() => cursor.close())
    })
  )
})
