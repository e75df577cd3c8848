/**
 * The runtime-free core of the testkit: real PostgreSQL servers, the fault proxy, a primary with a streaming
 * standby and PgBouncer, as plain TypeScript and Promises with no `effect` import — for the Effect 4 edition's
 * tests, or any test runner. The Effect 3 layers (`PgTestServer`, `FaultProxy`) are thin wrappers over it.
 *
 * @since 0.2.0
 */

/**
 * A real PostgreSQL: embedded (no Docker), container (testcontainers) or external.
 *
 * @since 0.2.0
 */
export * as TestServer from "./core/TestServer.js"

/**
 * A TCP proxy that injects network faults: reset, black hole, refuse, latency.
 *
 * @since 0.2.0
 */
export * as FaultProxy from "./core/FaultProxy.js"

/**
 * A primary and a streaming standby from the embedded binaries: promote, stop, kill, wait for replay.
 *
 * @since 0.2.0
 */
export * as PrimaryStandby from "./core/PrimaryStandby.js"

/**
 * PgBouncer (the machine's binary) in front of a test server, in transaction or session pool mode.
 *
 * @since 0.2.0
 */
export * as PgBouncer from "./core/PgBouncer.js"
