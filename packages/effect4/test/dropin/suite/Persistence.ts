/**
 * The ports of @effect/sql-pg's `test/KeyValueStore.integration.test.ts` and `test/Persistence.integration.test.ts`
 * (with the shared suites they run, from `effect-test/unstable/persistence`): effect's SQL-backed stores are code
 * written against `SqlClient` on `PgClient.layer`, with row locks, upserts, batches and polling.
 */
import type * as Vitest from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Context, Data, Duration, Effect, Exit, Fiber, Latch, Layer, Schedule, Schema } from "effect"
import * as Base64 from "effect/encoding/Base64"
import {
  KeyValueStore,
  Persistable,
  PersistedCache,
  PersistedQueue,
  Persistence as EffectPersistence
} from "effect/persistence"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import type * as PgServer from "../../support/PgServer.js"
import { clientOn, type MakeLayer } from "./MakeLayer.js"

type It = Vitest.Vitest.MethodsNonLive<PgServer.PgServer>

// effect-test/unstable/persistence/KeyValueStoreTest.ts
const keyValueStoreSuite = (
  it: It,
  name: string,
  layer: Layer.Layer<KeyValueStore.KeyValueStore, unknown, PgServer.PgServer>
) =>
  it.layer(layer, { timeout: "30 seconds" })(`KeyValueStore (${name})`, (it) => {
    it.effect("set + get + size", () =>
      Effect.gen(function* () {
        const kv = yield* KeyValueStore.KeyValueStore
        yield* kv.clear

        yield* kv.set("key", "value")

        assert.strictEqual(yield* kv.get("key"), "value")
        assert.strictEqual(yield* kv.size, 1)

        yield* kv.set("key", "value-2")

        assert.strictEqual(yield* kv.get("key"), "value-2")
        assert.strictEqual(yield* kv.size, 1)
      })
    )

    it.effect("binary values", () =>
      Effect.gen(function* () {
        const kv = yield* KeyValueStore.KeyValueStore
        yield* kv.clear
        const bytes = new Uint8Array([0, 42, 255, 128])

        yield* kv.set("binary", bytes)

        assert.strictEqual(yield* kv.get("binary"), Base64.encode(bytes))
        assert.deepStrictEqual(yield* kv.getUint8Array("binary"), bytes)
      })
    )

    it.effect("string values are not decoded as base64", () =>
      Effect.gen(function* () {
        const kv = yield* KeyValueStore.KeyValueStore
        yield* kv.clear
        const value = "Zm9v"

        yield* kv.set("string", value)

        assert.strictEqual(yield* kv.get("string"), value)
        assert.deepStrictEqual(yield* kv.getUint8Array("string"), new TextEncoder().encode(value))
      })
    )

    it.effect("utf8 string values", () =>
      Effect.gen(function* () {
        const kv = yield* KeyValueStore.KeyValueStore
        yield* kv.clear
        const value = "héllo 👋"

        yield* kv.set("utf8", value)

        assert.strictEqual(yield* kv.get("utf8"), value)
        assert.deepStrictEqual(yield* kv.getUint8Array("utf8"), new TextEncoder().encode(value))
      })
    )

    it.effect("remove", () =>
      Effect.gen(function* () {
        const kv = yield* KeyValueStore.KeyValueStore
        yield* kv.clear

        yield* kv.set("a", "1")
        yield* kv.remove("a")

        assert.strictEqual(yield* kv.get("a"), undefined)
        assert.strictEqual(yield* kv.size, 0)
      })
    )

    it.effect("clear", () =>
      Effect.gen(function* () {
        const kv = yield* KeyValueStore.KeyValueStore
        yield* kv.clear

        yield* kv.set("a", "1")
        yield* kv.set("b", "2")
        yield* kv.clear

        assert.strictEqual(yield* kv.size, 0)
        assert.strictEqual(yield* kv.get("a"), undefined)
        assert.strictEqual(yield* kv.get("b"), undefined)
      })
    )
  })

const Item = Schema.Struct({
  n: Schema.BigInt
})

