/**
 * The edition's `Settings.TlsFiles` made from plain calls that throw (on Node: `fs.readFileSync`,
 * `crypto.X509Certificate`, `crypto.createPrivateKey`, `tls.createSecureContext`), written once: every throw is
 * caught and becomes the failure or the reason `Settings.makeTlsResolver` reports with the parameter and the path.
 * The calls stay in the edition, so the engine imports no Node module.
 *
 * @since 0.1.0
 */
import * as tlsInternal from "./internal/settings/tls.js"
import type { TlsFailure, TlsFiles } from "./Settings.js"

/**
 * The message of a thrown value: an `Error`'s message, anything else as text.
 *
 * @example
 * ```ts
 * import { TlsFiles } from "@effect-pg-pool/engine"
 *
 * TlsFiles.errorMessage(new Error("ENOENT: no such file")) // "ENOENT: no such file"
 * TlsFiles.errorMessage("declined") // "declined"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * The `code` of a thrown value (`ENOENT`, `ERR_OSSL_BAD_DECRYPT`, a SQLSTATE), when it has a string one.
 *
 * @example
 * ```ts
 * import { TlsFiles } from "@effect-pg-pool/engine"
 *
 * TlsFiles.errorCode(Object.assign(new Error("gone"), { code: "ENOENT" })) // "ENOENT"
 * TlsFiles.errorCode(null) // undefined
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const errorCode = (cause: unknown): string | undefined => {
  const code = (cause as { code?: unknown } | null)?.code
  return typeof code === "string" ? code : undefined
}

/**
 * The runtime's calls, each throwing on failure: a file's text, a certificate parsed, a private key decrypted to
 * PKCS#8 PEM, a secure context made of the options.
 *
 * @example
 * ```ts
 * import type { TlsFiles } from "@effect-pg-pool/engine"
 *
 * const trusting: TlsFiles.Throwing = {
 *   readText: () => "-----BEGIN CERTIFICATE-----",
 *   checkCertificate: () => {},
 *   decryptKey: (pem) => pem,
 *   checkContext: () => {}
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Throwing {
  readonly readText: (path: string) => string
  readonly checkCertificate: (pem: string) => void
  readonly decryptKey: (pem: string, passphrase: string | undefined) => string
  readonly checkContext: (options: Readonly<Record<string, unknown>>) => void
}

const failure = (error: unknown): TlsFailure => ({ code: errorCode(error), message: errorMessage(error) })

/**
 * `Settings.TlsFiles` of throwing calls: a throw becomes the failure (code and message) or the reason.
 *
 * @example
 * ```ts
 * import { Settings, TlsFiles } from "@effect-pg-pool/engine"
 *
 * const files = TlsFiles.fromThrowing({
 *   readText: (path) => { throw Object.assign(new Error(`no ${path}`), { code: "ENOENT" }) },
 *   checkCertificate: () => {},
 *   decryptKey: (pem) => pem,
 *   checkContext: () => {}
 * })
 * const tls = Settings.makeTlsResolver(files)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromThrowing = (calls: Throwing): TlsFiles => ({
  read: (path) => {
    try {
      return { text: calls.readText(path) }
    } catch (error) {
      return failure(error)
    }
  },
  checkCertificate: (pem) => {
    try {
      calls.checkCertificate(pem)
      return undefined
    } catch (error) {
      return errorMessage(error)
    }
  },
  decryptKey: (pem, passphrase) => {
    try {
      return { pem: calls.decryptKey(pem, passphrase) }
    } catch (error) {
      return failure(error)
    }
  },
  checkContext: (options) => {
    try {
      calls.checkContext(options)
      return undefined
    } catch (error) {
      return errorMessage(error)
    }
  }
})

// Node's certificate verification failures (X509_V_ERR_* as codes) and its host name check.
const certificateCodes = new Set([
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

/**
 * What a failed TLS negotiation was and what to change, in the terms the user wrote (`what`: the ssl option, or
 * libpq's parameters as `Settings` described them); `undefined` when the failure is not TLS's (an outage). Written
 * once for both editions; `declined` says the server answered the SSLRequest with N (each driver words it its way).
 *
 * @example
 * ```ts
 * import { Settings, TlsFiles } from "@effect-pg-pool/engine"
 *
 * const explained = TlsFiles.explainHandshake({ what: Settings.tlsOption, declined: true, code: undefined, text: "" })
 * // { problem: "the server does not accept TLS connections (the ssl option)", fix: "…, or pass ssl: false" }
 * export const fix = explained?.fix
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const explainHandshake = (failure: {
  readonly what: string
  readonly declined: boolean
  readonly code: string | undefined
  readonly text: string
}): { readonly problem: string; readonly fix: string } | undefined => {
  const { code, declined, text, what } = failure
  // the fix in the terms the user wrote: the ssl option, or libpq's parameters
  const byOption = what === tlsInternal.OPTION
  if (declined) {
    return {
      problem: `the server does not accept TLS connections (${what})`,
      fix:
        "enable ssl on the server, or " +
        (byOption ? "pass ssl: false" : "use sslmode=prefer to fall back to an unencrypted connection")
    }
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID" || code === "HOSTNAME_MISMATCH") {
    return {
      problem: `the server's certificate does not name the host connected to (${what}): ${text}`,
      fix:
        "connect with a host name the certificate lists, or " +
        (byOption ? "pass checkServerIdentity: () => undefined" : "use sslmode=verify-ca") +
        " to check its chain only"
    }
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return {
      problem: `the server's certificate is not valid now (${what}): ${text}`,
      fix: "renew the server's certificate"
    }
  }
  if (code !== undefined && certificateCodes.has(code)) {
    return {
      problem: `the server's certificate is not signed by a trusted CA (${what}): ${text} (${code})`,
      fix: byOption
        ? "Pass the CA certificate that signed it in the ssl option's ca"
        : what.includes("sslrootcert=")
          ? "Give in sslrootcert the CA certificate that signed the server's certificate"
          : "Give the CA certificate that signed the server's certificate in sslrootcert (or PGSSLROOTCERT); " +
            "without it only Node's bundled public CAs are trusted"
    }
  }
  if (code?.startsWith("ERR_SSL_")) {
    return {
      problem: `the TLS handshake failed (${what}): ${text}`,
      fix: `if the server asks for a client certificate, give one it trusts in ${
        byOption ? "the ssl option's cert and key" : "sslcert and sslkey"
      }`
    }
  }
  return undefined
}
