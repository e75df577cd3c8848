/**
 * The @effect/sql drop-in: code written for `PgClient.layer({ url })` runs unchanged on `Db.layer`, against a real
 * server. Ported from @effect/sql-pg's own `test/Client.test.ts`, with every helper executed rather than only
 * compiled. The portable suites run twice: on our pool, and on `PgClient.layer` itself as the reference, so every
 * expectation is the upstream behaviour and not our guess of it.
 */
import { NodeContext } from "@effect/platform-node"
import { Model, SqlClient, SqlResolver, SqlSchema, Statement } from "@effect/sql"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { assert, it, type Vitest } from "@effect/vitest"
import { PgTestServer } from "@effect-pg-pool/testkit"
import {
  Cause,
  Chunk,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Redacted,
  Schema,
  Stream,
  String as Str,
  TestServices,
  Tracer
} from "effect"
import * as Db from "../src/Db.js"
import type { PoolStatistics } from "../src/PoolStatistics.js"
import { adminClient, adminQuery, dbLayer, eventually, uniqueAppName } from "./utils.js"

let tableCounter = 0
/** A table name no other test (nor a rerun against an external server) uses. */
const uniqueTable = (prefix: string) => `${prefix}_${process.pid}_${Date.now() % 100_000}_${++tableCounter}`

/** Waits until every connection is back in the pool (a release may fork a reset), then returns the figures. */
const settledStatistics = Effect.gen(function* () {
  yield* eventually(
    "no connection is checked out",
    Effect.map(Db.statistics, (s) => s.active === 0 && s.pending === 0),
    5_000
  ).pipe(Effect.ignore)
  return yield* Db.statistics
})

const closedTotal = (stats: PoolStatistics) =>
  Object.values({ ...stats.connectionsClosed }).reduce((a: number, b: number) => a + b, 0)

/**
 * What the portable suites check about the pool behind the client. The reference `PgClient.layer` exposes no
 * figures, so there it is absent and only the client-visible behaviour is compared.
 */
interface PoolProbe<R> {
  readonly statistics: Effect.Effect<PoolStatistics, never, R>
  readonly settled: Effect.Effect<PoolStatistics, never, R>
}

const dbProbe: PoolProbe<Db.Db> = { statistics: Db.statistics, settled: settledStatistics }

/** Every connection is back and idle; with `before`, none was discarded since. */
const assertSettled = <R>(pool: PoolProbe<R> | undefined, before?: PoolStatistics) =>
  pool === undefined
    ? Effect.void
    : Effect.map(pool.settled, (after) => {
        assert.strictEqual(after.active, 0, "every connection is back in the pool")
        assert.strictEqual(after.total, after.idle)
        if (before !== undefined) assert.strictEqual(closedTotal(after), closedTotal(before), "no connection discarded")
      })

const statisticsBefore = <R>(pool: PoolProbe<R> | undefined) =>
  pool === undefined ? Effect.succeed(undefined) : pool.settled

/** Whether statements run inside an open transaction: only then do two txid_current() calls agree. */
const inTransaction = (sql: SqlClient.SqlClient) =>
  Effect.map(
    Effect.all([
      sql<{ x: string }>`SELECT txid_current()::text AS x`,
      sql<{ x: string }>`SELECT txid_current()::text AS x`
    ]),
    ([a, b]) => a[0]!.x === b[0]!.x
  )

class Boom extends Schema.TaggedError<Boom>()("Boom", {}) {}

/** Waits until a backend of this application has issued `LISTEN "channel"`. */
const awaitListening = (appName: string, channel: string) =>
  Effect.gen(function* () {
    const admin = yield* adminClient
    yield* eventually(
      `the server has a backend listening on ${channel}`,
      Effect.map(
        adminQuery<{ n: number }>(
          admin,
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query = $2",
          [appName, `LISTEN "${channel}"`]
        ),
        (rows) => rows[0]!.n > 0
      )
    )
  }).pipe(Effect.scoped)

type Services = SqlClient.SqlClient | PgClient.PgClient | PgTestServer.PgTestServer

/** The reference: @effect/sql-pg's own client on the same server. */
const referenceLayer = (options: Omit<PgClient.PgClientConfig, "url">) =>
  Layer.unwrapEffect(Effect.map(PgTestServer.PgTestServer, (server) => PgClient.layer({ url: server.url, ...options })))

const transforms = { transformQueryNames: Str.camelToSnake, transformResultNames: Str.snakeToCamel }

