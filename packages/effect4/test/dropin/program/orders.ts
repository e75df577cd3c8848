/**
 * An Effect 4 program written for @effect/sql-pg's `PgClient.layer`, as its users write them: nothing in it knows
 * which layer provides `PgClient` and `SqlClient`. unchanged.test.ts runs this same source on `PgClient.layer` and
 * on ours.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Queue, Stream } from "effect"
import { SqlClient } from "effect/sql"

/** What the program saw, to compare between layers. */
export interface Report {
  readonly created: ReadonlyArray<{ readonly id: number; readonly item: string }>
  readonly rolledBack: string
  readonly committedTotal: number
  readonly streamed: ReadonlyArray<string>
  readonly notified: ReadonlyArray<string>
  readonly perCustomer: ReadonlyArray<{ readonly customer: string; readonly orders: number }>
}

export const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const pg = yield* PgClient.PgClient

  yield* sql`CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer text NOT NULL,
    item text NOT NULL,
    quantity int NOT NULL CHECK (quantity > 0),
    details jsonb
  )`

  const created = yield* sql<{ id: number; item: string }>`
    INSERT INTO orders ${sql.insert([
      { customer: "ada", item: "lamp", quantity: 1, details: pg.json({ gift: true }) },
      { customer: "ada", item: "desk", quantity: 2, details: null },
      { customer: "bob", item: "chair", quantity: 4, details: null }
    ])} RETURNING id, item`

  // A transfer that breaks a CHECK half way: nothing of it stays.
  const rolledBack = yield* sql
    .withTransaction(
      Effect.gen(function* () {
        yield* sql`UPDATE orders SET quantity = quantity + 1 WHERE customer = ${"bob"}`
        yield* sql`UPDATE orders SET quantity = quantity - 5 WHERE customer = ${"ada"}`
      })
    )
    .pipe(
      Effect.as("committed"),
      Effect.catchTag("SqlError", (error) => Effect.succeed(error.reason._tag))
    )

  // A transaction with a savepoint that fails inside it, and the outer part committed.
  yield* sql.withTransaction(
    Effect.gen(function* () {
      yield* sql`UPDATE orders SET quantity = quantity + 10 WHERE item = ${"lamp"}`
      yield* Effect.ignore(sql.withTransaction(sql`UPDATE orders SET quantity = -1 WHERE item = ${"desk"}`))
    })
  )
  const [{ total }] = yield* sql<{ total: number }>`SELECT sum(quantity)::int AS total FROM orders`

  const streamed = yield* sql<{ item: string }>`SELECT item FROM orders ORDER BY id`.stream.pipe(
    Stream.map((row) => row.item),
    Stream.runCollect
  )

  const notified = yield* Effect.scoped(
    Effect.gen(function* () {
      const notifications = yield* pg.listen("orders_changed")
      yield* pg.notify("orders_changed", "lamp")
      yield* pg.notify("orders_changed", "desk")
      const first = yield* Queue.take(notifications)
      const second = yield* Queue.take(notifications)
      return [first.payload, second.payload]
    })
  )

  const perCustomer = yield* sql<{ customer: string; orders: number }>`
    SELECT customer, count(*)::int AS orders FROM orders WHERE ${sql.in("customer", ["ada", "bob"])}
    GROUP BY customer ORDER BY customer`

  const report: Report = { created, rolledBack, committedTotal: total, streamed, notified, perCustomer }
  return report
})
