/**
 * Several hosts, as libpq takes them: a host list and a port list (from the URL, the `host`/`port` options or
 * `PGHOST`/`PGPORT`), paired by libpq's rule — one port for every host, or exactly one per host — with empty
 * entries standing for the defaults; and `target_session_attrs` / `load_balance_hosts`.
 *
 * @internal
 */
import { fail, ok, type Parse, type Parsed, port, PORT_RULE, show } from "./values.js"

/** One host to try, with its port; a host starting with `/` (or `@`, Linux's abstract namespace) is a Unix socket directory. @internal */
export interface Host {
  readonly host: string
  readonly port: number
}

/** @internal */
export const isSocket = (host: string): boolean => host.startsWith("/") || host.startsWith("@")

/** @internal */
export const DEFAULT_HOST = "localhost"

/** @internal */
export const DEFAULT_PORT = 5432

/** libpq's `target_session_attrs`: which session a connection must reach to count as opened. @internal */
export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"

/** @internal */
export const targetSessionAttrsValues: ReadonlyArray<TargetSessionAttrs> = [
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby"
]

/** libpq's `load_balance_hosts`: the hosts in the order given, or shuffled for each connection. @internal */
export type LoadBalanceHosts = "disable" | "random"

/** @internal */
export const loadBalanceHostsValues: ReadonlyArray<LoadBalanceHosts> = ["disable", "random"]

/** @internal */
export const TARGET_FIX =
  "any takes the first host that accepts the connection; read-write (or primary) one that accepts writes, " +
  "read-only one in read-only mode, standby one in recovery, prefer-standby a standby if one is up, else any"

/** @internal */
export const LOAD_BALANCE_FIX =
  "disable tries the hosts in the order given, random in a random order for each connection"

/** A host list: a text (comma-separated, as libpq's host keyword and PGHOST) or an array of texts. @internal */
export const hostList: Parse<ReadonlyArray<string>> = (raw) => {
  const entries = typeof raw === "string" ? raw.split(",") : Array.isArray(raw) ? raw : undefined
  if (entries === undefined || entries.length === 0 || !entries.every((e) => typeof e === "string")) {
    return fail('must be a host name or a list of them: e.g. localhost, "db1,db2" or ["db1", "db2"]')
  }
  return ok(entries.map((e) => (e as string).trim()))
}

/**
 * A port list: a number, a text (comma-separated, as libpq's port keyword and PGPORT; an empty entry is the
 * default port) or an array of numbers.
 *
 * @internal
 */
export const portList: Parse<ReadonlyArray<number | undefined>> = (raw, runtime) => {
  if (typeof raw === "string" && raw.includes(",")) {
    const entries = raw.split(",")
    const parsed = entries.map((e) => (e.trim() === "" ? ok(undefined) : port(e, runtime)))
    const bad = entries.find((_, i) => !parsed[i]!.ok)
    return bad === undefined
      ? ok(parsed.map((p) => (p as { readonly value: number | undefined }).value))
      : fail(`lists ${bad.trim() === "" ? '""' : bad.trim()}, but each port ${PORT_RULE}`)
  }
  if (Array.isArray(raw)) {
    if (raw.length === 0) return fail(`must list at least one port: ${PORT_RULE.replace(/^must be /, "each is ")}`)
    const bad = raw.find((e) => !port(e, runtime).ok)
    return bad === undefined
      ? ok(raw.map((e) => (port(e, runtime) as { readonly value: number }).value))
      : fail(`lists ${show(bad, runtime)}, but each port ${PORT_RULE}`)
  }
  const one: Parsed<number> = port(raw, runtime)
  return one.ok ? ok([one.value]) : one
}

/** A list as messages show it. @internal */
export const showList = (list: ReadonlyArray<string | number | undefined>): string =>
  list.map((e) => (e === undefined ? "" : String(e))).join(",")

/** The message for port and host lists that do not pair, after the ports' label. @internal */
export const mismatch = (ports: number, hosts: number, hostLabel: string | undefined): string =>
  `lists ${ports} ports for ${hosts} hosts${hostLabel === undefined ? "" : ` (${hostLabel})`}: give one port for ` +
  `all hosts, or one per host in the same order (libpq: could not match ${ports} port numbers to ${hosts} hosts)`

/**
 * Pairs hosts with ports by libpq's rule: one port applies to every host; otherwise there must be exactly as many
 * ports as hosts. Empty entries take the defaults.
 *
 * @internal
 */
export const pair = (
  hosts: ReadonlyArray<string>,
  ports: ReadonlyArray<number | undefined>
): { readonly ok: true; readonly hosts: ReadonlyArray<Host> } | { readonly ok: false } => {
  if (ports.length !== 1 && ports.length !== hosts.length) return { ok: false }
  return {
    ok: true,
    hosts: hosts.map((host, i) => ({
      host: host === "" ? DEFAULT_HOST : host,
      port: (ports.length === 1 ? ports[0] : ports[i]) ?? DEFAULT_PORT
    }))
  }
}

/**
 * A list of hosts each with its own port, as `replicaHosts` takes them: `"r1:5432,r2:5433"`, `"[::1]:5433"`, or an
 * array of such entries; an entry without a port takes `defaultPort`. @internal
 */
export const hostPortList =
  (defaultPort: number): Parse<ReadonlyArray<Host>> =>
  (raw, runtime) => {
    const entries = typeof raw === "string" ? raw.split(",") : Array.isArray(raw) ? raw : undefined
    const example = 'e.g. "replica1:5432,replica2:5432" or ["replica1:5432", "[::1]:5433"]'
    if (entries === undefined || entries.length === 0 || !entries.every((e) => typeof e === "string")) {
      return fail(`must be a host:port list: ${example}`)
    }
    const hosts: Array<Host> = []
    for (const entry of (entries as ReadonlyArray<string>).map((e) => e.trim())) {
      const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(entry)
      const colon = entry.lastIndexOf(":")
      const [host, portText] =
        bracketed !== null
          ? [bracketed[1]!, bracketed[2]]
          : colon !== -1 && entry.indexOf(":") === colon && !isSocket(entry)
            ? [entry.slice(0, colon), entry.slice(colon + 1)]
            : [entry, undefined]
      if (host === "") return fail(`lists an empty host: ${example}`)
      if (portText === undefined || portText === "") {
        hosts.push({ host, port: defaultPort })
        continue
      }
      const parsed = port(portText, runtime)
      if (!parsed.ok) return fail(`lists ${entry}, but each port ${PORT_RULE}`)
      hosts.push({ host, port: parsed.value })
    }
    return ok(hosts)
  }

/** The targets a read-only pool may take. @internal */
export const replicaTargetValues = ["prefer-standby", "standby", "read-only", "any"] as const

/** @internal */
export const REPLICA_TARGET_FIX =
  "prefer-standby reads from a standby if one is up, else from the primary; standby only from a standby (reads " +
  "fail while none is up); read-only from a server in read-only mode; any from the first host that answers " +
  "(e.g. a cloud's reader endpoint)"
