/**
 * TLS the way libpq does it: the engine's `Settings.makeTlsResolver` resolves `sslmode` and the
 * `sslrootcert`/`sslcert`/`sslkey` family (URL parameters or `PGSSL*` variables) at configuration time, with Node's
 * file system and crypto given here — files read, keys decrypted, every problem reported with the parameter and the
 * path — into Node's `tls.ConnectionOptions`; and the negotiation at connect time, including the plain-text
 * fallback of `allow` and `prefer` that node-postgres lacks.
 *
 * @internal
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as NodeTls from "node:tls"
import { Settings, TlsFiles } from "@effect-pg-pool/engine"
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

/** @internal */
export interface Resolved {
  readonly sslmode: SslMode
  readonly ssl: false | NodeTls.ConnectionOptions
  /** The TLS parameters of the normalised URL. */
  readonly params: ReadonlyArray<readonly [string, string]>
}

// ---------------------------------------------------------------------------
// resolution: the engine's, on Node's files and crypto
// ---------------------------------------------------------------------------

const message = TlsFiles.errorMessage

const codeOf = TlsFiles.errorCode

const nodeFiles: Settings.TlsFiles = TlsFiles.fromThrowing({
  readText: (path) => Fs.readFileSync(path, "utf8"),
  checkCertificate: (pem) => {
    new Crypto.X509Certificate(pem)
  },
  decryptKey: (pem, passphrase) =>
    Crypto.createPrivateKey({ key: pem, ...(passphrase !== undefined ? { passphrase } : {}) })
      .export({ type: "pkcs8", format: "pem" })
      .toString(),
  checkContext: (options) => {
    NodeTls.createSecureContext(options as NodeTls.SecureContextOptions)
  }
})

const resolveMaterial = Settings.makeTlsResolver(nodeFiles)

// For messages at connect time: which settings produced these options.
const descriptions = new WeakMap<object, string>()

/** The engine's TLS resolution on Node, as the engine's settings resolution calls it. @internal */
export const resolver: Settings.TlsResolver<Resolved> = (input, report) => {
  const { sslmode, tls, params } = resolveMaterial(input, report)
  const ssl = tls.options as false | NodeTls.ConnectionOptions
  if (ssl !== false) descriptions.set(ssl, tls.description)
  return { sslmode, tls: { sslmode, ssl, params }, params }
}

// ---------------------------------------------------------------------------
// negotiation
// ---------------------------------------------------------------------------

const DECLINED = "The server does not support SSL connections"

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
  const explained = TlsFiles.explainHandshake({ what, declined: text === DECLINED, code, text })
  if (explained === undefined) return failure
  const { fix, problem } = explained
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
