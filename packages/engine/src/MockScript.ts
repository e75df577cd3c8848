/**
 * The runtime-free part of both editions' `DbMock`, written once: how a statement is normalized and matched against
 * the script, how the statements the mock answers itself (transaction control, savepoints, `pg_notify`) are
 * recognized, what a transaction's notifications become on COMMIT / ROLLBACK, and the message for a statement no
 * response matches. An edition keeps only what runs on its Effect: the answers, the errors and the delivery.
 *
 * @since 0.1.0
 */

const isSpace = (ch: string) => ch === " " || ch === "\n" || ch === "\t" || ch === "\r" || ch === "\f" || ch === "\v"

/**
 * Collapses whitespace runs outside quoted literals and identifiers, so matchers and assertions do not depend
 * on how a template literal was indented.
 *
 * @example
 * ```ts
 * import { MockScript } from "@effect-pg-pool/engine"
 *
 * MockScript.normalize("SELECT *\n    FROM users  WHERE name = 'a  b'")
 * // "SELECT * FROM users WHERE name = 'a  b'"
 * ```
 *
 * @since 0.1.0
 * @category statements
 */
export const normalize = (sql: string): string => {
  let out = ""
  let quote: string | undefined
  let space = false
  for (const ch of sql) {
    if (quote !== undefined) {
      out += ch
      if (ch === quote) quote = undefined
    } else if (isSpace(ch)) {
      space = out.length > 0
    } else {
      if (space) out += " "
      space = false
      if (ch === "'" || ch === '"') quote = ch
      out += ch
    }
  }
  return out
}

/**
 * What a scripted response answers: statements containing the (normalized) text, matching the pattern, or for
 * which the predicate holds.
 *
 * @example
 * ```ts
 * import type { MockScript } from "@effect-pg-pool/engine"
 *
 * const byText: MockScript.Matcher = "FROM users WHERE id = $1"
 * const byParams: MockScript.Matcher = (sql, params) => sql.startsWith("DELETE") && params[0] === 42
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Matcher = string | RegExp | ((sql: string, params: ReadonlyArray<unknown>) => boolean)

/**
 * Whether a matcher answers a statement, its text already normalized.
 *
 * @example
 * ```ts
 * import { MockScript } from "@effect-pg-pool/engine"
 *
 * MockScript.matches("FROM users\n  WHERE id", "SELECT * FROM users WHERE id = $1", [1])
 * // true
 * ```
 *
 * @since 0.1.0
 * @category statements
 */
export const matches = (matcher: Matcher, sql: string, params: ReadonlyArray<unknown>): boolean =>
  typeof matcher === "string"
    ? sql.includes(normalize(matcher))
    : matcher instanceof RegExp
      ? sql.search(matcher) !== -1
      : matcher(sql, params)

/**
 * A value as a message shows it: bigints with their `n`, dates in ISO form, byte arrays by their length, matchers
 * as the user wrote them.
 *
 * @example
 * ```ts
 * import { MockScript } from "@effect-pg-pool/engine"
 *
 * MockScript.show([1n, new Uint8Array(3), "a"])
 * // '[1n, <3 bytes>, "a"]'
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const show = (value: unknown): string => {
  if (typeof value === "bigint") return `${value}n`
  // told by its tag, not `instanceof Date`: the engine names no ambient clock (test/Imports.test.ts)
  if (Object.prototype.toString.call(value) === "[object Date]") {
    return (value as { toISOString(): string }).toISOString()
  }
  if (value instanceof RegExp) return String(value)
  if (value instanceof Uint8Array) return `<${value.length} bytes>`
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`
  if (typeof value === "function") return value.name === "" ? "a predicate" : `${value.name}(sql, params)`
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/**
 * A notification sent with `pg_notify`.
 *
 * @example
 * ```ts
 * import type { MockScript } from "@effect-pg-pool/engine"
 *
 * // what `SELECT pg_notify('jobs', '42')` sends, as a listener on "jobs" receives it
 * const sent: MockScript.Notification = { channel: "jobs", payload: "42" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Notification {
  readonly channel: string
  readonly payload: string
}

/**
 * Statements the mock answers itself when no response matches them explicitly, and their side effects.
 *
 * @example
 * ```ts
 * import type { MockScript } from "@effect-pg-pool/engine"
 *
 * const describe = (statement: MockScript.BuiltinStatement): string =>
 *   statement._tag === "Notify" ? `notify ${statement.channel}` : statement._tag
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type BuiltinStatement =
  | { readonly _tag: "Begin" }
  | { readonly _tag: "Commit" }
  | { readonly _tag: "Rollback" }
  | { readonly _tag: "Savepoint"; readonly name: string }
  | { readonly _tag: "RollbackTo"; readonly name: string }
  | { readonly _tag: "Release"; readonly name: string }
  | { readonly _tag: "Notify"; readonly channel: string; readonly payload: string }

/**
 * Recognizes a statement the mock answers itself (its text normalized): transaction control, savepoints, and the
 * `SELECT pg_notify($1, $2)` that `PgClient.notify` sends; `undefined` for any other.
 *
 * @example
 * ```ts
 * import { MockScript } from "@effect-pg-pool/engine"
 *
 * MockScript.builtin("ROLLBACK TO SAVEPOINT sp1", []) // { _tag: "RollbackTo", name: "sp1" }
 * MockScript.builtin("SELECT pg_notify($1, $2)", ["jobs", "42"]) // { _tag: "Notify", channel: "jobs", … }
 * ```
 *
 * @since 0.1.0
 * @category statements
 */
