import { assert, describe, it } from "vitest"
import { Settings } from "../src/index.js"

const ok = (result: Settings.Result<Settings.TlsParams>): Settings.Settings => {
  if (!result.ok) assert.fail(result.issues.map((issue) => issue.message).join("\n"))
  return result.settings
}

const messages = (result: Settings.Result<Settings.TlsParams>): ReadonlyArray<string> => {
  if (result.ok) return assert.fail("expected issues, got settings")
  return result.issues.map((issue) => issue.message)
}

const PASSWORD = "s3cret-Pa55"

describe("Settings: defaults and the env table", () => {
  it("fills in every default from a URL alone, durations in milliseconds", () => {
    const s = ok(Settings.resolve({ url: "postgres://localhost" }))
    const { url: _url, password, database, tls: _tls, settingNames, ...rest } = s
    assert.isUndefined(password)
    assert.strictEqual(database, "postgres")
    assert.deepStrictEqual(rest, { ...Settings.defaults, sslmode: "disable" })
    assert.strictEqual(settingNames.maxSize, "maxSize")
  })

  it("reads the same settings from an environment, named by their variables", () => {
    const fromEnv = ok(Settings.fromEnv({ DATABASE_URL: "postgres://localhost", DB_POOL_MAX_SIZE: "" }))
    const fromCode = ok(Settings.resolve({ url: "postgres://localhost" }))
    assert.deepStrictEqual({ ...fromEnv, settingNames: {} }, { ...fromCode, settingNames: {} })
    assert.strictEqual(fromEnv.settingNames.maxSize, "DB_POOL_MAX_SIZE")
    assert.strictEqual(fromEnv.settingNames.targetSessionAttrs, "PGTARGETSESSIONATTRS")
  })

  it("has one row per setting, each variable named once but the two TLS fields'", () => {
    const settings = Settings.table.map((entry) => entry.setting)
    assert.strictEqual(new Set(settings).size, settings.length)
    const envs = Settings.table.map((entry) => entry.env).filter((env) => env !== "PGSSLMODE")
    assert.strictEqual(new Set(envs).size, envs.length)
    for (const name of ["DATABASE_URL", "PGHOST", "PGTARGETSESSIONATTRS", "PGLOADBALANCEHOSTS", "PGSSLROOTCERT"]) {
      assert.include(Settings.envNames, name)
    }
  })

  it("lists DB_POOL_* variables that are not settings with the closest one", () => {
    assert.deepStrictEqual(
      Settings.unknownVariables(["HOME", "DB_POOL_MAX_SIZE", "DB_POOL_MAXSIZE", "DB_POOL_INITT"]),
      [
        { name: "DB_POOL_INITT", closest: "DB_POOL_INIT" },
        { name: "DB_POOL_MAXSIZE", closest: "DB_POOL_MAX_SIZE" }
      ]
    )
    assert.strictEqual(
      Settings.unknownVariableMessage({ name: "DB_POOL_MAXSIZE", closest: "DB_POOL_MAX_SIZE" }),
      "DB_POOL_MAXSIZE is not a setting of the pool and is ignored: did you mean DB_POOL_MAX_SIZE?"
    )
  })
})

