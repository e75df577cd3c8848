/**
 * A real PostgreSQL for this package's tests, from the testkit. The testkit's API is Effect 3 today, so it runs
 * here on the testkit's own Effect 3 runtime (resolved from the testkit's dependencies) behind a Promise API; to
 * be replaced by the testkit's runtime-free core once it lands.
 */
import { PgTestServer } from "@effect-pg-pool/testkit"
import { createRequire } from "node:module"

export interface TestServer {
  readonly url: string
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string
  readonly database: string
  readonly stop: (mode?: "fast" | "immediate") => Promise<void>
  readonly start: () => Promise<void>
  readonly close: () => Promise<void>
}

interface Effect3 {
  readonly Effect: { readonly runPromise: (effect: unknown) => Promise<any> }
  readonly Scope: {
    readonly make: () => unknown
    readonly extend: (scope: unknown) => (effect: unknown) => unknown
    readonly close: (scope: unknown, exit: unknown) => unknown
  }
  readonly Exit: { readonly void: unknown }
  readonly Redacted: { readonly value: (r: unknown) => string }
}

const testkitRequire = createRequire(new URL("../../../testkit/package.json", import.meta.url))
const effect3 = (): Promise<Effect3> => import(testkitRequire.resolve("effect")) as Promise<Effect3>

export const startServer = async (): Promise<TestServer> => {
  const { Effect, Exit, Redacted, Scope } = await effect3()
  const scope = await Effect.runPromise(Scope.make())
  const server: PgTestServer.PgTestServer.Service = await Effect.runPromise(Scope.extend(scope)(PgTestServer.make()))
  return {
    url: Redacted.value(server.url),
    host: server.host,
    port: server.port,
    user: server.user,
    password: Redacted.value(server.password),
    database: server.database,
    stop: (mode = "fast") => Effect.runPromise(server.stop({ mode })),
    start: () => Effect.runPromise(server.start),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
