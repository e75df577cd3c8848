/**
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as Db from "./Db.js"

/**
 * @since 0.1.0
 */
export { DatabaseLive } from "./Db.js"

/**
 * @since 0.1.0
 */
export * as Health from "./Health.js"

/**
 * @since 0.1.0
 */
export * as PoolConfig from "./PoolConfig.js"

/**
 * @since 0.1.0
 */
export * as PoolError from "./PoolError.js"

/**
 * @since 0.1.0
 */
export * as PoolLogger from "./PoolLogger.js"

/**
 * @since 0.1.0
 */
export * as PoolStatistics from "./PoolStatistics.js"
