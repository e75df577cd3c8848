/**
 * What the pool's parts are given, read off the resolved configuration: the engine's `Config` (durations in
 * milliseconds) and the driver's `ConnectOptions`.
 *
 * @internal
 */
import { type Engine, Hosts } from "@effect-pg-pool/engine"
import * as Duration from "effect/Duration"
import * as Redacted from "effect/Redacted"
import type * as Pg from "pg"
import type { PoolConfig } from "../PoolConfig.js"
import type { ConnectOptions, PasswordProvider } from "./connection.js"

/** @internal */
export const engineConfig = (config: PoolConfig): Engine.Config => ({
  minSize: config.minSize,
  maxSize: config.maxSize,
  // 1: every acquisition takes a whole session; k ≥ 2: autocommit statements share k slots (internal/pipeline.ts)
  capacity: Math.max(1, config.pipeline),
  acquireTimeout: Duration.toMillis(config.acquireTimeout),
  validateAfterIdle: Duration.toMillis(config.validateAfterIdle),
  validationTimeout: Duration.toMillis(config.validationTimeout),
  maxLifetime: Duration.toMillis(config.maxLifetime),
  maxIdleTime: Duration.toMillis(config.maxIdleTime),
  maxQueries: config.maxQueries,
  leakThreshold: Duration.toMillis(config.leakDetectionThreshold),
  shutdownTimeout: Duration.toMillis(config.shutdownTimeout),
  initialAttempts: config.reconnect.initialAttempts,
  init: config.init,
  resetAlways: config.reset === "always",
  // every host, as the Effect 4 edition names them: health reasons say which hosts the pool tries, not the first
  target: config.hosts.length > 1 ? config.hosts.map(Hosts.hostLabel).join(",") : `${config.host}:${config.port}`,
  startFields: { host: config.host, port: config.port, database: config.database }
})

/** @internal */
export const connectOptions = (
  config: PoolConfig,
  types: Pg.CustomTypesConfig | undefined,
  passwordProvider?: PasswordProvider | undefined
): ConnectOptions => ({
  host: config.host,
  port: config.port,
  database: config.database,
  user: config.user,
  password: config.password === undefined ? undefined : Redacted.value(config.password),
  passwordProvider,
  ssl: { mode: config.sslmode, options: config.ssl },
  applicationName: config.applicationName,
  statementTimeoutMillis:
    config.statementTimeout === undefined ? undefined : Duration.toMillis(config.statementTimeout),
  connectTimeoutMillis: Duration.toMillis(config.connectTimeout),
  keepAlive: config.keepAlive,
  types,
  settingNames: { url: config.settingNames.url }
})
