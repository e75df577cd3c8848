/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`) and lists the frames with the most self time, and self time
 * per package. Also runnable on its own: `tsx src/profile.ts file.cpuprofile [top]`.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Url from "node:url"

/** The repository's root (whichever checkout or worktree runs the bench), cut from the frames' paths. */
const repoRoot = `${Path.resolve(Path.dirname(Url.fileURLToPath(import.meta.url)), "..", "..")}/`

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

export interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
  readonly startTime: number
  readonly endTime: number
}

const shortUrl = (url: string): string => {
  const path = url.startsWith("file://") ? Url.fileURLToPath(url) : url
  const nm = path.lastIndexOf("node_modules/")
  if (nm !== -1) return path.slice(nm + "node_modules/".length)
  return path.startsWith(repoRoot) ? path.slice(repoRoot.length) : path
}

const packageOf = (url: string): string => {
  if (url === "") return "(native / V8)"
  if (url.startsWith("node:")) return "node core"
  const short = shortUrl(url)
  if (short.startsWith(".pnpm/")) {
    const rest = short.split("/node_modules/")[1] ?? short
    const parts = rest.split("/")
    return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!
  }
  if (short.startsWith("@")) return short.split("/").slice(0, 2).join("/")
  // the workers' esbuild bundle: our packages and the bench's own code, compiled together
  if (short.startsWith("bench/dist/")) return "bundled workspace code (packages/*, bench/src)"
  if (short.startsWith("packages/") || short.startsWith("bench/") || short.startsWith("examples/")) {
    return short.split("/").slice(0, 2).join("/")
  }
  return short.split("/")[0] ?? short
}

const frameKey = (frame: CallFrame): string => {
  const name = frame.functionName === "" ? "(anonymous)" : frame.functionName
  return frame.url === "" ? name : `${name}  ${shortUrl(frame.url)}:${frame.lineNumber + 1}:${frame.columnNumber + 1}`
}

/**
 * Samples where the process did not run JavaScript of its own: idle, or inside a socket write — on a loaded
 * 2-core machine a write to a local PostgreSQL backend often hands the CPU to that backend, and the sampler
 * keeps charging the write while the process waits to be scheduled again.
 */
const offCpu = new Set(["(idle)", "writeBuffer", "writev", "dispatch", "(program)"])

export const summarize = (profile: CpuProfile, top = 25, inclusiveFilter?: RegExp): string => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const selfMicros = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  const frames = new Map<string, number>()
  const packages = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let total = 0
  let onCpu = 0
  for (const [id, micros] of selfMicros) {
    const frame = byId.get(id)!.callFrame
    const key = frameKey(frame)
    total += micros
    if (!offCpu.has(frame.functionName)) onCpu += micros
    frames.set(key, (frames.get(key) ?? 0) + micros)
    const name = frame.functionName
    const pkg = offCpu.has(name) || (frame.url === "" && name.startsWith("(")) ? name : packageOf(frame.url)
    packages.set(pkg, (packages.get(pkg) ?? 0) + micros)
    if (inclusiveFilter !== undefined && !offCpu.has(name)) {
      const seen = new Set<string>()
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const k = frameKey(byId.get(at)!.callFrame)
        if (seen.has(k) || !inclusiveFilter.test(k)) continue
        seen.add(k)
        inclusive.set(k, (inclusive.get(k) ?? 0) + micros)
      }
    }
  }
  const pct = (micros: number, of: number) => `${((micros / of) * 100).toFixed(1).padStart(5)} %`
  const lines = [
    `${(total / 1000).toFixed(0)} ms sampled, ${(onCpu / 1000).toFixed(0)} ms running JavaScript or GC ` +
      `(not idle, not inside a socket write)`,
    `top ${top} frames by self time, % of all samples:`
  ]
  for (const [key, micros] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${pct(micros, total)}  ${key}`)
  }
  lines.push("self time by package, % of the samples running JavaScript or GC:")
  for (const [pkg, micros] of [...packages].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    if (offCpu.has(pkg)) continue
    lines.push(`  ${pct(micros, onCpu)}  ${pkg}`)
  }
  if (inclusiveFilter !== undefined) {
    lines.push(`inclusive time of frames matching ${inclusiveFilter}, % of the samples running JavaScript or GC:`)
    for (const [key, micros] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      lines.push(`  ${pct(micros, onCpu)}  ${key}`)
    }
  }
  return lines.join("\n")
}

if (process.argv[1] !== undefined && import.meta.url === Url.pathToFileURL(process.argv[1]).href) {
  const [file, top, filter] = process.argv.slice(2)
  if (file === undefined) {
    console.error("usage: tsx src/profile.ts file.cpuprofile [top] [inclusive-filter-regexp]")
    process.exit(2)
  }
  const profile = JSON.parse(Fs.readFileSync(file, "utf8")) as CpuProfile
  console.log(summarize(profile, Number(top ?? 25), filter === undefined ? undefined : new RegExp(filter)))
}
