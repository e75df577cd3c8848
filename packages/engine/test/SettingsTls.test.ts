import { assert, describe, it } from "vitest"
import { Settings } from "../src/index.js"

const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
const KEY = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n-----END ENCRYPTED PRIVATE KEY-----"

// Fake files and crypto: a path table, a certificate that is "valid" unless it says BAD, a key that needs the
// passphrase "right", a context that refuses the text "MISMATCH".
const files: Settings.TlsFiles = {
  read: (path) => {
    const table: Record<string, string> = {
      "/ca.pem": CA,
      "/bad-ca.pem": "-----BEGIN CERTIFICATE-----\nBAD\n-----END CERTIFICATE-----",
      "/empty.pem": "hello",
      "/cert.pem": "CERT",
      "/other-cert.pem": "MISMATCH",
      "/key.pem": KEY,
      "/crl.pem": "CRL",
      "/bad-crl.pem": "MISMATCH"
    }
    if (path === "/secret") return { code: "EACCES", message: "permission denied" }
    return path in table ? { text: table[path]! } : { code: "ENOENT", message: "no such file" }
  },
  checkCertificate: (pem) => (pem.includes("BAD") ? "invalid certificate" : undefined),
  decryptKey: (pem, passphrase) =>
    passphrase === "right"
      ? { pem: pem.replace("ENCRYPTED ", "") }
      : passphrase === undefined
        ? { code: "ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED", message: "interrupted" }
        : { code: "ERR_OSSL_BAD_DECRYPT", message: "bad decrypt" },
  checkContext: (options) =>
    Object.values(options).some((value) => value === "MISMATCH") ? "key values mismatch" : undefined
}

const tls = Settings.makeTlsResolver(files)

const resolve = (query: string, env: Record<string, string> = {}) =>
  Settings.fromEnv({ DATABASE_URL: `postgres://app:pw@db/app${query}`, ...env }, { tls })

const settings = (result: Settings.Result<Settings.TlsMaterial>) => {
  if (!result.ok) return assert.fail(result.issues.map((issue) => issue.message).join("\n"))
  return result.settings
}

const messages = (result: Settings.Result<Settings.TlsMaterial>) =>
  result.ok ? assert.fail("expected issues") : result.issues.map((issue) => issue.message)

const SSL_FIX =
  "use disable, allow, prefer (plain text when the server refuses TLS), require (TLS, no certificate check), " +
  "verify-ca (the certificate's chain) or verify-full (its chain and host name)"