describe("Settings: value parsers", () => {
  it("reads durations in every accepted form", () => {
    const cases: ReadonlyArray<readonly [unknown, number]> = [
      [250, 250],
      ["250", 250],
      ["1.5s", 1_500],
      ["500 ms", 500],
      ["5 seconds", 5_000],
      ["1m 30s", 90_000],
      ["2h", 7_200_000],
      [5_000_000_000n, 5_000],
      [[5, 500_000_000], 5_500]
    ]
    for (const [raw, millis] of cases) {
      assert.strictEqual(
        ok(Settings.resolve({ url: "postgres://db", acquireTimeout: raw as never })).acquireTimeout,
        millis,
        String(raw)
      )
    }
  })

  it("reads a runtime's own duration and secret values through its hooks", () => {
    class Millis {
      constructor(readonly millis: number) {}
    }
    class Secret {
      constructor(readonly value: string) {}
    }
    const runtime: Settings.Runtime = {
      durationMillis: (raw) => (raw instanceof Millis ? raw.millis : undefined),
      secret: (raw) => (raw instanceof Secret ? raw.value : undefined),
      show: (raw) => (raw instanceof Millis ? `${raw.millis} millis` : raw instanceof Secret ? "<redacted>" : undefined)
    }
    const s = ok(
      Settings.resolve(
        { url: new Secret(`postgres://app:${PASSWORD}@db/app`), acquireTimeout: new Millis(1234) },
        { runtime }
      )
    )
    assert.strictEqual(s.acquireTimeout, 1234)
    assert.strictEqual(s.password, PASSWORD)
    assert.deepStrictEqual(
      messages(Settings.resolve({ url: "postgres://db", maxLifetime: new Millis(-1) }, { runtime })),
      ["maxLifetime (-1 millis) must be > 0: set how long a connection may live before it is replaced, e.g. 1h"]
    )
  })

  it("reports every invalid value at once, each with its rule and fix", () => {
    const cases: ReadonlyArray<readonly [Settings.Input, string]> = [
      [
        { maxSize: 0 },
        "maxSize (0) must be an integer from 1 to 10000: e.g. 10; PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients"
      ],
      [
        { maxSize: "1e1" },
        "maxSize (1e1) must be written in decimal digits: e.g. 10; PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients"
      ],
      [{ minSize: -1 }, "minSize (-1) must be an integer from 0 to 10000: e.g. 2"],
      [{ minSize: 5, maxSize: 3 }, "minSize (5) must be ≤ maxSize (3): lower minSize or raise maxSize"],
      [{ minSize: 11 }, "minSize (11) must be ≤ maxSize (10, the default): lower minSize or raise maxSize"],
      [{ maxQueries: 0 }, "maxQueries (0) must be an integer ≥ 1: e.g. 50000"],
      [
        { acquireTimeout: "soon" },
        "acquireTimeout (soon) is not a duration: use milliseconds (250), a short form (500ms, 1.5s, 2m, 1h) or Effect's form (5 seconds)"
      ],
      [
        { acquireTimeout: 0 },
        "acquireTimeout (0) must be > 0: set how long a caller may wait for a connection, e.g. 30s"
      ],
      [
        { acquireTimeout: Number.POSITIVE_INFINITY },
        "acquireTimeout (Infinity) must be a finite duration: set how long a caller may wait for a connection, e.g. 30s"
      ],
      [
        { connectTimeout: 0.5 },
        "connectTimeout (0.5) must be at least 1ms (timers and PostgreSQL count whole milliseconds: a shorter one rounds to 0): set how long one connection attempt may take, e.g. 5s"
      ],
      [
        { validateAfterIdle: 0.5 },
        "validateAfterIdle (0.5) must be at least 1ms (timers and PostgreSQL count whole milliseconds: a shorter one rounds to 0) or 0: use 0 to validate on every acquisition, or a duration such as 1s"
      ],
      [
        { shutdownTimeout: -1 },
        "shutdownTimeout (-1) must be ≥ 0: use 0 to stop checked-out connections at once on shutdown, or a duration such as 30s"
      ],
      [
        { maxLifetime: "30d" },
        "maxLifetime (30d) must be at most 2147483647ms (about 24.8 days, the longest a timer can wait and the largest timeout PostgreSQL accepts): set how long a connection may live before it is replaced, e.g. 1h"
      ],
      [
        { queryTimeout: 0 },
        "queryTimeout (0) must be > 0: set a client-side limit per query such as 30s, or leave queryTimeout unset for none"
      ],
      [{ keepAlive: "maybe" }, "keepAlive (maybe) must be true or false (yes/no, on/off and 1/0 work too)"],
      [
        { reset: "never" },
        "reset (never) must be auto or always: auto discards session state only after statements that may leave some, always runs DISCARD ALL on every return"
      ],
      [
        { init: "fast" },
        "init (fast) must be eager or lazy: eager fails startup when the database is unreachable, lazy starts degraded and connects in the background"
      ],
      [{ name: " " }, "name ( ) must be a non-empty string: name the pool for logs and metrics, e.g. default"],
      [
        { logLevel: "loud" },
        "logLevel (loud) must be trace, debug, info, warning, error, fatal, all or none (any case): the lowest level of the pool's log lines, e.g. info"
      ],
      [
        { reconnect: { factor: 1 } },
        "reconnect.factor (1) must be a number > 1: use e.g. 2 to double the delay after each failed attempt"
      ],
      [
        { reconnect: { initialDelay: "30s" } },
        "reconnect.maxDelay (16s, the default) must be ≥ reconnect.initialDelay (30s): raise reconnect.maxDelay or lower reconnect.initialDelay"
      ],
      [
        { reconnect: { initialAttempts: 0 } },
        "reconnect.initialAttempts (0) must be an integer ≥ 1: set how many attempts startup makes before it fails, e.g. 5"
      ],
      [
        { maxConnections: 4, maxSize: 5 },
        "maxConnections (4) and maxSize (5) are two names for the same setting and disagree: keep one of them"
      ],
      [
        { connectionTTL: "1h", maxLifetime: "2h" },
        "connectionTTL (1h) and maxLifetime (2h) are two names for the same setting and disagree: keep one of them"
      ],
      [{ user: 42 }, "user (42) must be a string: e.g. postgres"],
      [{ database: false }, "database (false) must be a string: e.g. mydb"],
      [{ applicationName: 1 }, "applicationName (1) must be a string: e.g. my-service"],
      [{ logFile: 1 }, "logFile (1) must be a string: give a file path"],
      [
        { statementTimeout: "-5s" },
        "statementTimeout (-5s) must be > 0: set a server-side limit per statement such as 30s, or leave statementTimeout unset for none"
      ],
      [
        { leakDetectionThreshold: "x" },
        "leakDetectionThreshold (x) is not a duration: use milliseconds (250), a short form (500ms, 1.5s, 2m, 1h) or Effect's form (5 seconds)"
      ],
      [
        { reconnect: { jitter: "sometimes" } },
        "reconnect.jitter (sometimes) must be true or false (yes/no, on/off and 1/0 work too)"
      ]
    ]
    for (const [input, message] of cases) {
      assert.deepStrictEqual(messages(Settings.resolve({ url: "postgres://db", ...input })), [message])
    }
    assert.deepStrictEqual(messages(Settings.resolve({ url: 42 })), [
      "url must be a string or a Redacted string: postgres://user:password@localhost:5432/mydb"
    ])
    assert.strictEqual(ok(Settings.resolve({ url: "postgres://db", username: "u" })).user, "u")
    const all = messages(Settings.resolve({ url: "postgres://db", maxSize: 0, keepAlive: "x", init: "y" }))
    assert.strictEqual(all.length, 3)
  })

  it("names a setting as the user wrote it: a Config key, an alias, or the variable", () => {
    assert.deepStrictEqual(
      messages(Settings.resolve({ url: "postgres://db", maxSize: "x" }, { written: { maxSize: "PG_MAX" } })),
      [
        "PG_MAX (x) must be an integer from 1 to 10000: e.g. 10; PostgreSQL's default max_connections is 100; put PgBouncer in front for more clients"
      ]
    )
    const alias = ok(
      Settings.resolve({ url: "postgres://db", maxConnections: 4, idleTimeout: "60s", maxIdleTime: 60_000 })
    )
    assert.strictEqual(alias.maxSize, 4)
    assert.strictEqual(alias.minSize, 0)
    assert.strictEqual(alias.settingNames.maxSize, "maxConnections")
    assert.deepStrictEqual(messages(Settings.fromEnv({ DATABASE_URL: "postgres://db", DB_POOL_INIT: "fast" })), [
      "DB_POOL_INIT (fast) must be eager or lazy: eager fails startup when the database is unreachable, lazy starts degraded and connects in the background"
    ])
  })

  it("formats milliseconds as Effect's Duration.format does", () => {
    const cases: ReadonlyArray<readonly [number, string]> = [
      [0, "0"],
      [16_000, "16s"],
      [90_000, "1m 30s"],
      [1_500, "1s 500ms"],
      [86_400_000 + 3_600_000, "1d 1h"],
      [0.5, "500000ns"]
    ]
    for (const [millis, text] of cases) assert.strictEqual(Settings.formatMillis(millis), text)
  })

  it("reads log levels in any case", () => {
    assert.strictEqual(Settings.parseLogLevel(" WARN "), "Warning")
    assert.strictEqual(ok(Settings.resolve({ url: "postgres://db", logLevel: { _tag: "Debug" } })).logLevel, "Debug")
    assert.deepStrictEqual(
      Settings.loggingFromEnv({ DB_POOL_LOG_FILE: "/tmp/p.jsonl", DB_POOL_LOG_LEVEL: "error", PGPASSWORD: "pw" }),
      {
        ok: true,
        logFile: "/tmp/p.jsonl",
        logLevel: "Error",
        url: undefined,
        password: "pw"
      }
    )
    const bad = Settings.loggingFromEnv({ DB_POOL_LOG_LEVEL: "loud" })
    assert.isFalse(bad.ok)
  })
})

