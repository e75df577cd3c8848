/**
 * Tests the packages as an app outside this repository gets them from npm:
 *
 * 1. builds every publishable package (`pnpm build`) and packs it (`pnpm pack`, which applies `publishConfig`);
 * 2. checks each tarball: `exports` point at `dist/`, every module has its `.js`, `.d.ts` and source maps, the maps'
 *    sources are in the tarball, and no module imports a `.ts` file, a workspace-only package or anything that is
 *    not one of its own files, a Node built-in, a dependency or a peer dependency;
 * 3. installs the tarballs into a fresh project in a temporary directory with plain `npm install`, with the peer
 *    dependencies at the versions this repository uses;
 * 4. type-checks a small program against the packed types with `tsc` (library checks on) and runs it with plain
 *    `node`: DbMock without a database, then a pool on an embedded PostgreSQL started through the packed testkit;
 * 5. the same for the Effect 4 edition, in a project of its own (it peers on effect 4, the rest on effect 3): the
 *    packed @effect-pg-pool/effect4 and engine with effect and @effect/sql-pg at this repository's versions, a
 *    program type-checked and run — DbMock, `PoolConfig.fromEnv`, then `DatabaseLive` on a PostgreSQL started
 *    through the packed testkit's runtime-free core, installed in that project next to effect 4 (its optional peer
 *    takes effect 3 or 4: only its Effect 3 layers need effect 3); the program gets the server's URL as
 *    `DATABASE_URL`.
 *
 * The temporary directory is made by `mkdtemp` (mode 0700): run as root, the embedded server's `postgres` account
 * cannot enter it, which the testkit must handle too.
 *
 * Usage: node scripts/test-packages.mjs [--keep] (exit 1 on any problem; --keep leaves the project for a look)
 */
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const started = performance.now()
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const keep = process.argv.includes("--keep")
const readJson = (file) => JSON.parse(fs.readFileSync(file, "utf8"))
const seconds = () => `${((performance.now() - started) / 1000).toFixed(1)} s`
const step = (text) => console.log(`test-packages: ${text} (${seconds()})`)

/** @type {Array<string>} */
const problems = []

const run = (command, args, options = {}) => {
  const result = childProcess.spawnSync(command, args, { encoding: "utf8", ...options })
  if (result.status !== 0) {
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim().split("\n").slice(-40).join("\n")
    throw new Error(
      `${[command, ...args].join(" ")} (in ${options.cwd ?? root}) failed with ${
        result.error?.message ?? `exit code ${result.status}`
      }:\n${output}`
    )
  }
  return result.stdout
}

// pnpm as it was started (`npx -y pnpm@12.4.2 test` sets npm_execpath: pnpm 12 is an executable, older ones a
// script for node), else the pinned one through npx.
const pnpm = (args, options) => {
  const execPath = process.env.npm_execpath
  if (execPath === undefined || !path.basename(execPath).includes("pnpm")) {
    return run("npx", ["-y", "pnpm@12.4.2", ...args], options)
  }
  return /\.[cm]?js$/.test(execPath)
    ? run(process.execPath, [execPath, ...args], options)
    : run(execPath, args, options)
}

const rootManifest = readJson(path.join(root, "package.json"))
const packageDirs = fs
  .readdirSync(path.join(root, "packages"))
  .map((name) => path.join(root, "packages", name))
  .filter(
    (dir) => fs.existsSync(path.join(dir, "package.json")) && readJson(path.join(dir, "package.json")).private !== true
  )

