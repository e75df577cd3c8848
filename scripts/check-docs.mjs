/**
 * Checks the JSDoc of the library packages' public modules (`packages/{effect3,effect4,testkit,engine}/src/*.ts`; `src/internal`
 * is not public):
 *
 * - each file opens with a module doc comment carrying `@since` and no other tag;
 * - each export (function, const, class, interface, type, enum, namespace and the members of an exported
 *   namespace) carries `@since <version>` and `@category <name>`, and its symbol an `@example` with a ```ts block
 *   of 3 to 12 lines that imports from the package (a class and the namespace merged into it, or a const and the
 *   type of the same name, are one symbol: one example among their declarations is enough);
 * - a re-export (`export * as X from "./X.js"`) carries `@since`.
 *
 * Then it type-checks every example: each block becomes a module in `packages/effect3/.doc-examples/` (inside the Effect 3 edition
 * package, so `@effect-pg-pool/effect3` resolves by self-reference and `@effect-pg-pool/testkit` through the workspace
 * dependency) — the engine's in `packages/engine/.doc-examples/`, since effect3 does not depend on it —, compiled with
 * the repository's compiler options as `tsc -p <that directory>` would, plus a check for unused imports. Errors are
 * reported at the line of the source file the example comes from.
 *
 * Usage: node scripts/check-docs.mjs (exit 1 on any problem)
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const started = performance.now()
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
// each package, and the package its examples compile in (where its name resolves)
const packageDirs = [
  { dir: "packages/effect3", examplesIn: "packages/effect3" },
  { dir: "packages/testkit", examplesIn: "packages/effect3" },
  { dir: "packages/engine", examplesIn: "packages/engine" },
  { dir: "packages/effect4", examplesIn: "packages/effect4" }
]
const examplesDirOf = (packageDir) => path.join(root, packageDir.examplesIn, ".doc-examples")
const minExampleLines = 3
const maxExampleLines = 12
// "declared but never read" and its variants: reported for imports only, since examples may declare values
// they only show
const unusedCodes = new Set([6133, 6192, 6196, 6198, 6205])

/** @type {Array<string>} */
const problems = []
const relative = (file) => path.relative(root, file)

// ---------------------------------------------------------------------------------------------------------------
// doc comments

/**
 * The lines of a doc comment (without the comment syntax), with their 1-based line in the file, split into the
 * description and its tags. A line starting with `@` inside a fenced block does not start a tag.
 */
const parseDoc = (sourceFile, range) => {
  const text = sourceFile.text.slice(range.pos + 3, range.end - 2)
  const firstLine = sourceFile.getLineAndCharacterOfPosition(range.pos).line + 1
  const tags = []
  let current = { name: "", value: "", line: firstLine, body: [] }
  let inFence = false
  text.split("\n").forEach((raw, i) => {
    const line = { text: raw.replace(/^\s*\* ?/, "").replace(/\s+$/, ""), line: firstLine + i }
    const trimmed = line.text.trim()
    const tag = inFence ? null : /^@(\w+)\s*(.*)$/.exec(trimmed)
    if (tag !== null) {
      tags.push(current)
      current = { name: tag[1], value: tag[2].trim(), line: line.line, body: [] }
      return
    }
    if (trimmed.startsWith("```")) inFence = !inFence
    current.body.push(line)
  })
  tags.push(current)
  return { description: tags[0], tags: tags.slice(1) }
}

/** The fenced blocks of an `@example` tag: `{ lang, line, code: Array<{ text, line }> }`. */
const fencedBlocks = (tag) => {
  const blocks = []
  let block = null
  for (const line of tag.body) {
    const trimmed = line.text.trim()
    if (block === null) {
      const open = /^```(\S*)/.exec(trimmed)
      if (open !== null) block = { lang: open[1], line: line.line, indent: line.text.indexOf("`"), code: [] }
    } else if (trimmed === "```") {
      blocks.push(block)
      block = null
    } else {
      block.code.push({ text: line.text.slice(Math.min(block.indent, line.text.search(/\S|$/))), line: line.line })
    }
  }
  if (block !== null) blocks.push({ ...block, unclosed: true })
  return blocks
}

const docRanges = (sourceFile, pos) =>
  (ts.getLeadingCommentRanges(sourceFile.text, pos) ?? []).filter(
    (range) => range.kind === ts.SyntaxKind.MultiLineCommentTrivia && sourceFile.text.startsWith("/**", range.pos)
  )

// ---------------------------------------------------------------------------------------------------------------
// exports

const hasModifier = (node, kind) =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((modifier) => modifier.kind === kind)

const kindOf = (node) => {
  if (ts.isFunctionDeclaration(node)) return "function"
  if (ts.isVariableStatement(node)) return "const"
  if (ts.isClassDeclaration(node)) return "class"
  if (ts.isInterfaceDeclaration(node)) return "interface"
  if (ts.isTypeAliasDeclaration(node)) return "type"
  if (ts.isEnumDeclaration(node)) return "enum"
  if (ts.isModuleDeclaration(node)) return "namespace"
  return undefined
}