describe("Settings: the connection", () => {
  it("parses libpq's URL: both schemes, percent-decoding, keyword parameters", () => {
    const s = ok(
      Settings.resolve({
        url: `postgresql://app%40corp:${encodeURIComponent("p@ss/w?rd")}@db.example.com:5433/my%20db?application_name=billing`
      })
    )
    assert.deepStrictEqual(
      [s.user, s.password, s.host, s.port, s.database, s.applicationName],
      ["app@corp", "p@ss/w?rd", "db.example.com", 5433, "my db", "billing"]
    )
    const keywords = ok(Settings.resolve({ url: "postgres:///?host=db&port=6000&user=u&password=pw&dbname=d" }))
    assert.deepStrictEqual(
      [keywords.host, keywords.port, keywords.user, keywords.password, keywords.database],
      ["db", 6000, "u", "pw", "d"]
    )
    // an unencoded password holding "@", "/" and "?" is read up to the last "@"
    assert.strictEqual(ok(Settings.resolve({ url: "postgres://app:p@s/s?w@db/app" })).password, "p@s/s?w")
  })

  it("lets explicit fields win over the URL's parts", () => {
    const s = ok(
      Settings.resolve({
        url: "postgres://a:b@db:5433/x",
        host: "other",
        port: 6000,
        user: "u",
        database: "d",
        password: "p"
      })
    )
    assert.deepStrictEqual([s.host, s.port, s.user, s.database, s.password], ["other", 6000, "u", "d", "p"])
  })

  it("builds a normalised URL with every host, the TLS mode and the application name", () => {
    const s = ok(Settings.resolve({ url: `postgres://app:${PASSWORD}@db1,db2:5433/app?target_session_attrs=primary` }))
    assert.strictEqual(
      s.url,
      `postgres://app:${PASSWORD}@db1:5432,db2:5433/app?sslmode=disable&application_name=effect-pg-pool&target_session_attrs=primary`
    )
    assert.strictEqual(
      ok(Settings.resolve({ host: "::1", user: "u" })).url,
      "postgres://u@[::1]:5432/u?sslmode=disable&application_name=effect-pg-pool"
    )
  })

  it("reports each URL problem", () => {
    const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
      [
        "mysql://db/app",
        [
          "url (mysql://db/app) must start with postgres:// or postgresql://: use e.g. postgres://user:password@localhost:5432/mydb"
        ]
      ],
      [
        "postgres://db:99999/app",
        [
          "url (postgres://db:99999/app) has an invalid port (99999): use an integer from 1 to 65535, e.g. postgres://user:password@localhost:5432/mydb"
        ]
      ],
      [
        "postgres://[::1/app",
        [
          "url (postgres://[::1/app) has an invalid host: write an IPv6 address in brackets, e.g. postgres://user:password@[::1]:5432/mydb"
        ]
      ],
      [
        "postgres://db/app?connect_timeout=10&foo=1",
        [
          "url (postgres://db/app?connect_timeout=10&foo=1) has the parameter connect_timeout, which the pool does not support: set connectTimeout (DB_POOL_CONNECT_TIMEOUT) instead",
          "url (postgres://db/app?connect_timeout=10&foo=1) has the parameter foo, which the pool does not support: remove it, it would be ignored"
        ]
      ]
    ]
    for (const [url, expected] of cases) assert.deepStrictEqual(messages(Settings.resolve({ url })), expected, url)
  })

  it("says how to configure a connection when none is given", () => {
    assert.deepStrictEqual(messages(Settings.resolve({})), [
      "no connection is configured: pass url, e.g. postgres://user:password@localhost:5432/mydb, or host, port, user, password and database"
    ])
    assert.deepStrictEqual(messages(Settings.fromEnv({ DATABASE_URL: " " })), [
      "DATABASE_URL is not set: set it to the database's URL, e.g. DATABASE_URL=postgres://user:password@localhost:5432/mydb (or set PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE)"
    ])
  })

  it("reads libpq's variables only without DATABASE_URL, and the TLS ones with it too", () => {
    const libpq = ok(Settings.fromEnv({ PGHOST: "pg", PGPORT: "6000", PGUSER: "u", PGPASSWORD: "pw", PGDATABASE: "d" }))
    assert.deepStrictEqual(
      [libpq.host, libpq.port, libpq.user, libpq.password, libpq.database],
      ["pg", 6000, "u", "pw", "d"]
    )
    const url = ok(Settings.fromEnv({ DATABASE_URL: "postgres://db/app", PGHOST: "elsewhere", PGSSLMODE: "require" }))
    assert.deepStrictEqual([url.host, url.sslmode], ["db", "require"])
  })
})