const work = fs.mkdtempSync(path.join(os.tmpdir(), "effect-pg-pool-packages-"))
try {
  // 1. build and pack
  pnpm(["build"], { cwd: root })
  step(`built ${packageDirs.map((dir) => path.relative(root, dir)).join(", ")}`)
  const tarballs = new Map()
  for (const dir of packageDirs) {
    const out = pnpm(["pack", "--pack-destination", work], { cwd: dir })
    const tarball = out
      .trim()
      .split("\n")
      .map((line) => line.trim())
      .find((line) => line.endsWith(".tgz"))
    if (tarball === undefined) throw new Error(`pnpm pack printed no tarball in ${dir}:\n${out}`)
    tarballs.set(readJson(path.join(dir, "package.json")).name, path.resolve(work, tarball))
  }
  step(`packed ${[...tarballs.values()].map((file) => path.basename(file)).join(", ")}`)

  // 2. the tarballs' contents
  for (const [name, tarball] of tarballs) {
    const unpacked = path.join(work, "unpacked", name)
    fs.mkdirSync(unpacked, { recursive: true })
    run("tar", ["-xzf", tarball, "-C", unpacked])
    checkTarball(name, path.join(unpacked, "package"))
  }
  if (problems.length > 0) fail()
  step("tarball contents checked")

  // 3. a fresh project, plain npm
  const app = path.join(work, "app")
  fs.mkdirSync(app)
  const versions = { ...readJson(path.join(root, "packages/effect3/package.json")).devDependencies }
  const dependencies = {
    // the Effect 3 program's packages (the Effect 4 edition peers on effect 4: it gets a project of its own)
    ...Object.fromEntries(
      [...tarballs]
        .filter(([name]) => name !== "@effect-pg-pool/effect4")
        .map(([name, tarball]) => [name, `file:${tarball}`])
    ),
    ...Object.fromEntries(
      ["effect", "@effect/sql", "@effect/sql-pg", "@effect/platform", "@effect/experimental", "@types/pg"].map(
        (name) => [name, versions[name]]
      )
    ),
    "@types/node": rootManifest.devDependencies["@types/node"]
  }
  fs.writeFileSync(
    path.join(app, "package.json"),
    `${JSON.stringify({ name: "app", private: true, type: "module", dependencies }, null, 2)}\n`
  )
  run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: app })
  step(`npm install ${Object.keys(dependencies).join(" ")}`)

  // 4. type-check and run a program against the installed packages
  writeApp(app)
  run(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", app], { cwd: app })
  step("tsc: the program type-checks against the packed types")
  const output = run(process.execPath, [path.join(app, "main.js")], { cwd: app })
  const expected = [
    "mock: 42",
    "packed testkit: embedded PostgreSQL running",
    "pool: hello from the tarballs (total 2)",
    "internal modules: ERR_PACKAGE_PATH_NOT_EXPORTED"
  ]
  const lines = output.trim().split("\n")
  if (JSON.stringify(lines) !== JSON.stringify(expected)) {
    problems.push(`node main.js printed:\n${output}\ninstead of:\n${expected.join("\n")}`)
    fail()
  }
  step("node: the program runs (DbMock, and a pool on the packed testkit's embedded PostgreSQL)")

  // 5. the Effect 4 edition in a fresh project of its own
  const app4 = path.join(work, "app-effect4")
  fs.mkdirSync(app4)
  const versions4 = readJson(path.join(root, "packages/effect4/package.json")).devDependencies
  const dependencies4 = {
    ...Object.fromEntries(
      ["@effect-pg-pool/effect4", "@effect-pg-pool/engine", "@effect-pg-pool/testkit"].map((name) => [
        name,
        `file:${tarballs.get(name)}`
      ])
    ),
    ...Object.fromEntries(["effect", "@effect/sql-pg"].map((name) => [name, versions4[name]])),
    "@types/node": rootManifest.devDependencies["@types/node"]
  }
  fs.writeFileSync(
    path.join(app4, "package.json"),
    `${JSON.stringify({ name: "app-effect4", private: true, type: "module", dependencies: dependencies4 }, null, 2)}\n`
  )
  run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: app4 })
  step(`npm install (Effect 4 project) ${Object.keys(dependencies4).join(" ")}`)
  writeAppEffect4(app4)
  run(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", app4], { cwd: app4 })
  step("tsc: the Effect 4 program type-checks against the packed types")
  const core = path.join(app4, "node_modules/@effect-pg-pool/testkit/dist/core.js")
  const { TestServer } = await import(core)
  const server = await TestServer.startServer()
  let output4
  try {
    output4 = run(process.execPath, [path.join(app4, "main.js")], {
      cwd: app4,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        DATABASE_URL: server.url,
        DB_POOL_MAX_SIZE: "3"
      }
    })
  } finally {
    await server.close()
  }
  const expected4 = [
    "effect4 mock: 42",
    "effect4 config: maxSize 3 from DB_POOL_MAX_SIZE",
    "effect4 pool: hello from the Effect 4 tarballs (maxSize 3)",
    "effect4 internal modules: ERR_PACKAGE_PATH_NOT_EXPORTED"
  ]
  if (JSON.stringify(output4.trim().split("\n")) !== JSON.stringify(expected4)) {
    problems.push(`node main.js (Effect 4) printed:\n${output4}\ninstead of:\n${expected4.join("\n")}`)
    fail()
  }
  step("node: the Effect 4 program runs (DbMock, PoolConfig.fromEnv, DatabaseLive on the packed testkit's server)")
  console.log(`test-packages: ok (${seconds()})`)
} catch (error) {
  problems.push(error instanceof Error ? error.message : String(error))
  fail()
} finally {
  if (keep) console.log(`test-packages: kept ${work}`)
  else fs.rmSync(work, { recursive: true, force: true })
}

