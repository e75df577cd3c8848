// The session-state scanner's tests (the core imports the scanner from here).
import { assert, describe, it } from "vitest"
import { Classify } from "../src/index.js"

const { firstKeyword, mayLeaveSessionState } = Classify

// [text, may leave session state behind]
const cases: ReadonlyArray<readonly [string, boolean]> = [
  // plain statements: no reset round trip
  ["SELECT id, name FROM users WHERE id = $1", false],
  ["select 1", false],
  ["  \n\tINSERT INTO t (a) VALUES ($1)", false],
  ["UPDATE t SET a = 1 WHERE id = $1", false],
  ["WITH x AS (SELECT 1) SELECT * FROM x", false],
  ["(SELECT 1) UNION (SELECT 2)", false],
  ["-- a comment\nSELECT 1", false],
  ["/* a /* nested */ comment */ SELECT 1", false],
  ["SELECT 1; SELECT 2;", false],
  ["SELECT 'a;SET x = 1'", false],
  ["SELECT 'it''s; SET x = 1' ; SELECT 2", false],
  ["SELECT E'a\\';SET x = 1' ; SELECT 2", false],
  ['SELECT "a;SET x" FROM t; SELECT 2', false],
  ["SELECT $$;SET x = 1;$$; SELECT 2", false],
  ["SELECT $tag$;SET x = 1;$tag$; SELECT 2", false],
  ["SELECT $1, $2; SELECT 3", false],
  ["SELECT a$b$c FROM t; SELECT 2", false],
  ["BEGIN; UPDATE t SET a = 1; COMMIT", false],
  ["CREATE TABLE t (x int); DROP TABLE t", false],
  ["", false],
  ["   ;  ", false],
  // settings that end with their transaction, which ends before the connection is returned
  ["SET LOCAL statement_timeout = 1000", false],
  ["set local search_path = x", false],
  ["SET TRANSACTION READ ONLY", false],
  ["BEGIN; SET LOCAL work_mem = '64MB'; SELECT 1; COMMIT", false],
  // session state: the keyword, wherever PostgreSQL's lexer finds it
  ["SET statement_timeout = 1000", true],
  ["SET SESSION statement_timeout = 1000", true],
  ["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", true],
  ["SET /* x */ LOCAL statement_timeout = 1", true],
  ["SELECT set_config('a.b', 'c', true)", true],
  ["set search_path = x", true],
  ["SELECT 1; SET x = 1", true],
  ["/* a /* b */ */ SET x = 1", true],
  ["/* a /* b */ SELECT */ SET x = 1", true],
  ["\fSET x = 1", true],
  ["\vSET x = 1", true],
  ["\r\nSET x = 1", true],
  ["SELECT 1;\f SET x = 1", true],
  ["--c\rSET x = 1", true],
  ["SELECT 1 -- ; still a comment\n; SET x = 1", true],
  ["SELECT 1; /* ; */ SET x = 1", true],
  ["SELECT 'a' ; SET x = 1", true],
  ['SELECT "a""b"; SET x = 1', true],
  ["SELECT $a$ $b$ $a$; SET x = 1", true],
  ["SELECT E'a\\\\'; SET x = 1", true],
  ["RESET ALL", true],
  ["DISCARD ALL", true],
  ["LOAD 'auto_explain'", true],
  ["DO $$ BEGIN PERFORM 1; END $$", true],
  ["CALL p()", true],
  ["EXECUTE s", true],
  ["DEALLOCATE s", true],
  // names that leave state behind, anywhere in the text
  ["CREATE TABLE pg_temp.x (a int)", true],
  ["CREATE TABLE pg_temp_3.x (a int)", true],
  ['CREATE TABLE "pg_temp".x (a int)', true],
  ["CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", true],
  ["CREATE TEMP TABLE x (a int)", true],
  ["CREATE LOCAL TEMPORARY TABLE x (a int)", true],
  ["SELECT * INTO TEMP x FROM t", true],
  ["SELECT set_config('a.b', 'c', false)", true],
  ["SELECT pg_advisory_lock(1)", true],
  ["SELECT setseed(0.5)", true],
  ["LISTEN ch", true],
  ["PREPARE s AS SELECT 1", true],
  ["DECLARE c CURSOR WITH HOLD FOR SELECT 1", true],
  ["SELECT dblink_connect('x')", true],
  ["SELECT query_to_xml('select set_config(''a.b'', ''c'', false)', true, true, '')", true],
  // what the scanner cannot classify: dirty
  ["SELECT 'unterminated; SET x = 1", true],
  ["SELECT 1; /* unterminated SET x = 1", true],
  ["SELECT $$unterminated; SET x = 1", true],
  ["SELECT '\\'; SET x = 1; --'", true],
  ["SELECT 'a\\b'; SELECT 2", true],
  ["SELECT U&'\\0041'; SELECT 2", true],
  ["SELECT 1; 42", true],
  ['SELECT 1; "set" x', true],
  ["\u00a0SET x = 1", true]
]

describe("mayLeaveSessionState", () => {
  for (const [sql, dirty] of cases) {
    it(`${dirty ? "dirty" : "clean"}: ${JSON.stringify(sql)}`, () => {
      assert.strictEqual(mayLeaveSessionState(sql), dirty)
    })
  }
})

describe("firstKeyword", () => {
  const keywords: ReadonlyArray<readonly [string, string | undefined]> = [
    ["copy t TO STDOUT", "COPY"],
    ["  /* a /* nested */ one */\f\n-- line\n(COPY t TO STDOUT)", "COPY"],
    ["SELECT 1", "SELECT"],
    ["", undefined],
    ["42", undefined],
    ["/* unterminated", undefined]
  ]
  for (const [sql, keyword] of keywords) {
    it(`${JSON.stringify(sql)} starts with ${keyword ?? "no keyword"}`, () => {
      assert.strictEqual(firstKeyword(sql), keyword)
    })
  }
})