describe("Settings: several hosts (libpq's rules)", () => {
  const hostsOf = (result: Settings.Result<Settings.TlsParams>) =>
    ok(result).hosts.map(({ host, port }) => `${host}:${port}`)

  it("pairs hosts and ports from every source", () => {
    const cases: ReadonlyArray<readonly [string, Settings.Result<Settings.TlsParams>, ReadonlyArray<string>]> = [
      ["URL, a port each", Settings.resolve({ url: "postgres://h1:5432,h2:5433/db" }), ["h1:5432", "h2:5433"]],
      [
        "URL, a missing port is the default",
        Settings.resolve({ url: "postgres://h1:6000,h2/db" }),
        ["h1:6000", "h2:5432"]
      ],
      ["URL, no ports", Settings.resolve({ url: "postgres://h1,h2,h3/db" }), ["h1:5432", "h2:5432", "h3:5432"]],
      [
        "URL, IPv6 in the list",
        Settings.resolve({ url: "postgres://[::1]:6000,[fe80::1],h3:7000/db" }),
        ["::1:6000", "fe80::1:5432", "h3:7000"]
      ],
      [
        "URL, host and port parameters",
        Settings.resolve({ url: "postgres:///db?host=h1,h2&port=1,2" }),
        ["h1:1", "h2:2"]
      ],
      [
        "URL, one port parameter for every host",
        Settings.resolve({ url: "postgres://h1,h2/db?port=6000" }),
        ["h1:6000", "h2:6000"]
      ],
      [
        "URL, an empty host is the default",
        Settings.resolve({ url: "postgres:///db?host=,h2" }),
        ["localhost:5432", "h2:5432"]
      ],
      ["code, lists", Settings.resolve({ host: ["h1", "h2"], port: [1, 2] }), ["h1:1", "h2:2"]],
      ["code, one port for all", Settings.resolve({ host: ["h1", "h2"], port: 6000 }), ["h1:6000", "h2:6000"]],
      ["code, a comma list", Settings.resolve({ host: "h1, h2", user: "u" }), ["h1:5432", "h2:5432"]],
      [
        "code hosts over the URL's, its ports kept",
        Settings.resolve({ url: "postgres://a:1,b:2/db", host: "h1,h2" }),
        ["h1:1", "h2:2"]
      ],
      ["code port over the URL's", Settings.resolve({ url: "postgres://a:1,b:2/db", port: 7 }), ["a:7", "b:7"]],
      [
        "PGHOST and PGPORT lists",
        Settings.fromEnv({ PGHOST: "h1,h2,h3", PGPORT: "1,,3" }),
        ["h1:1", "h2:5432", "h3:3"]
      ],
      ["PGHOST list, one PGPORT", Settings.fromEnv({ PGHOST: "h1,h2", PGPORT: "6000" }), ["h1:6000", "h2:6000"]],
      [
        "DATABASE_URL with several hosts",
        Settings.fromEnv({ DATABASE_URL: "postgres://h1,h2:6000/db" }),
        ["h1:5432", "h2:6000"]
      ]
    ]
    for (const [what, result, expected] of cases) assert.deepStrictEqual(hostsOf(result), expected, what)
  })

  it("keeps host and port as the first host's", () => {
    const s = ok(Settings.resolve({ url: "postgres://h1:6000,h2:7000/db" }))
    assert.deepStrictEqual([s.host, s.port], ["h1", 6000])
  })

  it("takes Unix socket directories as libpq does", () => {
    assert.deepStrictEqual(hostsOf(Settings.resolve({ url: "postgres://%2Fvar%2Frun%2Fpostgresql:6000/db" })), [
      "/var/run/postgresql:6000"
    ])
    assert.deepStrictEqual(hostsOf(Settings.resolve({ url: "postgres:///db?host=/tmp,db2" })), [
      "/tmp:5432",
      "db2:5432"
    ])
    assert.deepStrictEqual(hostsOf(Settings.fromEnv({ PGHOST: "/tmp", PGPORT: "5433" })), ["/tmp:5433"])
    assert.isTrue(Settings.isSocket("/tmp"))
    assert.isTrue(Settings.isSocket("@abstract"))
    assert.isFalse(Settings.isSocket("db"))
  })

  it("refuses port lists that do not pair with the hosts, naming both", () => {
    const cases: ReadonlyArray<readonly [Settings.Result<Settings.TlsParams>, string]> = [
      [
        Settings.resolve({ host: ["h1", "h2", "h3"], port: [1, 2] }),
        "port (1,2) lists 2 ports for 3 hosts (host (h1,h2,h3)): give one port for all hosts, or one per host in the same order (libpq: could not match 2 port numbers to 3 hosts)"
      ],
      [
        Settings.fromEnv({ PGHOST: "h1,h2", PGPORT: "1,2,3" }),
        "PGPORT (1,2,3) lists 3 ports for 2 hosts (PGHOST (h1,h2)): give one port for all hosts, or one per host in the same order (libpq: could not match 3 port numbers to 2 hosts)"
      ],
      [
        Settings.resolve({ url: "postgres://h1,h2,h3/db?port=1,2" }),
        "url (postgres://h1,h2,h3/db?port=1,2) lists 2 ports for 3 hosts: give one port for all hosts, or one per host in the same order (libpq: could not match 2 port numbers to 3 hosts)"
      ],
      [
        Settings.resolve({ url: "postgres://h1:1,h2:2/db", host: "a,b,c" }),
        "url (postgres://h1:1,h2:2/db) lists 2 ports for 3 hosts (host (a,b,c)): give one port for all hosts, or one per host in the same order (libpq: could not match 2 port numbers to 3 hosts)"
      ]
    ]
    for (const [result, message] of cases) assert.deepStrictEqual(messages(result), [message])
  })

  it("refuses invalid host and port entries", () => {
    const cases: ReadonlyArray<readonly [Settings.Result<Settings.TlsParams>, string]> = [
      [
        Settings.resolve({ host: 42 }),
        'host (42) must be a host name or a list of them: e.g. localhost, "db1,db2" or ["db1", "db2"]'
      ],
      [
        Settings.resolve({ host: [] }),
        'host ([]) must be a host name or a list of them: e.g. localhost, "db1,db2" or ["db1", "db2"]'
      ],
      [
        Settings.resolve({ host: "db", port: 70_000 }),
        "port (70000) must be an integer from 1 to 65535: PostgreSQL listens on 5432 unless configured otherwise"
      ],
      [
        Settings.resolve({ host: ["h1", "h2"], port: [1, 0] }),
        "port ([1,0]) lists 0, but each port must be an integer from 1 to 65535: PostgreSQL listens on 5432 unless configured otherwise"
      ],
      [
        Settings.fromEnv({ PGHOST: "h1,h2", PGPORT: "1,x" }),
        "PGPORT (1,x) lists x, but each port must be an integer from 1 to 65535: PostgreSQL listens on 5432 unless configured otherwise"
      ],
      [
        Settings.fromEnv({ PGHOST: "db", PGPORT: "5.432e3" }),
        "PGPORT (5.432e3) must be an integer from 1 to 65535: PostgreSQL listens on 5432 unless configured otherwise"
      ],
      [
        Settings.resolve({ url: "postgres://h1:1,h2:x/db" }),
        "url (postgres://h1:1,h2:x/db) has an invalid port (x): use an integer from 1 to 65535, e.g. postgres://user:password@localhost:5432/mydb"
      ]
    ]
    for (const [result, message] of cases) assert.deepStrictEqual(messages(result), [message])
  })
})

