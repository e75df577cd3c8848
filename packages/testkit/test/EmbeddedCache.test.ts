import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Redacted } from "effect"
import * as Embedded from "../src/internal/embedded.js"
import * as internalError from "../src/internal/error.js"
import * as Registry from "../src/internal/registry.js"
import { failureOf, queryOnce } from "./utils.js"

const isRoot = process.getuid?.() === 0

/** An embedded server on the given binaries, closed with the scope. */
const serverOn = (binaries: Embedded.Binaries) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: (signal) => Embedded.start({}, { binaries }, signal),
      catch: internalError.fromCore("embedded")
    }),
    (server) => Effect.promise(() => server.close())
  )

/**
 * A checkout as `git clone` into `mktemp -d` leaves it: a directory of mode 0700 (only its owner may enter it), with
 * the PostgreSQL binaries somewhere inside, hard-linked from the installed ones (copied across file systems).
 */
const checkoutWithBinaries = Effect.acquireRelease(
  Effect.promise(async () => {
    const installed = await Embedded.loadBinaries()
    const checkout = Fs.mkdtempSync(Path.join(Os.tmpdir(), "checkout-"))
    assert.strictEqual(Fs.statSync(checkout).mode & 0o777, 0o700)
    const native = Path.dirname(Path.dirname(installed.postgres))
    const copy = Path.join(checkout, "repo", "node_modules", "native")
    Fs.mkdirSync(Path.dirname(copy), { recursive: true })
    try {
      ChildProcess.execFileSync("cp", ["-a", "-l", native, copy])
    } catch {
      Fs.rmSync(copy, { recursive: true, force: true })
      ChildProcess.execFileSync("cp", ["-a", native, copy])
    }
    const binaries: Embedded.Binaries = {
      postgres: Path.join(copy, "bin", Path.basename(installed.postgres)),
      initdb: Path.join(copy, "bin", Path.basename(installed.initdb)),
      version: installed.version
    }
    return { checkout, binaries }
  }),
  ({ checkout }) => Effect.sync(() => Fs.rmSync(checkout, { recursive: true, force: true }))
)

/** The executable the server behind `dataDir` runs, from its postmaster pid. */
const executableOf = (dataDir: string) =>
  Fs.readlinkSync(`/proc/${Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]}/exe`)

const templates = () =>
  Fs.readdirSync(Registry.dataBaseDir())
    .filter((name) => /^template-[^.]+(?:\.\d+)*-[0-9a-f]+$/.test(name))
    .sort()

describe("a checkout the server's account cannot enter", () => {
  // CI runs as root: there the server runs as "postgres", which cannot reach binaries inside a 0700 directory.
  it.scopedLive(
    "serves from binaries inside a 0700 directory (as root: through the shared binaries cache, linked once)",
    () =>
      Effect.gen(function* () {
        const { binaries } = yield* checkoutWithBinaries
        const templatesBefore = templates()
        const server = yield* serverOn(binaries)
        const [row] = yield* queryOnce<{ dir: string }>(
          Redacted.make(server.url),
          "SELECT current_setting('data_directory') AS dir"
        )
        // the template is shared too: one per server version, whatever path the binaries have
        assert.deepStrictEqual(templates(), templatesBefore)
        const executable = executableOf(row!.dir)
        if (isRoot) {
          assert.isTrue(executable.startsWith(Path.join(Registry.baseDir(), "binaries-")), executable)
        } else {
          // not root: the server runs as us, who own the directory
          assert.strictEqual(executable, binaries.postgres)
        }
      })
  )

  it.scopedLive("names the directory that blocks the server's account when no cache can help", () =>
    Effect.gen(function* () {
      const { checkout, binaries } = yield* checkoutWithBinaries
      const previous = process.env.TMPDIR
      // the cache goes under the temp directory: put that inside the blocked checkout too
      process.env.TMPDIR = Path.join(checkout, "tmp")
      Fs.mkdirSync(process.env.TMPDIR, { recursive: true })
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          if (previous === undefined) delete process.env.TMPDIR
          else process.env.TMPDIR = previous
        })
      )
      const exit = yield* Effect.exit(Effect.scoped(serverOn(binaries)))
      if (isRoot) {
        const error = failureOf(exit)
        assert.strictEqual(error.reason, "StartFailed")
        assert.include(error.message, `${checkout} (mode 0700) is not searchable by the "postgres" user`)
        assert.include(error.message, `Make ${checkout} searchable`)
      } else {
        assert.isTrue(Exit.isSuccess(exit))
      }
    })
  )
})

