/**
 * Server mode: a WebSocket server that clients connect to.
 *
 * Dead clients are found by Deno's own ping/pong (`idleTimeout`): a client that
 * does not answer a ping in time is closed, and the requests it owed fail.
 *
 * @module
 */

import { GOING_AWAY, type PeerHandler, PeerLink } from "./peer_link.ts";
import { PeerSet } from "./peers.ts";
import type { Logger } from "../log.ts";

export interface RemoteServerOptions {
  /** Unset: every interface (`::`, else `0.0.0.0`). */
  hostname?: string;
  port: number;
  heartbeatMs: number;
  maxMessageBytes: number;
  maxBufferedBytes: number;
  log: Logger;
}

export class RemoteServer {
  readonly peers = new PeerSet();
  readonly #options: RemoteServerOptions;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #nextId = 1;
  #accepting = true;

  constructor(options: RemoteServerOptions) {
    this.#options = options;
  }

  /** Starts listening; returns the URL clients connect to. */
  listen(handler: PeerHandler): string {
    const { port, heartbeatMs } = this.#options;
    // Deno pings a client idle this long and drops it if no pong follows.
    const idleTimeout = Math.max(1, Math.ceil((heartbeatMs * 2) / 1000));
    const candidates = this.#options.hostname === undefined
      ? ["::", "0.0.0.0"]
      : [this.#options.hostname];
    let server: Deno.HttpServer<Deno.NetAddr> | undefined;
    let hostname = candidates[0];
    for (const [index, candidate] of candidates.entries()) {
      hostname = candidate;
      try {
        server = this.#serve(candidate, port, idleTimeout, handler);
        break;
      } catch (error) {
        // No IPv6 on this host: fall back to every IPv4 interface.
        const last = index === candidates.length - 1;
        if (last || error instanceof Deno.errors.AddrInUse) {
          throw new Error(
            `cannot listen on ${candidate}:${port}: ${
              (error as Error).message
            }`,
          );
        }
      }
    }
    this.#server = server;
    const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
    return `ws://${shown}:${server!.addr.port}`;
  }

  #serve(
    hostname: string,
    port: number,
    idleTimeout: number,
    handler: PeerHandler,
  ): Deno.HttpServer<Deno.NetAddr> {
    const { log } = this.#options;
    return Deno.serve({
      hostname,
      port,
      onListen: () => {},
      onError: (error) => {
        log.error(`WebSocket server: ${(error as Error).message}`);
        return new Response("internal error", { status: 500 });
      },
    }, (request, info) => {
      if (!this.#accepting) {
        return new Response("shutting down", { status: 503 });
      }
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("ws-daemon: WebSocket connections only\n", {
          status: 426,
          headers: { upgrade: "websocket" },
        });
      }
      // remoteAddr cannot be read once the request is upgraded.
      const address = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
      const { socket, response } = Deno.upgradeWebSocket(request, {
        idleTimeout,
      });
      const link = new PeerLink(
        socket,
        `client#${this.#nextId++} (${address})`,
        this.#options,
      );
      this.peers.add(link);
      link.attach({
        onOpen: (l) => handler.onOpen(l),
        onFrame: (l, text) => handler.onFrame(l, text),
        onClose: (l, reason) => {
          this.peers.delete(l);
          handler.onClose(l, reason);
        },
      });
      return response;
    });
  }

  /** Refuses new clients, closes every connection with 1001, stops. */
  async close(): Promise<void> {
    this.#accepting = false;
    for (const link of this.peers.all()) {
      link.close(GOING_AWAY, "server shutting down");
    }
    await this.#server?.shutdown();
  }
}
