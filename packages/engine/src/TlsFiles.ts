/**
 * The edition's `Settings.TlsFiles` made from plain calls that throw (on Node: `fs.readFileSync`,
 * `crypto.X509Certificate`, `crypto.createPrivateKey`, `tls.createSecureContext`), written once: every throw is
 * caught and becomes the failure or the reason `Settings.makeTlsResolver` reports with the parameter and the path.
 * The calls stay in the edition, so the engine imports no Node module.
 *
 * @since 0.1.0
 */
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
