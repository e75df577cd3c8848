/**
 * LISTEN on a dedicated session of its own, outside the pool (it takes no pool slot), that reconnects and
 * LISTENs again after an outage: the caller's queue lives on across reconnections. Notifications sent while the
 * session is down are lost (PostgreSQL delivers them only to sessions listening when they are sent). Behind a
 * transaction pooler LISTEN is refused before any connection is opened: see pooler.ts.
 *
 * @internal
 */
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import type { SqlError } from "effect/sql/SqlError"
import type { ReconnectConfig } from "../PoolConfig.js"
import * as Pooler from "./pooler.js"
import type * as Driver from "./session.js"

/** @internal */
export interface ListenerOptions {
  /** Opens a session outside the pool. */
  readonly open: Effect.Effect<Driver.Session, SqlError>
  readonly reconnect: ReconnectConfig
  /** The pooler in front of the server, if any. */
  readonly pooler?: Pooler.Behind | undefined
  readonly log: (message: string, annotations: Record<string, unknown>) => Effect.Effect<void>
}

/** @internal */
export const listen = (
  options: ListenerOptions,
  channel: string
): Effect.Effect<Queue.Dequeue<PgConnection.Notification, SqlError>, SqlError, Scope.Scope> =>
  Effect.gen(function* () {
    const refused = Pooler.listenRefused(options.pooler)
    if (refused !== undefined) return yield* Effect.fail(refused)
    const out = yield* Queue.unbounded<PgConnection.Notification, SqlError>()
    // the session and PgConnection's own queue, for one connection's lifetime
    const attach = (scope: Scope.Closeable) =>
      Effect.gen(function* () {
        const session = yield* options.open
        yield* Scope.addFinalizer(scope, session.close(false))
        return yield* Scope.provide(session.connection.listen(channel), scope)
      }).pipe(Effect.onError(() => Scope.close(scope, Exit.void)))
    let scope = yield* Scope.make()
    // the first registration's failure is the caller's, as on PgClient.layer
    let inner = yield* attach(scope)
    const forward = (from: Queue.Dequeue<PgConnection.Notification, SqlError>) =>
      Effect.forever(Effect.flatMap(Queue.take(from), (notification) => Queue.offer(out, notification)))
    const loop = Effect.gen(function* () {
      while (true) {
        const lost = yield* Effect.flip(forward(inner))
        yield* Scope.close(scope, Exit.void)
        let delay = Duration.toMillis(options.reconnect.initialDelay)
        const maxDelay = Duration.toMillis(options.reconnect.maxDelay)
        yield* options.log("listener connection lost; reconnecting", { channel, error: lost.message })
        while (true) {
          yield* Effect.sleep(Duration.millis(delay))
          scope = yield* Scope.make()
          const attached = yield* Effect.exit(attach(scope))
          if (Exit.isSuccess(attached)) {
            inner = attached.value
            yield* options.log("listener reconnected", { channel })
            break
          }
          delay = Math.min(delay * options.reconnect.factor, maxDelay)
        }
      }
    })
    yield* Effect.forkScoped(loop)
    yield* Effect.addFinalizer(() =>
      Effect.andThen(
        Effect.suspend(() => Scope.close(scope, Exit.void)),
        Queue.shutdown(out)
      )
    )
    return out
  })
