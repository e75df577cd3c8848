// The read replicas' settings (a second, read-only pool): from code and from DB_POOL_REPLICA*, their defaults (the
// primary's hosts and sizes, prefer-standby), and the settings that cannot take effect.
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

const url = "postgres://app@db1:5432,db2:5433/app?target_session_attrs=read-write"

describe("replicas", () => {
  it("off by default", () => {
    assert.isUndefined(ok(Settings.resolve({ url })).replicas)
  })

  it("replicas: true — the primary's hosts and sizes, prefer-standby, named <name>-replicas", () => {
    assert.deepStrictEqual(
      ok(Settings.resolve({ url, name: "orders", minSize: 1, maxSize: 6, replicas: true })).replicas,
      {
        name: "orders-replicas",
        hosts: [
          { host: "db1", port: 5432 },
          { host: "db2", port: 5433 }
        ],
        targetSessionAttrs: "prefer-standby",
        minSize: 1,
        maxSize: 6
      }
    )
  })

  it("replicaHosts turns them on, each entry with its port or the primary's first; own target and sizes", () => {
    const replicas = ok(
      Settings.resolve({
        url: "postgres://app@db1:6432/app",
        replicaHosts: ["r1:5433", "r2", "[::1]:5434"],
        replicaTargetSessionAttrs: "any",
        replicaMinSize: 0,
        replicaMaxSize: 20
      })
    ).replicas
    assert.deepStrictEqual(replicas, {
      name: "default-replicas",
      hosts: [
        { host: "r1", port: 5433 },
        { host: "r2", port: 6432 },
        { host: "::1", port: 5434 }
      ],
      targetSessionAttrs: "any",
      minSize: 0,
      maxSize: 20
    })
  })

  it("from the environment, named by variable; the minimum follows a lower replica maximum", () => {
    const settings = ok(
      Settings.fromEnv({
        DATABASE_URL: url,
        DB_POOL_REPLICAS: "true",
        DB_POOL_REPLICA_HOSTS: "r1:5432,r2:5432",
        DB_POOL_REPLICA_MAX_SIZE: "1",
        DB_POOL_REPLICA_TARGET_SESSION_ATTRS: "standby"
      })
    )
    assert.deepStrictEqual(settings.replicas, {
      name: "default-replicas",
      hosts: [
        { host: "r1", port: 5432 },
        { host: "r2", port: 5432 }
      ],
      targetSessionAttrs: "standby",
      minSize: 1,
      maxSize: 1
    })
    assert.strictEqual(settings.settingNames.replicaMaxSize, "DB_POOL_REPLICA_MAX_SIZE")
    assert.include(Settings.envNames, "DB_POOL_REPLICA_HOSTS")
  })

  it("every problem at once, naming the setting as written", () => {
    assert.deepStrictEqual(
      messages(
        Settings.fromEnv({
          DATABASE_URL: url,
          DB_POOL_REPLICAS: "yes please",
          DB_POOL_REPLICA_HOSTS: "r1:99999",
          DB_POOL_REPLICA_TARGET_SESSION_ATTRS: "read-write",
          DB_POOL_REPLICA_MIN_SIZE: "5",
          DB_POOL_REPLICA_MAX_SIZE: "2"
        })
      ),
      [
        "DB_POOL_REPLICAS (yes please) must be true or false (yes/no, on/off and 1/0 work too)",
        "DB_POOL_REPLICA_HOSTS (r1:99999) lists r1:99999, but each port must be an integer from 1 to 65535: PostgreSQL listens on 5432 unless configured otherwise",
        "DB_POOL_REPLICA_MIN_SIZE (5) must be ≤ DB_POOL_REPLICA_MAX_SIZE (2): lower DB_POOL_REPLICA_MIN_SIZE or raise DB_POOL_REPLICA_MAX_SIZE",
        "DB_POOL_REPLICA_TARGET_SESSION_ATTRS (read-write) must be prefer-standby, standby, read-only or any: prefer-standby reads from a standby if one is up, else from the primary; standby only from a standby (reads fail while none is up); read-only from a server in read-only mode; any from the first host that answers (e.g. a cloud's reader endpoint)"
      ]
    )
  })

  it("a replica setting while the replicas are off is an issue, never ignored", () => {
    assert.deepStrictEqual(messages(Settings.resolve({ url, replicaMaxSize: 4 })), [
      "replicaMaxSize (4) is set but the read replicas are off (replicas is not set): set replicas to true, or remove replicaMaxSize"
    ])
    assert.deepStrictEqual(messages(Settings.resolve({ url, replicas: false, replicaHosts: "r1" })), [
      "replicaHosts (r1) is set but the read replicas are off (replicas is false): set replicas to true, or remove replicaHosts"
    ])
  })
})
