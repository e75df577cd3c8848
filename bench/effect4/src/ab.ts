/**
 * An in-process A/B of SELECT 1 (pool max 10): our Effect 4 edition (`Db.layer`) and @effect/sql-pg 4's
 * `PgClient.layer` in one process, in alternating phases (ours, theirs, theirs, ours, …), so that both see the
 * same load of a shared machine; prints the medians of client CPU µs per query (system time apart) and queries/s,
 * and the median of the per-pair ratios. Not part of `pnpm bench`: a tool to judge a change to the hot path.
 *
 * usage (from bench/effect4): `npx tsx src/ab.ts <url> <mux|plain> <callers> [rounds=8] [phaseMs=700]`
 * - ONLY=ours|theirs runs one client's phases (for `node --import tsx --cpu-prof`)
 * - COUNT_WRITES=1 prints socket writes per query (how many statements one write carries)
 */
import * as Net from "node:net"
import { Recorder } from "../../src/stats.js"
import * as Ours from "./adapters/ours.js"
import * as SqlPg from "./adapters/sqlpg.js"

const [url, mode, callersArg, roundsArg, phaseArg] = process.argv.slice(2)
const mux = mode === "mux"
const callers = Number(callersArg)
const rounds = Number(roundsArg ?? 8)
const phaseMs = Number(phaseArg ?? 700)
const median = (xs: Array<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
let writes = 0
if (process.env.COUNT_WRITES !== undefined) {
  const proto = Net.Socket.prototype as any
  const write = proto.write
  proto.write = function (this: unknown, ...args: Array<unknown>) {
    writes++
    return write.apply(this, args)
  }
}
const main = async () => {
  const clients = {
    ours: Ours.make(mux)({ url: url!, maxSize: 10 }),
    theirs: SqlPg.make(mux)({ url: url!, maxSize: 10 })
  }
  for (const c of Object.values(clients)) await c.init()
  const cpu: Record<string, Array<number>> = { ours: [], theirs: [] }
  const sys: Record<string, Array<number>> = { ours: [], theirs: [] }
  const qps: Record<string, Array<number>> = { ours: [], theirs: [] }
  const recorder = new Recorder()
  let total = 0
  const phase = async (name: "ours" | "theirs") => {
    recorder.reset()
    const w0 = writes
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    await clients[name].loop("select", callers, t0 + phaseMs, recorder)
    const dt = performance.now() - t0
    const c = process.cpuUsage(c0)
    total += recorder.count
    if (process.env.COUNT_WRITES !== undefined)
      console.log(`${name}: ${((writes - w0) / recorder.count).toFixed(3)} writes/query`)
    return {
      n: recorder.count,
      sys: c.system / recorder.count,
      cpu: (c.user + c.system) / recorder.count,
      qps: (recorder.count * 1000) / dt
    }
  }
  await phase("ours")
  await phase("theirs")
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 ? (["theirs", "ours"] as const) : (["ours", "theirs"] as const)
    for (const name of order.filter((n) => process.env.ONLY === undefined || n === process.env.ONLY)) {
      const r = await phase(name)
      cpu[name]!.push(r.cpu)
      sys[name]!.push(r.sys)
      qps[name]!.push(r.qps)
    }
  }
  const line = (n: string) =>
    `${n}: ${median(cpu[n]!).toFixed(2)} µs/q (system ${median(sys[n]!).toFixed(2)}), ${median(qps[n]!).toFixed(0)} q/s`
  if (process.env.ONLY !== undefined) {
    console.log(`${mode} ${callers}: ${line(process.env.ONLY)}; ${total} queries`)
    return
  }
  const ratios = cpu.ours!.map((c, i) => cpu.theirs![i]! / c)
  const qratios = qps.ours!.map((q, i) => q / qps.theirs![i]!)
  console.log(
    `${mode} ${callers}: ${line("ours")} | ${line("theirs")} | ours÷theirs q/s ${median(qratios).toFixed(2)}×, CPU theirs÷ours ${median(ratios).toFixed(2)}×`
  )
  for (const c of Object.values(clients)) await c.close()
}
main().then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