describe("Settings: target_session_attrs and load_balance_hosts", () => {
  it("reads every target_session_attrs value from the URL, the option and PGTARGETSESSIONATTRS", () => {
    for (const value of ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"] as const) {
      assert.strictEqual(
        ok(Settings.resolve({ url: `postgres://h1,h2/db?target_session_attrs=${value}` })).targetSessionAttrs,
        value
      )
      assert.strictEqual(
        ok(Settings.resolve({ url: "postgres://db", targetSessionAttrs: value })).targetSessionAttrs,
        value
      )
      assert.strictEqual(
        ok(Settings.fromEnv({ PGHOST: "h1,h2", PGTARGETSESSIONATTRS: value })).targetSessionAttrs,
        value
      )
    }
  })

  it("reads load_balance_hosts from the URL, the option and PGLOADBALANCEHOSTS", () => {
    for (const value of ["disable", "random"] as const) {
      assert.strictEqual(
        ok(Settings.resolve({ url: `postgres://h1,h2/db?load_balance_hosts=${value}` })).loadBalanceHosts,
        value
      )
      assert.strictEqual(
        ok(Settings.resolve({ url: "postgres://db", loadBalanceHosts: value })).loadBalanceHosts,
        value
      )
      assert.strictEqual(
        ok(Settings.fromEnv({ DATABASE_URL: "postgres://h1,h2/db", PGLOADBALANCEHOSTS: value })).loadBalanceHosts,
        value
      )
    }
  })

  it("lets the option win over the URL and the URL over the variable, as libpq does", () => {
    const url = "postgres://h1,h2/db?target_session_attrs=standby&load_balance_hosts=random"
    const env = { DATABASE_URL: url, PGTARGETSESSIONATTRS: "primary", PGLOADBALANCEHOSTS: "disable" }
    const fromEnv = ok(Settings.fromEnv(env))
    assert.deepStrictEqual([fromEnv.targetSessionAttrs, fromEnv.loadBalanceHosts], ["standby", "random"])
    const fromCode = ok(Settings.resolve({ url, targetSessionAttrs: "read-write" }, { env }))
    assert.deepStrictEqual([fromCode.targetSessionAttrs, fromCode.loadBalanceHosts], ["read-write", "random"])
  })

  it("reports an invalid value where it was written", () => {
    const attrs =
      "must be any, read-write, read-only, primary, standby or prefer-standby: any takes the first host that accepts " +
      "the connection; read-write (or primary) one that accepts writes, read-only one in read-only mode, standby one " +
      "in recovery, prefer-standby a standby if one is up, else any"
    const balance =
      "must be disable or random: disable tries the hosts in the order given, random in a random order for each connection"
    const cases: ReadonlyArray<readonly [Settings.Result<Settings.TlsParams>, string, string]> = [
      [
        Settings.resolve({ url: `postgres://app:${PASSWORD}@h1,h2/db?target_session_attrs=master` }),
        `url (postgres://app:***@h1,h2/db?target_session_attrs=master) target_session_attrs (master) ${attrs}`,
        "url"
      ],
      [
        Settings.resolve({ url: "postgres://db", targetSessionAttrs: "writable" }),
        `targetSessionAttrs (writable) ${attrs}`,
        "targetSessionAttrs"
      ],
      [
        Settings.fromEnv({ PGHOST: "db", PGTARGETSESSIONATTRS: "rw" }),
        `PGTARGETSESSIONATTRS (rw) ${attrs}`,
        "PGTARGETSESSIONATTRS"
      ],
      [
        Settings.resolve({ url: "postgres://h1,h2/db?load_balance_hosts=round-robin" }),
        `url (postgres://h1,h2/db?load_balance_hosts=round-robin) load_balance_hosts (round-robin) ${balance}`,
        "url"
      ],
      [
        Settings.fromEnv({ PGHOST: "db", PGLOADBALANCEHOSTS: "yes" }),
        `PGLOADBALANCEHOSTS (yes) ${balance}`,
        "PGLOADBALANCEHOSTS"
      ]
    ]
    for (const [result, message, setting] of cases) {
      assert.deepStrictEqual(messages(result), [message])
      assert.strictEqual(result.ok ? "" : result.issues[0]!.setting, setting)
    }
  })
})