// effect-test/unstable/persistence/PersistedQueueTest.ts
const persistedQueueSuite = (
  it: It,
  name: string,
  layer: Layer.Layer<PersistedQueue.PersistedQueueStore, unknown, PgServer.PgServer>
) =>
  it.layer(PersistedQueue.layer.pipe(Layer.provideMerge(layer)), { timeout: "30 seconds" })(
    `PersistedQueue (${name})`,
    (it) => {
      it.effect("offer + take", () =>
        Effect.gen(function* () {
          const queue = yield* PersistedQueue.make({
            name: "test-queue-a",
            schema: Item
          })

          yield* queue.offer({ n: 42n })
          yield* queue.take((value) => Effect.sync(() => assert.strictEqual(value.n, 42n)))
        })
      )

      it.effect("interrupt", () =>
        Effect.gen(function* () {
          const queue = yield* PersistedQueue.make({
            name: "test-queue-b",
            schema: Item
          })

          yield* queue.offer({ n: 42n })

          const latch = Latch.makeUnsafe()
          const fiber = yield* queue
            .take(
              Effect.fnUntraced(function* (_value) {
                yield* latch.open
                return yield* Effect.never
              })
            )
            .pipe(Effect.forkScoped)

          const fiber2 = yield* queue.take((val) => Effect.succeed(val)).pipe(Effect.forkScoped)

          yield* latch.await

          // allow some real time to pass to ensure the second take is really
          // waiting
          yield* TestClock.adjust(1000)
          yield* Effect.sleep(1000).pipe(TestClock.withLive)
          assert.isUndefined(fiber2.pollUnsafe())

          yield* Fiber.interrupt(fiber)

          yield* TestClock.adjust(1000)

          assert.strictEqual((yield* Fiber.join(fiber2)).n, 42n)
        })
      )

      // 4.1: a failed element is retried on the queue's `retrySchedule` (upstream: at once) and `attempts` is
      // 1-based ("this is attempt 2"; upstream counted earlier attempts: 1).
      it.effect("failure", () =>
        Effect.gen(function* () {
          const queue = yield* PersistedQueue.make({
            name: "test-queue-c",
            schema: Item,
            retrySchedule: Schedule.spaced(Duration.zero)
          })

          yield* queue.offer({ n: 42n })

          const error = yield* queue.take(() => Effect.fail("boom")).pipe(Effect.flip)
          assert.strictEqual(error, "boom")

          const fiber = yield* queue
            .take((val, { attempts }) => {
              assert.strictEqual(attempts, 2)
              return Effect.succeed(val)
            })
            .pipe(Effect.forkScoped)
          yield* TestClock.adjust(1000)
          const value = yield* Fiber.join(fiber)
          assert.strictEqual(value.n, 42n)
        })
      )

      it.effect("idempotent offer", () =>
        Effect.gen(function* () {
          const queue = yield* PersistedQueue.make({
            name: "idempotent-offer",
            schema: Item
          })

          yield* queue.offer({ n: 42n }, { id: "custom-id" })
          yield* queue.offer({ n: 42n }, { id: "custom-id" })
          yield* queue.take((value) => Effect.sync(() => assert.strictEqual(value.n, 42n)))
          const fiber = yield* queue
            .take((value) => Effect.sync(() => assert.strictEqual(value.n, 42n)))
            .pipe(Effect.forkScoped)

          yield* TestClock.adjust(1000)
          yield* Effect.sleep(1000).pipe(TestClock.withLive)

          assert.isUndefined(fiber.pollUnsafe())
        })
      )

      it.effect("deduplicates custom ids independently in each queue", () =>
        Effect.gen(function* () {
          const first = yield* PersistedQueue.make({ name: "custom-id-first", schema: Item })
          const second = yield* PersistedQueue.make({ name: "custom-id-second", schema: Item })

          yield* first.offer({ n: 1n }, { id: "shared-custom-id" })
          yield* second.offer({ n: 2n }, { id: "shared-custom-id" })

          const fiber = yield* second.take(Effect.succeed).pipe(Effect.forkScoped)
          yield* TestClock.adjust(1000)
          yield* Effect.sleep(1000).pipe(TestClock.withLive)

          assert.isDefined(fiber.pollUnsafe())
          assert.deepStrictEqual(yield* Fiber.join(fiber), { n: 2n })
        })
      )

      it.effect("does not redeliver in-flight elements", () =>
        Effect.gen(function* () {
          const queue = yield* PersistedQueue.make({
            name: "test-queue-reset",
            schema: Item
          })

          yield* queue.offer({ n: 42n })

          const taken = Latch.makeUnsafe()
          const release = Latch.makeUnsafe()
          const fiber = yield* queue.take(() => Effect.andThen(taken.open, release.await)).pipe(Effect.forkScoped)
          yield* taken.await

          const fiber2 = yield* queue.take((val) => Effect.succeed(val)).pipe(Effect.forkScoped)

          // allow any periodic reset in the store to run while the element is
          // still being processed
          yield* TestClock.adjust(1000)
          yield* Effect.sleep(1000).pipe(TestClock.withLive)

          assert.isUndefined(fiber2.pollUnsafe())

          // after a successful take the element should not be delivered again
          yield* release.open
          yield* Fiber.join(fiber)
          yield* TestClock.adjust(1000)
          yield* Effect.sleep(1000).pipe(TestClock.withLive)

          assert.isUndefined(fiber2.pollUnsafe())

          yield* Fiber.interrupt(fiber2)
        })
      )

      // 4.1: maxAttempts belongs to the queue (upstream: to each take).
      it.effect("stops delivering when maxAttempts is exhausted", () =>
        Effect.gen(function* () {
          const queue = yield* PersistedQueue.make({
            name: "test-queue-exhausted",
            schema: Item,
            maxAttempts: 1
          })

          yield* queue.offer({ n: 42n })

          const error = yield* queue.take(() => Effect.fail("boom")).pipe(Effect.flip)

          assert.strictEqual(error, "boom")

          const fiber = yield* queue.take((val) => Effect.succeed(val)).pipe(Effect.forkScoped)

          yield* TestClock.adjust(1000)
          yield* Effect.sleep(1000).pipe(TestClock.withLive)

          assert.isUndefined(fiber.pollUnsafe())
        })
      )

      // 4.1: "Elements that fail to decode with the queue's schema are marked as failed immediately and the next
      // element is taken instead, so schema decode errors never surface from take" (upstream: take fails with the
      // SchemaError).
      it.effect("counts schema decode failures as attempts", () =>
        Effect.gen(function* () {
          const store = yield* PersistedQueue.PersistedQueueStore
          const queue = yield* PersistedQueue.make({
            name: "test-queue-decode-failure",
            schema: Item,
            maxAttempts: 1
          })

          yield* store.offer({
            name: "test-queue-decode-failure",
            id: crypto.randomUUID(),
            element: { n: null },
            isCustomId: false
          })

          const fiber = yield* queue.take(Effect.succeed).pipe(Effect.forkScoped)

          yield* TestClock.adjust(1000)
          yield* Effect.sleep(1000).pipe(TestClock.withLive)

          assert.isUndefined(fiber.pollUnsafe())

          yield* queue.offer({ n: 7n })
          yield* TestClock.adjust(1000)
          assert.deepStrictEqual(yield* Fiber.join(fiber), { n: 7n })
        })
      )
    }
  )