/** Everything a `PgClient.layer` user relies on, written against the @effect/sql services only. */
const portableSuite = <R>(
  it: Vitest.MethodsNonLive<R | Services>,
  { appName, pool }: { readonly appName: string; readonly pool: PoolProbe<R> | undefined }
) => {
  it.effect("tagged templates bind interpolations as $n parameters", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const statement = sql<{
        n: number
        s: string
        b: boolean
      }>`SELECT ${7}::int AS n, ${"it's"}::text AS s, ${true}::bool AS b`
      assert.deepStrictEqual(statement.compile(), [
        "SELECT $1::int AS n, $2::text AS s, $3::bool AS b",
        [7, "it's", true]
      ])
      assert.deepStrictEqual(yield* statement, [{ n: 7, s: "it's", b: true }])
      const injected = yield* sql<{ s: string }>`SELECT ${"'; DROP TABLE x; --"}::text AS s`
      assert.deepStrictEqual(injected, [{ s: "'; DROP TABLE x; --" }])
      const [ident] = sql`SELECT * FROM ${sql("people")}`.compile()
      assert.strictEqual(ident, `SELECT * FROM "people"`)
    })
  )

  it.effect("insert, update, updateValues, in, and, or run against a real table", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const t = uniqueTable("helpers")
      yield* sql`CREATE TABLE ${sql(t)} (id int PRIMARY KEY, name text NOT NULL, age int)`
      yield* sql`INSERT INTO ${sql(t)} ${sql.insert([
        { id: 1, name: "Tim", age: 10 },
        { id: 2, name: "Bob", age: 20 },
        { id: 3, name: "Cat", age: 30 }
      ])}`
      const returned = yield* sql<{ id: number; name: string; age: number }>`INSERT INTO ${sql(t)} ${sql
        .insert({ id: 4, name: "Dan", age: 40 })
        .returning("*")}`
      assert.deepStrictEqual(returned, [{ id: 4, name: "Dan", age: 40 }])

      yield* sql`UPDATE ${sql(t)} SET ${sql.update({ name: "Timothy", age: 11 })} WHERE id = ${1}`
      yield* sql`UPDATE ${sql(t)} SET age = data.age::int FROM ${sql.updateValues(
        [
          { id: 2, age: 21 },
          { id: 3, age: 31 }
        ],
        "data"
      )} WHERE ${sql(t)}.id = data.id::int`
      const all = yield* sql<{ id: number; name: string; age: number }>`SELECT * FROM ${sql(t)} ORDER BY id`
      assert.deepStrictEqual(all, [
        { id: 1, name: "Timothy", age: 11 },
        { id: 2, name: "Bob", age: 21 },
        { id: 3, name: "Cat", age: 31 },
        { id: 4, name: "Dan", age: 40 }
      ])

      const ids = (rows: ReadonlyArray<{ id: number }>) => rows.map((r) => r.id)
      assert.deepStrictEqual(
        ids(yield* sql<{ id: number }>`SELECT id FROM ${sql(t)} WHERE ${sql.in("id", [1, 3])} ORDER BY id`),
        [1, 3]
      )
      assert.deepStrictEqual(
        ids(yield* sql<{ id: number }>`SELECT id FROM ${sql(t)} WHERE id IN ${sql.in([2, 4])} ORDER BY id`),
        [2, 4]
      )
      assert.deepStrictEqual(ids(yield* sql<{ id: number }>`SELECT id FROM ${sql(t)} WHERE ${sql.in("id", [])}`), [])
      assert.deepStrictEqual(
        ids(
          yield* sql<{ id: number }>`SELECT id FROM ${sql(t)} WHERE ${sql.and([
            sql.in("name", ["Bob", "Cat", "Dan"]),
            sql`age < ${35}`
          ])} ORDER BY id`
        ),
        [2, 3]
      )
      assert.deepStrictEqual(
        ids(
          yield* sql<{ id: number }>`SELECT id FROM ${sql(t)} WHERE ${sql.or([
            sql`age < ${15}`,
            sql`name = ${"Dan"}`
          ])} ORDER BY id`
        ),
        [1, 4]
      )
    })
  )

  it.effect("withTransaction commits: one backend and one transaction for every statement", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const t = uniqueTable("tx_commit")
      yield* sql`CREATE TABLE ${sql(t)} (id int PRIMARY KEY)`
      const inside = yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 1 })}`
          const a = yield* sql<{
            pid: number
            xid: string
          }>`SELECT pg_backend_pid() AS pid, txid_current()::text AS xid`
          yield* sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 2 })}`
          const b = yield* sql<{
            pid: number
            xid: string
          }>`SELECT pg_backend_pid() AS pid, txid_current()::text AS xid`
          return [a[0]!, b[0]!] as const
        })
      )
      assert.deepStrictEqual(inside[0], inside[1])
      const rows = yield* sql<{ id: number }>`SELECT id FROM ${sql(t)} ORDER BY id`
      assert.deepStrictEqual(rows, [{ id: 1 }, { id: 2 }])
      yield* assertSettled(pool)
    })
  )

  it.effect("withTransaction rolls back when the effect fails, and the failure comes through", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const before = yield* statisticsBefore(pool)
      const t = uniqueTable("tx_rollback")
      yield* sql`CREATE TABLE ${sql(t)} (id int PRIMARY KEY)`
      const error = yield* sql
        .withTransaction(Effect.zipRight(sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 1 })}`, new Boom()))
        .pipe(Effect.flip)
      assert.instanceOf(error, Boom)
      const died = yield* sql
        .withTransaction(Effect.zipRight(sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 2 })}`, Effect.die("defect")))
        .pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(died))
      const rows = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(t)}`
      assert.deepStrictEqual(rows, [{ n: 0 }])
      yield* assertSettled(pool, before)
    })
  )

  it.effect("nested withTransaction uses a savepoint: the inner rollback keeps the outer work", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const t = uniqueTable("tx_nested")
      yield* sql`CREATE TABLE ${sql(t)} (id int PRIMARY KEY)`
      const xids = yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 1 })}`
          const outer = yield* sql<{ xid: string }>`SELECT txid_current()::text AS xid`
          const inner = yield* sql
            .withTransaction(
              Effect.gen(function* () {
                yield* sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 2 })}`
                const xid = yield* sql<{ xid: string }>`SELECT txid_current()::text AS xid`
                assert.strictEqual(xid[0]!.xid, outer[0]!.xid, "the savepoint is inside the outer transaction")
                return yield* Effect.fail(new Boom())
              })
            )
            .pipe(Effect.flip)
          assert.instanceOf(inner, Boom)
          // a savepoint that commits keeps its rows
          yield* sql.withTransaction(sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 3 })}`)
          yield* sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 4 })}`
          const after = yield* sql<{ xid: string }>`SELECT txid_current()::text AS xid`
          return [outer[0]!.xid, after[0]!.xid]
        })
      )
      assert.strictEqual(xids[0], xids[1])
      const rows = yield* sql<{ id: number }>`SELECT id FROM ${sql(t)} ORDER BY id`
      assert.deepStrictEqual(rows, [{ id: 1 }, { id: 3 }, { id: 4 }])
    })
  )

  it.effect("reserve pins one backend (with its session) until its scope closes", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const before = yield* statisticsBefore(pool)
      const seen = yield* Effect.scoped(
        Effect.gen(function* () {
          const conn = yield* sql.reserve
          const a = yield* conn.execute("SELECT pg_backend_pid() AS pid", [], undefined)
          yield* conn.execute("SET application_name = 'reserved'", [], undefined)
          const b = yield* conn.executeValues("SELECT pg_backend_pid(), current_setting('application_name')", [])
          const during = pool === undefined ? undefined : yield* pool.statistics
          return { a: a[0].pid as number, b: b[0]!, active: during?.active }
        })
      )
      assert.strictEqual(seen.b[0], seen.a)
      assert.strictEqual(seen.b[1], "reserved")
      if (before !== undefined) assert.strictEqual(seen.active, before.active + 1, "reserve holds a pool slot")
      yield* assertSettled(pool, before)
    })
  )

  it.effect("stream reads 1000 rows through a cursor", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ n: number }>`SELECT n FROM generate_series(1, ${1000}::int) AS n`.stream.pipe(
        Stream.runCollect
      )
      const ns = Chunk.toReadonlyArray(rows).map((r) => r.n)
      assert.strictEqual(ns.length, 1000)
      assert.deepStrictEqual(
        ns,
        Array.from({ length: 1000 }, (_, i) => i + 1)
      )
      yield* assertSettled(pool)
    })
  )

  it.scoped("a stream ended early (Stream.take) closes its cursor and returns a healthy connection", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const before = yield* statisticsBefore(pool)
      const first = yield* sql<{
        n: number
        pid: number
      }>`SELECT n, pg_backend_pid() AS pid FROM generate_series(1, 1000) AS n`.stream.pipe(
        Stream.take(5),
        Stream.runCollect
      )
      assert.deepStrictEqual(
        Chunk.toReadonlyArray(first).map((r) => r.n),
        [1, 2, 3, 4, 5]
      )
      yield* assertSettled(pool, before)
      // the server agrees: the backend is idle, with no transaction or portal left open
      const admin = yield* adminClient
      const backend = yield* adminQuery(
        admin,
        "SELECT state, xact_start IS NULL AS no_xact FROM pg_stat_activity WHERE pid = $1",
        [Chunk.unsafeGet(first, 0).pid]
      )
      assert.deepStrictEqual(backend, [{ state: "idle", no_xact: true }])
      for (let i = 0; i < 3; i++) {
        assert.deepStrictEqual(yield* sql<{ n: number }>`SELECT ${i}::int AS n`, [{ n: i }])
      }
      assert.isFalse(yield* inTransaction(sql))
      const again = yield* sql<{ n: number }>`SELECT n FROM generate_series(1, 300) AS n`.stream.pipe(
        Stream.take(200),
        Stream.runCount
      )
      assert.strictEqual(again, 200)
      yield* assertSettled(pool, before)
    })
  )

  it.effect("a stream inside withTransaction runs on the transaction's connection", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const t = uniqueTable("tx_stream")
      yield* sql`CREATE TABLE ${sql(t)} (id int PRIMARY KEY)`
      const seen = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO ${sql(t)} SELECT g FROM generate_series(1, 300) AS g`
            const rows = yield* Stream.runCollect(sql<{ id: number }>`SELECT id FROM ${sql(t)} ORDER BY id`.stream)
            return yield* Effect.zipRight(Effect.succeed(rows.length), new Boom())
          })
        )
        .pipe(Effect.flip)
      assert.instanceOf(seen, Boom)
      const rows = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(t)}`
      assert.deepStrictEqual(rows, [{ n: 0 }])
      const counted = yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`INSERT INTO ${sql(t)} SELECT g FROM generate_series(1, 300) AS g`
          return yield* Stream.runCount(sql`SELECT id FROM ${sql(t)}`.stream)
        })
      )
      assert.strictEqual(counted, 300)
    })
  )

  it.effect(".values returns arrays, .raw the driver's result, .unprepared runs without a prepared statement", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const values = yield* sql`SELECT ${1}::int AS a, ${"x"}::text AS b UNION ALL SELECT 2, 'y'`.values
      assert.deepStrictEqual(values, [
        [1, "x"],
        [2, "y"]
      ])
      const raw = (yield* sql`SELECT g AS n FROM generate_series(1, ${3}::int) AS g`.raw) as {
        command: string
        rowCount: number
        rows: ReadonlyArray<unknown>
        fields: ReadonlyArray<{ name: string }>
      }
      assert.strictEqual(raw.command, "SELECT")
      assert.strictEqual(raw.rowCount, 3)
      assert.deepStrictEqual(raw.rows, [{ n: 1 }, { n: 2 }, { n: 3 }])
      assert.deepStrictEqual(
        raw.fields.map((f) => f.name),
        ["n"]
      )
      const t = uniqueTable("raw")
      yield* sql`CREATE TABLE ${sql(t)} (id int)`
      const inserted = (yield* sql`INSERT INTO ${sql(t)} ${sql.insert([{ id: 1 }, { id: 2 }])}`.raw) as {
        command: string
        rowCount: number
      }
      assert.strictEqual(inserted.command, "INSERT")
      assert.strictEqual(inserted.rowCount, 2)
      const unprepared = yield* sql<{ n: number }>`SELECT ${5}::int + 1 AS n`.unprepared
      assert.deepStrictEqual(unprepared, [{ n: 6 }])
    })
  )

  it.effect("a multi-statement query returns one result array per statement", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const two = yield* sql`SELECT 1 AS a; SELECT 2 AS b`
      assert.deepStrictEqual(two as unknown, [[{ a: 1 }], [{ b: 2 }]])
      const t = uniqueTable("multi")
      const result = yield* sql.unsafe<{ id: string; name: string }>(`
          CREATE TABLE ${t} (id TEXT PRIMARY KEY, name TEXT);
          INSERT INTO ${t} (id, name) VALUES ('id1', 'test1') RETURNING *;
          INSERT INTO ${t} (id, name) VALUES ('id2', 'test2') RETURNING *;
        `)
      assert.deepStrictEqual(result as unknown, [[], [{ id: "id1", name: "test1" }], [{ id: "id2", name: "test2" }]])
    })
  )

  it.effect("sql.json round-trips a jsonb value", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const value = { a: 1, text: `quote " and ' and ünïcode`, nested: { list: [1, "2", true, null] }, off: false }
      const selected = yield* sql<{ value: unknown }>`SELECT ${sql.json(value)}::jsonb AS value`
      assert.deepStrictEqual(selected, [{ value }])
      const t = uniqueTable("json")
      yield* sql`CREATE TABLE ${sql(t)} (id int PRIMARY KEY, doc jsonb NOT NULL)`
      yield* sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 1, doc: sql.json(value) })}`
      const stored = yield* sql<{ doc: unknown; a: number }>`SELECT doc, (doc->>'a')::int AS a FROM ${sql(t)}`
      assert.deepStrictEqual(stored, [{ doc: value, a: 1 }])
    })
  )

  it.effect("a notification arrives on a listen stream, which takes no pool slot", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      // a second round checks that listening again after the first stream ended works too
      for (const payload of ["first", "second"]) {
        const channel = uniqueTable("chan")
        const fiber = yield* sql.listen(channel).pipe(Stream.take(1), Stream.runCollect, Effect.fork)
        yield* awaitListening(appName, channel)
        if (pool !== undefined) {
          assert.strictEqual((yield* pool.statistics).active, 0, "the LISTEN connection takes no pool slot")
        }
        yield* sql`SELECT pg_notify(${channel}, ${payload})`
        const received = yield* Fiber.join(fiber).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`no notification on ${channel}`) }),
          TestServices.provideLive
        )
        assert.deepStrictEqual(Chunk.toReadonlyArray(received), [payload])
      }
    })
  )

  it.effect("PgMigrator runs migrations from a record, once", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const t = uniqueTable("migrated")
      const table = uniqueTable("migrations")
      const loader = PgMigrator.fromRecord({
        "0001_create_table": Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql`CREATE TABLE ${sql(t)} (id serial PRIMARY KEY, name text NOT NULL)`
        ),
        "0002_seed": Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql`INSERT INTO ${sql(t)} ${sql.insert({ name: "seeded" })}`
        )
      })
      const ran = yield* PgMigrator.run({ loader, table }).pipe(Effect.provide(NodeContext.layer))
      assert.deepStrictEqual(ran, [
        [1, "create_table"],
        [2, "seed"]
      ])
      const exists = yield* sql<{ t: string | null }>`SELECT to_regclass(${t})::text AS t`
      assert.deepStrictEqual(exists, [{ t: t }])
      assert.deepStrictEqual(yield* sql`SELECT name FROM ${sql(t)}`, [{ name: "seeded" }])
      const recorded = yield* sql<{ migration_id: number }>`SELECT migration_id FROM ${sql(table)} ORDER BY 1`
      assert.deepStrictEqual(recorded, [{ migration_id: 1 }, { migration_id: 2 }])
      const again = yield* PgMigrator.run({ loader, table }).pipe(Effect.provide(NodeContext.layer))
      assert.deepStrictEqual(again, [])
    })
  )

  it.effect("Model.makeRepository, SqlSchema and a batched SqlResolver work on the pool", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const t = uniqueTable("people")
      yield* sql`CREATE TABLE ${sql(t)} (id serial PRIMARY KEY, name text NOT NULL, age int NOT NULL)`
      class Person extends Model.Class<Person>("Person")({
        id: Model.Generated(Schema.Int),
        name: Schema.String,
        age: Schema.Int
      }) {}
      const repo = yield* Model.makeRepository(Person, { tableName: t, spanPrefix: "People", idColumn: "id" })
      const tim = yield* repo.insert(Person.insert.make({ name: "Tim", age: 10 }))
      assert.instanceOf(tim, Person)
      assert.deepStrictEqual({ ...tim }, { id: 1, name: "Tim", age: 10 })
      yield* repo.insert(Person.insert.make({ name: "Bob", age: 20 }))
      const updated = yield* repo.update(Person.update.make({ id: 1, name: "Timothy", age: 11 }))
      assert.strictEqual(updated.name, "Timothy")
      assert.deepStrictEqual(
        Option.map(yield* repo.findById(1), (p) => p.age),
        Option.some(11)
      )
      yield* repo.delete(2)
      assert.isTrue(Option.isNone(yield* repo.findById(2)))

      const olderThan = SqlSchema.findAll({
        Request: Schema.Int,
        Result: Person,
        execute: (age) => sql`SELECT * FROM ${sql(t)} WHERE age > ${age} ORDER BY id`
      })
      assert.deepStrictEqual(
        (yield* olderThan(5)).map((p) => p.name),
        ["Timothy"]
      )

      yield* repo.insert(Person.insert.make({ name: "Cat", age: 30 }))
      const batches: Array<ReadonlyArray<number>> = []
      const byId = yield* SqlResolver.findById("PersonById", {
        Id: Schema.Int,
        Result: Person,
        ResultId: (p) => p.id,
        execute: (ids) =>
          Effect.zipRight(
            Effect.sync(() => batches.push(ids)),
            sql`SELECT * FROM ${sql(t)} WHERE ${sql.in("id", ids)}`
          )
      })
      const found = yield* Effect.forEach([1, 3, 99], (id) => byId.execute(id), { batching: true })
      assert.deepStrictEqual(found.map(Option.map((p) => p.name)), [
        Option.some("Timothy"),
        Option.some("Cat"),
        Option.none()
      ])
      assert.strictEqual(batches.length, 1)
      assert.deepStrictEqual([...batches[0]!].sort(), [1, 3, 99])
    })
  )

  it.effect("PgClient.config is populated from the pool's connection settings", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const pg = yield* PgClient.PgClient
      const sql = yield* SqlClient.SqlClient
      assert.strictEqual(pg, sql as PgClient.PgClient)
      assert.strictEqual(pg.config.host, server.host)
      assert.strictEqual(pg.config.port, server.port)
      assert.strictEqual(pg.config.database, server.database)
      assert.strictEqual(pg.config.username, server.user)
      assert.isTrue(Redacted.isRedacted(pg.config.password))
      assert.strictEqual(Redacted.value(pg.config.password!), Redacted.value(server.password))
      assert.isFalse(String(pg.config.password).includes(Redacted.value(server.password)))
      assert.isTrue(Redacted.isRedacted(pg.config.url))
      assert.strictEqual(pg.config.applicationName, appName)
      assert.strictEqual(pg.onDialectOrElse({ pg: () => "pg", orElse: () => "other" }), "pg")
    })
  )
}

/** The same client with `transformQueryNames: camelToSnake, transformResultNames: snakeToCamel`. */
const transformsSuite = (it: Vitest.MethodsNonLive<Services>) => {
  it.effect("insert { firstName } lands in first_name and rows come back camelCase", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const t = uniqueTable("people_tr")
      yield* sql`CREATE TABLE ${sql(t)} (id int PRIMARY KEY, first_name text NOT NULL, last_name text)`
      const [query] = sql`INSERT INTO people ${sql.insert({ firstName: "Tim", age: 10 })}`.compile()
      assert.strictEqual(query, `INSERT INTO people ("first_name","age") VALUES ($1,$2)`)
      const returned = yield* sql<{ id: number; firstName: string; lastName: string }>`INSERT INTO ${sql(t)} ${sql
        .insert({ id: 1, firstName: "Tim", lastName: "Smith" })
        .returning("*")}`
      assert.deepStrictEqual(returned, [{ id: 1, firstName: "Tim", lastName: "Smith" }])
      yield* sql`UPDATE ${sql(t)} SET ${sql.update({ lastName: "Jones" })} WHERE ${sql.in("firstName", ["Tim"])}`
      const columns = yield* sql<{
        columnName: string
      }>`SELECT column_name FROM information_schema.columns WHERE table_name = ${t} ORDER BY ordinal_position`
      assert.deepStrictEqual(
        columns.map((c) => c.columnName),
        ["id", "first_name", "last_name"]
      )
      const rows = yield* sql<{ id: number; firstName: string; lastName: string }>`SELECT * FROM ${sql(t)}`
      assert.deepStrictEqual(rows, [{ id: 1, firstName: "Tim", lastName: "Jones" }])
    })
  )

  it.effect("withoutTransforms() and .withoutTransform leave names as the database has them", () =>
    Effect.gen(function* () {
      const client = yield* PgClient.PgClient
      const sql = client.withoutTransforms()
      const t = uniqueTable("people_raw")
      yield* sql`CREATE TABLE ${sql(t)} (id int PRIMARY KEY, first_name text NOT NULL)`
      const [query] = sql`INSERT INTO people ${sql.insert({ first_name: "Tim", age: 10 })}`.compile()
      assert.strictEqual(query, `INSERT INTO people ("first_name","age") VALUES ($1,$2)`)
      yield* sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 1, first_name: "Tim" })}`
      assert.deepStrictEqual(yield* sql`SELECT * FROM ${sql(t)}`, [{ id: 1, first_name: "Tim" }])
      assert.deepStrictEqual(yield* client`SELECT * FROM ${client(t)}`.withoutTransform, [{ id: 1, first_name: "Tim" }])
      assert.deepStrictEqual(yield* client`SELECT * FROM ${client(t)}`, [{ id: 1, firstName: "Tim" }])
      // the PgClient extras survive withoutTransforms()
      assert.strictEqual(sql.config, client.config)
      assert.strictEqual(typeof sql.listen, "function")
      assert.deepStrictEqual(yield* sql`SELECT ${sql.json({ fooBar: 1 })}::jsonb AS the_doc`, [
        { the_doc: { fooBar: 1 } }
      ])
    })
  )

  it.effect("json values are transformed both ways; .values is untouched", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const rows = yield* sql<{
        theDoc: unknown
        raw: string
      }>`SELECT ${sql.json({ fooBar: { bazQux: 1 } })}::jsonb AS the_doc, ${sql.json({ fooBar: 2 })}::jsonb::text AS raw`
      assert.deepStrictEqual(rows, [{ theDoc: { fooBar: { bazQux: 1 } }, raw: `{"foo_bar": 2}` }])
      const values = yield* sql`SELECT 1 AS first_col, 2 AS second_col`.values
      assert.deepStrictEqual(values, [[1, 2]])
    })
  )

  it.effect("streams, transactions and .unprepared transform result names too", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const streamed = yield* sql<{
        rowNumber: number
      }>`SELECT g AS row_number FROM generate_series(1, 3) AS g`.stream.pipe(Stream.runCollect)
      assert.deepStrictEqual(Chunk.toReadonlyArray(streamed), [{ rowNumber: 1 }, { rowNumber: 2 }, { rowNumber: 3 }])
      const inTx = yield* sql.withTransaction(sql<{ someValue: number }>`SELECT 1 AS some_value`)
      assert.deepStrictEqual(inTx, [{ someValue: 1 }])
      const unprepared = yield* sql<{ someValue: number }>`SELECT 3 AS some_value`.unprepared
      assert.deepStrictEqual(unprepared, [{ someValue: 3 }])
    })
  )

  it.effect("a multi-statement query transforms the rows of every result", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const result = yield* sql`SELECT 1 AS first_value; SELECT 2 AS second_value`
      assert.deepStrictEqual(result as unknown, [[{ firstValue: 1 }], [{ secondValue: 2 }]])
    })
  )
}

