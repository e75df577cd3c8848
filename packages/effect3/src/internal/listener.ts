/**
 * LISTEN/NOTIFY on a dedicated connection that takes no pool slot. It opens on the first `listen`, follows
 * the pool's reconnect schedule when the connection drops, and re-LISTENs every channel that still has
 * subscribers, so a stream survives a server restart or a network reset.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import { identity } from "effect/Function"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Pg from "pg"
import * as Connection from "./connection.js"
import { formatLogError } from "./logError.js"

/** @internal */
export interface Listener {
  readonly listen: (channel: string) => Stream.Stream<string, SqlError>
}

/** @internal */
export interface ListenerOptions {
  readonly connectOptions: Connection.ConnectOptions
  readonly reconnect: {
    readonly initialDelay: Duration.Duration
    readonly factor: number
    readonly maxDelay: Duration.Duration
  }
  readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
  readonly log: (level: "Info" | "Warning", message: string, annotations: Record<string, unknown>) => void
}

/** @internal */
export const make = (options: ListenerOptions): Listener => {
  const subscribers = new Map<string, Set<(payload: string) => void>>()
  let client: Pg.Client | undefined
  let loop: Fiber.RuntimeFiber<void, never> | undefined
  // Wakes the loop that owns a connection when that connection breaks. Keyed by connection, so the late `end` of a
  // connection destroyed by an interrupted loop cannot wake the loop that replaced it.
  const onLost = new WeakMap<Pg.Client, () => void>()
  // Connections lost before their loop was waiting on them (between the last LISTEN and the wait).
  const lostEarly = new WeakSet<Pg.Client>()

  const errorText = (cause: unknown) => formatLogError(cause, options.connectOptions.password)

  const send = (sql: string, listen: boolean) => {
    const current = client
    current?.query(sql).catch((cause) => {
      if (!listen || client !== current) return
      // a channel that is not LISTENed would miss its notifications silently: start over, with the backoff
      options.log("Warning", "LISTEN failed; reconnecting", { error: errorText(cause) })
      Connection.destroy(current)
    })
  }

  const onNotification = (message: Pg.Notification) => {
    const set = subscribers.get(message.channel)
    if (set === undefined) return
    for (const emit of set) emit(message.payload ?? "")
  }

  // The live key iterator also visits channels subscribed while earlier LISTENs are in flight.
  const listenAll = (opened: Pg.Client) =>
    Effect.gen(function* () {
      for (const channel of subscribers.keys()) {
        yield* Effect.tryPromise({ try: () => opened.query(`LISTEN ${Pg.escapeIdentifier(channel)}`), catch: identity })
      }
    })

  // The connection is current from its login, so a channel subscribed meanwhile is LISTENed on it by `send`; one
  // that fails or is interrupted before its last LISTEN is closed here: nothing else knows about it yet.
  const connectOnce = Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(Connection.connect(options.connectOptions, (broken) => lost(broken))), (opened) => {
      opened.on("notification", onNotification)
      client = opened
      return restore(listenAll(opened)).pipe(
        Effect.onExit((exit) => (Exit.isFailure(exit) ? Effect.sync(() => release(opened)) : Effect.void)),
        Effect.as(opened)
      )
    })
  )

  const lost = (broken: Pg.Client) => {
    const wake = onLost.get(broken)
    if (wake !== undefined) wake()
    else lostEarly.add(broken)
  }

  const schedule = Schedule.exponential(options.reconnect.initialDelay, options.reconnect.factor).pipe(
    Schedule.union(Schedule.spaced(options.reconnect.maxDelay))
  )

  const connectWithBackoff = connectOnce.pipe(
    Effect.tapError((cause) =>
      Effect.sync(() =>
        options.log("Warning", "LISTEN connection failed; retrying with backoff", { error: errorText(cause) })
      )
    ),
    Effect.retryOrElse(schedule, () => Effect.never)
  )

  // One connection's life: from the login to its loss. Whatever ends it (a loss, an interruption) closes it.
  const session = Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(connectWithBackoff), (opened) =>
      restore(
        Effect.async<void>((resume) => {
          options.log("Info", "LISTEN connection established", { channels: [...subscribers.keys()].join(",") })
          if (lostEarly.has(opened)) resume(Effect.void)
          else onLost.set(opened, () => resume(Effect.void))
        })
      ).pipe(Effect.ensuring(Effect.sync(() => release(opened))))
    )
  )

  const run: Effect.Effect<void> = Effect.gen(function* () {
    while (subscribers.size > 0) {
      yield* session
      options.log("Info", "LISTEN connection lost; reconnecting", {})
    }
  }).pipe(
    // only the current loop may clear `loop`: an interrupted predecessor finishing late must not orphan the loop a
    // new subscriber has already started (the next subscriber would start a second one, LISTENing twice)
    Effect.ensuring(
      Effect.flatMap(Effect.fiberId, (self) =>
        Effect.sync(() => {
          if (loop !== undefined && Equal.equals(loop.id(), self)) loop = undefined
        })
      )
    )
  )

  const release = (opened: Pg.Client) => {
    onLost.delete(opened)
    lostEarly.delete(opened)
    if (client === opened) client = undefined
    Connection.destroy(opened)
  }

  const subscribe = (channel: string, emit: (payload: string) => void) => {
    let set = subscribers.get(channel)
    if (set === undefined) {
      set = new Set()
      subscribers.set(channel, set)
      send(`LISTEN ${Pg.escapeIdentifier(channel)}`, true)
    }
    set.add(emit)
    loop ??= options.fork(run)
  }

  const unsubscribe = (channel: string, emit: (payload: string) => void) => {
    const set = subscribers.get(channel)
    if (set === undefined) return
    set.delete(emit)
    if (set.size > 0) return
    subscribers.delete(channel)
    send(`UNLISTEN ${Pg.escapeIdentifier(channel)}`, false)
    if (subscribers.size === 0 && loop !== undefined) {
      const fiber = loop
      loop = undefined
      options.fork(Effect.flatMap(Effect.fiberId, (id) => fiber.interruptAsFork(id)))
    }
  }

  return {
    listen: (channel) =>
      Stream.asyncPush<string, SqlError>((emit) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const push = (payload: string) => emit.single(payload)
            subscribe(channel, push)
            return push
          }),
          (push) => Effect.sync(() => unsubscribe(channel, push))
        )
      )
  }
}