function fail() {
  console.error(problems.join("\n\n"))
  console.error(`\ntest-packages: ${problems.length} problem${problems.length === 1 ? "" : "s"} (${seconds()})`)
  if (!keep) fs.rmSync(work, { recursive: true, force: true })
  process.exit(1)
}

function walk(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => (entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)]))
}

/** What an app resolves from the packed manifest, and what the modules import. */
function checkTarball(name, dir) {
  const manifest = readJson(path.join(dir, "package.json"))
  const where = (file) => `${name}: ${path.relative(dir, file)}`
  const expectExports = {
    ".": { types: "./dist/index.d.ts", default: "./dist/index.js" },
    "./*": { types: "./dist/*.d.ts", default: "./dist/*.js" },
    "./internal/*": null
  }
  for (const [key, value] of Object.entries(expectExports)) {
    if (JSON.stringify(manifest.exports?.[key]) !== JSON.stringify(value)) {
      problems.push(`${name}: package.json exports["${key}"] is ${JSON.stringify(manifest.exports?.[key])}`)
    }
  }
  if (JSON.stringify(manifest).includes("workspace:")) problems.push(`${name}: package.json keeps a workspace: range`)
  const allowed = new Set([
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.peerDependencies ?? {}),
    ...Object.keys(manifest.optionalDependencies ?? {})
  ])
  const packageOf = (specifier) =>
    specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]
  const files = walk(path.join(dir, "dist"))
  const sources = walk(path.join(dir, "src")).filter((file) => file.endsWith(".ts"))
  for (const source of sources) {
    const stem = path.join(dir, "dist", path.relative(path.join(dir, "src"), source)).replace(/\.ts$/, "")
    for (const ext of [".js", ".js.map", ".d.ts", ".d.ts.map"]) {
      if (!files.includes(stem + ext)) problems.push(`${where(source)}: no ${path.basename(stem + ext)} in dist/`)
    }
  }
  for (const file of files) {
    if (file.endsWith(".map")) {
      for (const source of readJson(file).sources) {
        if (!fs.existsSync(path.resolve(path.dirname(file), source))) {
          problems.push(`${where(file)}: its source ${source} is not in the package`)
        }
      }
      continue
    }
    if (!/\.(js|d\.ts)$/.test(file)) continue
    const { importedFiles } = ts.preProcessFile(fs.readFileSync(file, "utf8"), true, true)
    for (const { fileName: specifier } of importedFiles) {
      if (specifier.startsWith(".")) {
        const target = path.resolve(path.dirname(file), specifier)
        if (!specifier.endsWith(".js") || !fs.existsSync(target)) {
          problems.push(`${where(file)}: imports ${specifier}, which is not a .js file of the package`)
        }
      } else if (!specifier.startsWith("node:") && !allowed.has(packageOf(specifier))) {
        problems.push(`${where(file)}: imports ${specifier}, not a dependency or peer dependency of ${name}`)
      }
    }
  }
}