describe("Settings: redaction", () => {
  it("masks URL passwords and password= parameters, never the rest", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      [`postgres://app:${PASSWORD}@db:5432/app`, "postgres://app:***@db:5432/app"],
      ["postgres://app:p@ss/w?rd@db/app", "postgres://app:***@db/app"],
      ["postgres://db/app?user=u&password=pw&sslpassword=kp", "postgres://db/app?user=u&password=***&sslpassword=***"],
      ["host=db password='it\\'s' dbname=app", "host=db password=*** dbname=app"],
      ["postgres://app@db/app", "postgres://app@db/app"]
    ]
    for (const [url, redacted] of cases) assert.strictEqual(Settings.redactUrl(url), redacted)
  })

  it("masks a password everywhere in text, a short one only in URLs and password= parameters", () => {
    assert.strictEqual(
      Settings.redactText(
        `failed for ${PASSWORD} (${encodeURIComponent("p@ss word")}) at postgres://u:${PASSWORD}@db/app`,
        PASSWORD
      ),
      "failed for *** (p%40ss%20word) at postgres://u:***@db/app"
    )
    assert.strictEqual(Settings.redactText("p@ss word", "p@ss word"), "***")
    assert.strictEqual(
      Settings.redactText("path /app/pool: postgres://u:pw@db/app password=pw", "pw"),
      "path /app/pool: postgres://u:***@db/app password=***"
    )
  })

  it("redacts log lines with one redactor, and leaves clean ones untouched", () => {
    const redact = Settings.makeRedactor([PASSWORD, ""])
    const clean = "pool default: 2 idle"
    assert.strictEqual(redact(clean), clean)
    assert.strictEqual(redact(`auth ${PASSWORD} postgres://u:x@db`), "auth *** postgres://u:***@db")
    // the client key's passphrase (sslpassword) is masked as a parameter, it is not the database password
    assert.deepStrictEqual(Settings.passwordsInUrl("postgres://app:p%40ss@db/app?sslpassword=kp&password='a b'"), [
      "p@ss",
      "a b"
    ])
  })

  it("never shows a password in an issue", () => {
    const result = Settings.resolve({ url: `postgres://app:${PASSWORD}@db:0/app`, password: PASSWORD, maxSize: 0 })
    assert.isFalse(result.ok)
    if (!result.ok) {
      for (const issue of result.issues) {
        assert.notInclude(issue.message, PASSWORD)
        assert.notInclude(issue.value, PASSWORD)
      }
    }
    const notText = Settings.resolve({ url: "postgres://db", password: 42 })
    assert.deepStrictEqual(notText.ok ? [] : notText.issues.map((i) => [i.value, i.message]), [
      ["***", "password must be a string or a Redacted string"]
    ])
  })
})