class User extends Schema.Class<User>("User")({
  id: Schema.Number,
  name: Schema.String
}) {}

class TTLRequest extends Persistable.Class<{
  payload: { id: number }
}>()("TTLRequest", {
  primaryKey: (req) => `TTLRequest:${req.id}`,
  success: User,
  error: Schema.String
}) {}

export class TransientError extends Data.TaggedError("TransientError") {}

class LookupService extends Context.Service<LookupService, { readonly value: string }>()("LookupService") {}

// effect-test/unstable/persistence/PersistedCacheTest.ts
const persistedCacheSuite = (
  it: It,
  storeId: string,
  layer: Layer.Layer<EffectPersistence.Persistence, unknown, PgServer.PgServer>
) =>
  it.layer(layer, { timeout: "60 seconds" })(`PersistedCache (${storeId})`, (it) => {
    it.effect(
      "smoke test",
      () =>
        Effect.gen(function* () {
          const persistence = yield* EffectPersistence.Persistence
          const store = yield* persistence.make({ storeId: "users" })
          let invocations = 0
          let cache = yield* PersistedCache.make(
            (req: TTLRequest) =>
              Effect.sync(() => {
                invocations++
                return new User({ id: req.id, name: "John" })
              }),
            {
              storeId: "users",
              timeToLive: () => 5000
            }
          )
          const user = yield* cache.get(new TTLRequest({ id: 1 }))
          assert.deepStrictEqual(user, new User({ id: 1, name: "John" }))
          assert.deepStrictEqual(
            yield* store.get(new TTLRequest({ id: 1 })),
            Exit.succeed(new User({ id: 1, name: "John" }))
          )
          assert.strictEqual(invocations, 1)
          assert.deepStrictEqual(yield* cache.get(new TTLRequest({ id: 1 })), new User({ id: 1, name: "John" }))
          assert.strictEqual(invocations, 1)

          cache = yield* PersistedCache.make(
            (req: TTLRequest) =>
              Effect.sync(() => {
                invocations++
                return new User({ id: req.id, name: "John" })
              }),
            {
              storeId: "users",
              timeToLive: (_req, _exit) => 5000
            }
          )
          assert.deepStrictEqual(yield* cache.get(new TTLRequest({ id: 1 })), new User({ id: 1, name: "John" }))
          assert.strictEqual(invocations, 1)

          yield* store.setMany([
            [new TTLRequest({ id: 1 }), Exit.fail("Not found")],
            [new TTLRequest({ id: 2 }), Exit.succeed(new User({ id: 2, name: "Jane" }))]
          ])
          const results = yield* store.getMany([new TTLRequest({ id: 1 }), new TTLRequest({ id: 2 })])
          assert.deepStrictEqual(results, [Exit.fail("Not found"), Exit.succeed(new User({ id: 2, name: "Jane" }))])
        }),
      30_000
    )

    it.effect(
      "requireServicesAt: 'lookup' requires lookup services at get-time",
      () =>
        Effect.gen(function* () {
          const cache = yield* PersistedCache.make(
            (req: TTLRequest) => Effect.map(LookupService, (service) => new User({ id: req.id, name: service.value })),
            {
              storeId: `${storeId}-require-services-at`,
              timeToLive: () => 5000,
              requireServicesAt: "lookup"
            }
          )

          const result1 = yield* cache
            .get(new TTLRequest({ id: 1 }))
            .pipe(Effect.provideService(LookupService, LookupService.of({ value: "first" })))
          const result2 = yield* cache
            .get(new TTLRequest({ id: 2 }))
            .pipe(Effect.provideService(LookupService, LookupService.of({ value: "second" })))
          const result3 = yield* cache
            .get(new TTLRequest({ id: 1 }))
            .pipe(Effect.provideService(LookupService, LookupService.of({ value: "third" })))

          assert.deepStrictEqual(result1, new User({ id: 1, name: "first" }))
          assert.deepStrictEqual(result2, new User({ id: 2, name: "second" }))
          assert.deepStrictEqual(result3, new User({ id: 1, name: "first" }))
        }),
      30_000
    )
  })

