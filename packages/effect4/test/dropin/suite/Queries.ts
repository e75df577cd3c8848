/**
 * What code written for `PgClient.layer` reads back from a query: the types 4.0.5's codec decodes and encodes, the
 * statement forms (`.values`, `.raw`, `.unprepared`, `.stream`), `reserve`, JSON and name transforms. The expected
 * values are those of @effect/sql-pg 4.0.5 on PostgreSQL 17.
 */
import { PgClient } from "@effect/sql-pg"
import type * as Vitest from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Effect, Stream, String as Str } from "effect"
import { SqlClient } from "effect/sql"
import type * as PgServer from "../../support/PgServer.js"
import { clientOn, type MakeLayer } from "./MakeLayer.js"

export const suite = (it: Vitest.Vitest.MethodsNonLive<PgServer.PgServer>, makeLayer: MakeLayer) => {
  it.layer(clientOn(makeLayer), { timeout: "30 seconds" })("PgClient queries", (it) => {
    it.effect("decodes PostgreSQL types as 4.0.5 does", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql`
          SELECT 1::int8 AS i8, 2::int2 AS i2, 1.5::numeric AS num, 1.5::float8 AS f8, true AS b, 'x'::text AS t,
            '2020-01-01'::date AS d, '2020-01-01T00:00:00Z'::timestamptz AS ts, '\\x0102'::bytea AS by,
            '7a2ab5aa-cacc-4146-8364-c637d09c5256'::uuid AS u, NULL AS n, ARRAY[1, 2, 3] AS ai, ARRAY['a', 'b'] AS at,
            '{"a_b": 1}'::json AS j, '1 day'::interval AS iv`
        assert.deepStrictEqual(row, {
          i8: 1n,
          i2: 2,
          num: "1.5",
          f8: 1.5,
          b: true,
          t: "x",
          d: "2020-01-01",
          ts: new Date("2020-01-01T00:00:00Z"),
          by: new Uint8Array([1, 2]),
          u: "7a2ab5aa-cacc-4146-8364-c637d09c5256",
          n: null,
          ai: [1, 2, 3],
          at: ["a", "b"],
          j: { a_b: 1 },
          iv: { months: 0, days: 1, microseconds: 0n }
        })
      })
    )

    it.effect("encodes parameters: arrays, bigint, Date, bytes, booleans, null", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql`
          SELECT ${[1, 2, 3]}::int[] AS a, ${["x", "y"]}::text[] AS t, ${10n} AS big, ${new Date(0)} AS d,
            ${new Uint8Array([1, 2])} AS by, ${true} AS b, ${1.5} AS f, ${null}::text AS n, ${"s"} AS s`
        assert.deepStrictEqual(row, {
          a: [1, 2, 3],
          t: ["x", "y"],
          big: 10n,
          d: new Date(0),
          by: new Uint8Array([1, 2]),
          b: true,
          f: 1.5,
          n: null,
          s: "s"
        })
      })
    )

    it.effect("a plain object parameter fails typed: 4.0.5 infers no type for it", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const error = yield* Effect.flip(sql`SELECT ${{ a: 1 } as unknown as string} AS o`)
        assert.strictEqual(error.reason._tag, "UnknownError")
        assert.strictEqual(error.message, "PgConnection: Failed to encode query")
      })
    )

    it.effect("values, raw and unprepared", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(yield* sql`SELECT 1 AS x, 'a' AS y`.values, [[1, "a"]])
        assert.deepStrictEqual(yield* sql`SELECT ${2}::int AS x`.valuesUnprepared, [[2]])
        assert.deepStrictEqual(yield* sql<{ x: number }>`SELECT ${3}::int AS x`.unprepared, [{ x: 3 }])
        const raw = (yield* sql`SELECT 1 AS x`.raw) as { command: string; rowCount: number; rows: unknown }
        assert.strictEqual(raw.command, "SELECT")
        assert.strictEqual(raw.rowCount, 1)
        assert.deepStrictEqual(raw.rows, [{ x: 1 }])
      })
    )

    it.effect("sql.unsafe and sql.literal", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(yield* sql.unsafe<{ x: number }>("SELECT $1::int AS x", [4]), [{ x: 4 }])
        assert.deepStrictEqual(yield* sql<{ x: number }>`SELECT ${sql.literal("5")}::int AS x`, [{ x: 5 }])
      })
    )

    it.effect("insert and update helpers run against a table", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE helper_people (id serial PRIMARY KEY, name text NOT NULL, age int)`
        const inserted = yield* sql<{ id: number; name: string }>`
          INSERT INTO helper_people ${sql.insert([
            { name: "Tim", age: 10 },
            { name: "John", age: 20 }
          ])} RETURNING id, name`
        assert.deepStrictEqual(inserted, [
          { id: 1, name: "Tim" },
          { id: 2, name: "John" }
        ])
        yield* sql`UPDATE helper_people SET ${sql.update({ age: 11 })} WHERE ${sql.in("id", [1])}`
        yield* sql`UPDATE helper_people SET name = data.name FROM ${sql.updateValues(
          [{ id: 2, name: "Johnny" }],
          "data"
        )} WHERE helper_people.id = data.id`
        const rows = yield* sql`SELECT id, name, age FROM helper_people ORDER BY id`
        assert.deepStrictEqual(rows, [
          { id: 1, name: "Tim", age: 11 },
          { id: 2, name: "Johnny", age: 20 }
        ])
      })
    )

    it.effect("json: sql.json into jsonb and back", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        yield* sql`CREATE TABLE json_docs (doc jsonb NOT NULL)`
        yield* sql`INSERT INTO json_docs ${sql.insert({ doc: sql.json({ list: [1, "two", null], nested: { ok: true } }) })}`
        const rows = yield* sql`SELECT doc, doc->'nested'->>'ok' AS ok FROM json_docs`
        assert.deepStrictEqual(rows, [{ doc: { list: [1, "two", null], nested: { ok: true } }, ok: "true" }])
      })
    )

    it.effect("reserve: every statement on one session, until the scope closes", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const pids = yield* Effect.scoped(
          Effect.gen(function* () {
            const conn = yield* sql.reserve
            yield* conn.executeRaw("SET application_name = 'reserved'", [])
            const first = yield* conn.executeValues("SELECT pg_backend_pid()", [])
            const second = yield* conn.executeValues("SELECT pg_backend_pid(), current_setting('application_name')", [])
            return [first, second] as const
          })
        )
        assert.strictEqual(pids[0][0][0], pids[1][0][0])
        assert.strictEqual(pids[1][0][1], "reserved")
      })
    )

    it.effect("stream: many rows in order, and an early end leaves the client usable", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const all = yield* sql<{ n: number }>`SELECT generate_series(1, 10000) AS n`.stream.pipe(
          Stream.runFold(
            () => ({ count: 0, ordered: true }),
            (acc, row) => ({ count: acc.count + 1, ordered: acc.ordered && row.n === acc.count + 1 })
          )
        )
        assert.deepStrictEqual(all, { count: 10000, ordered: true })

        const firstThree = yield* sql<{ n: number }>`SELECT generate_series(1, 100000) AS n`.stream.pipe(
          Stream.take(3),
          Stream.runCollect
        )
        assert.deepStrictEqual(firstThree, [{ n: 1 }, { n: 2 }, { n: 3 }])
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      })
    )

    it.effect("stream inside a transaction sees the transaction's rows", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`CREATE TEMP TABLE streamed (n int) ON COMMIT DROP`
            yield* sql`INSERT INTO streamed SELECT generate_series(1, 5)`
            return yield* sql<{ n: number }>`SELECT n FROM streamed ORDER BY n`.stream.pipe(Stream.runCollect)
          })
        )
        assert.deepStrictEqual(
          rows.map((row) => row.n),
          [1, 2, 3, 4, 5]
        )
      })
    )

    it.effect("a failed stream fails typed", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const error = yield* Effect.flip(sql`SELECT * FROM no_such_streamed_table`.stream.pipe(Stream.runCollect))
        assert.strictEqual(error.reason._tag, "SqlSyntaxError")
      })
    )
  })

  it.layer(clientOn(makeLayer, { transformResultNames: Str.snakeToCamel, transformQueryNames: Str.camelToSnake }), {
    timeout: "30 seconds"
  })("PgClient row transforms", (it) => {
    it.effect("result names and nested JSON keys are transformed; withoutTransforms keeps them", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        yield* sql`CREATE TABLE transformed_people (first_name text, extra_info jsonb)`
        yield* sql`INSERT INTO transformed_people ${sql.insert({
          firstName: "Tim",
          extraInfo: sql.json({ favouriteColour: "blue" })
        })}`
        const rows = yield* sql`SELECT first_name, extra_info FROM transformed_people`
        assert.deepStrictEqual(rows, [{ firstName: "Tim", extraInfo: { favouriteColour: "blue" } }])
        const raw = yield* sql.withoutTransforms()`SELECT first_name, extra_info FROM transformed_people`
        assert.deepStrictEqual(raw, [{ first_name: "Tim", extra_info: { favourite_colour: "blue" } }])
      })
    )

    it.effect("streams are transformed too", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT 1 AS some_value`.stream.pipe(Stream.runCollect)
        assert.deepStrictEqual(rows, [{ someValue: 1 }])
      })
    )
  })

  it.layer(
    clientOn(makeLayer, {
      transformResultNames: Str.snakeToCamel,
      transformQueryNames: Str.camelToSnake,
      transformJson: false
    }),
    { timeout: "30 seconds" }
  )("PgClient transformJson: false", (it) => {
    it.effect("column names are transformed, JSON contents are not", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const rows = yield* sql`SELECT ${sql.json({ inner_key: 1 })}::jsonb AS outer_key`
        assert.deepStrictEqual(rows, [{ outerKey: { inner_key: 1 } }])
      })
    )
  })
}