describe("Settings: TLS parameters without an edition's resolver", () => {
  it("checks sslmode and passes the other parameters through", () => {
    const s = ok(Settings.resolve({ url: "postgres://db/app?sslmode=verify-full&sslrootcert=/etc/ca.pem" }))
    assert.strictEqual(s.sslmode, "verify-full")
    assert.deepStrictEqual(s.tls.params, [
      ["sslmode", "verify-full"],
      ["sslrootcert", "/etc/ca.pem"]
    ])
    assert.deepStrictEqual(messages(Settings.fromEnv({ PGHOST: "db", PGSSLMODE: "on", PGSSLCRLDIR: "/etc/crl" })), [
      "PGSSLCRLDIR (/etc/crl) is not supported: Node cannot read a CRL directory: concatenate the CRLs into one file for sslcrl",
      "sslmode (on) is not an sslmode: use disable, allow, prefer, require, verify-ca, verify-full"
    ])
  })

  it("calls the edition's resolver with the option, the URL's parameters and the variables", () => {
    const seen: Array<Settings.TlsInput> = []
    const tls: Settings.TlsResolver<string> = (input, report) => {
      seen.push(input)
      report("ssl", "PGSSLCERT", "/x", "sslcert (/x) cannot be read")
      return { sslmode: "require", tls: "material", params: [["sslmode", "require"]] }
    }
    const result = Settings.fromEnv({ DATABASE_URL: "postgres://db/app?sslmode=require", PGSSLCERT: "/x" }, { tls })
    assert.deepStrictEqual(result.ok ? [] : result.issues.map((i) => i.message), ["sslcert (/x) cannot be read"])
    assert.deepStrictEqual([...seen[0]!.url!.params], [["sslmode", "require"]])
    assert.strictEqual(seen[0]!.env.get("PGSSLCERT"), "/x")
  })
})
