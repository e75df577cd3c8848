import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Url from "node:url"
import { defineConfig } from "vitest/config"
import projects from "./vitest.workspace.js"

// What the tests print through the console (the pools' log lines, a few hundred per run) goes to this file rather
// than the terminal, so that a failure stands out. The fault tests' `[fault]` figures stay on screen on purpose.
const logFile = Url.fileURLToPath(new URL(".tmp/test-console.log", import.meta.url))
Fs.mkdirSync(Path.dirname(logFile), { recursive: true })
Fs.writeFileSync(logFile, "")

// The projects are listed in vitest.workspace.ts; `vitest run` at the root runs them all (Effect 4 aside).
export default defineConfig({
  test: {
    projects,
    // vitest hands over consecutive lines as one chunk: split it, so that a `[fault]` line logged through the
    // console is not buried with the pool's lines, nor the pool's kept for its sake.
    onConsoleLog: (log) => {
      const lines = (log.endsWith("\n") ? log : `${log}\n`).split(/(?<=\n)/)
      const kept = lines.filter((line) => line.startsWith("[fault]"))
      Fs.appendFileSync(logFile, lines.filter((line) => !line.startsWith("[fault]")).join(""))
      if (kept.length > 0) process.stdout.write(kept.join(""))
      return false
    }
  }
})
