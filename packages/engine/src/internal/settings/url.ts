/**
 * libpq's connection URI, `postgres[ql]://[user[:password]@][host[:port][,host[:port]…]][/dbname][?param=value&…]`,
 * parsed by hand rather than with `URL` so that every problem gets our message and the password never reaches one;
 * and the normalised URL built back from a resolved configuration.
 *
 * @internal
 */
import { tlsUnsupported, tlsUrlParams } from "./env.js"

/** @internal */
export const EXAMPLE_URL = "postgres://user:password@localhost:5432/mydb"

/** @internal */
export const decode = (s: string): string => {
  try {
    return decodeURIComponent(s)
  } catch {
    // A literal "%" that is not an escape (e.g. a password "50%off") is meant as itself.
    return s
  }
}

/** What a URL says; every part optional. Host and port lists are kept apart, as libpq keeps them. @internal */
export interface ParsedUrl {
  /** One entry per host of the list ("" for an empty one: the default host); `undefined` if none is written. */
  readonly hosts: ReadonlyArray<string> | undefined
  /** One entry per host, `undefined` where a host has no port; or the `port` parameter's list. */
  readonly ports: ReadonlyArray<number | undefined> | undefined
  readonly user: string | undefined
  readonly password: string | undefined
  readonly database: string | undefined
  readonly applicationName: string | undefined
  readonly targetSessionAttrs: string | undefined
  readonly loadBalanceHosts: string | undefined
  /** `sslmode`, `sslrootcert`, … in the URL's order, for the edition's TLS resolution. */
  readonly tls: ReadonlyMap<string, string>
}

/** @internal */
export interface UrlProblem {
  readonly field: string
  readonly problem: string
}

// A parameter the pool does not act on is reported rather than ignored: the connection would silently differ from
// what the URL says. Those with an equivalent say so.
const UNSUPPORTED_PARAMS = new Map<string, string>([
  ["connect_timeout", "set connectTimeout (DB_POOL_CONNECT_TIMEOUT) instead"],
  ["keepalives", "set keepAlive (DB_POOL_KEEPALIVE) instead"],
  ["options", "run SET statements in onConnect, or set statementTimeout (DB_POOL_STATEMENT_TIMEOUT)"],
  ["fallback_application_name", "use application_name"],
  ["hostaddr", "give the address as the host"],
  ["uselibpqcompat", "remove it: sslmode already has libpq's meaning here"]
])

const unsupportedParam = (key: string): string =>
  `has the parameter ${key}, which the pool does not support: ` +
  (tlsUnsupported.find(([param]) => param === key)?.[2] ??
    UNSUPPORTED_PARAMS.get(key) ??
    "remove it, it would be ignored")

const IPV6_HOST =
  "has an invalid host: write an IPv6 address in brackets, e.g. postgres://user:password@[::1]:5432/mydb"

/** Splits `h1:1,[::1]:2,h3` into hosts and ports, as libpq's URI parser does. */
const hostList = (
  text: string,
  problems: Array<UrlProblem>
): { hosts: ReadonlyArray<string>; ports: ReadonlyArray<string> } => {
  const hosts: Array<string> = []
  const ports: Array<string> = []
  for (const entry of text.split(",")) {
    if (entry.startsWith("[")) {
      const close = entry.indexOf("]")
      const after = close === -1 ? "" : entry.slice(close + 1)
      if (close === -1 || (after !== "" && !after.startsWith(":"))) {
        problems.push({ field: "host", problem: IPV6_HOST })
        continue
      }
      hosts.push(entry.slice(1, close))
      ports.push(after === "" ? "" : after.slice(1))
    } else {
      const colon = entry.indexOf(":")
      hosts.push(decode(colon === -1 ? entry : entry.slice(0, colon)))
      ports.push(colon === -1 ? "" : entry.slice(colon + 1))
    }
  }
  return { hosts, ports }
}

