/**
 * @since 0.1.0
 */

/**
 * A TCP proxy between a client and PostgreSQL that injects network faults on demand: reset every connection,
 * black-hole traffic, refuse new connections, add latency.
 *
 * @since 0.1.0
 */
export * as FaultProxy from "./FaultProxy.js"

/**
 * A real PostgreSQL server for tests and demos: embedded (no Docker), container (testcontainers) or external.
 *
 * @since 0.1.0
 */
export * as PgTestServer from "./PgTestServer.js"

/**
 * A primary and a streaming standby from the embedded binaries: promote, kill, wait for replay.
 *
 * @since 0.2.0
 */
export * as PrimaryStandby from "./PrimaryStandby.js"

/**
 * PgBouncer (the machine's binary) in front of the test server, in transaction or session pool mode.
 *
 * @since 0.2.0
 */
export * as PgBouncer from "./PgBouncer.js"
