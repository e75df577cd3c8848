/**
 * TLS settings the way libpq takes them — `sslmode` and the `sslrootcert`/`sslcert`/`sslkey` family from the URL
 * or the `PGSSL*` variables, or an `ssl` option in code — resolved into TLS options (Node's
 * `tls.ConnectionOptions` shape) with every problem reported with the parameter and the path. Reading files and
 * checking PEM material is I/O the engine cannot do: the edition passes it in as `TlsFiles`.
 *
 * @internal
 */
import { tlsEnv, tlsUnsupported } from "./env.js"
import type { Report, SslMode, TlsInput, TlsParams, TlsResolver } from "./model.js"

/** A failure of the edition's file or crypto access: an error code (`ENOENT`, `ERR_OSSL_BAD_DECRYPT`…) and its message. @internal */
export interface TlsFailure {
  readonly code: string | undefined
  readonly message: string
}

/** The edition's access to files and TLS material. @internal */
export interface TlsFiles {
  /** The file's text, or why it cannot be read. */
  readonly read: (path: string) => { readonly text: string } | TlsFailure
  /** Why a PEM block is not a valid certificate, or `undefined`. */
  readonly checkCertificate: (pem: string) => string | undefined
  /** The private key decrypted, as PKCS#8 PEM, or why it cannot be. */
  readonly decryptKey: (pem: string, passphrase: string | undefined) => { readonly pem: string } | TlsFailure
  /** Why these TLS options cannot make a secure context (bad PEM, wrong passphrase, a key not matching), or `undefined`. */
  readonly checkContext: (options: Readonly<Record<string, unknown>>) => string | undefined
}

/** What the TLS settings resolve to: the options of an encrypted attempt and where they came from. @internal */
export interface TlsMaterial {
  /** Node's `tls.ConnectionOptions`; `false` only with `disable`. The private key is not enumerable. */
  readonly options: false | Readonly<Record<string, unknown>>
  /** Which settings produced them, for messages at connect time: `the ssl option`, or `sslmode=…, sslrootcert=…`. */
  readonly description: string
}

/** The sslmode values and what each does, for messages. @internal */
export const SSL_MODE_FIX =
  "use disable, allow, prefer (plain text when the server refuses TLS), require (TLS, no certificate check), " +
  "verify-ca (the certificate's chain) or verify-full (its chain and host name)"

/** @internal */
export const OPTION = "the ssl option"

const MODES: ReadonlyArray<SslMode> = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

const VERSIONS = new Set(["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"])

const skipHostCheck = (): undefined => undefined

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

type Resolved = ReturnType<TlsResolver<TlsMaterial>>

const isPlainObject = (u: unknown): u is Record<string, unknown> => {
  if (typeof u !== "object" || u === null) return false
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

const disabled = (params: ReadonlyArray<readonly [string, string]>, description: string): Resolved => ({
  sslmode: "disable",
  tls: { options: false, description },
  params
})

const fromOption = (option: unknown, files: TlsFiles, report: Report): Resolved => {
  if (option === false) return disabled([["sslmode", "disable"]], OPTION)
  const options: Record<string, unknown> | undefined =
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
    return disabled([], OPTION)
  }
  // Bad PEM text or a wrong passphrase would otherwise fail every connection attempt, one by one.
  if (options.secureContext === undefined) {
    const problem = files.checkContext(options)
    if (problem !== undefined) {
      report(
        "ssl",
        "ssl",
        "<tls options>",
        `ssl holds TLS material Node cannot use (${problem}): pass the PEM text (or a Buffer) of the ` +
          "certificates in ca and cert and of the private key in key, with its passphrase if it is encrypted"
      )
    }
  }
  const sslmode: SslMode = reject === false ? "require" : "verify-full"
  return { sslmode, tls: { options, description: OPTION }, params: [["sslmode", sslmode]] }
}

/** The parameters given, the URL's first and the variables filling in, as libpq takes them. */
const givenOf = (input: TlsInput): Map<string, Given> => {
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
  for (const [param, name] of Object.entries(tlsEnv)) {
    const value = input.env.get(name)
    if (value !== undefined && !given.has(param)) {
      given.set(param, { value, shown: value, env: name, label: `${name} (${value})` })
    }
  }
  return given
}

/**
 * The TLS resolution of an edition on Node's TLS: files read with `files`, certificates and keys checked, the
 * private key decrypted once (a wrong passphrase is a configuration error, and the passphrase is not kept).
 *
 * @internal
 */