describe("the template and binaries caches", () => {
  const hours = (n: number) => n * 60 * 60 * 1000

  /** A fake cache entry in `base`, last used `age` ago (by its marker file, or by its own age when unmarked). */
  const entry = (base: string, name: string, age: number, marked: boolean) => {
    const dir = Path.join(base, name)
    Fs.mkdirSync(Path.join(dir, "data"), { recursive: true })
    const at = new Date(Date.now() - age)
    if (marked) {
      Fs.writeFileSync(Path.join(dir, "last-used"), "")
      Fs.utimesSync(Path.join(dir, "last-used"), at, at)
    }
    Fs.utimesSync(dir, at, at)
    return dir
  }

  it.live("removes the cached trees nobody used for an hour (a day for unmarked ones), and keeps the current one", () =>
    Effect.sync(() => {
      // private directories: the machine's caches are swept concurrently by every other test process
      const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "caches-"))
      const binariesBase = Fs.mkdtempSync(Path.join(Os.tmpdir(), "caches-"))
      try {
        const idle = entry(base, "template-17.1-aaaaaaaaaaaa", hours(2), true)
        const recent = entry(base, "template-17.2-bbbbbbbbbbbb", hours(0.5), true)
        const oldTestkit = entry(base, "template-17.3-cccccccccccc", hours(2), false)
        const abandoned = entry(base, "template-17.4-dddddddddddd", hours(48), false)
        const current = entry(base, "template-17.5-eeeeeeeeeeee", hours(5), true)
        const half = entry(base, "template-17.6-ffffffffffff.tmp-1-00ff", hours(5), false)
        const binaries = entry(binariesBase, "binaries-17.7-abcdefabcdef", hours(2), true)
        const removed = Embedded.sweepCaches([current], [base, binariesBase])
        assert.sameMembers(removed, [idle, abandoned, binaries])
        for (const dir of removed) assert.isFalse(Fs.existsSync(dir), dir)
        // used within the hour; made by an older testkit that does not mark use (a day's patience); ours; a tree
        // being built (the reaper's, by its pid)
        for (const dir of [recent, oldTestkit, current, half]) assert.isTrue(Fs.existsSync(dir), dir)
        // removed through a trash- rename, and the trash is gone
        assert.sameMembers(
          Fs.readdirSync(base),
          [recent, oldTestkit, current, half].map((dir) => Path.basename(dir))
        )
      } finally {
        Fs.rmSync(base, { recursive: true, force: true })
        Fs.rmSync(binariesBase, { recursive: true, force: true })
      }
    })
  )

  it.live("the template key names the server version and the initdb flags, not where the binaries are", () =>
    Effect.sync(() => {
      assert.match(Embedded.templateKey("17.6", undefined), /^template-17\.6-[0-9a-f]{12}$/)
      assert.notStrictEqual(Embedded.templateKey("17.6", undefined), Embedded.templateKey("17.7", undefined))
      assert.notStrictEqual(
        Embedded.templateKey("17.6", { uid: 70, gid: 70 }),
        Embedded.templateKey("17.6", { uid: 71, gid: 71 })
      )
    })
  )

  it.live("a remover that died halfway leaves trash the next reaper removes", () =>
    Effect.promise(async () => {
      const base = Registry.dataBaseDir()
      Registry.ensureDir(base)
      // a pid far above pid_max: no such process
      const trash = Path.join(base, "trash-99999999-0123abcd")
      Fs.mkdirSync(Path.join(trash, "data"), { recursive: true })
      await Registry.reap(() => false)
      assert.isFalse(Fs.existsSync(trash))
    })
  )
})