/** Every exported declaration among `statements`, members of exported namespaces included. */
const collectExports = (statements, scope, ambient, out) => {
  for (const node of statements) {
    if (ts.isExportDeclaration(node)) {
      const clause = node.exportClause
      const names =
        clause === undefined
          ? ["*"]
          : ts.isNamespaceExport(clause)
            ? [clause.name.text]
            : clause.elements.map((element) => element.name.text)
      for (const name of names) out.push({ name: scope + name, kind: "re-export", node })
      continue
    }
    if (ts.isExportAssignment(node)) {
      out.push({ name: `${scope}default`, kind: "export default", node })
      continue
    }
    const kind = kindOf(node)
    // members of a `declare namespace` are exported with or without the keyword
    if (kind === undefined || !(ambient || hasModifier(node, ts.SyntaxKind.ExportKeyword))) continue
    const names = ts.isVariableStatement(node)
      ? node.declarationList.declarations.map((declaration) => declaration.name.getText())
      : [node.name === undefined ? "default" : node.name.text]
    for (const name of names) out.push({ name: scope + name, kind, node })
    if (ts.isModuleDeclaration(node) && node.body !== undefined && ts.isModuleBlock(node.body)) {
      const inner = ambient || hasModifier(node, ts.SyntaxKind.DeclareKeyword)
      collectExports(node.body.statements, `${scope}${node.name.text}.`, inner, out)
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// the check

const examples = []
let exportCount = 0
let reexportCount = 0

for (const packageDir of packageDirs) {
  const packageName = JSON.parse(fs.readFileSync(path.join(root, packageDir.dir, "package.json"), "utf8")).name
  const examplesDir = examplesDirOf(packageDir)
  const srcDir = path.join(root, packageDir.dir, "src")
  const files = fs
    .readdirSync(srcDir)
    .filter((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"))
    .sort()
  for (const fileName of files) {
    const file = path.join(srcDir, fileName)
    const sourceFile = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true)
    const at = (line, name) => `${relative(file)}:${line}${name === undefined ? "" : `:${name}`}`

    const moduleDocRange = docRanges(sourceFile, 0)[0]
    if (moduleDocRange === undefined) {
      problems.push(`${at(1)}: no module doc comment (/** … @since <version> */) at the top of the file`)
    } else {
      const { tags } = parseDoc(sourceFile, moduleDocRange)
      if (!tags.some((tag) => tag.name === "since" && tag.value !== "")) {
        problems.push(`${at(1)}: the module doc comment has no @since`)
      }
      for (const tag of tags.filter((tag) => tag.name !== "since")) {
        problems.push(`${at(tag.line)}: the module doc comment keeps @since only, not @${tag.name}`)
      }
    }

    const entries = collectExports(sourceFile.statements, "", false, []).map((entry) => {
      const range = docRanges(sourceFile, entry.node.pos)
        .filter((range) => range.pos !== moduleDocRange?.pos)
        .at(-1)
      const line = sourceFile.getLineAndCharacterOfPosition(entry.node.getStart(sourceFile)).line + 1
      return { ...entry, line, doc: range === undefined ? undefined : parseDoc(sourceFile, range) }
    })

    const symbolsWithExample = new Set(
      entries.filter((entry) => entry.doc?.tags.some((tag) => tag.name === "example")).map((entry) => entry.name)
    )
    for (const entry of entries) {
      const label =
        entry.name === "default" && entry.node.name !== undefined ? `default (${entry.node.name.text})` : entry.name
      const where = at(entry.line, label)
      const tags = entry.doc?.tags ?? []
      const since = tags.find((tag) => tag.name === "since")
      const category = tags.find((tag) => tag.name === "category")
      const missing = []
      if (since === undefined) missing.push("@since")
      else if (!/^\d+\.\d+\.\d+/.test(since.value)) missing.push("a version after @since")
      if (entry.kind === "re-export") {
        reexportCount++
        if (missing.length > 0) problems.push(`${where}: ${entry.kind}: missing ${missing.join(", ")}`)
        continue
      }
      exportCount++
      if (category === undefined) missing.push("@category")
      else if (category.value === "") missing.push("a name after @category")
      if (!symbolsWithExample.has(entry.name)) missing.push("@example")
      if (entry.doc === undefined) {
        problems.push(`${where}: ${entry.kind}: no doc comment (needs ${missing.join(", ")})`)
      } else if (missing.length > 0) {
        problems.push(`${where}: ${entry.kind}: missing ${missing.join(", ")}`)
      }

      for (const tag of tags.filter((tag) => tag.name === "example")) {
        const blocks = fencedBlocks(tag).filter((block) => block.lang === "ts" || block.lang === "typescript")
        if (blocks.length === 0) {
          problems.push(`${at(tag.line, label)}: @example without a \`\`\`ts fenced block`)
          continue
        }
        for (const block of blocks) {
          const where = at(block.line, label)
          if (block.unclosed) problems.push(`${where}: @example: the \`\`\`ts block is not closed`)
          const lines = block.code.filter((line) => line.text.trim() !== "").length
          if (lines < minExampleLines || lines > maxExampleLines) {
            problems.push(
              `${where}: @example has ${lines} lines of code; keep it between ${minExampleLines} and ${maxExampleLines}`
            )
          }
          if (!block.code.some((line) => line.text.includes(`"${packageName}`))) {
            problems.push(`${where}: @example does not import from "${packageName}"`)
          }
          examples.push({ source: relative(file), symbol: label, packageName, examplesDir, block })
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// type-check the examples

const examplesDirs = [...new Set(packageDirs.map(examplesDirOf))]
const tsconfigs = examplesDirs.map((examplesDir) => {
  fs.rmSync(examplesDir, { recursive: true, force: true })
  fs.mkdirSync(examplesDir, { recursive: true })
  const tsconfig = path.join(examplesDir, "tsconfig.json")
  fs.writeFileSync(
    tsconfig,
    `// Generated by scripts/check-docs.mjs. Examples may declare values they only show, hence noUnusedLocals: false;
// the script reports unused imports itself.
{
  "extends": "../../../tsconfig.base.json",
  "compilerOptions": { "noUnusedLocals": false },
  "include": ["*.ts"]
}
`
  )
  return tsconfig
})

const byFile = new Map()
for (const example of examples) {
  const pkg = example.packageName.split("/").pop()
  const base = `${pkg}.${path.basename(example.source, ".ts")}.${example.symbol}`.replace(/[^\w.-]+/g, "_")
  let file = path.join(example.examplesDir, `${base}.ts`)
  for (let n = 2; byFile.has(file); n++) file = path.join(example.examplesDir, `${base}.${n}.ts`)
  byFile.set(file, example)
  fs.writeFileSync(file, `${example.block.code.map((line) => line.text).join("\n")}\n`)
}

const exampleOf = (diagnostic) =>
  diagnostic.file === undefined ? undefined : byFile.get(path.resolve(diagnostic.file.fileName))

const format = (diagnostic) => {
  const message = `TS${diagnostic.code}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")}`
  if (diagnostic.file === undefined) return message
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0)
  const example = exampleOf(diagnostic)
  if (example === undefined) return `${relative(diagnostic.file.fileName)}:${line + 1}:${character + 1}: ${message}`
  const sourceLine = example.block.code[line]?.line ?? example.block.line
  return `${example.source}:${sourceLine}:${example.symbol}: @example does not compile: ${message}`
}

const inImport = (diagnostic) =>
  diagnostic.file.statements.some(
    (statement) =>
      ts.isImportDeclaration(statement) &&
      diagnostic.start >= statement.getStart(diagnostic.file) &&
      diagnostic.start < statement.end
  )

// the compiler options of `tsc -p <examples directory>`, with unused names reported so that unused imports can be
// picked out
for (const tsconfig of tsconfigs) {
  const config = ts.getParsedCommandLineOfConfigFile(
    tsconfig,
    { noUnusedLocals: true },
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (diagnostic) => problems.push(format(diagnostic)) }
  )
  if (config === undefined) continue
  problems.push(...config.errors.map(format))
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options })
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    if (unusedCodes.has(diagnostic.code) && !(exampleOf(diagnostic) !== undefined && inImport(diagnostic))) continue
    problems.push(format(diagnostic))
  }
}

// The root README's Quickstart is examples/quickstart/src/main.ts, which `pnpm check` type-checks and a test runs.
const quickstartFile = path.join(root, "examples/quickstart/src/main.ts")
const quickstartBlock = /## Quickstart\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(
  fs.readFileSync(path.join(root, "README.md"), "utf8")
)
if (quickstartBlock?.[1] !== fs.readFileSync(quickstartFile, "utf8")) {
  problems.push(
    `README.md: the Quickstart's \`\`\`ts block is not ${relative(quickstartFile)} as it is: copy the file over`
  )
}

// A README block marked `<!-- copy of <file> -->` on the line above its fence (the Effect 4 Quickstart and drop-in,
// examples/quickstart-effect4/src/*.ts, type-checked by `pnpm check` and run by its tests) must be that file as it is.
const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")
for (const [, file, code] of readme.matchAll(/<!-- copy of (\S+) -->\n```ts\n([\s\S]*?)```/g)) {
  const copied = path.join(root, file)
  if (!fs.existsSync(copied) || code !== fs.readFileSync(copied, "utf8")) {
    problems.push(
      `README.md: the \`\`\`ts block marked "copy of ${file}" is not that file as it is: copy the file over`
    )
  }
}

const seconds = ((performance.now() - started) / 1000).toFixed(1)
if (problems.length > 0) {
  console.error(problems.join("\n"))
  console.error(`\ncheck-docs: ${problems.length} problem${problems.length === 1 ? "" : "s"} (${seconds} s)`)
  process.exit(1)
}
console.log(
  `check-docs: ${exportCount} exports and ${reexportCount} re-exports documented, ` +
    `${examples.length} examples type-checked (${seconds} s)`
)
