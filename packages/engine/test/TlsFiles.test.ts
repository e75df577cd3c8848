import { assert, describe, it } from "vitest"
import * as TlsFiles from "../src/TlsFiles.js"

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
