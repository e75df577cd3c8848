/**
 * Value parsers: each takes what the user gave (a string from the environment, or anything from code) and returns
 * the value or the "rule: fix" part of a message. Runtime values the engine cannot know (an Effect `Duration` or
 * `Redacted`) reach it through the edition's `Runtime` hooks.
 *
 * @internal
 */

/** How an edition's own value types are read: durations, secrets, and how messages show them. @internal */
export interface Runtime {
  /** The signed milliseconds of a runtime duration value (Effect's `Duration`), `undefined` if `raw` is not one. */
  readonly durationMillis?: ((raw: unknown) => number | undefined) | undefined
  /** The text of a runtime secret (Effect's `Redacted`), `undefined` if `raw` is not one. */
  readonly secret?: ((raw: unknown) => string | undefined) | undefined
  /** How a message shows a runtime value (a `Duration` formatted), `undefined` to use the engine's own rendering. */
  readonly show?: ((raw: unknown) => string | undefined) | undefined
}

/** The value, or what is wrong with it. @internal */
export type Parsed<A> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly problem: string }

/** @internal */
export type Parse<A> = (raw: unknown, runtime: Runtime) => Parsed<A>

/** @internal */
export const ok = <A>(value: A): Parsed<A> => ({ ok: true, value })

/** @internal */
export const fail = (problem: string): Parsed<never> => ({ ok: false, problem })

/** A value as messages show it; a secret never. @internal */
export const show = (raw: unknown, runtime: Runtime): string => {
  if (typeof raw === "string") return raw === "" ? '""' : raw
  if (typeof raw === "number" || typeof raw === "boolean") return String(raw)
  if (typeof raw === "bigint") return `${raw}n`
  const shown = runtime.show?.(raw)
  if (shown !== undefined) return shown
  if (runtime.secret?.(raw) !== undefined) return "<redacted>"
  try {
    return JSON.stringify(raw) ?? String(raw)
  } catch {
    return String(raw)
  }
}

/** The text of a string or of a runtime secret. @internal */
export const secretText = (raw: unknown, runtime: Runtime): string | undefined =>
  typeof raw === "string" ? raw : runtime.secret?.(raw)

const NUMBER = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$/i

const toNumber = (raw: unknown): number | undefined => {
  if (typeof raw === "number") return raw
  if (typeof raw === "string" && NUMBER.test(raw.trim())) return Number(raw.trim())
  return undefined
}

// Decimal digits only: "1e1" or "10.0" read as 10, but nobody writes a pool size that way on purpose.
const INTEGER_TEXT = /^\s*[-+]?\d+\s*$/

/** @internal */
export const integer =
  (min: number, max: number | undefined, fix: string): Parse<number> =>
  (raw) => {
    const n = toNumber(raw)
    if (typeof raw === "string" && !INTEGER_TEXT.test(raw) && Number.isInteger(n)) {
      return fail(`must be written in decimal digits: ${fix}`)
    }
    return n !== undefined && Number.isSafeInteger(n) && n >= min && (max === undefined || n <= max)
      ? ok(n)
      : fail(
          max === undefined ? `must be an integer ≥ ${min}: ${fix}` : `must be an integer from ${min} to ${max}: ${fix}`
        )
  }

/**
 * The largest pool: PostgreSQL's default `max_connections` is 100 and every connection is a server process with
 * its own memory, so a bigger figure is a typo (an extra zero) rather than a plan; more clients than this belong
 * behind PgBouncer. It is also far below 262 143, the most `max_connections` PostgreSQL can be configured with.
 *
 * @internal
 */
export const MAX_POOL_SIZE = 10_000

/** @internal */
export const SIZE_FIX = `PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients`

/** @internal */
export const PORT_RULE = "must be an integer from 1 to 65535: PostgreSQL listens on 5432 unless configured otherwise"

/** One port number, from code or an environment variable. @internal */
export const port: Parse<number> = (raw) => {
  const n = typeof raw === "string" && !INTEGER_TEXT.test(raw) ? undefined : toNumber(raw)
  return n !== undefined && Number.isInteger(n) && n >= 1 && n <= 65535 ? ok(n) : fail(PORT_RULE)
}

