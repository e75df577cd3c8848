/**
 * A real PostgreSQL for this package's tests: the testkit's runtime-free core (Promises), whatever
 * `PG_TEST_BACKEND` says (embedded by default).
 */
import { TestServer as Core } from "@effect-pg-pool/testkit/core"

export type TestServer = Core.TestServer

export const startServer = (): Promise<TestServer> => Core.startServer()
