/**
 * The test suite's one system dependency: PgBouncer (the testkit starts it for the pooler suites, which fail
 * rather than skip without it). The README's test command runs this first, so that it works on a fresh machine
 * with only Node and npm: when no `pgbouncer` binary is found and we run as root with apt-get (CI, this kind of
 * VM), it installs Debian's package; otherwise it says how to install it and fails.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

// the places the testkit looks (packages/testkit/src/core/PgBouncer.ts), PGBOUNCER first
const candidates = [
  process.env.PGBOUNCER,
  ...(process.env.PATH ?? "").split(path.delimiter).map((dir) => path.join(dir, "pgbouncer")),
  ...["/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/opt/homebrew/bin", "/usr/bin"].map((dir) =>
    path.join(dir, "pgbouncer")
  )
].filter((file) => file !== undefined && file !== "")

const found = () => candidates.find((file) => fs.existsSync(file))

if (found() === undefined) {
  const root = typeof process.getuid === "function" && process.getuid() === 0
  const aptGet = ["/usr/bin/apt-get", "/bin/apt-get"].find((file) => fs.existsSync(file))
  if (!root || aptGet === undefined) {
    console.error(
      "ensure-pgbouncer: the PgBouncer test suites need a pgbouncer binary, and none was found " +
        `(looked in ${candidates.join(", ")}). Install it (Debian/Ubuntu: sudo apt-get install -y pgbouncer; ` +
        "macOS: brew install pgbouncer) or set PGBOUNCER to its path, then run the tests again."
    )
    process.exit(1)
  }
  console.log("ensure-pgbouncer: installing Debian's pgbouncer (apt-get) for the PgBouncer test suites")
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  execFileSync(aptGet, ["update", "-qq"], { stdio: "inherit", env })
  execFileSync(aptGet, ["install", "-y", "-qq", "pgbouncer"], { stdio: "inherit", env })
  if (found() === undefined) {
    console.error("ensure-pgbouncer: apt-get installed pgbouncer, but no pgbouncer binary is where the testkit looks")
    process.exit(1)
  }
}
