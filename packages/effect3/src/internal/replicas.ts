/**
 * The read replicas: a second pool (its own engine, hosts table, statistics, metrics and logs under
 * `<name>-replicas`) with the primary's settings but the replicas' hosts, target and sizes; and the health that
 * shows both.
 *
 * @internal
 */
import * as Option from "effect/Option"
import { HealthStatus, ReplicaHealth } from "../Health.js"
import type { PoolConfig, ReplicasConfig } from "../PoolConfig.js"

/**
 * The read-only pool's configuration: the primary's, with the replicas' name, hosts, target and sizes. It starts
 * lazily: the layer waits for the primary alone, so replicas that are down (target `standby` with no standby up, a
 * reader endpoint unreachable) leave the application serving writes, its health degraded and its reads waiting.
 *
 * @internal
 */
export const replicaConfig = (config: PoolConfig, replicas: ReplicasConfig): PoolConfig => ({
  ...config,
  name: replicas.name,
  hosts: replicas.hosts,
  host: replicas.hosts[0]!.host,
  port: replicas.hosts[0]!.port,
  targetSessionAttrs: replicas.targetSessionAttrs,
  minSize: replicas.minSize,
  maxSize: replicas.maxSize,
  init: "lazy",
  replicas: undefined
})

/**
 * The primary's health with the replicas' section. A healthy primary with replicas that are not healthy is
 * degraded: reads through `Db.readOnly` may fail (target `standby`) or wait, and a readiness check should see it.
 * The primary's own trouble comes first.
 *
 * @internal
 */
export const withReplicas = (primary: HealthStatus, replicas: HealthStatus): HealthStatus => {
  const degraded = primary.status === "healthy" && replicas.status !== "healthy"
  return new HealthStatus(
    {
      ...primary,
      status: degraded ? "degraded" : primary.status,
      reason: degraded
        ? Option.some(
            `the read replicas (${replicas.statistics.poolName}) are ${replicas.status}` +
              Option.match(replicas.reason, { onNone: () => "", onSome: (reason) => `: ${reason}` })
          )
        : primary.reason,
      replicas: Option.some(
        new ReplicaHealth(
          {
            status: replicas.status,
            reason: replicas.reason,
            database: replicas.database,
            statistics: replicas.statistics
          },
          true
        )
      )
    },
    true
  )
}
