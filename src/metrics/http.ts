/**
 * The health and metrics endpoints (`metrics` in the config), on a listener
 * of their own or, with `shared`, on a server's WebSocket port: `GET /healthz`
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

/** An HTTP answer, as either listener writes it. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function text(
  status: number,
  body: string,
  headers: Record<string, string> = {},
): HttpAnswer {
  return {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
    body,
  };
}

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
    const answer = await this.respond(
      request.method,
      new URL(request.url).pathname,
      request.headers.get("authorization"),
    );
    return new Response(answer.body, answer);
  }

  /**
   * The answer to one request, whichever listener took it: this one, or
   * a server's WebSocket port (`metrics.shared`).
   */
  async respond(
    method: string,
    pathname: string,
    authorization: string | null,
  ): Promise<HttpAnswer> {
    if (method !== "GET" && method !== "HEAD") {
      return text(405, "only GET\n", { allow: "GET, HEAD" });
    }
    if (pathname === "/healthz") {
      const health = this.#options.health();
      return {
        status: health.ready ? 200 : 503,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(health),
      };
    }
    if (pathname === "/metrics") {
      const { token, metrics } = this.#options;
      if (token !== undefined && !bearerMatches(authorization, token)) {
        return text(401, "unauthorized\n", { "www-authenticate": "Bearer" });
      }
      return {
        status: 200,
        headers: { "content-type": metrics.contentType },
        body: await metrics.text(),
      };
    }
    return text(404, "not found: try /healthz or /metrics\n");
  }

  async close(): Promise<void> {
    await this.#server?.shutdown();
  }
}