describe("Settings.makeTlsResolver", () => {
  it("resolves each sslmode into the options of an encrypted attempt, as libpq means it", () => {
    const cases: ReadonlyArray<readonly [string, Settings.SslMode, false | Record<string, unknown>]> = [
      ["", "disable", false],
      ["?sslmode=require", "require", { rejectUnauthorized: false }],
      ["?sslmode=no-verify", "require", { rejectUnauthorized: false }],
      ["?ssl=true", "verify-full", { rejectUnauthorized: true }],
      ["?sslmode=verify-full", "verify-full", { rejectUnauthorized: true }],
      ["?sslrootcert=system", "verify-full", { rejectUnauthorized: true }],
      ["?sslmode=verify-full&sslrootcert=/ca.pem", "verify-full", { rejectUnauthorized: true, ca: [CA] }]
    ]
    for (const [query, mode, options] of cases) {
      const s = settings(resolve(query))
      assert.strictEqual(s.sslmode, mode, query)
      assert.deepStrictEqual(s.tls.options, options, query)
    }
  })

  it("checks the chain only for verify-ca, and for require with a root certificate", () => {
    for (const query of ["?sslmode=verify-ca&sslrootcert=/ca.pem", "?sslmode=require&sslrootcert=/ca.pem"]) {
      const options = settings(resolve(query)).tls.options as Record<string, unknown>
      assert.isTrue(options.rejectUnauthorized)
      assert.strictEqual(typeof options.checkServerIdentity, "function")
    }
  })

  it("decrypts the client key once, keeps it out of enumeration and does not keep the passphrase", () => {
    const s = settings(resolve("?sslmode=require&sslcert=/cert.pem&sslkey=/key.pem&sslpassword=right"))
    const options = s.tls.options as Record<string, unknown>
    assert.strictEqual(options.cert, "CERT")
    assert.include(String(options.key), "BEGIN PRIVATE KEY")
    assert.notInclude(Object.keys(options), "key")
    assert.notInclude(JSON.stringify(options), "right")
    assert.strictEqual(s.tls.description, "sslmode=require, sslcert=/cert.pem, sslkey=/key.pem")
  })

  it("lets the URL's parameters win and the PGSSL* variables fill in", () => {
    const s = settings(resolve("?sslmode=require", { PGSSLMODE: "disable", PGSSLROOTCERT: "/ca.pem" }))
    assert.strictEqual(s.sslmode, "require")
    assert.deepStrictEqual((s.tls.options as Record<string, unknown>).ca, [CA])
  })

  it("reports every problem with the parameter, where it was written and the fix", () => {
    const url = (query: string) => `DATABASE_URL (postgres://app:***@db/app${query})`
    const cases: ReadonlyArray<readonly [string, Record<string, string>, ReadonlyArray<string>]> = [
      ["?sslmode=on", {}, [`${url("?sslmode=on")} sslmode (on) is not an sslmode: ${SSL_FIX}`]],
      ["", { PGSSLMODE: "strict" }, [`PGSSLMODE (strict) is not an sslmode: ${SSL_FIX}`]],
      [
        "?ssl=maybe",
        {},
        [
          `${url("?ssl=maybe")} ssl (maybe) is not true or false: write ssl=true, or sslmode=verify-full, require or disable`
        ]
      ],
      [
        "?sslmode=require&sslrootcert=system",
        {},
        [
          `${url("?sslmode=require&sslrootcert=system")} sslrootcert (system) may not be used with the weak sslmode require: use sslmode=verify-full`
        ]
      ],
      [
        "?sslmode=verify-ca",
        {},
        [
          `${url("?sslmode=verify-ca")} sslmode (verify-ca) needs sslrootcert (or PGSSLROOTCERT), the CA that signed the server's certificate: against Node's public CAs it would accept any host's certificate; use verify-full to check the host name too`
        ]
      ],
      [
        "?sslmode=require",
        { PGSSLROOTCERT: "/missing.pem" },
        [
          "PGSSLROOTCERT (/missing.pem) cannot be read: the file does not exist; give the path of a PEM file holding the CA certificates that signed the server's certificate"
        ]
      ],
      [
        "?sslmode=require",
        { PGSSLROOTCERT: "/secret" },
        [
          "PGSSLROOTCERT (/secret) cannot be read: the file is not readable by this process; give the path of a PEM file holding the CA certificates that signed the server's certificate"
        ]
      ],
      [
        "?sslmode=require",
        { PGSSLROOTCERT: "/empty.pem" },
        [
          "PGSSLROOTCERT (/empty.pem) is not a PEM certificate file (no -----BEGIN CERTIFICATE----- block): give the server's CA certificate(s) in PEM"
        ]
      ],
      [
        "?sslmode=require",
        { PGSSLROOTCERT: "/bad-ca.pem" },
        [
          "PGSSLROOTCERT (/bad-ca.pem) is not a PEM certificate file (invalid certificate): give the server's CA certificate(s) in PEM"
        ]
      ],
      [
        "?sslmode=require",
        { PGSSLCERT: "/cert.pem" },
        [
          "PGSSLCERT (/cert.pem) is given without sslkey: a client certificate needs both (they are not read from ~/.postgresql)"
        ]
      ],
      [
        "?sslmode=require",
        { PGSSLCERT: "/cert.pem", PGSSLKEY: "/key.pem" },
        ["PGSSLKEY (/key.pem) is encrypted: give its passphrase as sslpassword"]
      ],
      [
        "?sslmode=require&sslpassword=wrong",
        { PGSSLCERT: "/cert.pem", PGSSLKEY: "/key.pem" },
        ["PGSSLKEY (/key.pem) cannot be decrypted with sslpassword: check the passphrase"]
      ],
      [
        "?sslmode=require&sslpassword=right",
        { PGSSLCERT: "/other-cert.pem", PGSSLKEY: "/key.pem" },
        ["PGSSLCERT (/other-cert.pem) does not go with sslkey (/key.pem): key values mismatch"]
      ],
      [
        "?sslmode=require",
        { PGSSLCRL: "/bad-crl.pem" },
        ["PGSSLCRL (/bad-crl.pem) is not a PEM certificate revocation list (key values mismatch)"]
      ],
      [
        "?sslmode=require&sslsni=0",
        {},
        [
          `${url("?sslmode=require&sslsni=0")} sslsni (0) is not supported: node-postgres always sends the host name (SNI) when it is not an IP address`
        ]
      ],
      [
        "?sslmode=require",
        { PGSSLMINPROTOCOLVERSION: "TLSv9" },
        ["PGSSLMINPROTOCOLVERSION (TLSv9) is not a TLS version: use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3"]
      ],
      [
        "",
        { PGGSSENCMODE: "prefer" },
        ["PGGSSENCMODE (prefer) is not supported: remove it: GSSAPI encryption is not supported, use TLS (sslmode)"]
      ]
    ]
    for (const [query, env, expected] of cases) assert.deepStrictEqual(messages(resolve(query, env)), expected, query)
  })

  it("masks the key's passphrase in messages", () => {
    const result = resolve("?sslmode=require&sslpassword=s3cret-pass&sslcert=/cert.pem")
    for (const issue of result.ok ? [] : result.issues) {
      assert.notInclude(issue.message, "s3cret-pass")
      assert.notInclude(issue.value, "s3cret-pass")
    }
  })

  it("checks an ssl option given in code and returns it as given", () => {
    const given = { rejectUnauthorized: false, ca: "CA" }
    const s = settings(Settings.resolve({ url: "postgres://db/app", ssl: given }, { tls }))
    assert.strictEqual(s.tls.options, given)
    assert.deepStrictEqual([s.sslmode, s.tls.description], ["require", Settings.tlsOption])
    assert.strictEqual(
      settings(Settings.resolve({ url: "postgres://db/app", ssl: true }, { tls })).sslmode,
      "verify-full"
    )
    const cases: ReadonlyArray<readonly [unknown, string]> = [
      [
        "yes",
        "ssl must be true, false or Node's tls.ConnectionOptions (ca, cert, key, rejectUnauthorized, …): true verifies the server certificate against Node's trusted CAs"
      ],
      [
        { cert: "MISMATCH" },
        "ssl holds TLS material Node cannot use (key values mismatch): pass the PEM text (or a Buffer) of the certificates in ca and cert and of the private key in key, with its passphrase if it is encrypted"
      ]
    ]
    for (const [ssl, message] of cases) {
      const result = Settings.resolve({ url: "postgres://db/app", ssl }, { tls })
      assert.deepStrictEqual(result.ok ? [] : result.issues.map((issue) => issue.message), [message])
    }
  })
})
