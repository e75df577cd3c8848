/**
 * TLS as libpq takes it, Effect 4 edition (the Effect 3 edition's Tls test, ported): a private CA made with the
 * openssl CLI for this run, embedded servers with TLS (a certificate for 127.0.0.1, one for another name) and one
 * without, and the configuration's files read and checked before any connection.
 */
import { Db, PoolConfig } from "@effect-pg-pool/effect4"
import { ConnectionRejected } from "@effect-pg-pool/effect4/PoolError"
import { TestServer } from "@effect-pg-pool/testkit/core"
import { assert, describe, it } from "@effect/vitest"
import { PgConnection } from "@effect/sql-pg"
import { Effect, Exit, Layer, Logger, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll } from "vitest"

// ---------------------------------------------------------------------------------------------------------------
// a private CA, made with the openssl CLI for this run
// ---------------------------------------------------------------------------------------------------------------

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-pg-pool-e4-tls-"))
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
  TestServer.startEmbedded({
    files: { "server.crt": read(`${cert}.crt`), "server.key": read(`${cert}.key`), "ca.crt": read("ca.crt") },
    settings: { ssl: true, ssl_cert_file: "server.crt", ssl_key_file: "server.key", ssl_ca_file: "ca.crt" },
    hba
  })

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

type Server = TestServer.TestServer

/** The server's URL with other credentials and these query parameters. */
const urlOf = (
  server: Server,
  params: Record<string, string>,
  credentials = `${server.user}:${encodeURIComponent(server.password)}`
) =>
  `postgres://${credentials}@${server.host}:${server.port}/${server.database}?` +
  Object.entries(params)
    .map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
    .join("&")

const quiet = Layer.merge(Reactivity.layer, Logger.layer([]))

