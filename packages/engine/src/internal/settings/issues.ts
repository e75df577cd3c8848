/**
 * The issues found while resolving: each names the setting as the user wrote it; a value that fails its parser is
 * reported and replaced by its fallback, so that resolution goes on and finds every other problem.
 *
 * @internal
 */
import { envOf, optionNames, type Setting } from "./env.js"
import type { Issue, Options, WrittenNames } from "./model.js"
import { type Parse, type Runtime, show, text } from "./values.js"

/** @internal */
export class Issues {
  readonly list: Array<Issue> = []
  private readonly invalid = new Set<string>()
  readonly names: { -readonly [K in Setting]: string }

  constructor(
    source: "input" | "env",
    written: WrittenNames,
    readonly runtime: Runtime
  ) {
    this.names = { ...(source === "env" ? envOf : optionNames) }
    for (const setting of Object.keys(this.names) as Array<Setting>) {
      const name = written[setting]
      if (name !== undefined) this.names[setting] = name
    }
  }

  /** The name a message gives `setting`: what the user wrote, or its option or variable; other fields as given. */
  nameOf(setting: string): string {
    return Object.hasOwn(this.names, setting) ? this.names[setting as Setting] : setting
  }

  report(field: string, env: string, value: string, message: string, setting: string = field): void {
    this.list.push({ field, env, setting: this.nameOf(setting), value, message })
    this.invalid.add(field)
  }

  valid(...fields: ReadonlyArray<string>): boolean {
    return fields.every((field) => !this.invalid.has(field))
  }

  show(raw: unknown): string {
    return show(raw, this.runtime)
  }

  // On failure the fallback stands in so resolution can go on and find the other problems; it is never returned
  // to the caller because any issue fails the whole configuration.
  read<A>(field: Setting, raw: unknown, fallback: A, parse: Parse<A>): A {
    if (raw === undefined) return fallback
    const result = parse(raw, this.runtime)
    if (result.ok) return result.value
    const shown = this.show(raw)
    this.report(field, envOf[field], shown, `${this.nameOf(field)} (${shown}) ${result.problem}`)
    return fallback
  }
}

/** The variables set, empty ones left out: deployment tools often define variables as empty, meaning "not set". @internal */
export const nonEmpty = (env: Options<unknown>["env"]): Map<string, string> => {
  const out = new Map<string, string>()
  for (const [key, value] of Object.entries(env ?? {}))
    if (value !== undefined && value.trim() !== "") out.set(key, value)
  return out
}

/** @internal */
export const logFileOf = (issues: Issues, raw: unknown): string | undefined =>
  issues.read<string | undefined>("logFile", raw, undefined, text("give a file path")) || undefined
