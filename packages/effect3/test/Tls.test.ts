import { Reactivity } from "@effect/experimental"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { afterAll, assert, describe, it, layer } from "@effect/vitest"
import { Cause, ConfigProvider, Context, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Pg from "pg"
import * as Db from "../src/Db.js"
import * as PoolConfig from "../src/PoolConfig.js"
import { ConnectionRejected, type PoolConfigError } from "../src/PoolError.js"
import { eventually } from "./utils.js"

// ---------------------------------------------------------------------------------------------------------------
// a private CA, made with the openssl CLI for this run
// ---------------------------------------------------------------------------------------------------------------

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-pg-pool-tls-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const openssl = (...args: ReadonlyArray<string>) =>
  ChildProcess.execFileSync("/usr/bin/openssl", args, { cwd: dir, stdio: "pipe" })
const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
const file = (name: string) => Path.join(dir, name)

const makeCa = (name: string) =>
  openssl(
    "req",
    "-x509",
    ...EC,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=keyCertSign,cRLSign"
  )

/** A certificate signed by `ca.crt` for `subject`, with `altNames` (e.g. `IP:127.0.0.1`) if given. */
const makeCert = (name: string, subject: string, altNames?: string) => {
  openssl("req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${subject}`)
  const ext = altNames === undefined ? [] : ["-extfile", file(`${name}.ext`)]
  if (altNames !== undefined) Fs.writeFileSync(file(`${name}.ext`), `subjectAltName=${altNames}\n`)
  openssl(
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    ...ext
  )
}

makeCa("ca")
makeCa("other-ca")
makeCert("server", "127.0.0.1", "IP:127.0.0.1,DNS:localhost")
makeCert("elsewhere", "db.example.com", "DNS:db.example.com")
makeCert("client", "certuser")
openssl("ec", "-in", "client.key", "-aes256", "-passout", "pass:key-pass-42", "-out", "client-encrypted.key")
Fs.writeFileSync(file("not-a-cert.pem"), "hello\n")

const read = (name: string) => Fs.readFileSync(file(name), "utf8")

const tlsServer = (cert: string, hba: ReadonlyArray<string> = []) =>
  PgTestServer.layerEmbedded({
    files: { "server.crt": read(`${cert}.crt`), "server.key": read(`${cert}.key`), "ca.crt": read("ca.crt") },
    settings: { ssl: true, ssl_cert_file: "server.crt", ssl_key_file: "server.key", ssl_ca_file: "ca.crt" },
    hba
  })

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

/** The test server's URL with other credentials and these query parameters. */
const urlOf = (
  server: PgTestServer.PgTestServer.Service,
  params: Record<string, string>,
  credentials = `${server.user}:${encodeURIComponent(Redacted.value(server.password))}`
) =>
  `postgres://${credentials}@${server.host}:${server.port}/${server.database}?` +
  Object.entries(params)
    .map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
    .join("&")

/** Whether the pool's connection is encrypted, and as whom: one query through a pool built for `options`. */
const sessionOf = (options: Db.DbOptions) =>
  Effect.gen(function* () {
    const db = yield* Db.make({ minSize: 1, ...options })
    const rows = yield* db.sql<{ ssl: boolean; user: string }>`
      SELECT ssl, current_user AS user FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
    return rows[0]!
  }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))

/**
 * Eager init against a misconfigured TLS setting. Under the frozen TestClock a retry would wait forever, so
 * completing at all proves that the first failure ended the start-up.
 */
const initFailure = (options: Db.DbOptions) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(
      Db.make({ minSize: 1, ...options }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))
    )
    yield* eventually("the start-up fails", Effect.map(Fiber.poll(fiber), Option.isSome))
    const exit = yield* Fiber.await(fiber)
    const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
    assert.instanceOf(error, ConnectionRejected)
    const rejected = error as ConnectionRejected
    assert.strictEqual(rejected.attempts, 1)
    return rejected.message
  })

const configFailure = (input: PoolConfig.PoolConfigInput) =>
  Effect.gen(function* () {
    const result = yield* Effect.either(PoolConfig.make(input))
    assert.isTrue(result._tag === "Left", "the configuration was accepted")
    return (result as { readonly left: PoolConfigError }).left.issues.map((issue) => issue.message)
  })

const withRoles = (server: Layer.Layer<PgTestServer.PgTestServer, PgTestServer.PgTestServerError>) =>
  Layer.tap(server, (context) =>
    Effect.promise(async () => {
      const client = new Pg.Client({
        connectionString: Redacted.value(Context.get(context, PgTestServer.PgTestServer).url)
      })
      await client.connect()
      await client.query(
        "CREATE ROLE certuser LOGIN; CREATE ROLE tlsonly LOGIN PASSWORD 'pw-1'; " +
          "CREATE ROLE plainonly LOGIN PASSWORD 'pw-2'"
      )
      await client.end()
    })
  )

// ---------------------------------------------------------------------------------------------------------------
// a server with TLS and a certificate for 127.0.0.1
// ---------------------------------------------------------------------------------------------------------------

const HBA = [
  "hostssl all certuser 127.0.0.1/32 cert",
  "hostnossl all tlsonly 127.0.0.1/32 reject",
  "hostssl all plainonly 127.0.0.1/32 reject"
]

layer(withRoles(tlsServer("server", HBA)), { timeout: 60_000 })("TLS with a private CA", (it) => {
  it.effect("verify-full with the CA in sslrootcert connects encrypted", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const session = yield* sessionOf({
        url: urlOf(server, { sslmode: "verify-full", sslrootcert: file("ca.crt") })
      })
      assert.isTrue(session.ssl)
    })
  )

  it.effect("require without a CA encrypts without checking the certificate", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      assert.isTrue((yield* sessionOf({ url: urlOf(server, { sslmode: "require" }) })).ssl)
    })
  )

  it.effect("the ssl option takes Node's tls.ConnectionOptions, as PgClient.layer does", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const session = yield* sessionOf({ url: urlOf(server, {}), ssl: { ca: read("ca.crt") } })
      assert.isTrue(session.ssl)
    })
  )

  it.effect("PGSSLROOTCERT and PGSSLMODE fill in what DATABASE_URL leaves out", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const provider = ConfigProvider.fromMap(
        new Map([
          ["DATABASE_URL", urlOf(server, {})],
          ["PGSSLMODE", "verify-full"],
          ["PGSSLROOTCERT", file("ca.crt")]
        ])
      )
      const config = yield* PoolConfig.fromEnv.pipe(Effect.withConfigProvider(provider))
      assert.strictEqual(config.sslmode, "verify-full")
      const ssl = yield* Effect.gen(function* () {
        const db = yield* Db.makeWithConfig(config)
        return (yield* db.sql<{ ssl: boolean }>`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`)[0]!.ssl
      }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))
      assert.isTrue(ssl)
    })
  )

  it.effect("a certificate from another CA fails the start-up at once, naming sslmode and sslrootcert", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const message = yield* initFailure({
        url: urlOf(server, { sslmode: "verify-full", sslrootcert: file("other-ca.crt") })
      })
      assert.include(
        message,
        `TLS: the server's certificate is not signed by a trusted CA (sslmode=verify-full, sslrootcert=${file(
          "other-ca.crt"
        )})`
      )
      assert.include(message, "Give in sslrootcert the CA certificate that signed the server's certificate")
    })
  )

  it.effect("a certificate the ssl option's ca does not trust fails at once, with the fix in the option's terms", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const message = yield* initFailure({ url: urlOf(server, {}), ssl: { ca: read("other-ca.crt") } })
      assert.include(message, "TLS: the server's certificate is not signed by a trusted CA (the ssl option)")
      assert.include(message, "Pass the CA certificate that signed it in the ssl option's ca")
    })
  )

  it.effect("require with a root certificate checks the chain, as verify-ca", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const message = yield* initFailure({
        url: urlOf(server, { sslmode: "require", sslrootcert: file("other-ca.crt") })
      })
      assert.include(message, "not signed by a trusted CA (sslmode=require, sslrootcert=")
      const ok = yield* sessionOf({ url: urlOf(server, { sslmode: "require", sslrootcert: file("ca.crt") }) })
      assert.isTrue(ok.ssl)
    })
  )

  it.effect("verify-full without sslrootcert trusts only Node's bundled CAs, and says so", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const message = yield* initFailure({ url: urlOf(server, { sslmode: "verify-full" }) })
      assert.include(message, "(sslmode=verify-full)")
      assert.include(message, "without it only Node's bundled public CAs are trusted")
    })
  )

  it.effect("a client certificate with an encrypted key logs in through pg_hba's cert method", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const session = yield* sessionOf({
        url: urlOf(
          server,
          {
            sslmode: "verify-full",
            sslrootcert: file("ca.crt"),
            sslcert: file("client.crt"),
            sslkey: file("client-encrypted.key"),
            sslpassword: "key-pass-42"
          },
          "certuser"
        )
      })
      assert.deepStrictEqual(session, { ssl: true, user: "certuser" })
    })
  )

  it.effect("allow falls back to TLS when the server refuses the plain session", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const session = yield* sessionOf({ url: urlOf(server, { sslmode: "allow" }, "tlsonly:pw-1") })
      assert.deepStrictEqual(session, { ssl: true, user: "tlsonly" })
      // and stays in plain text where that is accepted
      assert.isFalse((yield* sessionOf({ url: urlOf(server, { sslmode: "allow" }) })).ssl)
    })
  )

  it.effect("prefer encrypts when it can, and falls back to plain text when the encrypted session is refused", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      assert.isTrue((yield* sessionOf({ url: urlOf(server, { sslmode: "prefer" }) })).ssl)
      const session = yield* sessionOf({ url: urlOf(server, { sslmode: "prefer" }, "plainonly:pw-2") })
      assert.deepStrictEqual(session, { ssl: false, user: "plainonly" })
    })
  )
})

// ---------------------------------------------------------------------------------------------------------------
// a server whose certificate names another host
// ---------------------------------------------------------------------------------------------------------------

layer(tlsServer("elsewhere"), { timeout: 60_000 })("TLS with a certificate for another name", (it) => {
  it.effect("verify-ca checks the chain only and connects", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const session = yield* sessionOf({ url: urlOf(server, { sslmode: "verify-ca", sslrootcert: file("ca.crt") }) })
      assert.isTrue(session.ssl)
    })
  )

  it.effect("verify-full fails the start-up at once: the certificate does not name the host", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const message = yield* initFailure({
        url: urlOf(server, { sslmode: "verify-full", sslrootcert: file("ca.crt") })
      })
      assert.include(message, "TLS: the server's certificate does not name the host connected to (sslmode=verify-full")
      assert.include(message, "use sslmode=verify-ca to check its chain only")
    })
  )
})

// ---------------------------------------------------------------------------------------------------------------
// a server without TLS
// ---------------------------------------------------------------------------------------------------------------

layer(PgTestServer.layerEmbedded(), { timeout: 60_000 })("TLS against a server without it", (it) => {
  it.effect("prefer falls back to plain text", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      assert.isFalse((yield* sessionOf({ url: urlOf(server, { sslmode: "prefer" }) })).ssl)
    })
  )

  it.effect("require fails the start-up at once and says what to change", () =>
    Effect.gen(function* () {
      const server = yield* PgTestServer.PgTestServer
      const message = yield* initFailure({ url: urlOf(server, { sslmode: "require" }) })
      assert.include(message, "TLS: the server does not accept TLS connections (sslmode=require)")
      assert.include(message, "use sslmode=prefer")
    })
  )
})

// ---------------------------------------------------------------------------------------------------------------
// configuration: files read and checked before any connection
// ---------------------------------------------------------------------------------------------------------------

describe("TLS configuration", () => {
  const base = "postgres://app:pw@db.internal:5432/app"
  const at = (params: string) => `url (postgres://app:***@db.internal:5432/app?${params})`

  it.effect("reads sslrootcert, sslcert and sslkey into Node's options; the key stays out of JSON", () =>
    Effect.gen(function* () {
      const config = yield* PoolConfig.make({
        url: `${base}?sslmode=verify-ca&sslrootcert=${file("ca.crt")}&sslcert=${file("client.crt")}&sslkey=${file(
          "client.key"
        )}`
      })
      assert.strictEqual(config.sslmode, "verify-ca")
      const ssl = config.ssl as Exclude<PoolConfig.PoolConfig["ssl"], false>
      assert.deepStrictEqual(ssl.ca, [read("ca.crt").trim()])
      assert.strictEqual(ssl.cert, read("client.crt"))
      assert.include(String(ssl.key), "-----BEGIN PRIVATE KEY-----")
      assert.isFalse(JSON.stringify(config).includes("PRIVATE KEY"))
      assert.isTrue(
        Redacted.value(config.url).includes(`sslmode=verify-ca&sslrootcert=${encodeURIComponent(file("ca.crt"))}`)
      )
    })
  )

  it.effect("a missing or unreadable file is a configuration error naming the parameter and the path", () =>
    Effect.gen(function* () {
      const missing = file("missing.crt")
      const messages = yield* configFailure({ url: `${base}?sslmode=verify-full&sslrootcert=${missing}` })
      assert.deepStrictEqual(messages, [
        `${at(`sslmode=verify-full&sslrootcert=${missing}`)} sslrootcert (${missing}) cannot be read: the file ` +
          "does not exist; give the path of a PEM file holding the CA certificates that signed the server's certificate"
      ])
      const fromEnv = yield* PoolConfig.fromEnv.pipe(
        Effect.withConfigProvider(
          ConfigProvider.fromMap(
            new Map([
              ["DATABASE_URL", `${base}?sslmode=require`],
              ["PGSSLCERT", missing]
            ])
          )
        ),
        Effect.flip
      )
      assert.deepStrictEqual(
        fromEnv.issues.map((issue) => [issue.env, issue.message]),
        [
          [
            "PGSSLCERT",
            `PGSSLCERT (${missing}) cannot be read: the file does not exist; give the path of a PEM file holding the ` +
              "client certificate"
          ],
          [
            "PGSSLCERT",
            `PGSSLCERT (${missing}) is given without sslkey: a client certificate needs both (they are not read ` +
              "from ~/.postgresql)"
          ]
        ]
      )
    })
  )

  it.effect("checks the files' contents: a CA file without certificates, an encrypted key, a wrong passphrase", () =>
    Effect.gen(function* () {
      const notCert = file("not-a-cert.pem")
      const [noCert] = yield* configFailure({ url: `${base}?sslmode=verify-ca&sslrootcert=${notCert}` })
      assert.include(noCert!, `sslrootcert (${notCert}) is not a PEM certificate file`)
      const cert = file("client.crt")
      const key = file("client-encrypted.key")
      const [locked] = yield* configFailure({ url: `${base}?sslmode=require&sslcert=${cert}&sslkey=${key}` })
      assert.include(locked!, `sslkey (${key}) is encrypted: give its passphrase as sslpassword`)
      const [wrong] = yield* configFailure({
        url: `${base}?sslmode=require&sslcert=${cert}&sslkey=${key}&sslpassword=nope`
      })
      assert.include(wrong!, `sslkey (${key}) cannot be decrypted with sslpassword: check the passphrase`)
      assert.include(wrong!, "sslpassword=***")
      assert.notInclude(wrong!, "nope")
      const [mismatch] = yield* configFailure({
        url: `${base}?sslmode=require&sslcert=${cert}&sslkey=${file("server.key")}`
      })
      assert.include(mismatch!, `sslcert (${cert}) does not go with sslkey (${file("server.key")})`)
    })
  )

  it.effect("rejects what node-postgres cannot do instead of ignoring it", () =>
    Effect.gen(function* () {
      const [system] = yield* configFailure({ url: `${base}?sslmode=require&sslrootcert=system` })
      assert.include(system!, "sslrootcert (system) may not be used with the weak sslmode require")
      const [sni] = yield* configFailure({ url: `${base}?sslmode=require&sslsni=0` })
      assert.include(sni!, "sslsni (0) is not supported: node-postgres always sends the host name (SNI)")
      const [version] = yield* configFailure({ url: `${base}?sslmode=require&ssl_min_protocol_version=TLSv9` })
      assert.include(version!, "ssl_min_protocol_version (TLSv9) is not a TLS version")
      const env = yield* PoolConfig.fromEnv.pipe(
        Effect.withConfigProvider(
          ConfigProvider.fromMap(
            new Map([
              ["DATABASE_URL", base],
              ["PGSSLCRLDIR", "/etc/crl"]
            ])
          )
        ),
        Effect.flip
      )
      assert.deepStrictEqual(
        env.issues.map((issue) => issue.message),
        [
          "PGSSLCRLDIR (/etc/crl) is not supported: Node cannot read a CRL directory: concatenate the CRLs into one " +
            "file for sslcrl"
        ]
      )
      const [verifyCa] = yield* configFailure({ url: `${base}?sslmode=verify-ca` })
      assert.include(verifyCa!, "sslmode (verify-ca) needs sslrootcert (or PGSSLROOTCERT)")
      const [option] = yield* configFailure({ url: base, ssl: { ca: "not a certificate", cert: "x", key: "y" } })
      assert.include(option!, "ssl holds TLS material Node cannot use")
    })
  )

  it.effect("sslrootcert=system trusts Node's CAs and makes verify-full the default", () =>
    Effect.gen(function* () {
      const config = yield* PoolConfig.make({ url: `${base}?sslrootcert=system` })
      assert.strictEqual(config.sslmode, "verify-full")
      assert.deepStrictEqual(config.ssl, { rejectUnauthorized: true })
    })
  )
})
