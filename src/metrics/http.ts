/**
 * The health and metrics listener (`metrics` in the config): `GET /healthz`
 * (JSON; 200 when the daemon is ready, 503 when not: a client with no
 * server, or shutting down) and `GET /metrics` (the Prometheus text format,
 * behind `Authorization: Bearer <token>` when a token is set).
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import type { Logger } from "../log.ts";
import type { Metrics } from "./metrics.ts";

export interface Health {
  ready: boolean;
  [field: string]: unknown;
}

export interface MetricsServerOptions {
  hostname: string;
  port: number;
  token?: string;
  metrics: Metrics;
  health(): Health;
  log: Logger;
}

const encoder = new TextEncoder();

function bearerMatches(header: string | null, token: string): boolean {
  const match = header?.match(/^Bearer\s+(.+)$/i);
  if (!match) return false;
  const given = encoder.encode(match[1].trim());
  const wanted = encoder.encode(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

export class MetricsServer {
  readonly #options: MetricsServerOptions;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;

  constructor(options: MetricsServerOptions) {
    this.#options = options;
  }

  /** Starts listening; returns `http://host:port`. */
  start(): Promise<string> {
    const { hostname, port } = this.#options;
    const listening = Promise.withResolvers<string>();
    try {
      this.#server = Deno.serve({
        hostname,
        port,
        onListen: ({ hostname, port }) => {
          const host = hostname.includes(":") ? `[${hostname}]` : hostname;
          listening.resolve(`http://${host}:${port}`);
        },
        onError: (error) => {
          this.#options.log.warn(`metrics: ${(error as Error).message}`);
          return new Response("internal error\n", { status: 500 });
        },
      }, (request) => this.#handle(request));
    } catch (error) {
      throw new Error(
        `cannot listen for metrics on ${hostname}:${port}: ${
          (error as Error).message
        }`,
      );
    }
    return listening.promise;
  }

  async #handle(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("only GET\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    if (pathname === "/healthz") {
      const health = this.#options.health();
      return Response.json(health, { status: health.ready ? 200 : 503 });
    }
    if (pathname === "/metrics") {
      const { token, metrics } = this.#options;
      if (
        token !== undefined &&
        !bearerMatches(request.headers.get("authorization"), token)
      ) {
        return new Response("unauthorized\n", {
          status: 401,
          headers: { "www-authenticate": "Bearer" },
        });
      }
      return new Response(await metrics.text(), {
        headers: { "content-type": metrics.contentType },
      });
    }
    return new Response("not found: try /healthz or /metrics\n", {
      status: 404,
    });
  }

  async close(): Promise<void> {
    await this.#server?.shutdown();
  }
}
