/**
 * The workers run from an esbuild bundle of bench/src and the workspace packages, as plain JavaScript — the way a
 * published build of our pool runs — rather than under tsx, whose transform adds a `__name(fn, "…")` call to every
 * closure our TypeScript sources create (measurable on a hot path, and absent from every peer, which ships
 * JavaScript). Third-party packages are not bundled: they load from node_modules exactly as published.
 *
 * esbuild is not a dependency of the bench; it is the one tsx itself uses. When it cannot be found, workers fall
 * back to tsx and the results say so.
 */
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Path from "node:path"
import * as Url from "node:url"

interface ResolveResult {
  readonly path: string
  readonly errors: ReadonlyArray<unknown>
}

interface PluginBuild {
  readonly onResolve: (
    options: { readonly filter: RegExp },
    callback: (args: {
      readonly path: string
      readonly kind: string
      readonly resolveDir: string
      readonly pluginData: unknown
    }) => Promise<{ readonly path: string; readonly external: boolean } | undefined>
  ) => void
  readonly resolve: (
    path: string,
    options: { readonly kind: string; readonly resolveDir: string; readonly pluginData: unknown }
  ) => Promise<ResolveResult>
}

interface Esbuild {
  readonly version: string
  readonly build: (options: Record<string, unknown>) => Promise<{ readonly errors: ReadonlyArray<unknown> }>
}

const loadEsbuild = (): Esbuild | undefined => {
  try {
    const fromTsx = Module.createRequire(Module.createRequire(import.meta.url).resolve("tsx/package.json"))
    return fromTsx("esbuild") as Esbuild
  } catch {
    return undefined
  }
}

const builtins = new Set(Module.builtinModules)

export interface Bundle {
  /**
   * Each worker's entry to fork with plain `node` (or its TypeScript source to run under tsx), or why it could not
   * be built: the effect 3 side's (bench/src/worker.ts) and the effect 4 side's (bench/effect4/src/worker.ts).
   */
  readonly workers: Record<"effect3" | "effect4", { readonly path: string } | { readonly error: string }>
  /** examples/health-server's entry (exampleServer.ts), or why it could not be built. */
  readonly exampleServer: { readonly path: string } | { readonly error: string }
  readonly execArgv: ReadonlyArray<string>
  readonly description: string
}

const firstError = (errors: ReadonlyArray<unknown>): string => {
  const error = errors[0] as { readonly text?: string; readonly location?: { readonly file?: string } } | undefined
  return `${error?.text ?? "unknown error"}${error?.location?.file ? ` (${error.location.file})` : ""}`
}

/**
 * Where a third-party import of a file is resolved from. For the `--effect3` copy's files (the copy's
 * `packages/<name>/…`), the same package of this workspace: the copy's own `node_modules` may hold other copies of
 * effect, @effect/* and pg (an old worktree's install), and an A/B that loads a second effect measures that, not
 * the change. Both sides then run on one set of third-party code, as a published build would.
 */
const fairResolveDir = (benchDir: string, corePath: string | undefined) => {
  if (corePath === undefined) return (resolveDir: string) => resolveDir
  const workspace = Path.resolve(benchDir, "..")
  const marker = `${Path.sep}packages${Path.sep}`
  const at = corePath.lastIndexOf(marker)
  // a copy outside a packages/ layout: everything under its package directory resolves as packages/effect3 does
  const copyRoot = at === -1 ? Path.resolve(Path.dirname(corePath), "..") : corePath.slice(0, at)
  const effect3 = Path.join(workspace, "packages", "effect3")
  return (resolveDir: string): string => {
    if (!resolveDir.startsWith(copyRoot + Path.sep)) return resolveDir
    const name = at === -1 ? "" : resolveDir.slice(copyRoot.length + marker.length).split(Path.sep)[0]!
    const own = Path.join(workspace, "packages", name)
    return name !== "" && Fs.existsSync(own) ? own : effect3
  }
}

/**
 * @param corePath another copy of packages/effect3 to bundle in place of the workspace's (`--effect3`), or undefined.
 */
export const bundleWorker = async (benchDir: string, corePath: string | undefined): Promise<Bundle> => {
  const source = Path.join(benchDir, "src", "worker.ts")
  const effect4Source = Path.join(benchDir, "effect4", "src", "worker.ts")
  const exampleSource = Path.join(benchDir, "src", "exampleServer.ts")
  const esbuild = loadEsbuild()
  if (esbuild === undefined) {
    if (corePath !== undefined)
      throw new Error("--effect3 needs esbuild (from tsx's dependencies), which was not found")
    return {
      workers: { effect3: { path: source }, effect4: { path: effect4Source } },
      exampleServer: { path: exampleSource },
      execArgv: process.execArgv,
      description: "workers under tsx (esbuild not found)"
    }
  }
  const outdir = Path.join(benchDir, "dist")
  Fs.rmSync(outdir, { recursive: true, force: true })
  const skip = Symbol("resolving")
  const resolveFrom = fairResolveDir(benchDir, corePath)
  const externalPackages = {
    name: "external-packages",
    setup(build: PluginBuild) {
      // every bare import that is not one of ours stays an import, pinned to the file it resolves to from its
      // importer (pnpm keeps each package's dependencies next to it, not in bench/node_modules)
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === skip) return undefined
        if (args.path.startsWith("@effect-pg-pool/")) return undefined
        if (args.path.startsWith("node:") || builtins.has(args.path)) return { path: args.path, external: true }
        const resolve = (resolveDir: string) =>
          build.resolve(args.path, { kind: args.kind, resolveDir, pluginData: skip })
        const fair = resolveFrom(args.resolveDir)
        let resolved = await resolve(fair)
        // a dependency this workspace does not have (the copy added it): the copy's own
        if (resolved.errors.length > 0 && fair !== args.resolveDir) resolved = await resolve(args.resolveDir)
        if (resolved.errors.length > 0) return undefined
        return { path: Url.pathToFileURL(resolved.path).href, external: true }
      })
    }
  }
  const options = {
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outdir,
    logLevel: "silent",
    plugins: [externalPackages],
    ...(corePath === undefined ? {} : { alias: { "@effect-pg-pool/effect3": corePath } })
  }
  const result = await esbuild.build({ ...options, entryPoints: [source] })
  if (result.errors.length > 0) throw new Error(`bundling the worker failed: ${firstError(result.errors)}`)
  // the example and the Effect 4 side are other helpers' moving targets: if one does not build, its rows or
  // clients are reported as not measured, and the rest of the run goes on
  const build = (base: Record<string, unknown>, entry: string, dir: string) =>
    esbuild.build({ ...base, entryPoints: [entry], outdir: Path.join(outdir, dir) }).then(
      (r): { path: string } | { error: string } =>
        r.errors.length > 0
          ? { error: firstError(r.errors) }
          : { path: Path.join(outdir, dir, `${Path.basename(entry, ".ts")}.js`) },
      (error: unknown) => ({ error: error instanceof Error ? error.message.split("\n")[0]! : String(error) })
    )
  const example = await build(options, exampleSource, "example")
  // without the --effect3 alias: the Effect 4 side does not import the Effect 3 edition
  const { alias: _alias, ...effect4Options } = options as typeof options & { readonly alias?: unknown }
  const effect4 = await build(effect4Options, effect4Source, "effect4")
  return {
    workers: { effect3: { path: Path.join(outdir, "worker.js") }, effect4 },
    exampleServer: example,
    execArgv: [],
    description: `workers bundled with esbuild ${esbuild.version}, run by plain node`
  }
}
