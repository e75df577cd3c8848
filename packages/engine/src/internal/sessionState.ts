/**
 * Whether a statement text may leave session state behind for the next holder of its connection. Pure and
 * cheap on purpose: the pool asks it for every statement on a clean connection.
 *
 * The text is split into statements the way PostgreSQL's lexer (src/backend/parser/scan.l) sees them: its
 * whitespace (space, \t, \n, \r, \f, \v), `--` and nested `/* *\/` comments, quoted strings, E'' strings,
 * dollar quotes and quoted identifiers, so a `;` inside one of them does not split the text and a comment
 * cannot hide a statement's first keyword. A statement is clean only when its first keyword is one that
 * cannot change the session and nothing in the text names something that can (temp objects, `pg_temp`,
 * `set_config`, advisory locks, LISTEN, PREPARE, DECLARE, dblink…). Anything else, and anything the scanner
 * cannot classify (an unterminated quote or comment, a backslash in a plain string, whose meaning depends on
 * `standard_conforming_strings`, a U& escape), counts as dirty: a false "dirty" costs one DISCARD ALL round
 * trip, a false "clean" leaks state to another caller.
 *
 * The one copy: the editions import it through `Classify.mayLeaveSessionState`.
 *
 * @internal
 */

/** @internal */
export const mayLeaveSessionState = (sql: string): boolean => {
  for (let i = 0; i < memoSize; i++) if (memoTexts[i] === sql) return memoAnswers[i]!
  const answer = suspiciousToken.test(sql) || !onlyNeutralStatements(sql)
  if (sql.length <= memoMaxLength) {
    memoTexts[memoNext] = sql
    memoAnswers[memoNext] = answer
    memoNext = (memoNext + 1) % memoSize
  }
  return answer
}

// The last few texts asked about, with their answers: a hot path asks about the same few statements again and
// again (every statement on a clean connection, and the pipelined path twice), and comparing a text with the one
// remembered costs a fraction of scanning it. Long texts are not kept (they are rarely repeated, and are not
// held on to here).
const memoSize = 4
const memoMaxLength = 2_048
const memoTexts: Array<string | undefined> = [undefined, undefined, undefined, undefined]
const memoAnswers: Array<boolean> = [false, false, false, false]
let memoNext = 0

// Matched anywhere, strings and comments included: a string may be SQL that a function runs (query_to_xml, DO).
const suspiciousToken =
  /set_config|setseed|advisory_lock|pg_temp|\btemp\b|\btemporary\b|\blisten\b|\bprepare\b|\bdeclare\b|dblink/i

// Statements that cannot change the session by themselves (what they call is what `suspiciousToken` looks for).
const neutralKeywords = new Set([
  "select",
  "insert",
  "update",
  "delete",
  "with",
  "values",
  "table",
  "merge",
  "begin",
  "start",
  "commit",
  "end",
  "rollback",
  "abort",
  "savepoint",
  "release",
  "explain",
  "show",
  "copy",
  "notify",
  "create",
  "alter",
  "drop",
  "truncate",
  "grant",
  "revoke",
  "comment",
  "analyze",
  "vacuum",
  "refresh",
  "lock"
])

// scan.l's `space`: [ \t\n\r\f\v]
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13)

// scan.l's ident_start / ident_cont: letters, `_`, any byte ≥ 0x80; digits and `$` may follow
const isIdentStart = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128
const isIdentCont = (c: number) => isIdentStart(c) || (c >= 48 && c <= 57) || c === 36

/** Index after the closing quote of a string or quoted identifier opened before `i`, or -1 if unclassifiable. */
const skipQuoted = (sql: string, i: number, quote: number, backslashEscapes: boolean): number => {
  const n = sql.length
  while (i < n) {
    const c = sql.charCodeAt(i)
    if (c === quote) {
      if (sql.charCodeAt(i + 1) !== quote) return i + 1
      i += 2
    } else if (c === 92 && quote === 39) {
      // with standard_conforming_strings off a plain string takes backslash escapes too: which one applies
      // decides where the string ends, so only an E'' string can be scanned with certainty
      if (!backslashEscapes) return -1
      i += 2
    } else {
      i++
    }
  }
  return -1
}

/** Index after a `$tag$…$tag$` opened at `i`, `i + 1` for a lone `$` or a `$n` parameter, or -1 if unterminated. */
const skipDollar = (sql: string, i: number): number => {
  let j = i + 1
  const n = sql.length
  if (j < n && isIdentStart(sql.charCodeAt(j))) {
    j++
    while (j < n) {
      const c = sql.charCodeAt(j)
      if (!isIdentStart(c) && !(c >= 48 && c <= 57)) break
      j++
    }
  }
  if (sql.charCodeAt(j) !== 36) return i + 1
  const tag = sql.slice(i, j + 1)
  const end = sql.indexOf(tag, j + 1)
  return end === -1 ? -1 : end + tag.length
}

