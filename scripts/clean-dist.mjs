/**
 * Removes the package's `dist/` before a build, so that a module deleted or renamed in `src/` does not linger in
 * the published package. Run from the package directory (its `build` script).
 */
import * as fs from "node:fs"

fs.rmSync("dist", { recursive: true, force: true })