/** @internal */
export const parseUrl = (
  url: string
):
  | { readonly ok: true; readonly url: ParsedUrl }
  | { readonly ok: false; readonly problems: ReadonlyArray<UrlProblem> } => {
  const trimmed = url.trim()
  const scheme = /^postgres(?:ql)?:\/\//i.exec(trimmed)
  if (scheme === null) {
    return {
      ok: false,
      problems: [{ field: "url", problem: `must start with postgres:// or postgresql://: use e.g. ${EXAMPLE_URL}` }]
    }
  }
  const rest = trimmed.slice(scheme[0].length)
  // Generated passwords often hold "/", "?", "#" or "@" unencoded; taking the user info up to the last "@" reads
  // them as the user meant (an "@" in the database name or a parameter must then be written %40).
  const at = rest.lastIndexOf("@")
  const userInfo = at === -1 ? undefined : rest.slice(0, at)
  const afterUser = rest.slice(at + 1).replace(/#.*$/, "")
  const hostEnd = afterUser.search(/[/?]/)
  const hostPort = hostEnd === -1 ? afterUser : afterUser.slice(0, hostEnd)
  const pathAndQuery = hostEnd === -1 ? "" : afterUser.slice(hostEnd)
  const queryStart = pathAndQuery.indexOf("?")
  const path = queryStart === -1 ? pathAndQuery : pathAndQuery.slice(0, queryStart)
  const query = queryStart === -1 ? "" : pathAndQuery.slice(queryStart + 1)

  const problems: Array<UrlProblem> = []
  let hosts: ReadonlyArray<string> | undefined
  let ports: ReadonlyArray<string> | undefined
  if (hostPort !== "") {
    const list = hostList(hostPort, problems)
    hosts = list.hosts
    ports = list.ports.every((p) => p === "") ? undefined : list.ports
  }

  let user = userInfo === undefined ? undefined : decode(userInfo.split(":", 1)[0]!)
  const colon = userInfo?.indexOf(":") ?? -1
  let password = userInfo === undefined || colon === -1 ? undefined : decode(userInfo.slice(colon + 1))
  let database = path.length > 1 ? decode(path.slice(1)) : undefined
  let applicationName: string | undefined
  let targetSessionAttrs: string | undefined
  let loadBalanceHosts: string | undefined
  const tls = new Map<string, string>()
  for (const pair of query.split("&")) {
    if (pair === "") continue
    const eq = pair.indexOf("=")
    const key = decode(eq === -1 ? pair : pair.slice(0, eq))
    const value = eq === -1 ? "" : decode(pair.slice(eq + 1))
    // libpq lets every connection keyword appear as a parameter, where it overrides the URI's own parts.
    switch (key) {
      case "host":
        hosts = value.split(",")
        break
      case "port":
        ports = value.split(",")
        break
      case "user":
        user = value
        break
      case "password":
        password = value
        break
      case "dbname":
        database = value
        break
      case "application_name":
        applicationName = value
        break
      case "target_session_attrs":
        targetSessionAttrs = value
        break
      case "load_balance_hosts":
        loadBalanceHosts = value
        break
      default:
        if (tlsUrlParams.has(key)) tls.set(key, value)
        else problems.push({ field: "url", problem: unsupportedParam(key) })
    }
  }
  const portNumbers = ports?.map((text) => {
    if (text === "") return undefined
    if (/^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 65535) return Number(text)
    problems.push({
      field: "port",
      problem: `has an invalid port (${text}): use an integer from 1 to 65535, e.g. ${EXAMPLE_URL}`
    })
    return undefined
  })
  if (problems.length > 0) return { ok: false, problems }
  return {
    ok: true,
    url: {
      hosts: hosts?.every((h) => h === "") ? undefined : hosts,
      ports: portNumbers?.every((p) => p === undefined) ? undefined : portNumbers,
      user: user === "" ? undefined : user,
      password: password === "" ? undefined : password,
      database,
      applicationName,
      targetSessionAttrs,
      loadBalanceHosts,
      tls
    }
  }
}

/** @internal */
export interface UrlParts {
  readonly hosts: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly user: string
  readonly password: string | undefined
  readonly database: string
  /** In order: TLS parameters, then the others (`application_name`, `target_session_attrs`, …). */
  readonly params: ReadonlyArray<readonly [string, string]>
}

/** The normalised URL: every host with its port, every parameter encoded. @internal */
export const buildUrl = (parts: UrlParts): string => {
  const hosts = parts.hosts
    .map(({ host, port }) => `${host.includes(":") ? `[${host}]` : encodeURIComponent(host)}:${port}`)
    .join(",")
  const password = parts.password === undefined ? "" : `:${encodeURIComponent(parts.password)}`
  const query = parts.params.map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`).join("&")
  return `postgres://${encodeURIComponent(parts.user)}${password}@${hosts}/${encodeURIComponent(parts.database)}?${query}`
}
