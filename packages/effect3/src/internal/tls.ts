/**
 * TLS the way libpq does it: `sslmode` and the `sslrootcert`/`sslcert`/`sslkey` family (URL parameters or `PGSSL*`
 * variables) resolved at configuration time into Node's `tls.ConnectionOptions` — files read, keys decrypted,
 * every problem reported with the parameter and the path — and the negotiation at connect time, including the
 * plain-text fallback of `allow` and `prefer` that node-postgres lacks.
 *
 * @internal
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as NodeTls from "node:tls"
import { Settings } from "@effect-pg-pool/engine"
import * as Effect from "effect/Effect"
import type { ConnectFailure } from "./connection.js"

/** @internal */
export type SslMode = Settings.SslMode

/** @internal */
export type ConnectionOptions = NodeTls.ConnectionOptions

/** What a connection attempt needs: the negotiation, and the options of an encrypted attempt. @internal */
export interface TlsSettings {
  readonly mode: SslMode
  /** `false` only with `disable`. */
  readonly options: false | NodeTls.ConnectionOptions
}

const MODES: ReadonlyArray<SslMode> = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

/** The sslmode values and what each does, for messages. @internal */
export const SSL_MODE_FIX =
  "use disable, allow, prefer (plain text when the server refuses TLS), require (TLS, no certificate check), " +
  "verify-ca (the certificate's chain) or verify-full (its chain and host name)"

// ---------------------------------------------------------------------------
// parameters and where they come from
// ---------------------------------------------------------------------------

// The parameters, their variables and the unsupported ones are the engine's table (Settings): one list for both
// editions and for the URL parser, which reports what is not listed.
const ENV = Settings.tlsEnv
const UNSUPPORTED = Settings.tlsUnsupported

/** One parameter's value and who set it. */
interface Given {
  readonly value: string
  /** The value as messages show it: `***` for a passphrase. */
  readonly shown: string
  /** The variable named in the issue: `DATABASE_URL` or a `PGSSL*` one. */
  readonly env: string
  /** How a message names it, e.g. `DATABASE_URL (postgres://…) sslrootcert (/etc/ca.pem)` (`url (…)` in code). */
  readonly label: string
}

/** What resolution is given: the `ssl` option, the URL's TLS parameters, the `PGSSL*` variables. @internal */
export type Input = Settings.TlsInput

/** @internal */
export interface Resolved {
  readonly sslmode: SslMode
  readonly ssl: false | NodeTls.ConnectionOptions
  /** The TLS parameters of the normalised URL. */
  readonly params: ReadonlyArray<readonly [string, string]>
}

/** `resolve` as the engine's resolution calls it. @internal */
export const resolver: Settings.TlsResolver<Resolved> = (input, report) => {
  const resolved = resolve(input, report)
  return { sslmode: resolved.sslmode, tls: resolved, params: resolved.params }
}

/** Reports one invalid setting (field, variable, shown value, message); resolution goes on to find the others. */
type Report = Settings.Report

// For messages at connect time: which settings produced these options.
const descriptions = new WeakMap<object, string>()
const OPTION = "the ssl option"

const skipHostCheck = (): undefined => undefined

// ---------------------------------------------------------------------------
// resolution
// ---------------------------------------------------------------------------