/** @internal */
export const factor: Parse<number> = (raw) => {
  const n = toNumber(raw)
  return n !== undefined && Number.isFinite(n) && n > 1
    ? ok(n)
    : fail("must be a number > 1: use e.g. 2 to double the delay after each failed attempt")
}

// The same words Effect's `Config.boolean` accepts, case-insensitively.
const BOOLEANS = new Map<string, boolean>([
  ["true", true],
  ["yes", true],
  ["on", true],
  ["1", true],
  ["false", false],
  ["no", false],
  ["off", false],
  ["0", false]
])

/** @internal */
export const boolean: Parse<boolean> = (raw) => {
  const b =
    typeof raw === "boolean" ? raw : typeof raw === "string" ? BOOLEANS.get(raw.trim().toLowerCase()) : undefined
  return b !== undefined ? ok(b) : fail("must be true or false (yes/no, on/off and 1/0 work too)")
}

/** @internal */
export const text =
  (fix: string): Parse<string> =>
  (raw) =>
    typeof raw === "string" ? ok(raw) : fail(`must be a string: ${fix}`)

/** @internal */
export const name: Parse<string> = (raw) =>
  typeof raw === "string" && raw.trim() !== ""
    ? ok(raw)
    : fail("must be a non-empty string: name the pool for logs and metrics, e.g. default")

/** One of a few words, in any case; the message names them all and says what each does. @internal */
export const oneOf =
  <A extends string>(values: ReadonlyArray<A>, explanation: string): Parse<A> =>
  (raw) => {
    const value = typeof raw === "string" ? raw.trim().toLowerCase() : undefined
    const found = values.find((v) => v === value)
    if (found !== undefined) return ok(found)
    const words =
      values.length === 2 ? `${values[0]} or ${values[1]}` : `${values.slice(0, -1).join(", ")} or ${values.at(-1)}`
    return fail(`must be ${words}: ${explanation}`)
  }

const UNIT_MILLIS = new Map<string, number>([
  ...["ns", "nano", "nanos"].map((u) => [u, 1e-6] as const),
  ...["us", "µs", "micro", "micros"].map((u) => [u, 1e-3] as const),
  ...["ms", "milli", "millis"].map((u) => [u, 1] as const),
  ...["s", "sec", "secs", "second", "seconds"].map((u) => [u, 1_000] as const),
  ...["m", "min", "mins", "minute", "minutes"].map((u) => [u, 60_000] as const),
  ...["h", "hr", "hrs", "hour", "hours"].map((u) => [u, 3_600_000] as const),
  ...["d", "day", "days"].map((u) => [u, 86_400_000] as const),
  ...["w", "week", "weeks"].map((u) => [u, 604_800_000] as const)
])

// Parses "250", "1.5s", "500 ms", "5 seconds", and compound forms such as "1m 30s" (what `formatMillis` and
// Effect's `Duration.format` print, so a value copied from a log or an error message reads back). The sign applies
// to the whole text.
const parseDurationText = (input: string): number | undefined => {
  const trimmed = input.trim()
  const sign = trimmed.startsWith("-") ? -1 : 1
  const body = trimmed.replace(/^[-+]/, "")
  const token = /\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zµ]*)/iy
  let total = 0
  let tokens = 0
  let bare = false
  while (token.lastIndex < body.length) {
    const match = token.exec(body)
    if (match === null) return undefined
    const unit = match[2] === "" ? 1 : UNIT_MILLIS.get(match[2]!.toLowerCase())
    if (unit === undefined) return undefined
    bare ||= match[2] === ""
    total += Number(match[1]) * unit
    tokens++
  }
  return tokens === 0 || (bare && tokens > 1) ? undefined : sign * total
}

/**
 * Signed milliseconds, so that negative and infinite inputs can be reported instead of being clamped to zero: a
 * number of milliseconds, a bigint of nanoseconds, an `[seconds, nanos]` pair, a text, or a runtime duration.
 *
 * @internal
 */
export const durationMillis = (raw: unknown, runtime: Runtime): number | undefined => {
  const own = runtime.durationMillis?.(raw)
  if (own !== undefined) return own
  if (typeof raw === "number") return Number.isNaN(raw) ? undefined : raw
  if (typeof raw === "bigint") return Number(raw) / 1e6
  if (Array.isArray(raw) && raw.length === 2 && typeof raw[0] === "number" && typeof raw[1] === "number") {
    const millis = raw[0] * 1_000 + raw[1] / 1e6
    return Number.isNaN(millis) ? undefined : millis
  }
  if (typeof raw === "string") return parseDurationText(raw)
  return undefined
}