const onlyNeutralStatements = (sql: string): boolean => {
  const n = sql.length
  // without a `;` anywhere there is one statement, and its first keyword is all that counts (the common case)
  const single = sql.indexOf(";") === -1
  let i = 0
  // looking for the first keyword of a statement
  let atStart = true
  while (i < n) {
    const c = sql.charCodeAt(i)
    if (isSpace(c)) {
      i++
    } else if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      i += 2
      while (i < n && sql.charCodeAt(i) !== 10 && sql.charCodeAt(i) !== 13) i++
    } else if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      // block comments nest in PostgreSQL, unlike in the SQL standard's other dialects
      let depth = 1
      i += 2
      while (depth > 0) {
        if (i >= n) return false
        const d = sql.charCodeAt(i)
        if (d === 47 && sql.charCodeAt(i + 1) === 42) {
          depth++
          i += 2
        } else if (d === 42 && sql.charCodeAt(i + 1) === 47) {
          depth--
          i += 2
        } else {
          i++
        }
      }
    } else if (c === 59) {
      atStart = true
      i++
    } else if (atStart) {
      if (c === 40) {
        i++
        continue
      }
      if (!isIdentStart(c)) return false
      const start = i
      while (i < n && isIdentCont(sql.charCodeAt(i))) i++
      const keyword = sql.slice(start, i).toLowerCase()
      if (!neutralKeywords.has(keyword) && !(keyword === "set" && transactionScoped(sql, i))) return false
      if (single) return true
      atStart = false
    } else if (c === 39) {
      i = skipQuoted(sql, i + 1, 39, false)
      if (i === -1) return false
    } else if (c === 34) {
      i = skipQuoted(sql, i + 1, 34, false)
      if (i === -1) return false
    } else if (c === 36) {
      i = skipDollar(sql, i)
      if (i === -1) return false
    } else if (isIdentStart(c)) {
      const start = i
      while (i < n && isIdentCont(sql.charCodeAt(i))) i++
      if (i - start === 1 && (c | 32) === 101 && sql.charCodeAt(i) === 39) {
        i = skipQuoted(sql, i + 1, 39, true)
        if (i === -1) return false
      } else if (i - start === 1 && (c | 32) === 117 && sql.charCodeAt(i) === 38) {
        // U&'…' / U&"…" with UESCAPE: escapes can spell any name, so nothing in it can be trusted
        return false
      }
    } else {
      i++
    }
  }
  return true
}

/** The identifier at `i` after whitespace, lower-cased, or undefined (a comment or anything else there). */
const wordAt = (sql: string, i: number): string | undefined => {
  const n = sql.length
  while (i < n && isSpace(sql.charCodeAt(i))) i++
  const start = i
  if (i >= n || !isIdentStart(sql.charCodeAt(i))) return undefined
  while (i < n && isIdentCont(sql.charCodeAt(i))) i++
  return sql.slice(start, i).toLowerCase()
}

// `SET LOCAL …` and `SET TRANSACTION …` last until the transaction ends, which it does before the connection is
// returned (an open one is rolled back): they leave nothing for the next holder
const transactionScoped = (sql: string, i: number): boolean => {
  const next = wordAt(sql, i)
  return next === "local" || next === "transaction"
}

/**
 * The first keyword of a statement, upper-cased, past whitespace, comments (nested) and opening parentheses; or
 * undefined when the text does not start with one.
 *
 * @internal
 */
export const firstKeyword = (sql: string): string | undefined => {
  const n = sql.length
  let i = 0
  while (i < n) {
    const c = sql.charCodeAt(i)
    if (isSpace(c) || c === 40) {
      i++
    } else if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      while (i < n && sql.charCodeAt(i) !== 10 && sql.charCodeAt(i) !== 13) i++
    } else if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      let depth = 1
      i += 2
      while (depth > 0 && i < n) {
        if (sql.charCodeAt(i) === 47 && sql.charCodeAt(i + 1) === 42) {
          depth++
          i += 2
        } else if (sql.charCodeAt(i) === 42 && sql.charCodeAt(i + 1) === 47) {
          depth--
          i += 2
        } else {
          i++
        }
      }
    } else {
      return wordAt(sql, i)?.toUpperCase()
    }
  }
  return undefined
}