// effect-test/unstable/persistence/SqlCleanupTest.ts; its batch size is effect 4.1.0's internal
// `sqlCleanupBatchSize` (1000), not exported.
const sqlCleanup = {
  expiredEntryCount: 1000 + 1,
  expiredAtEpoch: 0,
  futureExpiresAt: Number.MAX_SAFE_INTEGER,
  testTimeout: 30_000,
  waitForCount: <E, R>(effect: Effect.Effect<number, E, R>, predicate: (count: number) => boolean) =>
    effect.pipe(
      Effect.repeat({ until: predicate, schedule: Schedule.spaced(Duration.millis(10)) }),
      Effect.timeout(Duration.millis(30_000)),
      TestClock.withLive
    )
}

export const suite = (it: It, makeLayer: MakeLayer) => {
  // test/KeyValueStore.integration.test.ts
  keyValueStoreSuite(it, "sql-pg", KeyValueStore.layerSql().pipe(Layer.provide(clientOn(makeLayer))))
  keyValueStoreSuite(
    it,
    "sql-pg-custom-table",
    KeyValueStore.layerSql({ table: "effect_key_value_store_custom" }).pipe(Layer.provide(clientOn(makeLayer)))
  )

  // test/Persistence.integration.test.ts
  persistedCacheSuite(it, "sql-pg-multi", EffectPersistence.layerSqlMultiTable.pipe(Layer.provide(clientOn(makeLayer))))
  persistedCacheSuite(it, "sql-pg-single", EffectPersistence.layerSql.pipe(Layer.provide(clientOn(makeLayer))))
  persistedQueueSuite(it, "sql-pg", PersistedQueue.layerStoreSql().pipe(Layer.provide(clientOn(makeLayer))))

  it.layer(clientOn(makeLayer), { timeout: "30 seconds" })("PersistedQueue SQL locks", (it) => {
    it.effect("refreshes locks for acquired elements", () =>
      Effect.gen(function* () {
        const options = {
          tableName: "effect_queue_lock_refresh",
          pollInterval: "10 millis",
          lockRefreshInterval: "100 millis",
          lockExpiration: "1 second"
        } as const
        // 4.1's store.take takes the retry delay (upstream: none).
        const retryDelay = () => Effect.succeed(Duration.zero)
        const store1 = yield* PersistedQueue.makeStoreSql(options)
        const store2 = yield* PersistedQueue.makeStoreSql(options)
        const element = { message: "hello" }

        yield* store1.offer({
          name: "lock-refresh",
          id: crypto.randomUUID(),
          element,
          isCustomId: false
        })

        const acquired = Latch.makeUnsafe()
        const first = yield* Effect.scoped(
          Effect.gen(function* () {
            yield* store1.take({ name: "lock-refresh", maxAttempts: 10, retryDelay })
            yield* acquired.open
            return yield* Effect.never
          })
        ).pipe(Effect.forkScoped)

        yield* acquired.await

        const second = yield* Effect.scoped(store2.take({ name: "lock-refresh", maxAttempts: 10, retryDelay })).pipe(
          Effect.forkScoped
        )

        yield* Effect.sleep("1500 millis")
        assert.isUndefined(second.pollUnsafe())

        yield* Fiber.interrupt(first)
        const received = yield* Fiber.join(second)
        assert.deepStrictEqual(received.element, element)
      }).pipe(TestClock.withLive)
    )

    it.effect("counts malformed JSON as an attempt and continues", () =>
      Effect.gen(function* () {
        const tableName = "effect_queue_invalid_json"
        const store = yield* PersistedQueue.makeStoreSql({
          tableName,
          pollInterval: "10 millis"
        })
        const factory = yield* PersistedQueue.makeFactory.pipe(
          Effect.provideService(PersistedQueue.PersistedQueueStore, store)
        )
        const queue = yield* factory.make({
          name: "invalid-json",
          schema: Schema.String,
          maxAttempts: 1
        })
        const sql = (yield* SqlClient.SqlClient).withoutTransforms()
        const table = sql(tableName)
        const poisonId = crypto.randomUUID()

        yield* store.offer({
          name: "invalid-json",
          id: poisonId,
          element: "poison",
          isCustomId: false
        })
        yield* sql`UPDATE ${table} SET element = ${"{"} WHERE id = ${poisonId}`
        yield* queue.offer("valid")

        // 4.1: the malformed element is marked failed and take goes on to the next (upstream: take fails first).
        const value = yield* queue.take(Effect.succeed)
        assert.strictEqual(value, "valid")

        const rows = yield* sql<{
          readonly attempts: number
          readonly last_failure: string | null
        }>`SELECT attempts, last_failure FROM ${table} WHERE id = ${poisonId}`
        assert.strictEqual(rows[0].attempts, 1)
        assert.isNotNull(rows[0].last_failure)
      }).pipe(TestClock.withLive)
    )
  })

  it.layer(clientOn(makeLayer), { timeout: "30 seconds" })("Persistence SQL cleanup", (it) => {
    it.effect(
      "deletes expired entries in batches",
      () =>
        Effect.gen(function* () {
          const sql = (yield* SqlClient.SqlClient).withoutTransforms()
          const table = sql("effect_persistence")
          const expiredCount = sql<{ readonly count: number }>`
          SELECT COUNT(*)::INT AS count FROM ${table} WHERE store_id = 'expired'
        `.pipe(Effect.map((rows) => rows[0].count))
          // The PersistedCache suites above ran on this database: start from an empty table, as upstream does.
          yield* sql`DROP TABLE IF EXISTS ${table}`
          yield* sql`
          CREATE TABLE ${table} (
            store_id TEXT NOT NULL,
            id TEXT NOT NULL,
            value TEXT NOT NULL,
            expires BIGINT,
            PRIMARY KEY (store_id, id)
          )
        `

          const entries = Array.from({ length: sqlCleanup.expiredEntryCount }, (_, i) => ({
            store_id: "expired",
            id: String(i),
            value: "{}",
            expires: sqlCleanup.expiredAtEpoch
          })) as unknown as [Record<string, unknown>, ...Array<Record<string, unknown>>]
          yield* sql`INSERT INTO ${table} ${sql.insert(entries)}`.unprepared
          yield* sql`
          INSERT INTO ${table} (store_id, id, value, expires)
          VALUES ('live', 'live', '{}', NULL), ('live', 'future', '{}', ${sqlCleanup.futureExpiresAt})
        `

          yield* Layer.build(EffectPersistence.layerBackingSql).pipe(TestClock.withLive)

          const expired = yield* sqlCleanup.waitForCount(expiredCount, (count) => count === 0)
          assert.strictEqual(expired, 0)
          const live = yield* sql<{ readonly count: number }>`
          SELECT COUNT(*)::INT AS count FROM ${table} WHERE store_id = 'live'
        `
          assert.strictEqual(live[0].count, 2)

          const indexes = yield* sql<{ readonly count: number }>`
          SELECT COUNT(*)::INT AS count FROM pg_indexes
          WHERE tablename = 'effect_persistence'
            AND indexname = 'effect_persistence_expires_idx'
        `
          assert.strictEqual(indexes[0].count, 1)
        }),
      { timeout: sqlCleanup.testTimeout }
    )
  })
}
