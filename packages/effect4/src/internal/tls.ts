/**
 * TLS the way libpq does it, as the Effect 3 edition does: the engine's `Settings.makeTlsResolver` resolves `sslmode`
 * and the `sslrootcert`/`sslcert`/`sslkey` family (URL parameters or `PGSSL*` variables) at configuration time, with
 * Node's file system and crypto given here — files read, keys decrypted, every problem reported with the parameter
 * and the path — into Node's `tls.ConnectionOptions` (PgConnection's `ssl` option); and the negotiation at connect
 * time: PgConnection given options requires TLS, so the plain-text fallback of `allow` and `prefer` is a second
 * attempt here, and a failure that no retry can fix (a certificate, a server without TLS) is a rejection that says
 * what to change.
 *
 * @internal
 */
import { type Classify, Settings, TlsFiles } from "@effect-pg-pool/engine"
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as NodeTls from "node:tls"

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
export const resolver: Settings.TlsResolver<false | NodeTls.ConnectionOptions> = (input, report) => {
  const { params, sslmode, tls } = resolveMaterial(input, report)
  const ssl = tls.options as false | NodeTls.ConnectionOptions
  if (ssl !== false) descriptions.set(ssl, tls.description)
  return { sslmode, tls: ssl, params }
}

/**
 * An encrypted attempt failed for a reason no retry fixes (a certificate, a server without TLS): the engine's
 * classification of it, a rejection whose message says what to change.
 *
 * @internal
 */
export interface TlsRejected {
  readonly _tag: "TlsRejected"
  readonly classified: Classify.Classified
}

/** @internal */
export const isTlsRejected = (error: unknown): error is TlsRejected =>
  (error as TlsRejected | undefined)?._tag === "TlsRejected"

// PgConnection's words when the server answers the SSLRequest with N.
const DECLINED = "The server does not support TLS"

/**
 * pg_hba refused the session it was offered (no entry for it, or `reject`): the case `allow` and `prefer` retry the
 * other way for. A wrong password (28P01) is not retried, so that it is not sent again over the other transport.
 */
const refusedByServer = (cause: unknown) => codeOf(cause) === "28000"

/**
 * Explains a failed encrypted attempt in terms of the settings that produced it, and marks the failures that no
 * retry can fix as rejections; any other failure is passed on as it is.
 */
const explain = <E>(
  mode: Settings.SslMode,
  options: NodeTls.ConnectionOptions,
  error: E,
  cause: unknown
): E | TlsRejected => {
  const code = codeOf(cause)
  const text = message(cause)
  const what = descriptions.get(options) || `sslmode=${mode}`
  const explained = TlsFiles.explainHandshake({ what, declined: text === DECLINED, code, text })
  if (explained === undefined) return error
  const { fix, problem } = explained
  const rejected: TlsRejected = {
    _tag: "TlsRejected",
    classified: {
      kind: "rejected",
      code: undefined,
      message: `TLS: ${problem} — ${fix}`,
      sessionLost: true,
      remedy: fix,
      probeable: false,
      startingUp: false,
      goingAway: false
    }
  }
  return rejected
}

/**
 * Opens a connection as `mode` says: `disable` in plain text; `allow` in plain text, then encrypted if the server
 * refuses that session; `prefer` encrypted, then in plain text if the server declines TLS or refuses the encrypted
 * session; `require`/`verify-ca`/`verify-full` encrypted only. A certificate that fails its check is never a reason
 * to fall back. `causeOf` finds the error behind the driver's (a `SqlError`'s reason's cause).
 *
 * @internal
 */
export const negotiate = <A, E>(
  mode: Settings.SslMode,
  options: false | NodeTls.ConnectionOptions,
  causeOf: (error: E) => unknown,
  attempt: (ssl: false | NodeTls.ConnectionOptions) => Effect.Effect<A, E>
): Effect.Effect<A, E | TlsRejected> => {
  if (mode === "disable" || options === false) return attempt(false)
  const encrypted = Effect.mapError(attempt(options), (error) => explain(mode, options, error, causeOf(error)))
  switch (mode) {
    case "allow":
      return Effect.catch(attempt(false), (error) => (refusedByServer(causeOf(error)) ? encrypted : Effect.fail(error)))
    case "prefer":
      return Effect.catch(attempt(options), (error) => {
        const cause = causeOf(error)
        return message(cause) === DECLINED || refusedByServer(cause)
          ? attempt(false)
          : Effect.fail(explain(mode, options, error, cause))
      })
    default:
      return encrypted
  }
}