/** Whether the pool's connection is encrypted, and as whom: one query through a pool built for `options`. */
const sessionOf = (options: Db.DbOptions) =>
  Effect.gen(function* () {
    const db = yield* Db.make({ minSize: 1, ...options })
    const rows = yield* db.sql<{ ssl: boolean; user: string }>`
      SELECT ssl, current_user AS user FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
    return { ssl: rows[0]!.ssl, user: rows[0]!.user }
  }).pipe(Effect.scoped, Effect.provide(quiet))

/** Eager init against a misconfigured TLS setting: a rejection after one attempt, no retry. */
const initFailure = (options: Db.DbOptions) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(
      Db.make({ minSize: 1, reconnect: { initialDelay: "5 seconds" }, ...options }).pipe(
        Effect.scoped,
        Effect.provide(quiet)
      )
    )
    assert.isTrue(Exit.isFailure(exit), "the start-up succeeded")
    const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
    const rejected = (error as { error?: unknown } | undefined)?.error
    assert.instanceOf(rejected, ConnectionRejected, String(rejected))
    assert.strictEqual((rejected as ConnectionRejected).attempts, 1)
    return (rejected as ConnectionRejected).message
  })

const configFailure = (input: PoolConfig.PoolConfigInput) =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(PoolConfig.make(input))
    return error.issues.map((issue) => issue.message)
  })

const createRoles = (server: Server) =>
  PgConnection.make({ url: Redacted.make(server.url), ssl: false }).pipe(
    Effect.flatMap((connection) =>
      Effect.forEach(
        [
          "CREATE ROLE certuser LOGIN",
          "CREATE ROLE tlsonly LOGIN PASSWORD 'pw-1'",
          "CREATE ROLE plainonly LOGIN PASSWORD 'pw-2'"
        ],
        (sql) => connection.query(sql, [], false)
      )
    ),
    Effect.scoped,
    Effect.orDie,
    Effect.runPromise
  )

// ---------------------------------------------------------------------------------------------------------------
// a server with TLS and a certificate for 127.0.0.1
// ---------------------------------------------------------------------------------------------------------------

const HBA = [
  "hostssl all certuser 127.0.0.1/32 cert",
  "hostnossl all tlsonly 127.0.0.1/32 reject",
  "hostssl all plainonly 127.0.0.1/32 reject"
]

describe("TLS with a private CA", () => {
  let server: Server
  beforeAll(async () => {
    server = await tlsServer("server", HBA)
    await createRoles(server)
  }, 60_000)
  afterAll(() => server?.close())

  it.live("verify-full with the CA in sslrootcert connects encrypted", () =>
    Effect.gen(function* () {
      const session = yield* sessionOf({ url: urlOf(server, { sslmode: "verify-full", sslrootcert: file("ca.crt") }) })
      assert.isTrue(session.ssl)
    })
  )

  it.live("require without a CA encrypts without checking the certificate", () =>
    Effect.gen(function* () {
      assert.isTrue((yield* sessionOf({ url: urlOf(server, { sslmode: "require" }) })).ssl)
    })
  )

  it.live("the ssl option takes Node's tls.ConnectionOptions, as PgClient.layer does", () =>
    Effect.gen(function* () {
      const session = yield* sessionOf({ url: urlOf(server, {}), ssl: { ca: read("ca.crt") } })
      assert.isTrue(session.ssl)
    })
  )

  it.live("PGSSLROOTCERT and PGSSLMODE fill in what DATABASE_URL leaves out", () =>
    Effect.gen(function* () {
      const saved = { ...process.env }
      Object.assign(process.env, {
        DATABASE_URL: urlOf(server, {}),
        PGSSLMODE: "verify-full",
        PGSSLROOTCERT: file("ca.crt")
      })
      const config = yield* Effect.ensuring(
        PoolConfig.fromEnv,
        Effect.sync(() => {
          for (const key of ["DATABASE_URL", "PGSSLMODE", "PGSSLROOTCERT"]) {
            if (saved[key] === undefined) delete process.env[key]
            else process.env[key] = saved[key]
          }
        })
      )
      assert.strictEqual(config.sslmode, "verify-full")
      const ssl = yield* Effect.gen(function* () {
        const db = yield* Db.makeWithConfig(config)
        return (yield* db.sql<{ ssl: boolean }>`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`)[0]!.ssl
      }).pipe(Effect.scoped, Effect.provide(quiet))
      assert.isTrue(ssl)
    })
  )

  it.live("a certificate from another CA fails the start-up at once, naming sslmode and sslrootcert", () =>
    Effect.gen(function* () {
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

  it.live("a certificate the ssl option's ca does not trust fails at once, with the fix in the option's terms", () =>
    Effect.gen(function* () {
      const message = yield* initFailure({ url: urlOf(server, {}), ssl: { ca: read("other-ca.crt") } })
      assert.include(message, "TLS: the server's certificate is not signed by a trusted CA (the ssl option)")
      assert.include(message, "Pass the CA certificate that signed it in the ssl option's ca")
    })
  )

  it.live("require with a root certificate checks the chain, as verify-ca", () =>
    Effect.gen(function* () {
      const message = yield* initFailure({
        url: urlOf(server, { sslmode: "require", sslrootcert: file("other-ca.crt") })
      })
      assert.include(message, "not signed by a trusted CA (sslmode=require, sslrootcert=")
      const ok = yield* sessionOf({ url: urlOf(server, { sslmode: "require", sslrootcert: file("ca.crt") }) })
      assert.isTrue(ok.ssl)
    })
  )

  it.live("verify-full without sslrootcert trusts only Node's bundled CAs, and says so", () =>
    Effect.gen(function* () {
      const message = yield* initFailure({ url: urlOf(server, { sslmode: "verify-full" }) })
      assert.include(message, "(sslmode=verify-full)")
      assert.include(message, "without it only Node's bundled public CAs are trusted")
    })
  )

  it.live("a client certificate with an encrypted key logs in through pg_hba's cert method", () =>
    Effect.gen(function* () {
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

  it.live("allow falls back to TLS when the server refuses the plain session", () =>
    Effect.gen(function* () {
      const session = yield* sessionOf({ url: urlOf(server, { sslmode: "allow" }, "tlsonly:pw-1") })
      assert.deepStrictEqual(session, { ssl: true, user: "tlsonly" })
      // and stays in plain text where that is accepted
      assert.isFalse((yield* sessionOf({ url: urlOf(server, { sslmode: "allow" }) })).ssl)
    })
  )

  it.live("prefer encrypts when it can, and falls back to plain text when the encrypted session is refused", () =>
    Effect.gen(function* () {
      assert.isTrue((yield* sessionOf({ url: urlOf(server, { sslmode: "prefer" }) })).ssl)
      const session = yield* sessionOf({ url: urlOf(server, { sslmode: "prefer" }, "plainonly:pw-2") })
      assert.deepStrictEqual(session, { ssl: false, user: "plainonly" })
    })
  )
})

// ---------------------------------------------------------------------------------------------------------------
// a server whose certificate names another host
// ---------------------------------------------------------------------------------------------------------------

describe("TLS with a certificate for another name", () => {
  let server: Server
  beforeAll(async () => {
    server = await tlsServer("elsewhere")
  }, 60_000)
  afterAll(() => server?.close())

  it.live("verify-ca checks the chain only and connects", () =>
    Effect.gen(function* () {
      const session = yield* sessionOf({ url: urlOf(server, { sslmode: "verify-ca", sslrootcert: file("ca.crt") }) })
      assert.isTrue(session.ssl)
    })
  )

  it.live("verify-full fails the start-up at once: the certificate does not name the host", () =>
    Effect.gen(function* () {
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

describe("TLS against a server without it", () => {
  let server: Server
  beforeAll(async () => {
    server = await TestServer.startEmbedded()
  }, 60_000)
  afterAll(() => server?.close())

  it.live("prefer falls back to plain text", () =>
    Effect.gen(function* () {
      assert.isFalse((yield* sessionOf({ url: urlOf(server, { sslmode: "prefer" }) })).ssl)
    })
  )

  it.live("allow stays in plain text", () =>
    Effect.gen(function* () {
      assert.isFalse((yield* sessionOf({ url: urlOf(server, { sslmode: "allow" }) })).ssl)
    })
  )

  it.live("require fails the start-up at once and says what to change", () =>
    Effect.gen(function* () {
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
    })
  )

  it.effect("a missing file is a configuration error naming the parameter and the path", () =>
    Effect.gen(function* () {
      const missing = file("missing.crt")
      const messages = yield* configFailure({ url: `${base}?sslmode=verify-full&sslrootcert=${missing}` })
      assert.deepStrictEqual(messages, [
        `${at(`sslmode=verify-full&sslrootcert=${missing}`)} sslrootcert (${missing}) cannot be read: the file ` +
          "does not exist; give the path of a PEM file holding the CA certificates that signed the server's certificate"
      ])
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
      assert.notInclude(wrong!, "nope")
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
