/**
 * The JSON rendering of both editions' file logger, written once: any value becomes JSON data, every string (keys
 * included) redacted before serialization so that escaping cannot hide a secret, cycles and depth bounded. The one
 * runtime-specific question, whether a value is a redacted secret (Effect's `Redacted`), is the edition's predicate.
 *
 * @since 0.1.0
 */

/**
 * The keys of a log line the logger writes itself: an annotation with one of these names goes elsewhere, so that it
 * cannot overwrite them.
 *
 * @example
 * ```ts
 * import { LogJson } from "@effect-pg-pool/engine"
 *
 * LogJson.reserved.has("message") // true
 * LogJson.reserved.has("requestId") // false
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const reserved: ReadonlySet<string> = new Set([
  "timestamp",
  "level",
  "fiberId",
  "message",
  "details",
  "exception",
  "exceptions",
  "cause",
  "spans",
  "traceId",
  "spanId",
  "annotations"
])

/**
 * How deep a value is rendered; deeper objects become `"[Object]"`.
 *
 * @example
 * ```ts
 * import { LogJson } from "@effect-pg-pool/engine"
 *
 * // a value nested deeper than this many objects is cut
 * const limit: number = LogJson.maxDepth
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const maxDepth = 8

/**
 * The renderers for one runtime: `toJson` for any value, `errorJson` for an `Error` (name, message, fields, cause,
 * stack). Each takes the redaction, the depth it starts at and the objects being rendered (for cycles).
 *
 * @example
 * ```ts
 * import { LogJson } from "@effect-pg-pool/engine"
 *
 * const render = LogJson.make((u) => u instanceof String)
 * const redact = (s: string) => s.replaceAll("hunter2", "<redacted>")
 * render.toJson({ url: "postgres://app:hunter2@db/app", n: 1n }, redact, 0, new Set())
 * // { url: "postgres://app:<redacted>@db/app", n: "1" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Renderer {
  readonly toJson: (u: unknown, redact: (s: string) => string, depth: number, seen: Set<object>) => unknown
  readonly errorJson: (
    error: Error,
    redact: (s: string) => string,
    depth: number,
    seen: Set<object>
  ) => Record<string, unknown>
}

/**
 * Makes the renderers, given how the runtime tells a redacted secret (rendered `"<redacted>"`): errors keep name,
 * message, stack, cause and their fields; objects with a `toJSON` (Option, Schema classes, dates) are rendered
 * through it; every string, key included, is redacted — before serialization, so that escaping cannot hide a secret.
 *
 * @example
 * ```ts
 * import { LogJson } from "@effect-pg-pool/engine"
 *
 * const secret = { secret: true }
 * const render = LogJson.make((u) => u === secret)
 * render.toJson({ password: secret }, (s) => s, 0, new Set()) // { password: "<redacted>" }
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (isRedacted: (u: object) => boolean): Renderer => {
  const toJson = (u: unknown, redact: (s: string) => string, depth: number, seen: Set<object>): unknown => {
    switch (typeof u) {
      case "string":
        return redact(u)
      case "number":
      case "boolean":
      case "undefined":
        return u
      case "bigint":
        return u.toString()
      case "symbol":
        return redact(u.toString())
      case "function":
        return `[Function ${u.name || "anonymous"}]`
    }
    if (u === null) return null
    const obj = u as object
    if (seen.has(obj)) return "[Circular]"
    if (depth >= maxDepth) return "[Object]"
    seen.add(obj)
    try {
      if (obj instanceof Error) return errorJson(obj, redact, depth, seen)
      if (isRedacted(obj)) return "<redacted>"
      if (Array.isArray(obj)) return obj.map((item) => toJson(item, redact, depth + 1, seen) ?? null)
      if (obj instanceof Map) return entriesJson([...obj.entries()], redact, depth, seen)
      if (obj instanceof Set) return [...obj].map((item) => toJson(item, redact, depth + 1, seen) ?? null)
      if (typeof (obj as { toJSON?: unknown }).toJSON === "function") {
        const json = (obj as { toJSON: () => unknown }).toJSON()
        return json === obj ? entriesJson(Object.entries(obj), redact, depth, seen) : toJson(json, redact, depth, seen)
      }
      return entriesJson(Object.entries(obj), redact, depth, seen)
    } catch (error) {
      return `[unrenderable: ${redact(String(error))}]`
    } finally {
      seen.delete(obj)
    }
  }

  const entriesJson = (
    entries: ReadonlyArray<readonly [unknown, unknown]>,
    redact: (s: string) => string,
    depth: number,
    seen: Set<object>
  ): Record<string, unknown> => {
    const out: Record<string, unknown> = {}
    for (const [key, value] of entries) out[redact(String(key))] = toJson(value, redact, depth + 1, seen)
    return out
  }

  const errorJson = (
    error: Error,
    redact: (s: string) => string,
    depth: number,
    seen: Set<object>
  ): Record<string, unknown> => {
    const out: Record<string, unknown> = { name: redact(error.name), message: redact(error.message) }
    for (const [key, value] of Object.entries(error)) {
      if (key !== "name" && key !== "message" && key !== "stack")
        out[redact(key)] = toJson(value, redact, depth + 1, seen)
    }
    if (error.cause !== undefined && !("cause" in out)) out.cause = toJson(error.cause, redact, depth + 1, seen)
    if (typeof error.stack === "string") out.stack = redact(error.stack)
    return out
  }

  return { toJson, errorJson }
}
