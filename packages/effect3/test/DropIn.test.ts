/**
 * Code written for @effect/sql-pg 0.53's `PgClient.layer` / `PgClient.layerConfig`, annotated with their types,
 * with only the layer constructors swapped (marked "was:"). `pnpm check` compiles this file, so the drop-in
 * promise is checked by the compiler; the tests below run it against a real server.
 */
import { SqlClient, SqlError } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { assert, layer } from "@effect/vitest"
import {
  Config,
  type ConfigError,
  ConfigProvider,
  Context,
  Effect,
  Fiber,
  Layer,
  Redacted,
  String as Str,
  TestClock
} from "effect"
import * as Net from "node:net"
import { Db } from "../src/index.js"
import { AcquireTimeout, ConnectionRejected, PoolConfigError } from "../src/PoolError.js"
import { hold, makeDb, waitingIs } from "./utils.js"

// ---------------------------------------------------------------------------------------------------------------
// the application, as written for @effect/sql-pg
// ---------------------------------------------------------------------------------------------------------------

interface Note {
  readonly id: number
  readonly noteText: string
}

class Notes extends Context.Tag("app/Notes")<
  Notes,
  {
    readonly add: (text: string) => Effect.Effect<Note, SqlError.SqlError>
    readonly all: Effect.Effect<ReadonlyArray<Note>, SqlError.SqlError>
  }
>() {
  static readonly layer: Layer.Layer<Notes, SqlError.SqlError, SqlClient.SqlClient | PgClient.PgClient> = Layer.effect(
    Notes,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const pg = yield* PgClient.PgClient
      yield* sql`CREATE TABLE IF NOT EXISTS drop_in_notes (id serial PRIMARY KEY, note_text text NOT NULL)`
      return {
        add: (text) =>
          sql
            .withTransaction(sql<Note>`INSERT INTO drop_in_notes ${sql.insert({ noteText: text })} RETURNING *`)
            .pipe(Effect.map((rows) => rows[0]!)),
        all: pg<Note>`SELECT * FROM drop_in_notes ORDER BY id`
      }
    })
  )
}

const makeSqlLive = (url: Redacted.Redacted): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, SqlError.SqlError> =>
  // was: PgClient.layer({ … })
  Db.layerPgClient({
    url,
    maxConnections: 4,
    transformQueryNames: Str.camelToSnake,
    transformResultNames: Str.snakeToCamel
  })

// was: PgClient.layerConfig({ … })
const SqlLiveConfig: Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, ConfigError.ConfigError | SqlError.SqlError> =
  Db.layerPgClientConfig({
    url: Config.redacted("DATABASE_URL"),
    transformQueryNames: Config.succeed(Str.camelToSnake),
    transformResultNames: Config.succeed(Str.snakeToCamel)
  })

const program = Effect.gen(function* () {
  const notes = yield* Notes
  yield* notes.add("first")
  yield* notes.add("second")
  return (yield* notes.all).map((note) => note.noteText)
})

/** Start-up failures handled the @effect/sql-pg way. */
const run = (live: Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, SqlError.SqlError | ConfigError.ConfigError>) =>
  program.pipe(
    Effect.provide(Notes.layer.pipe(Layer.provide(live))),
    Effect.map((texts) => ({ ok: texts, failed: undefined })),
    Effect.catchTag("SqlError", (error) => Effect.succeed({ ok: undefined, failed: error }))
  )

// ---------------------------------------------------------------------------------------------------------------
// the same code on our pool
// ---------------------------------------------------------------------------------------------------------------

const withQuery = (url: Redacted.Redacted<string>, query: string) => Redacted.make(`${Redacted.value(url)}?${query}`)

layer(PgTestServer.layer, { timeout: 60_000 })("drop-in for PgClient.layer", (it) => {
  it.effect("code annotated for PgClient.layer compiles and runs on Db.layerPgClient", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      yield* Effect.provide(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP TABLE IF EXISTS drop_in_notes`),
        makeSqlLive(server.url)
      )
      const result = yield* run(makeSqlLive(server.url))
      assert.deepStrictEqual(result.ok, ["first", "second"])
    })
  )

  it.effect("PgClient.layerConfig's replacement reads its Config", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const provider = ConfigProvider.fromMap(new Map([["DATABASE_URL", Redacted.value(server.url)]]))
      const texts = yield* program.pipe(
        Effect.provide(Notes.layer.pipe(Layer.provide(SqlLiveConfig))),
        Effect.withConfigProvider(provider)
      )
      assert.includeMembers([...texts], ["first", "second"])
    })
  )

  it.effect("a failed start is a SqlError that catchTag('SqlError') handles, the typed error as its cause", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      // the test server has no TLS: requiring it fails the start at once
      const unreachable = yield* run(
        Db.layerPgClient({ url: withQuery(server.url, "sslmode=require"), maxConnections: 2 })
      )
      assert.instanceOf(unreachable.failed, SqlError.SqlError)
      assert.instanceOf(unreachable.failed!.cause, ConnectionRejected)
      assert.include(unreachable.failed!.message, "the server does not accept TLS connections (sslmode=require)")
      const invalid = yield* run(Db.layerPgClient({ url: server.url, maxConnections: 0 }))
      assert.instanceOf(invalid.failed!.cause, PoolConfigError)
      assert.include(invalid.failed!.message, "Invalid database pool configuration")
    })
  )

  it.effect("PgClient.layer's stream option is refused, not ignored", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const options: PgClient.PgClientConfig = { url: server.url, stream: () => new Net.Socket() }
      const result = yield* run(Db.layerPgClient(options))
      assert.instanceOf(result.failed!.cause, PoolConfigError)
      assert.include(result.failed!.message, "stream (PgClient.layer's custom socket) is not supported")
    })
  )

  it.scoped("AcquireTimeout is bare from withConnection and the cause of a SqlError through SqlClient", () =>
    Effect.gen(function* () {
      const db = yield* makeDb({ minSize: 1, maxSize: 1, acquireTimeout: "1 second" })
      const holder = yield* hold(db)
      const viaDb = yield* Effect.fork(Effect.flip(db.withConnection(() => Effect.void)))
      const viaSql = yield* Effect.fork(Effect.flip(db.sql`SELECT 1`))
      yield* waitingIs(db, 2)
      yield* TestClock.adjust("1 second")
      assert.instanceOf(yield* Fiber.join(viaDb), AcquireTimeout)
      const wrapped = yield* Fiber.join(viaSql)
      assert.instanceOf(wrapped, SqlError.SqlError)
      assert.instanceOf(wrapped.cause, AcquireTimeout)
      assert.strictEqual(wrapped.message, (wrapped.cause as AcquireTimeout).message)
      yield* holder.release
    })
  )

  it.effect("Db.layer keeps the precise errors", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const error = yield* Effect.flip(
        Layer.build(Db.layer({ url: withQuery(server.url, "sslmode=require") })).pipe(Effect.scoped)
      )
      assert.strictEqual(error._tag, "ConnectionRejected")
    })
  )
})