const isPlainObject = (u: unknown): u is Record<string, unknown> => {
  if (typeof u !== "object" || u === null) return false
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

const fromOption = (option: unknown, report: Report): Resolved => {
  if (option === false) return { sslmode: "disable", ssl: false, params: [["sslmode", "disable"]] }
  const options: NodeTls.ConnectionOptions | undefined =
    option === true ? { rejectUnauthorized: true } : isPlainObject(option) ? option : undefined
  const reject = options?.rejectUnauthorized
  if (options === undefined || (reject !== undefined && typeof reject !== "boolean")) {
    report(
      "ssl",
      "ssl",
      options === undefined ? String(option) : `{ rejectUnauthorized: ${String(reject)} }`,
      "ssl must be true, false or Node's tls.ConnectionOptions (ca, cert, key, rejectUnauthorized, …): " +
        "true verifies the server certificate against Node's trusted CAs"
    )
    return { sslmode: "disable", ssl: false, params: [] }
  }
  // Bad PEM text or a wrong passphrase would otherwise fail every connection attempt, one by one.
  if (options.secureContext === undefined) {
    try {
      NodeTls.createSecureContext(options)
    } catch (error) {
      report(
        "ssl",
        "ssl",
        "<tls options>",
        `ssl holds TLS material Node cannot use (${message(error)}): pass the PEM text (or a Buffer) of the ` +
          "certificates in ca and cert and of the private key in key, with its passphrase if it is encrypted"
      )
    }
  }
  const sslmode: SslMode = reject === false ? "require" : "verify-full"
  descriptions.set(options, OPTION)
  return { sslmode, ssl: options, params: [["sslmode", sslmode]] }
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

const VERSIONS = new Set(["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"])

/** @internal */
export const resolve = (input: Input, report: Report): Resolved => {
  if (input.option !== undefined) return fromOption(input.option, report)

  const given = new Map<string, Given>()
  const url = input.url
  if (url !== undefined) {
    for (const [key, value] of url.params) {
      const shownValue = key === "sslpassword" ? "***" : value
      given.set(key, {
        value,
        shown: shownValue,
        env: "DATABASE_URL",
        label: `${url.name} (${url.shown}) ${key} (${shownValue})`
      })
    }
  }
  for (const [param, name] of Object.entries(ENV)) {
    const value = input.env.get(name)
    if (value !== undefined && !given.has(param)) {
      given.set(param, { value, shown: value, env: name, label: `${name} (${value})` })
    }
  }
  for (const [, name, fix] of UNSUPPORTED) {
    const value = name === undefined ? undefined : input.env.get(name)
    if (name !== undefined && value !== undefined)
      report("ssl", name, value, `${name} (${value}) is not supported: ${fix}`)
  }
  const bad = (g: Given, problem: string) => report("ssl", g.env, g.shown, `${g.label} ${problem}`)

  // sslmode, or node-postgres's ssl=true|false when it is absent
  let sslmode: SslMode | undefined
  const modeGiven = given.get("sslmode")
  if (modeGiven !== undefined) {
    const value = modeGiven.value.trim().toLowerCase()
    // `no-verify` is node-postgres's spelling of require, common in hosting docs
    sslmode = value === "no-verify" ? "require" : MODES.find((mode) => mode === value)
    if (sslmode === undefined) bad(modeGiven, `is not an sslmode: ${SSL_MODE_FIX}`)
  } else {
    const flag = given.get("ssl")
    if (flag !== undefined) {
      const value = flag.value.trim().toLowerCase()
      // node-postgres reads ssl=true as TLS with certificate checks; ignoring it would silently drop TLS.
      if (["true", "1", "on", "yes"].includes(value)) sslmode = "verify-full"
      else if (["false", "0", "off", "no"].includes(value)) sslmode = "disable"
      else bad(flag, `is not true or false: write ssl=true, or sslmode=verify-full, require or disable`)
    }
  }
  const rootGiven = given.get("sslrootcert")
  const system = rootGiven?.value === "system"
  // libpq: sslrootcert=system makes verify-full the default and refuses anything weaker, since anyone can get a
  // publicly trusted certificate for a host name they control.
  if (system && sslmode !== undefined && sslmode !== "verify-full") {
    bad(rootGiven!, `may not be used with the weak sslmode ${sslmode}: use sslmode=verify-full`)
  }
  // Unlike libpq (prefer), no sslmode means no TLS — as in node-postgres and @effect/sql-pg.
  const mode: SslMode = sslmode ?? (system ? "verify-full" : "disable")
  const params: Array<readonly [string, string]> = [["sslmode", mode]]
  if (mode === "disable") return { sslmode: mode, ssl: false, params }

  const files: Array<string> = [`sslmode=${mode}`]
  const read = (key: "sslrootcert" | "sslcert" | "sslkey" | "sslcrl", what: string): string | undefined => {
    const g = given.get(key)
    if (g === undefined) return undefined
    params.push([key, g.value])
    files.push(`${key}=${g.value}`)
    if (key === "sslrootcert" && g.value === "system") return undefined
    try {
      return Fs.readFileSync(g.value, "utf8")
    } catch (error) {
      const code = (error as { code?: unknown }).code
      const reason =
        code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable by this process" : message(error)
      bad(g, `cannot be read: the file ${reason}; give the path of ${what}`)
      return undefined
    }
  }

  const options: Record<string, unknown> = {}
  const rootText = read("sslrootcert", "a PEM file holding the CA certificates that signed the server's certificate")
  let ca: Array<string> | undefined
  if (rootText !== undefined) {
    ca = rootText.match(PEM_CERTIFICATE) ?? []
    try {
      if (ca.length === 0) throw new Error("no -----BEGIN CERTIFICATE----- block")
      for (const pem of ca) new Crypto.X509Certificate(pem)
    } catch (error) {
      bad(rootGiven!, `is not a PEM certificate file (${message(error)}): give the server's CA certificate(s) in PEM`)
      ca = undefined
    }
  }
  // libpq refuses verify-ca without a root certificate, and rightly: against public CAs it accepts a certificate
  // anyone can get for a host name they control.
  if (mode === "verify-ca" && rootGiven === undefined) {
    bad(
      modeGiven!,
      "needs sslrootcert (or PGSSLROOTCERT), the CA that signed the server's certificate: against Node's public " +
        "CAs it would accept any host's certificate; use verify-full to check the host name too"
    )
  }
  // libpq: a root certificate makes require (and allow/prefer) check the chain too, i.e. behave as verify-ca.
  const verify = mode === "verify-ca" || mode === "verify-full" || ca !== undefined
  options.rejectUnauthorized = verify
  if (ca !== undefined) options.ca = ca
  if (verify && mode !== "verify-full") options.checkServerIdentity = skipHostCheck

  const certGiven = given.get("sslcert")
  const keyGiven = given.get("sslkey")
  const certText = read("sslcert", "a PEM file holding the client certificate")
  const keyText = read("sslkey", "a PEM file holding the client certificate's private key")
  const passwordGiven = given.get("sslpassword")
  if (passwordGiven !== undefined) params.push(["sslpassword", passwordGiven.value])
  if ((certGiven === undefined) !== (keyGiven === undefined)) {
    const [has, lacks] = certGiven === undefined ? [keyGiven!, "sslcert"] : [certGiven, "sslkey"]
    bad(has, `is given without ${lacks}: a client certificate needs both (they are not read from ~/.postgresql)`)
  } else if (certText !== undefined && keyText !== undefined) {
    let key: string | undefined
    try {
      // Decrypted once here: a wrong passphrase is a configuration error, and the passphrase is not kept.
      key = Crypto.createPrivateKey({
        key: keyText,
        ...(passwordGiven !== undefined ? { passphrase: passwordGiven.value } : {})
      })
        .export({ type: "pkcs8", format: "pem" })
        .toString()
    } catch (error) {
      const code = (error as { code?: unknown }).code
      bad(
        keyGiven!,
        code === "ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED"
          ? "is encrypted: give its passphrase as sslpassword"
          : code === "ERR_OSSL_BAD_DECRYPT"
            ? "cannot be decrypted with sslpassword: check the passphrase"
            : `is not a PEM private key (${message(error)})`
      )
    }
    if (key !== undefined) {
      try {
        NodeTls.createSecureContext({ cert: certText, key })
        options.cert = certText
        // Not enumerable, as node-postgres does it: the key stays out of JSON, logs and inspection.
        Object.defineProperty(options, "key", { value: key, enumerable: false })
      } catch (error) {
        bad(certGiven!, `does not go with sslkey (${keyGiven!.value}): ${message(error)}`)
      }
    }
  }

  const crlText = read("sslcrl", "a PEM file holding the certificate revocation list")
  if (crlText !== undefined) {
    try {
      NodeTls.createSecureContext({ crl: crlText })
      options.crl = crlText
    } catch (error) {
      bad(given.get("sslcrl")!, `is not a PEM certificate revocation list (${message(error)})`)
    }
  }
  const sni = given.get("sslsni")
  if (sni !== undefined) {
    params.push(["sslsni", sni.value])
    if (sni.value.trim() !== "1") {
      bad(sni, "is not supported: node-postgres always sends the host name (SNI) when it is not an IP address")
    }
  }
  for (const [key, option] of [
    ["ssl_min_protocol_version", "minVersion"],
    ["ssl_max_protocol_version", "maxVersion"]
  ] as const) {
    const g = given.get(key)
    if (g === undefined) continue
    params.push([key, g.value])
    if (VERSIONS.has(g.value)) options[option] = g.value
    else bad(g, "is not a TLS version: use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3")
  }
  const ssl = options as NodeTls.ConnectionOptions
  descriptions.set(ssl, files.join(", "))
  return { sslmode: mode, ssl, params }
}

// ---------------------------------------------------------------------------
// negotiation
// ---------------------------------------------------------------------------

const DECLINED = "The server does not support SSL connections"

// Node's certificate verification failures (X509_V_ERR_* as codes) and its host name check.
const CERTIFICATE_CODES = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "CERT_REVOKED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "INVALID_CA",
  "INVALID_PURPOSE",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID"
])

