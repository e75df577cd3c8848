import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { assert, describe, it } from "vitest"

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../src")

// every module specifier the compiler sees (imports, exports … from, dynamic imports, requires), comments and doc
// examples left out
const specifiers = (text: string): Array<string> =>
  ts.preProcessFile(text, true, true).importedFiles.map((file) => file.fileName)

const forbidden = /^(?:effect(?:\/|$)|@effect\/|pg(?:-|\/|$)|node:)/

// time comes in with each event, jitter too: nothing ambient may decide
const ambient = new Set([
  "Date",
  "Math.random",
  "performance",
  "setTimeout",
  "setInterval",
  "setImmediate",
  "queueMicrotask",
  "process",
  "globalThis"
])

const files = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name)
    return entry.isDirectory() ? files(file) : file.endsWith(".ts") ? [file] : []
  })

describe("the engine is runtime-free and sans-IO", () => {
  it("no file under src imports effect, @effect/*, pg, pg-* or node:*, nor any package at all", () => {
    const offending = files(src).flatMap((file) =>
      specifiers(fs.readFileSync(file, "utf8"))
        .filter((specifier) => forbidden.test(specifier) || !specifier.startsWith("."))
        .map((specifier) => `${path.relative(src, file)} imports ${specifier}`)
    )
    assert.deepStrictEqual(offending, [])
  })

  it("no file under src reads a clock, draws a random number, sets a timer or touches the process", () => {
    const offending = files(src).flatMap((file) => {
      const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true)
      const found: Array<string> = []
      const visit = (node: ts.Node): void => {
        const text = ts.isPropertyAccessExpression(node) ? node.getText(source) : ts.isIdentifier(node) ? node.text : ""
        if (ambient.has(text)) {
          const { line } = source.getLineAndCharacterOfPosition(node.getStart(source))
          found.push(`${path.relative(src, file)}:${line + 1} uses ${text}`)
        }
        ts.forEachChild(node, visit)
      }
      visit(source)
      return found
    })
    assert.deepStrictEqual(offending, [])
  })

  it("the check sees the imports it must refuse", () => {
    const text =
      'import * as Effect from "effect/Effect"\nimport type { Client } from "pg"\nconst fs = await import("node:fs")'
    assert.deepStrictEqual(
      specifiers(text).filter((s) => forbidden.test(s)),
      ["effect/Effect", "pg", "node:fs"]
    )
  })
})