export const makeTlsResolver =
  (files: TlsFiles): TlsResolver<TlsMaterial> =>
  (input, report) => {
    if (input.option !== undefined) return fromOption(input.option, files, report)
    const given = givenOf(input)
    for (const [, name, fix] of tlsUnsupported) {
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
    if (mode === "disable") return disabled(params, `sslmode=${mode}`)

    const described: Array<string> = [`sslmode=${mode}`]
    const read = (key: "sslrootcert" | "sslcert" | "sslkey" | "sslcrl", what: string): string | undefined => {
      const g = given.get(key)
      if (g === undefined) return undefined
      params.push([key, g.value])
      described.push(`${key}=${g.value}`)
      if (key === "sslrootcert" && g.value === "system") return undefined
      const result = files.read(g.value)
      if ("text" in result) return result.text
      const reason =
        result.code === "ENOENT"
          ? "does not exist"
          : result.code === "EACCES"
            ? "is not readable by this process"
            : result.message
      bad(g, `cannot be read: the file ${reason}; give the path of ${what}`)
      return undefined
    }

    const options: Record<string, unknown> = {}
    const rootText = read("sslrootcert", "a PEM file holding the CA certificates that signed the server's certificate")
    let ca: Array<string> | undefined
    if (rootText !== undefined) {
      ca = rootText.match(PEM_CERTIFICATE) ?? []
      const problem =
        ca.length === 0
          ? "no -----BEGIN CERTIFICATE----- block"
          : ca.map(files.checkCertificate).find((p) => p !== undefined)
      if (problem !== undefined) {
        bad(rootGiven!, `is not a PEM certificate file (${problem}): give the server's CA certificate(s) in PEM`)
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
      const key = files.decryptKey(keyText, passwordGiven?.value)
      if (!("pem" in key)) {
        bad(
          keyGiven!,
          key.code === "ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED"
            ? "is encrypted: give its passphrase as sslpassword"
            : key.code === "ERR_OSSL_BAD_DECRYPT"
              ? "cannot be decrypted with sslpassword: check the passphrase"
              : `is not a PEM private key (${key.message})`
        )
      } else {
        const problem = files.checkContext({ cert: certText, key: key.pem })
        if (problem === undefined) {
          options.cert = certText
          // Not enumerable, as node-postgres does it: the key stays out of JSON, logs and inspection.
          Object.defineProperty(options, "key", { value: key.pem, enumerable: false })
        } else {
          bad(certGiven!, `does not go with sslkey (${keyGiven!.value}): ${problem}`)
        }
      }
    }

    const crlText = read("sslcrl", "a PEM file holding the certificate revocation list")
    if (crlText !== undefined) {
      const problem = files.checkContext({ crl: crlText })
      if (problem === undefined) options.crl = crlText
      else bad(given.get("sslcrl")!, `is not a PEM certificate revocation list (${problem})`)
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
    return { sslmode: mode, tls: { options, description: described.join(", ") }, params }
  }

/**
 * The TLS resolution of an edition without TLS material of its own: the `sslmode` checked (from the URL, else
 * `PGSSLMODE`), the other parameters passed through as given.
 *
 * @internal
 */
export const passTls: TlsResolver<TlsParams> = (input, report) => {
  for (const [, name, fix] of tlsUnsupported) {
    const value = name === undefined ? undefined : input.env.get(name)
    if (name !== undefined && value !== undefined)
      report("ssl", name, value, `${name} (${value}) is not supported: ${fix}`)
  }
  const params = new Map<string, string>()
  for (const [param, env] of Object.entries(tlsEnv)) {
    const value = input.env.get(env)
    if (value !== undefined) params.set(param, value)
  }
  for (const [key, value] of input.url?.params ?? []) params.set(key, value)
  const given = params.get("sslmode")?.trim().toLowerCase()
  const sslmode = given === undefined ? "disable" : given === "no-verify" ? "require" : MODES.find((m) => m === given)
  if (sslmode === undefined) {
    report(
      "ssl",
      tlsEnv.sslmode,
      params.get("sslmode")!,
      `sslmode (${params.get("sslmode")}) is not an sslmode: use ${MODES.join(", ")}`
    )
  }
  params.delete("sslmode")
  const all: Array<readonly [string, string]> = [["sslmode", sslmode ?? "disable"], ...params]
  return { sslmode: sslmode ?? "disable", tls: { option: input.option, params: all }, params: all }
}
