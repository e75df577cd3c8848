import { assert, describe, it } from "vitest"
import * as TlsFiles from "../src/TlsFiles.js"
import * as Settings from "../src/Settings.js"

const thrown = (message: string, code?: string) => {
  throw Object.assign(new Error(message), code === undefined ? {} : { code })
}

describe("TlsFiles.fromThrowing", () => {
  it("passes results through", () => {
    const files = TlsFiles.fromThrowing({
      readText: (path) => `text of ${path}`,
      checkCertificate: () => {},
      decryptKey: (pem, passphrase) => `${pem} opened with ${passphrase}`,
      checkContext: () => {}
    })
    assert.deepStrictEqual(files.read("/ca.pem"), { text: "text of /ca.pem" })
    assert.isUndefined(files.checkCertificate("pem"))
    assert.deepStrictEqual(files.decryptKey("key", "pw"), { pem: "key opened with pw" })
    assert.isUndefined(files.checkContext({}))
  })

  it("turns each throw into the failure (code and message) or the reason", () => {
    const files = TlsFiles.fromThrowing({
      readText: (path) => thrown(`ENOENT: no such file, open '${path}'`, "ENOENT"),
      checkCertificate: () => thrown("bad certificate"),
      decryptKey: () => thrown("bad decrypt", "ERR_OSSL_BAD_DECRYPT"),
      checkContext: () => {
        throw "not an Error"
      }
    })
    assert.deepStrictEqual(files.read("/x.pem"), { code: "ENOENT", message: "ENOENT: no such file, open '/x.pem'" })
    assert.strictEqual(files.checkCertificate("pem"), "bad certificate")
    assert.deepStrictEqual(files.decryptKey("key", undefined), { code: "ERR_OSSL_BAD_DECRYPT", message: "bad decrypt" })
    assert.strictEqual(files.checkContext({}), "not an Error")
  })

  it("errorCode reads only a string code", () => {
    assert.strictEqual(TlsFiles.errorCode({ code: "28000" }), "28000")
    assert.isUndefined(TlsFiles.errorCode({ code: 28000 }))
    assert.isUndefined(TlsFiles.errorCode(undefined))
  })
})

describe("TlsFiles.explainHandshake", () => {
  it("says what failed and what to change in the terms the user wrote; not TLS's failures are left alone", () => {
    const byParams = TlsFiles.explainHandshake({
      what: "sslmode=verify-full",
      declined: false,
      code: "SELF_SIGNED_CERT_IN_CHAIN",
      text: "self-signed certificate in certificate chain"
    })
    assert.include(byParams?.problem ?? "", "not signed by a trusted CA (sslmode=verify-full)")
    assert.include(byParams?.fix ?? "", "sslrootcert (or PGSSLROOTCERT)")
    const byOption = TlsFiles.explainHandshake({ what: Settings.tlsOption, declined: true, code: undefined, text: "" })
    assert.strictEqual(byOption?.fix, "enable ssl on the server, or pass ssl: false")
    assert.isUndefined(
      TlsFiles.explainHandshake({ what: "sslmode=require", declined: false, code: "ECONNRESET", text: "" })
    )
  })
})