const dbApp = uniqueAppName("sqlclient-db")
const referenceApp = uniqueAppName("sqlclient-ref")

it.layer(PgTestServer.layer, { timeout: 60_000 })("SqlClient drop-in", (it) => {
  it.layer(dbLayer({ minSize: 1, maxSize: 4, applicationName: dbApp }))("Db.layer", (it) => {
    portableSuite<Db.Db>(it, { appName: dbApp, pool: dbProbe })

    // Not in the portable suite: @effect/sql-pg 0.53's own notify sends `NOTIFY "channel", $1`, which PostgreSQL
    // rejects (42601: NOTIFY takes no bind parameters), so on the reference it always fails.
    it.effect("notify sends a notification that listen receives", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const channel = uniqueTable("notify")
        const fiber = yield* sql.listen(channel).pipe(Stream.take(2), Stream.runCollect, Effect.fork)
        yield* awaitListening(dbApp, channel)
        yield* sql.notify(channel, "hello")
        yield* sql.notify(channel, `it's "quoted"`)
        const received = yield* Fiber.join(fiber).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`no notification on ${channel}`) }),
          TestServices.provideLive
        )
        assert.deepStrictEqual(Chunk.toReadonlyArray(received), ["hello", `it's "quoted"`])
      })
    )

    it.scoped(
      "a listen opened as the last one closes reuses one LISTEN connection: no duplicates, none left behind",
      () =>
        Effect.gen(function* () {
          const sql = yield* PgClient.PgClient
          const admin = yield* adminClient
          const listenBackends = Effect.map(
            adminQuery<{ n: number }>(
              admin,
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'",
              [dbApp]
            ),
            (rows) => rows[0]!.n
          )
          const [a, b, c] = [uniqueTable("relisten_a"), uniqueTable("relisten_b"), uniqueTable("relisten_c")]
          // `concat` subscribes to b in the same breath as the a stream's scope closes (its last subscriber leaves)
          const first = yield* sql
            .listen(a)
            .pipe(Stream.take(1), Stream.concat(sql.listen(b).pipe(Stream.take(2))), Stream.runCollect, Effect.fork)
          yield* awaitListening(dbApp, a)
          yield* sql.notify(a, "a")
          yield* awaitListening(dbApp, b)
          yield* eventually(
            "exactly one backend LISTENs for the pool",
            Effect.map(listenBackends, (n) => n === 1)
          )
          const second = yield* sql.listen(c).pipe(Stream.take(1), Stream.runCollect, Effect.fork)
          yield* awaitListening(dbApp, c)
          yield* eventually(
            "a new listen reuses the LISTEN connection",
            Effect.map(listenBackends, (n) => n === 1)
          )
          yield* sql.notify(b, "1")
          yield* sql.notify(b, "2")
          yield* sql.notify(c, "c")
          const join = <A, E>(fiber: Fiber.Fiber<A, E>) =>
            Fiber.join(fiber).pipe(
              Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("notifications missing") }),
              TestServices.provideLive
            )
          assert.deepStrictEqual(Chunk.toReadonlyArray(yield* join(first)), ["a", "1", "2"])
          assert.deepStrictEqual(Chunk.toReadonlyArray(yield* join(second)), ["c"])
          yield* eventually(
            "the LISTEN connection closes once no stream listens",
            Effect.map(listenBackends, (n) => n === 0)
          )
        })
    )

    it.effect("Db.withConnection: a SET in one statement is visible in the next, on one backend", () =>
      Effect.gen(function* () {
        const seen = yield* Db.withConnection((sql) =>
          Effect.gen(function* () {
            const a = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
            yield* sql`SET statement_timeout = 4321`
            const b = yield* sql<{
              pid: number
              timeout: string
            }>`SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS timeout`
            return { a: a[0]!.pid, b: b[0]! }
          })
        )
        assert.strictEqual(seen.b.pid, seen.a)
        assert.strictEqual(seen.b.timeout, "4321ms")
        assert.strictEqual((yield* settledStatistics).active, 0)
      })
    )

    it.effect("Db.withConnection: withTransaction on the pinned client commits, rolls back and nests", () =>
      Effect.gen(function* () {
        const pooled = yield* SqlClient.SqlClient
        const t = uniqueTable("pinned_tx")
        yield* pooled`CREATE TABLE ${pooled(t)} (id int PRIMARY KEY)`
        const pids = yield* Db.withConnection((sql) =>
          Effect.gen(function* () {
            const outside = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
            yield* sql`SET application_name = 'pinned-tx'`
            const inside = yield* sql.withTransaction(
              Effect.gen(function* () {
                const app = yield* sql<{ app: string }>`SELECT current_setting('application_name') AS app`
                assert.deepStrictEqual(app, [{ app: "pinned-tx" }], "the transaction runs on the pinned session")
                yield* sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 1 })}`
                yield* sql
                  .withTransaction(Effect.zipRight(sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 2 })}`, new Boom()))
                  .pipe(Effect.ignore)
                const pid = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
                return { pid: pid[0]!.pid, in_tx: yield* inTransaction(sql) }
              })
            )
            yield* sql
              .withTransaction(Effect.zipRight(sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 3 })}`, new Boom()))
              .pipe(Effect.ignore)
            const after = yield* inTransaction(sql)
            return { outside: outside[0]!.pid, inside, after }
          })
        )
        assert.strictEqual(pids.inside.pid, pids.outside)
        assert.isTrue(pids.inside.in_tx)
        assert.isFalse(pids.after)
        const rows = yield* pooled<{ id: number }>`SELECT id FROM ${pooled(t)} ORDER BY id`
        assert.deepStrictEqual(rows, [{ id: 1 }])
        assert.strictEqual((yield* settledStatistics).active, 0)
      })
    )

    it.effect("Db.withConnection: .stream, .values and .raw run on the pinned connection", () =>
      Effect.gen(function* () {
        const seen = yield* Db.withConnection((sql) =>
          Effect.gen(function* () {
            yield* sql`SET application_name = 'pinned-stream'`
            const streamed = yield* sql<{
              app: string
            }>`SELECT current_setting('application_name') AS app FROM generate_series(1, 200)`.stream.pipe(
              Stream.runCollect
            )
            const values = yield* sql`SELECT current_setting('application_name')`.values
            const raw = (yield* sql`SELECT current_setting('application_name') AS app`.raw) as {
              rows: ReadonlyArray<unknown>
            }
            return { streamed: Chunk.toReadonlyArray(streamed), values, raw: raw.rows }
          })
        )
        assert.strictEqual(seen.streamed.length, 200)
        assert.isTrue(seen.streamed.every((r) => r.app === "pinned-stream"))
        assert.deepStrictEqual(seen.values, [["pinned-stream"]])
        assert.deepStrictEqual(seen.raw, [{ app: "pinned-stream" }])
      })
    )

    it.effect(
      "Db.withConnection inside another connection's transaction: its own connection, its own transaction",
      () =>
        Effect.gen(function* () {
          const pooled = yield* SqlClient.SqlClient
          const t = uniqueTable("pinned_outer")
          yield* pooled`CREATE TABLE ${pooled(t)} (id int PRIMARY KEY)`
          const pidOf = (sql: SqlClient.SqlClient) =>
            Effect.map(sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`, (rows) => rows[0]!.pid)
          let outcome: {
            outerPid: number
            inner: { pid: number; joined: number; seen: ReadonlyArray<unknown>; streamedPid: number }
          }
          yield* pooled
            .withTransaction(
              Effect.gen(function* () {
                const outerPid = yield* pidOf(pooled)
                yield* pooled`INSERT INTO ${pooled(t)} ${pooled.insert({ id: 1 })}`
                const inner = yield* Db.withConnection((sql) =>
                  Effect.gen(function* () {
                    const pid = yield* pidOf(sql)
                    // a transaction of its own, committed at once: not a savepoint of the outer one
                    const joined = yield* sql.withTransaction(
                      Effect.zipRight(sql`INSERT INTO ${sql(t)} ${sql.insert({ id: 2 })}`, pidOf(pooled))
                    )
                    const seen = yield* sql<{ id: number }>`SELECT id FROM ${sql(t)} ORDER BY id`
                    const streamed = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.stream.pipe(
                      Stream.runCollect
                    )
                    return { pid, joined, seen, streamedPid: Chunk.unsafeHead(streamed).pid }
                  })
                )
                outcome = { outerPid, inner }
                return yield* new Boom() // rolls the outer transaction back
              })
            )
            .pipe(Effect.catchTag("Boom", () => Effect.void))
          outcome = outcome!
          assert.notStrictEqual(outcome.inner.pid, outcome.outerPid, "the pinned client kept its own connection")
          assert.strictEqual(outcome.inner.joined, outcome.inner.pid, "statements inside its transaction joined it")
          assert.strictEqual(outcome.inner.streamedPid, outcome.inner.pid, "its cursors stay on its connection too")
          assert.deepStrictEqual(outcome.inner.seen, [{ id: 2 }], "the outer transaction's row was not visible")
          // the outer transaction rolled back; the pinned one had committed on its own
          assert.deepStrictEqual(yield* pooled<{ id: number }>`SELECT id FROM ${pooled(t)}`, [{ id: 2 }])
          assert.strictEqual((yield* settledStatistics).active, 0)
        })
    )

    it.effect("a COMMIT that fails is a SqlError, not a defect, and the connection goes back clean", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const t = uniqueTable("deferred")
        yield* sql`CREATE TABLE ${sql(t)} (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)`
        // the duplicate is only checked at COMMIT
        const exit = yield* Effect.exit(
          sql.withTransaction(
            Effect.zipRight(sql`INSERT INTO ${sql(t)} VALUES (1)`, sql`INSERT INTO ${sql(t)} VALUES (1)`)
          )
        )
        assert.isTrue(Exit.isFailure(exit))
        const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
        assert.isTrue(Option.isSome(failure), "a typed failure, not a defect")
        assert.include(String((failure as Option.Some<{ message: string }>).value.message), "SQLSTATE 23505")
        assert.deepStrictEqual(yield* sql`SELECT id FROM ${sql(t)}`, [])
        const after = yield* settledStatistics
        assert.strictEqual(after.active, 0)
        assert.strictEqual(after.total, after.idle)
      })
    )

    it.effect(
      "a caught statement error aborts the transaction: its COMMIT is refused instead of silently rolled back",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const t = uniqueTable("aborted")
          yield* sql`CREATE TABLE ${sql(t)} (id int)`
          const exit = yield* Effect.exit(
            sql.withTransaction(
              Effect.gen(function* () {
                yield* sql`INSERT INTO ${sql(t)} VALUES (1)`
                // caught, but PostgreSQL has aborted the transaction: the COMMIT would answer ROLLBACK, not an error
                yield* Effect.ignore(sql`SELECT 1 / 0`)
              })
            )
          )
          assert.isTrue(Exit.isFailure(exit))
          const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
          assert.isTrue(Option.isSome(failure), "a typed failure, not a defect")
          assert.include(
            String((failure as Option.Some<{ message: string }>).value.message),
            "rolled back, not committed"
          )
          assert.deepStrictEqual(yield* sql`SELECT id FROM ${sql(t)}`, [])
          // a savepoint is the way to let a statement fail without losing the transaction
          yield* sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO ${sql(t)} VALUES (2)`
              yield* Effect.ignore(sql.withTransaction(sql`SELECT 1 / 0`))
            })
          )
          assert.deepStrictEqual(yield* sql`SELECT id FROM ${sql(t)}`, [{ id: 2 }])
          assert.strictEqual((yield* settledStatistics).active, 0)
        })
    )

    it.effect("a statement transformer still rewrites statements, pooled and pinned", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const rewritten = Statement.withTransformer((_, make) => Effect.succeed(make`SELECT 2 AS n`))
        assert.deepStrictEqual(yield* rewritten(sql`SELECT 1 AS n`), [{ n: 2 }])
        assert.deepStrictEqual(yield* rewritten(Db.withConnection((pinned) => pinned`SELECT 1 AS n`.values)), [[2]])
      })
    )

    it.effect("statements are traced as sql.execute spans under an installed tracer, pooled and pinned", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const builtIn = yield* Effect.tracer
        const spans: Array<Tracer.Span> = []
        const recording = Tracer.make({
          span: (...args) => {
            const span = builtIn.span(...args)
            spans.push(span)
            return span
          },
          context: builtIn.context
        })
        yield* Effect.all([
          sql`SELECT 1 AS pooled`.pipe(Effect.withSpan("caller")),
          Db.withConnection((pinned) => pinned`SELECT 2 AS pinned`.values)
        ]).pipe(Effect.withTracer(recording))
        const executed = spans.filter((span) => span.name === "sql.execute")
        assert.deepStrictEqual(
          executed.map((span) => [span.attributes.get("db.query.text"), span.attributes.get("db.operation.name")]),
          [
            ["SELECT 1 AS pooled", "execute"],
            ["SELECT 2 AS pinned", "executeValues"]
          ]
        )
        for (const span of executed) {
          assert.strictEqual(span.kind, "client")
          assert.strictEqual(span.attributes.get("db.system.name"), "postgresql")
          assert.strictEqual(span.status._tag, "Ended")
        }
        const caller = spans.find((span) => span.name === "caller")!
        assert.strictEqual(Option.getOrThrow(executed[0]!.parent).spanId, caller.spanId)
      })
    )
  })

  it.layer(dbLayer({ minSize: 1, maxSize: 4, ...transforms }))("Db.layer with name transforms", (it) => {
    transformsSuite(it)

    it.effect("the pinned client of Db.withConnection transforms names too", () =>
      Effect.gen(function* () {
        const rows = yield* Db.withConnection((sql) =>
          Effect.gen(function* () {
            const [query] = sql`INSERT INTO t ${sql.insert({ firstName: "Tim" })}`.compile()
            assert.strictEqual(query, `INSERT INTO t ("first_name") VALUES ($1)`)
            return yield* sql<{ someValue: number }>`SELECT 2 AS some_value`
          })
        )
        assert.deepStrictEqual(rows, [{ someValue: 2 }])
      })
    )
  })

  it.layer(referenceLayer({ applicationName: referenceApp }))("reference: @effect/sql-pg PgClient.layer", (it) => {
    portableSuite<never>(it, { appName: referenceApp, pool: undefined })
  })

  it.layer(referenceLayer(transforms))("reference: @effect/sql-pg PgClient.layer with name transforms", (it) => {
    transformsSuite(it)
  })
})
