/**
 * The defaults resolution fills in; durations in milliseconds.
 *
 * @internal
 */
import { DEFAULT_HOST, DEFAULT_PORT } from "./hosts.js"

/** @internal */
export const defaults = {
  name: "default",
  host: DEFAULT_HOST,
  port: DEFAULT_PORT,
  hosts: [{ host: DEFAULT_HOST, port: DEFAULT_PORT }],
  targetSessionAttrs: "any",
  loadBalanceHosts: "disable",
  user: "postgres",
  sslmode: "disable",
  minSize: 2,
  maxSize: 10,
  acquireTimeout: 30_000,
  connectTimeout: 5_000,
  validateAfterIdle: 1_000,
  validationTimeout: 2_000,
  maxLifetime: 3_600_000,
  maxIdleTime: 60_000,
  maxQueries: 50_000,
  pipeline: 0,
  leakDetectionThreshold: 30_000,
  shutdownTimeout: 30_000,
  cancelTimeout: 5_000,
  queryTimeout: undefined,
  keepAlive: true,
  reset: "auto",
  reconnect: {
    initialDelay: 1_000,
    factor: 2,
    maxDelay: 16_000,
    initialAttempts: 5,
    jitter: false
  },
  init: "eager",
  pooler: "none",
  statementTimeout: undefined,
  applicationName: "effect-pg-pool",
  logFile: undefined,
  logLevel: undefined,
  /** No read-only pool unless `replicas` or `replicaHosts` says so. */
  replicas: undefined
} as const
