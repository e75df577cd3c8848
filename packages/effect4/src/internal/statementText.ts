/**
 * What the pool reads from a statement's text — whether it may leave session state behind, its first keyword —
 * remembered per text: an application runs the same few hundred texts again and again, and scanning each one on
 * every execution would cost more than the rest of a checkout.
 *
 * @internal
 */
import { Classify } from "@effect-pg-pool/engine"

/** @internal */
export interface StatementText {
  readonly mayLeaveSessionState: boolean
  readonly firstKeyword: string | undefined
  /** ROLLBACK or RELEASE: the statements that end a transaction block (or a savepoint's). */
  readonly endsTransactionBlock: boolean
}

const endsTransactionBlock = /^\s*(?:ROLLBACK|RELEASE)\b/i

const maxEntries = 2_048
const cache = new Map<string, StatementText>()

/** @internal */
export const read = (sql: string): StatementText => {
  let text = cache.get(sql)
  if (text === undefined) {
    // unique texts (generated SQL) would grow the cache without bound: start over when full
    if (cache.size >= maxEntries) cache.clear()
    text = {
      mayLeaveSessionState: Classify.mayLeaveSessionState(sql),
      firstKeyword: Classify.firstKeyword(sql),
      endsTransactionBlock: endsTransactionBlock.test(sql)
    }
    cache.set(sql, text)
  }
  return text
}