const codeOf = (cause: unknown): string | undefined => {
  const code = (cause as { code?: unknown } | null)?.code
  return typeof code === "string" ? code : undefined
}

/**
 * pg_hba refused the session it was offered (no entry for it, or `reject`): the case `allow` and `prefer` retry the
 * other way for. A wrong password (28P01) is not retried, so that it is not sent again over the other transport.
 */
const refusedByServer = (failure: ConnectFailure) => codeOf(failure.cause) === "28000"

/**
 * Explains a failed encrypted attempt in terms of the settings that produced it, and marks the failures that no
 * retry can fix — a rejected certificate, a server without TLS — as configuration errors.
 */
const explain = (settings: TlsSettings, failure: ConnectFailure): ConnectFailure => {
  const cause = failure.cause
  const code = codeOf(cause)
  const text = message(cause)
  const what = (settings.options !== false && descriptions.get(settings.options)) || `sslmode=${settings.mode}`
  // the fix in the terms the user wrote: the ssl option, or libpq's parameters
  const byOption = what === OPTION
  let problem: string
  let fix: string
  if (text === DECLINED) {
    problem = `the server does not accept TLS connections (${what})`
    fix =
      "enable ssl on the server, or " +
      (byOption ? "pass ssl: false" : "use sslmode=prefer to fall back to an unencrypted connection")
  } else if (code === "ERR_TLS_CERT_ALTNAME_INVALID" || code === "HOSTNAME_MISMATCH") {
    problem = `the server's certificate does not name the host connected to (${what}): ${text}`
    fix =
      "connect with a host name the certificate lists, or " +
      (byOption ? "pass checkServerIdentity: () => undefined" : "use sslmode=verify-ca") +
      " to check its chain only"
  } else if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    problem = `the server's certificate is not valid now (${what}): ${text}`
    fix = "renew the server's certificate"
  } else if (code !== undefined && CERTIFICATE_CODES.has(code)) {
    problem = `the server's certificate is not signed by a trusted CA (${what}): ${text} (${code})`
    fix = byOption
      ? "Pass the CA certificate that signed it in the ssl option's ca"
      : what.includes("sslrootcert=")
        ? "Give in sslrootcert the CA certificate that signed the server's certificate"
        : "Give the CA certificate that signed the server's certificate in sslrootcert (or PGSSLROOTCERT); " +
          "without it only Node's bundled public CAs are trusted"
  } else if (code?.startsWith("ERR_SSL_")) {
    problem = `the TLS handshake failed (${what}): ${text}`
    fix = `if the server asks for a client certificate, give one it trusts in ${
      byOption ? "the ssl option's cert and key" : "sslcert and sslkey"
    }`
  } else {
    return failure
  }
  // a configuration error, like a rejected login: no retry can fix it, and the error says what to change
  return {
    ...failure,
    kind: "rejected",
    message: `TLS: ${problem}`,
    remedy: fix,
    cause: new Error(`TLS: ${problem}. ${fix}`, { cause })
  }
}

/**
 * Opens a connection as `settings.mode` says: `disable` in plain text; `allow` in plain text, then encrypted if
 * the server refuses that session; `prefer` encrypted, then in plain text if the server declines TLS or refuses
 * the encrypted session; `require`/`verify-ca`/`verify-full` encrypted only. A certificate that fails its check
 * is never a reason to fall back.
 *
 * @internal
 */
export const negotiate = <A>(
  settings: TlsSettings,
  attempt: (ssl: false | NodeTls.ConnectionOptions) => Effect.Effect<A, ConnectFailure>
): Effect.Effect<A, ConnectFailure> => {
  const options = settings.options
  if (settings.mode === "disable" || options === false) return attempt(false)
  const encrypted = Effect.mapError(attempt(options), (failure) => explain(settings, failure))
  switch (settings.mode) {
    case "allow":
      return Effect.catchAll(attempt(false), (failure) => (refusedByServer(failure) ? encrypted : Effect.fail(failure)))
    case "prefer":
      return Effect.catchAll(attempt(options), (failure) =>
        message(failure.cause) === DECLINED || refusedByServer(failure)
          ? attempt(false)
          : Effect.fail(explain(settings, failure))
      )
    default:
      return encrypted
  }
}
