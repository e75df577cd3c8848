/**
 * An HTTP service in front of the pool: `GET /health` (200 healthy or degraded, 503 unhealthy, the
 * `HealthStatus` as JSON), `GET /stats` (the `PoolStatistics` as JSON) and `GET /metrics` (the pool's Effect
 * metrics in Prometheus' text format, through @effect/opentelemetry and OpenTelemetry's Prometheus exporter).
 *
 * Every route answers from memory: `/health` from the pool's state and its background probe, `/stats` from its
 * counters, `/metrics` from Effect's metric registry. None of them takes a connection, so they answer at once
 * even when the pool is saturated or the database is down.
 */
import { Db, Health, PoolStatistics } from "@effect-pg-pool/effect3"
import { PgTestServer } from "@effect-pg-pool/testkit"
import { Metrics, Resource } from "@effect/opentelemetry"
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import type { ServeError } from "@effect/platform/HttpServerError"
import { NodeHttpServer } from "@effect/platform-node"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Config, ConfigProvider, Context, Effect, Layer, Option, Redacted } from "effect"
import * as Http from "node:http"

/** Renders the metrics for a Prometheus scrape. */
export class Prometheus extends Context.Tag("@effect-pg-pool/example-health-server/Prometheus")<
  Prometheus,
  { readonly scrape: Effect.Effect<string> }
>() {}

/**
 * Effect's metrics exported through OpenTelemetry: the Prometheus exporter is only a `MetricReader` here (its own
 * HTTP server stays off), read on each scrape of `/metrics`.
 */
export const PrometheusLive: Layer.Layer<Prometheus> = Layer.unwrapEffect(
  Effect.sync(() => {
    const exporter = new PrometheusExporter({ preventServerStart: true })
    const serializer = new PrometheusSerializer()
    const scrape = Effect.map(
      Effect.promise(() => exporter.collect()),
      ({ resourceMetrics }) => serializer.serialize(resourceMetrics)
    )
    return Layer.succeed(Prometheus, { scrape }).pipe(
      // two copies of @opentelemetry/sdk-metrics meet here (the exporter's and @effect/opentelemetry's): same
      // interface, distinct private class members
      Layer.merge(Metrics.layer(() => exporter as any)),
      Layer.provide(Resource.layer({ serviceName: "effect-pg-pool-health-server" }))
    )
  })
)

const noStore = { "cache-control": "no-store" }

/** The three routes; they need the pool (`Db`) and the metrics exporter. */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/health",
    Effect.map(Db.health, (health) =>
      HttpServerResponse.unsafeJson(Health.encode(health), {
        status: health.status === "unhealthy" ? 503 : 200,
        headers: noStore
      })
    )
  ),
  HttpRouter.get(
    "/stats",
    Effect.map(Db.statistics, (stats) =>
      HttpServerResponse.unsafeJson(PoolStatistics.encode(stats), { headers: noStore })
    )
  ),
  HttpRouter.get(
    "/metrics",
    Effect.flatMap(Prometheus, ({ scrape }) =>
      Effect.map(scrape, (text) =>
        HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8", headers: noStore })
      )
    )
  )
)

/**
 * The HTTP server on `port` (0 picks a free one; read it from `HttpServer.HttpServer`'s `address`), serving the
 * routes for the `Db` it is given.
 *
 * @example
 * ```ts
 * const ServerLive = makeServerLayer({ port: 0 }).pipe(Layer.provideMerge(Db.layer({ url })))
 * const port = Effect.map(HttpServer.HttpServer, (server) => (server.address as HttpServer.TcpAddress).port)
 * ```
 */
export const makeServerLayer = (
  options: { readonly port?: number | undefined; readonly host?: string | undefined } = {}
): Layer.Layer<HttpServer.HttpServer, ServeError, Db.Db> =>
  HttpServer.serve(router).pipe(
    // load balancers poll /health and Prometheus scrapes /metrics many times a minute: a trace per poll is noise
    HttpMiddleware.withTracerDisabledForUrls(["/health", "/metrics"]),
    Layer.provide(PrometheusLive),
    Layer.provideMerge(
      NodeHttpServer.layer(() => Http.createServer(), {
        port: options.port ?? 3000,
        ...(options.host === undefined ? {} : { host: options.host })
      })
    )
  )

/**
 * The pool from the environment (`DATABASE_URL`, `DB_POOL_*`); without `DATABASE_URL`, on an embedded PostgreSQL
 * started for the occasion (and removed on exit), still honouring the `DB_POOL_*` settings.
 */
export const DbLive = Layer.unwrapScoped(
  Effect.gen(function* () {
    const url = yield* Effect.orElseSucceed(Config.option(Config.nonEmptyString("DATABASE_URL")), () => Option.none())
    if (Option.isSome(url)) return Db.layerFromEnv()
    const server = yield* PgTestServer.makeEmbedded()
    const withUrl = ConfigProvider.fromMap(new Map([["DATABASE_URL", Redacted.value(server.url)]]))
    return Db.layerFromEnv().pipe(
      Layer.provide(Layer.setConfigProvider(withUrl.pipe(ConfigProvider.orElse(() => ConfigProvider.fromEnv()))))
    )
  })
)

/** The whole service: the pool (see {@link DbLive}) and the HTTP server on `port`. */
export const HealthServerLive = (port: number) => makeServerLayer({ port }).pipe(Layer.provideMerge(DbLive))
