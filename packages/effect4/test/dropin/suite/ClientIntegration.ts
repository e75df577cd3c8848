/**
 * The port of @effect/sql-pg's own `test/Client.integration.test.ts` (Effect-TS/effect, branch main), run on a
 * layer given by the caller instead of `PgClient.layer` on a container. Its assertions are kept; where @effect/sql-pg
 * 4.0.5 behaves otherwise than the pg-based client that file was written for, the test says so and what changed.
 *
 * Left out, with why:
 * - "transform nested", "transform non nested": they test `Statement.defaultTransforms` alone, no client.
 * - "PgClient.makeClient" ("connects before executing queries", "handles errors emitted while connecting"): the
 *   single-connection constructor, not `PgClient.layer`; the second mocks `pg.Client`, which 4.0.5 does not use.
 * - "serializes transactions that share one pg.Client": it builds a client on a fake `pg.Client` through
 *   `PgClient.fromClient`, gone in 4.0.5; its behaviour on a pool of one is ported in Transactions.ts.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, expect } from "@effect/vitest"
import type * as Vitest from "@effect/vitest"
import { Deferred, Effect, Fiber, Queue, Redacted, Stream, String as Str } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import type * as PgServer from "../../support/PgServer.js"
import { clientOn, type MakeLayer } from "./MakeLayer.js"

const compilerTransform = PgClient.makeCompiler(Str.camelToSnake)

export const suite = (it: Vitest.Vitest.MethodsNonLive<PgServer.PgServer>, makeLayer: MakeLayer) => {
  it.layer(clientOn(makeLayer), { timeout: "30 seconds" })("PgClient", (it) => {
    // 4.0.5's compiler quotes the alias of `updateValues` (`AS "data"("name")`; upstream main: `AS "data"("name")`).
    it.effect("insert helper", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const [query, params] = sql`INSERT INTO people ${sql.insert({ name: "Tim", age: 10 })}`.compile()
        expect(query).toEqual(`INSERT INTO people ("name","age") VALUES ($1,$2)`)
        expect(params).toEqual(["Tim", 10])
      })
    )

    it.effect("updateValues helper", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const [query, params] = sql`UPDATE people SET name = data.name FROM ${sql.updateValues(
          [{ name: "Tim" }, { name: "John" }],
          "data"
        )}`.compile()
        expect(query).toEqual(`UPDATE people SET name = data.name FROM (values ($1),($2)) AS "data"("name")`)
        expect(params).toEqual(["Tim", "John"])
      })
    )

    it.effect("updateValues helper returning", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const [query, params] = sql`UPDATE people SET name = data.name FROM ${sql
          .updateValues([{ name: "Tim" }, { name: "John" }], "data")
          .returning("*")}`.compile()
        expect(query).toEqual(
          `UPDATE people SET name = data.name FROM (values ($1),($2)) AS "data"("name") RETURNING *`
        )
        expect(params).toEqual(["Tim", "John"])
      })
    )

    it.effect("update helper", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        let result = sql`UPDATE people SET ${sql.update({ name: "Tim" })}`.compile()
        expect(result[0]).toEqual(`UPDATE people SET "name" = $1`)
        expect(result[1]).toEqual(["Tim"])

        result = sql`UPDATE people SET ${sql.update({ name: "Tim", age: 10 }, ["age"])}`.compile()
        expect(result[0]).toEqual(`UPDATE people SET "name" = $1`)
        expect(result[1]).toEqual(["Tim"])
      })
    )

    it.effect("update helper returning", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const result = sql`UPDATE people SET ${sql.update({ name: "Tim" }).returning("*")}`.compile()
        expect(result[0]).toEqual(`UPDATE people SET "name" = $1 RETURNING *`)
        expect(result[1]).toEqual(["Tim"])
      })
    )

    it.effect("array helper", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const [query, params] = sql`SELECT * FROM ${sql("people")} WHERE id IN ${sql.in([1, 2, "string"])}`.compile()
        expect(query).toEqual(`SELECT * FROM "people" WHERE id IN ($1,$2,$3)`)
        expect(params).toEqual([1, 2, "string"])
      })
    )

    it.effect("array helper with column", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        let result = sql`SELECT * FROM ${sql("people")} WHERE ${sql.in("id", [1, 2, "string"])}`.compile()
        expect(result[0]).toEqual(`SELECT * FROM "people" WHERE "id" IN ($1,$2,$3)`)
        expect(result[1]).toEqual([1, 2, "string"])

        result = sql`SELECT * FROM ${sql("people")} WHERE ${sql.in("id", [])}`.compile()
        expect(result[0]).toEqual(`SELECT * FROM "people" WHERE 1=0`)
        expect(result[1]).toEqual([])
      })
    )

    it.effect("and", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const now = new Date()
        const result = sql`SELECT * FROM ${sql("people")} WHERE ${sql.and([
          sql.in("name", ["Tim", "John"]),
          sql`created_at < ${now}`
        ])}`.compile()
        expect(result[0]).toEqual(`SELECT * FROM "people" WHERE ("name" IN ($1,$2) AND created_at < $3)`)
        expect(result[1]).toEqual(["Tim", "John", now])
      })
    )

    it.effect("insert fragments", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const [query, params] = sql`INSERT INTO people ${sql.insert({
          name: "Tim",
          age: 10,
          json: sql.json({ a: 1 })
        })}`.compile()
        assert.strictEqual(query, 'INSERT INTO people ("name","age","json") VALUES ($1,$2,$3)')
        assert.lengthOf(params, 3)
      })
    )

    it.effect("update fragments", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const now = new Date()
        const [query, params] = sql`UPDATE people SET json = data.json FROM ${sql.updateValues(
          [{ json: sql.json({ a: 1 }) }, { json: sql.json({ b: 1 }) }],
          "data"
        )} WHERE created_at > ${now}`.compile()
        assert.strictEqual(
          query,
          `UPDATE people SET json = data.json FROM (values ($1),($2)) AS "data"("json") WHERE created_at > $3`
        )
        assert.lengthOf(params, 3)
      })
    )

    it.effect("onDialect", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        assert.strictEqual(
          sql.onDialect({
            sqlite: () => "A",
            pg: () => "B",
            mysql: () => "C",
            mssql: () => "D",
            clickhouse: () => "E"
          }),
          "B"
        )
        assert.strictEqual(
          sql.onDialectOrElse({
            orElse: () => "A",
            pg: () => "B"
          }),
          "B"
        )
      })
    )

    it.effect("identifier transform", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const [query] = compilerTransform.compile(sql`SELECT * from ${sql("peopleTest")}`, false)
        expect(query).toEqual(`SELECT * from "people_test"`)
      })
    )

    // Upstream binds the object itself; 4.0.5 infers no type for a plain object ("Cannot infer a PostgreSQL type
    // for [object Object]", see Types.ts) and takes it through `sql.json`.
    it.effect("jsonb", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const rows = yield* sql<{ json: unknown }>`select ${sql.json({ testValue: 123 })}::jsonb as json`
        expect(rows[0].json).toEqual({ testValue: 123 })
      })
    )

    it.effect("stream", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT generate_series(1, 3)`.stream.pipe(Stream.runCollect)
        expect(rows).toEqual([{ generate_series: 1 }, { generate_series: 2 }, { generate_series: 3 }])
      })
    )

    it.effect("preserves successful concurrent nested transactions", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const firstStarted = yield* Deferred.make<void>()
        const firstInserted = yield* Deferred.make<void>()

        const rows = yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`CREATE TEMP TABLE nested_transactions (value TEXT) ON COMMIT DROP`
            yield* Effect.all(
              [
                sql.withTransaction(
                  Effect.gen(function* () {
                    yield* Deferred.succeed(firstStarted, undefined)
                    yield* Effect.sleep("100 millis")
                    yield* sql`INSERT INTO nested_transactions VALUES ('first')`
                    yield* Deferred.succeed(firstInserted, undefined)
                  })
                ),
                Deferred.await(firstStarted).pipe(
                  Effect.andThen(
                    sql.withTransaction(Deferred.await(firstInserted).pipe(Effect.andThen(Effect.fail("rollback"))))
                  )
                )
              ],
              { concurrency: "unbounded" }
            ).pipe(Effect.catch(() => Effect.void))
            return yield* sql<{ value: string }>`SELECT value FROM nested_transactions`
          })
        )

        assert.deepStrictEqual(rows, [{ value: "first" }])
      }).pipe(TestClock.withLive)
    )
  })

  it.layer(clientOn(makeLayer, { transformResultNames: Str.snakeToCamel, transformQueryNames: Str.camelToSnake }), {
    timeout: "30 seconds"
  })("PgClient transforms", (it) => {
    it.effect("insert helper", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const [query, params] = sql`INSERT INTO people ${sql.insert({ firstName: "Tim", age: 10 })}`.compile()
        expect(query).toEqual(`INSERT INTO people ("first_name","age") VALUES ($1,$2)`)
        expect(params).toEqual(["Tim", 10])
      })
    )

    it.effect("insert helper withoutTransforms", () =>
      Effect.gen(function* () {
        const sql = (yield* PgClient.PgClient).withoutTransforms()
        const [query, params] = sql`INSERT INTO people ${sql.insert({ first_name: "Tim", age: 10 })}`.compile()
        expect(query).toEqual(`INSERT INTO people ("first_name","age") VALUES ($1,$2)`)
        expect(params).toEqual(["Tim", 10])
      })
    )

    // Upstream runs three statements in one query and gets three results. 4.0.5 sends every statement through the
    // extended protocol (PgConnection.ts has no simple-query path), which PostgreSQL refuses for several commands:
    // the drop-in must fail the same way, typed, and run none of them.
    it.effect("multi-statement queries", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient

        const error = yield* Effect.flip(sql<{ id: string; name: string }>`
          CREATE TABLE test_multi (id TEXT PRIMARY KEY, name TEXT);
          INSERT INTO test_multi (id, name) VALUES ('id1', 'test1') RETURNING *;
          INSERT INTO test_multi (id, name) VALUES ('id2', 'test2') RETURNING *;
        `)

        expect(error.reason._tag).toEqual("SqlSyntaxError")
        expect((error.reason.cause as Error).message).toContain("multiple commands")
        const tables = yield* sql<{
          count: number
        }>`SELECT count(*)::int AS count FROM pg_tables WHERE tablename = 'test_multi'`
        expect(tables).toEqual([{ count: 0 }])
      })
    )

    it.effect("interruption", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const conn = yield* sql.reserve
        yield* conn.executeRaw("select pg_sleep(1000)", []).pipe(Effect.timeoutOption("50 millis"), TestClock.withLive)
        const value = yield* conn.executeValues("select 1", [])
        expect(value).toEqual([[1]])
      })
    )

    // Upstream parses `sql.config.url` with pg-connection-string and expects host, port, username, password and
    // database filled in from it. @effect/sql-pg 4.0.5's `config` is the options as given (PgClient.ts: `config:
    // options`), so with only `url` given those fields stay undefined: the drop-in must keep exactly that.
    it.effect("Should populate config", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient

        assert.isDefined(sql.config.url)
        const url = new URL(Redacted.value(sql.config.url))
        assert.strictEqual(url.protocol, "postgres:")
        assert.isString(url.password)
        assert.isAbove(url.password.length, 0)
        assert.isUndefined(sql.config.host)
        assert.isUndefined(sql.config.port)
        assert.isUndefined(sql.config.username)
        assert.isUndefined(sql.config.password)
        assert.isUndefined(sql.config.database)
        assert.strictEqual(sql.config.transformResultNames, Str.snakeToCamel)
        assert.strictEqual(sql.config.transformQueryNames, Str.camelToSnake)
      })
    )
  })

  // Upstream's listener returned a Stream and shared a connection with the pool ("listen does not reserve a pool
  // connection", run with maxConnections: 1). In 4.0.5 `listen` returns a queue once LISTEN is confirmed, and
  // "the listener holds a connection until the scope closes" (PgClient.ts): with one connection the query would
  // wait for the listener's scope. The same assertions run with two connections.
  it.layer(clientOn(makeLayer, { maxConnections: 2 }), { timeout: "30 seconds" })("PgClient listen", (it) => {
    it.effect(
      "a query runs while a listener holds its connection",
      () =>
        Effect.gen(function* () {
          const sql = yield* PgClient.PgClient
          const channel = "pool_connection_listen"

          const notifications = yield* sql.listen(channel)
          const listenFiber = yield* Queue.take(notifications).pipe(Effect.forkScoped)

          const rows = yield* sql<{ value: number }>`SELECT 1 as value`.pipe(
            Effect.timeoutOrElse({
              duration: "3 seconds",
              orElse: () => Effect.fail(new Error("query timed out while listener was active"))
            })
          )
          expect(rows).toEqual([{ value: 1 }])

          yield* sql.notify(channel, "payload")
          const notification = yield* Fiber.join(listenFiber).pipe(
            Effect.timeoutOrElse({
              duration: "3 seconds",
              orElse: () => Effect.fail(new Error("listener did not receive notification in time"))
            })
          )
          expect(notification.payload).toEqual("payload")
          expect(notification.channel).toEqual(channel)
        }).pipe(TestClock.withLive),
      20_000
    )

    it.effect(
      "notify sends payload",
      () =>
        Effect.gen(function* () {
          const sql = yield* PgClient.PgClient
          const channel = "pool_connection_notify"

          const notifications = yield* sql.listen(channel)
          yield* sql.notify(channel, "payload")

          const notification = yield* Queue.take(notifications).pipe(
            Effect.timeoutOrElse({
              duration: "3 seconds",
              orElse: () => Effect.fail(new Error("listener did not receive notification in time"))
            })
          )
          expect(notification.payload).toEqual("payload")
        }).pipe(TestClock.withLive),
      20_000
    )
  })
}