const NOT_A_DURATION =
  "is not a duration: use milliseconds (250), a short form (500ms, 1.5s, 2m, 1h) or Effect's form (5 seconds)"

/**
 * The longest duration a setting may have: 2^31−1 ms (about 24.8 days) is the longest delay a Node.js timer (and
 * Effect's clock) can wait — a longer `setTimeout` fires at once, a longer `Effect.sleep` never — and the largest
 * `statement_timeout` PostgreSQL accepts, so a longer one would be refused by every connection at login.
 *
 * @internal
 */
export const MAX_DURATION_MILLIS = 2 ** 31 - 1

const TOO_LONG = `must be at most ${MAX_DURATION_MILLIS}ms (about 24.8 days, the longest a timer can wait and the largest timeout PostgreSQL accepts)`

// Timers and PostgreSQL count whole milliseconds: a shorter non-zero duration rounds to 0, which disables
// `statement_timeout` and makes a timeout fire at once.
const TOO_SHORT = "must be at least 1ms (timers and PostgreSQL count whole milliseconds: a shorter one rounds to 0)"

/** A duration in milliseconds, > 0 or ≥ 0. @internal */
export const duration =
  (rule: "> 0" | "≥ 0", fix: string): Parse<number> =>
  (raw, runtime) => {
    const millis = durationMillis(raw, runtime)
    if (millis === undefined) return fail(NOT_A_DURATION)
    if (!Number.isFinite(millis)) return fail(`must be a finite duration: ${fix}`)
    if (rule === "> 0" ? millis <= 0 : millis < 0) return fail(`must be ${rule}: ${fix}`)
    if (millis > 0 && millis < 1) return fail(`${TOO_SHORT}${rule === "≥ 0" ? " or 0" : ""}: ${fix}`)
    if (millis > MAX_DURATION_MILLIS) return fail(`${TOO_LONG}: ${fix}`)
    return ok(millis)
  }

/**
 * Milliseconds as Effect's `Duration.format` prints them ("16s", "1m 30s", "1s 500ms"), for defaults named in
 * messages.
 *
 * @internal
 */
export const formatMillis = (millis: number): string => {
  if (millis === Number.POSITIVE_INFINITY) return "Infinity"
  if (millis === 0) return "0"
  const nanos = BigInt(Math.round(millis * 1e6))
  const units: ReadonlyArray<readonly [string, bigint]> = [
    ["d", 86_400_000_000_000n],
    ["h", 3_600_000_000_000n],
    ["m", 60_000_000_000n],
    ["s", 1_000_000_000n],
    ["ms", 1_000_000n],
    ["ns", 1n]
  ]
  const pieces: Array<string> = []
  let rest = nanos
  for (const [unit, size] of units) {
    const count = rest / size
    rest -= count * size
    if (count !== 0n) pieces.push(`${count}${unit}`)
  }
  return pieces.join(" ")
}

/** The log levels, as Effect names them. @internal */
export type LogLevel = "All" | "Trace" | "Debug" | "Info" | "Warning" | "Error" | "Fatal" | "None"

const LOG_LEVELS = new Map<string, LogLevel>([
  ["all", "All"],
  ["trace", "Trace"],
  ["debug", "Debug"],
  ["info", "Info"],
  ["warn", "Warning"],
  ["warning", "Warning"],
  ["error", "Error"],
  ["fatal", "Fatal"],
  ["none", "None"]
])

/** @internal */
export const parseLogLevel = (text: string): LogLevel | undefined => LOG_LEVELS.get(text.trim().toLowerCase())

/** A level's name, or an object with its name as `_tag` (Effect's `LogLevel`). @internal */
export const logLevel: Parse<LogLevel> = (raw) => {
  const level =
    typeof raw === "string"
      ? parseLogLevel(raw)
      : typeof raw === "object" && raw !== null && "_tag" in raw && typeof raw._tag === "string"
        ? parseLogLevel(raw._tag)
        : undefined
  return level !== undefined
    ? ok(level)
    : fail(
        "must be trace, debug, info, warning, error, fatal, all or none (any case): " +
          "the lowest level of the pool's log lines, e.g. info"
      )
}
