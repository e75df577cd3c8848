/**
 * `pnpm demo -- --failover`: the command line, the verdict on the pool's per-host statistics, and one short run of
 * the drill end to end on the embedded primary and standby, as a user starts it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import * as Url from "node:url"
import * as Cli from "../src/Cli.js"
import * as Drill from "../src/Drill.js"
import type { Figures, HostFigures } from "../src/Edition.js"

const demoDir = Path.dirname(Path.dirname(Url.fileURLToPath(import.meta.url)))

const refusal = (argv: ReadonlyArray<string>) =>
  Effect.map(Effect.either(Cli.parse(argv)), (result) => (Either.isLeft(result) ? result.left.message : "accepted"))

const figures = (hosts: ReadonlyArray<HostFigures>): Figures => ({
  total: hosts.reduce((sum, h) => sum + h.sessions, 0),
  idle: 0,
  active: 0,
  pending: 0,
  waiting: 0,
  minSize: 2,
  maxSize: 10,
  peakWaiting: 0,
  acquisitionTimeP99Ms: 0,
  acquisitionTimeAvgMs: 0,
  acquireTimeouts: 0,
  reconnectAttempts: 0,
  connectionsCreated: 0,
  connectionsClosedBroken: 0,
  hosts
})

const host = (label: string, role: string, sessions: number): HostFigures => ({
  label,
  role,
  up: role === "primary",
  sessions,
  failures: 0
})

const noLeak: Drill.LeakCheck = {
  active: 0,
  waiting: 0,
  total: 10,
  serverSessions: 10,
  applicationName: "a",
  leaked: 0
}

/** A failover run that went as it should: one in-flight failure, the first success after the promotion. */
const run = Effect.gen(function* () {
  const options = yield* Cli.parse(["--failover"])
  const outage = { stopDescription: "kill", stop: Effect.void, start: Effect.void }
  const state = new Drill.RunState(options, outage, { oldPrimary: "h1:1", newPrimary: "h2:2" })
  state.succeeded("sql")
  state.crashAt = 8_000
  state.connectionsAtCrash = 10
  state.failed("SqlError connection lost", "Connection lost")
  state.stoppedAt = 8_050
  state.startAt = 12_000
  state.upAt = 12_100
  state.succeeded("sql")
  return state
})

const verdict = (state: Drill.RunState, hosts: ReadonlyArray<HostFigures>) =>
  Drill.violations(state, noLeak, 0, 15_000, figures(hosts))

describe("pnpm demo -- --failover", () => {
  it.effect(
    "the command line: both editions; what the failover drill cannot do is refused with what to do instead",
    () =>
      Effect.gen(function* () {
        assert.strictEqual((yield* Cli.parse(["--", "--failover"])).failover, true)
        assert.strictEqual((yield* Cli.parse(["--effect", "4", "--multiplex", "--failover"])).effect, 4)
        assert.match(yield* refusal(["--failover", "--no-outage"]), /contradict/)
        assert.match(yield* refusal(["--failover", "--stop-command", "x"]), /do not apply/)
      })
  )

  it.effect(
    "the verdict: a clean failover passes; a session on the old role or a success with no primary fails it",
    () =>
      Effect.gen(function* () {
        const clean = yield* run
        assert.deepStrictEqual(verdict(clean, [host("h1:1", "primary", 0), host("h2:2", "primary", 10)]), [])
        assert.deepStrictEqual(verdict(clean, [host("h1:1", "primary", 2), host("h2:2", "primary", 8)]), [
          "2 sessions left on the old primary h1:1",
          "the new primary holds 8 of the pool's 10 sessions"
        ])
        assert.deepStrictEqual(verdict(clean, [host("h1:1", "primary", 0), host("h2:2", "standby", 10)]), [
          "10 sessions left on h2:2, whose role is standby, in a read-write pool",
          "the pool sees the promoted h2:2 as standby"
        ])
        const servedByStandby = yield* run
        servedByStandby.startAt = undefined
        servedByStandby.succeeded("sql")
        assert.match(
          verdict(servedByStandby, [host("h1:1", "primary", 0), host("h2:2", "primary", 10)]).join("\n"),
          /^1 queries succeeded while no node accepted writes/
        )
      })
  )

  it.each([["3"], ["4"]])(
    "a short drill on the embedded primary and standby, Effect %s edition: exit code 0, the failover's figures in the summary",
    async (effect) => {
      const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" }
      delete env.DATABASE_URL
      const args = ["--effect", effect, "--failover", "--duration", "7", "--outage-after", "2.5", "--outage-for", "1"]
      const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const tsx = Path.join(demoDir, "node_modules", ".bin", "tsx")
        const child = ChildProcess.spawn(tsx, ["src/main.ts", ...args, "--workers", "20"], {
          cwd: demoDir,
          env,
          stdio: ["ignore", "pipe", "pipe"]
        })
        let output = ""
        child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")))
        child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")))
        child.once("exit", (code) => resolve({ code, output }))
      })
      assert.strictEqual(code, 0, output)
      for (const line of [
        new RegExp(`@effect-pg-pool/effect${effect} \\(Effect ${effect}`),
        /killing the primary 127\.0\.0\.1:\d+/,
        /is the new primary: it accepts writes/,
        /first success +\d/,
        /sessions per host +127\.0\.0\.1:\d+ \w+ down 0 sessions.* 127\.0\.0\.1:\d+ primary up \d+ sessions/,
        /leaked connections +0/,
        /✓ the pool failed over/
      ]) {
        assert.match(output, line)
      }
    }
  )
})
