/**
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as Assessment from "./Assessment.js"

/**
 * @since 0.1.0
 */
export * as Classify from "./Classify.js"

/**
 * @since 0.1.0
 */
export * as Engine from "./Engine.js"

/**
 * @since 0.1.0
 */
export * as Statistics from "./Statistics.js"

/**
 * @since 0.1.0
 */
export * as WaiterQueue from "./WaiterQueue.js"

/**
 * @since 0.1.0
 */
export * as IdTable from "./IdTable.js"

/**
 * @since 0.1.0
 */
export * as Settings from "./Settings.js"

/**
 * @since 0.1.0
 */
export * as Hosts from "./Hosts.js"

/**
 * @since 0.1.0
 */
export * as Pooler from "./Pooler.js"

/**
 * @since 0.1.0
 */
export * as Messages from "./Messages.js"

/**
 * @since 0.1.0
 */
export * as MockScript from "./MockScript.js"

/**
 * @since 0.1.0
 */
export * as LogJson from "./LogJson.js"

/**
 * @since 0.1.0
 */
export * as TlsFiles from "./TlsFiles.js"
