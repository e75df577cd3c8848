import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"

const src = Path.join(import.meta.dirname, "..", "..", "src")

/** Every module `entry` loads, transitively, within src, and every bare specifier they import. */
const closure = (entry: string) => {
  const files = new Set<string>()
  const packages = new Map<string, string>()
  const visit = (file: string) => {
    if (files.has(file)) return
    files.add(file)
    const text = Fs.readFileSync(file, "utf8")
    // value and type imports, re-exports and dynamic imports alike
    for (const [, specifier] of text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
      if (specifier!.startsWith(".")) visit(Path.resolve(Path.dirname(file), specifier!.replace(/\.js$/, ".ts")))
      else packages.set(specifier!, Path.relative(src, file))
    }
  }
  visit(Path.join(src, entry))
  return { files: [...files].map((file) => Path.relative(src, file)), packages }
}

describe("the core", () => {
  for (const entry of ["core.ts", "vitestGlobalSetup.ts"]) {
    it(`${entry} and everything it loads import no effect package`, () => {
      const { files, packages } = closure(entry)
      expect(files.length).toBeGreaterThan(1)
      const effectful = [...packages].filter(([name]) => name === "effect" || /^effect\/|^@effect\//.test(name))
      expect(effectful).toEqual([])
    })
  }
})