function writeApp(app) {
  fs.writeFileSync(
    path.join(app, "tsconfig.json"),
    `${JSON.stringify(
      {
        compilerOptions: {
          strict: true,
          exactOptionalPropertyTypes: true,
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          // DOM: @effect/platform's and @effect/experimental's declarations name Storage and Crypto
          lib: ["ES2022", "DOM"],
          types: ["node"],
          // the packed declarations are checked too, not only the program's use of them
          skipLibCheck: false,
          outDir: "."
        },
        files: ["main.ts"]
      },
      null,
      2
    )}\n`
  )
  fs.writeFileSync(
    path.join(app, "main.ts"),
    `import { Db, DbMock } from "@effect-pg-pool/effect3"
import { PgTestServer } from "@effect-pg-pool/testkit"
import setup from "@effect-pg-pool/testkit/vitestGlobalSetup"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Logger, LogLevel } from "effect"

const answer = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ n: number }>\`SELECT \${42}::int AS n\`
  return rows[0]!.n
})

const greeting = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql\`CREATE TABLE greetings (id serial PRIMARY KEY, text text NOT NULL)\`
  yield* sql\`INSERT INTO greetings \${sql.insert({ text: "hello from the tarballs" })}\`
  const [row] = yield* sql<{ text: string }>\`SELECT text FROM greetings\`
  const stats = yield* Db.statistics
  return \`\${row!.text} (total \${stats.total})\`
})

const Mock = DbMock.layer({ responses: [DbMock.respond(/SELECT/, [{ n: 42 }])] })
const OnTestServer = PgTestServer.layerWith((server) =>
  Db.layer({ url: server.url, minSize: 2, maxSize: 2 }).pipe(Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)))
)

const main = Effect.gen(function* () {
  console.log(\`mock: \${yield* Effect.provide(answer, Mock)}\`)
  const text = yield* Effect.provide(
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      console.log(\`packed testkit: \${server.backend} PostgreSQL \${(yield* server.isRunning) ? "running" : "stopped"}\`)
      return yield* greeting
    }),
    OnTestServer
  )
  console.log(\`pool: \${text}\`)
  const internal = yield* Effect.promise(() =>
    import("@effect-pg-pool/effect3/internal/pool" as string).then(
      () => "importable",
      (error: { code?: string }) => error.code
    )
  )
  console.log(\`internal modules: \${internal}\`)
  if (typeof setup !== "function") throw new Error("vitestGlobalSetup is not a function")
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exit(1)
})
`
  )
}

function writeAppEffect4(app) {
  fs.writeFileSync(
    path.join(app, "tsconfig.json"),
    `${JSON.stringify(
      {
        compilerOptions: {
          strict: true,
          exactOptionalPropertyTypes: true,
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          // DOM: effect 4's declarations name CryptoKey, JsonWebKey and Storage
          lib: ["ES2022", "DOM"],
          types: ["node"],
          // the packed declarations are checked too, not only the program's use of them
          skipLibCheck: false,
          outDir: "."
        },
        files: ["main.ts"]
      },
      null,
      2
    )}\n`
  )
  fs.writeFileSync(
    path.join(app, "main.ts"),
    `import { DatabaseLive, Db, DbMock, PoolConfig } from "@effect-pg-pool/effect4"
import { Effect, Layer, Logger } from "effect"
import { SqlClient } from "effect/sql"

const answer = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ n: number }>\`SELECT \${42}::int AS n\`
  return rows[0]!.n
})

const greeting = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql.withTransaction(
    Effect.gen(function* () {
      yield* sql\`CREATE TEMP TABLE greetings (id serial PRIMARY KEY, text text NOT NULL) ON COMMIT DROP\`
      yield* sql\`INSERT INTO greetings \${sql.insert({ text: "hello from the Effect 4 tarballs" })}\`
      return yield* sql<{ text: string }>\`SELECT text FROM greetings\`
    })
  )
  const stats = yield* Db.statistics
  return \`\${rows[0]!.text} (maxSize \${stats.maxSize})\`
})

const Mock = DbMock.layer({ responses: [DbMock.respond(/SELECT/, [{ n: 42 }])] })

const main = Effect.gen(function* () {
  console.log(\`effect4 mock: \${yield* Effect.provide(answer, Mock)}\`)
  const config = yield* PoolConfig.fromEnv
  console.log(\`effect4 config: maxSize \${config.maxSize} from \${config.settingNames.maxSize}\`)
  // the pool's own events go to the program's loggers: none here, so that stdout holds only these lines
  const text = yield* Effect.provide(greeting, DatabaseLive.pipe(Layer.provide(Logger.layer([]))))
  console.log(\`effect4 pool: \${text}\`)
  const internal = yield* Effect.promise(() =>
    import("@effect-pg-pool/effect4/internal/pool" as string).then(
      () => "importable",
      (error: { code?: string }) => error.code
    )
  )
  console.log(\`effect4 internal modules: \${internal}\`)
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exit(1)
})
`
  )
}