export const builtin = (sql: string, params: ReadonlyArray<unknown>): BuiltinStatement | undefined => {
  if (/^(BEGIN|START TRANSACTION)\b/i.test(sql)) return { _tag: "Begin" }
  if (/^(COMMIT|END)\b/i.test(sql)) return { _tag: "Commit" }
  const rollbackTo = /^ROLLBACK(?: TRANSACTION| WORK)? TO (?:SAVEPOINT )?(\S+)/i.exec(sql)
  if (rollbackTo !== null) return { _tag: "RollbackTo", name: rollbackTo[1]! }
  if (/^(ROLLBACK|ABORT)\b/i.test(sql)) return { _tag: "Rollback" }
  const savepoint = /^SAVEPOINT (\S+)/i.exec(sql)
  if (savepoint !== null) return { _tag: "Savepoint", name: savepoint[1]! }
  const release = /^RELEASE (?:SAVEPOINT )?(\S+)/i.exec(sql)
  if (release !== null) return { _tag: "Release", name: release[1]! }
  // what `PgClient.notify` sends
  if (/^SELECT pg_notify\(\$1, \$2\)$/i.test(sql)) {
    return { _tag: "Notify", channel: String(params[0]), payload: String(params[1] ?? "") }
  }
  return undefined
}

/**
 * One mock connection's transaction, as far as notifications go: PostgreSQL delivers those sent inside a
 * transaction on its COMMIT only, drops them on ROLLBACK, and a `ROLLBACK TO` a savepoint drops those sent since.
 * `apply` takes a built-in statement that succeeded and returns the notifications to deliver now.
 *
 * @example
 * ```ts
 * import { MockScript } from "@effect-pg-pool/engine"
 *
 * const tx = new MockScript.Transaction()
 * tx.apply({ _tag: "Begin" })
 * tx.apply({ _tag: "Notify", channel: "jobs", payload: "42" }) // [] — held until COMMIT
 * tx.apply({ _tag: "Commit" }) // [{ _tag: "Notify", channel: "jobs", payload: "42" }]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class Transaction {
  /** Notifications sent inside the open transaction; `undefined` outside one. */
  private pending: Array<Notification> | undefined = undefined
  /** The open savepoints, innermost last, with how many notifications were pending when each was set. */
  private savepoints: Array<readonly [name: string, pending: number]> = []

  apply(special: BuiltinStatement): ReadonlyArray<Notification> {
    switch (special._tag) {
      case "Begin":
        this.pending ??= []
        return []
      case "Commit": {
        const pending = this.pending ?? []
        this.pending = undefined
        this.savepoints = []
        return pending
      }
      case "Rollback":
        this.pending = undefined
        this.savepoints = []
        return []
      case "Savepoint":
        this.savepoints.push([special.name, this.pending?.length ?? 0])
        return []
      case "RollbackTo":
      case "Release": {
        let i = this.savepoints.length - 1
        while (i >= 0 && this.savepoints[i]![0] !== special.name) i--
        if (i === -1) return []
        if (special._tag === "RollbackTo") {
          this.pending?.splice(this.savepoints[i]![1])
          this.savepoints.splice(i + 1)
        } else {
          this.savepoints.splice(i)
        }
        return []
      }
      case "Notify":
        if (this.pending !== undefined) {
          this.pending.push(special)
          return []
        }
        return [special]
    }
  }
}

/**
 * A scripted response as the unmatched-statement message lists it: its matcher (`undefined`: any statement), how
 * many statements it answers and how many it has.
 *
 * @example
 * ```ts
 * import type { MockScript } from "@effect-pg-pool/engine"
 *
 * // a response for one SELECT, already used up
 * const entry: MockScript.ScriptEntry = { response: { matcher: /^SELECT/, times: 1 }, used: 1 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ScriptEntry {
  readonly response: { readonly matcher: Matcher | undefined; readonly times: number }
  readonly used: number
}

/**
 * The message of the error for a statement no scripted response matches: the statement, its parameters, the
 * script with what each response has left, and how to script one.
 *
 * @example
 * ```ts
 * import { MockScript } from "@effect-pg-pool/engine"
 *
 * MockScript.unmatchedMessage("SELECT 1", [], [{ response: { matcher: "FROM users", times: 1 }, used: 1 }])
 * // "DbMock: no scripted response matches this statement:\n  SELECT 1\n  params: []\n…"
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const unmatchedMessage = (
  sql: string,
  params: ReadonlyArray<unknown>,
  entries: ReadonlyArray<ScriptEntry>
): string => {
  const script =
    entries.length === 0
      ? "No responses are scripted."
      : "Scripted responses, first match wins:\n" +
        entries
          .map(({ response: { matcher, times }, used }, i) => {
            const what = matcher === undefined ? "any statement (respondWith without a matcher)" : show(matcher)
            const uses = times === Number.POSITIVE_INFINITY ? "" : ` (used ${used} of ${times} times)`
            return `  ${i + 1}. ${what}${uses}`
          })
          .join("\n")
  return (
    `DbMock: no scripted response matches this statement:\n  ${sql}\n  params: ${show(params)}\n${script}\n` +
    `Script one with DbMock.respond(matcher, rows) in DbMock.layer({ responses }) or DbMock.script(...), ` +
    `or pass onUnmatched: "empty" to answer every unmatched statement with no rows.`
  )
}
