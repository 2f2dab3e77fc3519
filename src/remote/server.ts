/**
 * Server mode: a WebSocket server (ws:// or, with `tls`, wss://) that clients
 * connect to.
 *
 * Everything about who may connect is decided from the request head, before
 * `Deno.upgradeWebSocket`: a malformed upgrade is 400, a foreign Origin 403,
 * missing or wrong credentials 401, a full server 503. Nothing of the daemon
 * runs for a refused connection. After the upgrade no handler code may throw:
 * with Deno 2.9.6 an exception there hangs the client and makes the listener
 * refuse every later connection.
 *
 * Dead clients are found by Deno's own ping/pong (`idleTimeout`): a client that
 * does not answer a ping in time is closed, and the requests it owed fail.
 *
 * @module
 */

import {
  GOING_AWAY,
  NO_HELLO,
  type PeerHandler,
  PeerLink,
  type PeerLinkOptions,
  REPLACED,
} from "./peer_link.ts";
import { PeerSet } from "./peers.ts";
import { logIntroduction, PROJECT_HEADER, type Remote } from "./remote.ts";
import { VERSION } from "../version.ts";
import { checkUpgrade } from "./upgrade.ts";
import { BearerCheck } from "../trust/auth.ts";
import type { Hello } from "../protocol.ts";
import type { ServerTrust } from "../config.ts";

export interface RemoteServerOptions extends PeerLinkOptions {
  /** Unset: every interface (`::`, else `0.0.0.0`). */
  hostname?: string;
  port: number;
  heartbeatMs: number;
  trust: ServerTrust;
  maxPeers: number;
  handshakeTimeoutMs: number;
  allowedOrigins?: string[];
}

export class RemoteServer implements Remote {
  readonly mode = "server";
  readonly #peers = new PeerSet();
  readonly #options: RemoteServerOptions;
  readonly #bearer: BearerCheck;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #nextId = 1;
  #accepting = true;

  constructor(options: RemoteServerOptions) {
    this.#options = options;
    this.#bearer = new BearerCheck(options.trust);
  }

  links(): PeerLink[] {
    return this.#peers.all();
  }

  pick(): PeerLink | undefined {
    return this.#peers.next();
  }

  whyNone(): string {
    return this.#peers.size === 0
      ? "no client is connected"
      : "no client is ready (none has finished its handshake)";
  }

  pause(): void {
    // The command table refuses PAUSE for a server before it gets here.
  }

  /** Starts listening; returns the URL clients connect to. */
  start(handler: PeerHandler): Promise<string> {
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
    const scheme = this.#options.trust.tls ? "wss" : "ws";
    return Promise.resolve(`${scheme}://${shown}:${server!.addr.port}`);
  }

  #serve(
    hostname: string,
    port: number,
    idleTimeout: number,
    handler: PeerHandler,
  ): Deno.HttpServer<Deno.NetAddr> {
    const { log, trust } = this.#options;
    return Deno.serve({
      hostname,
      port,
      ...(trust.tls ? { cert: trust.tls.cert, key: trust.tls.key } : {}),
      onListen: () => {},
      onError: (error) => {
        log.error(`WebSocket server: ${(error as Error).message}`);
        return new Response("internal error\n", { status: 500 });
      },
    }, (request, info) => {
      const address = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
      const verdict = this.#admit(request, address);
      if ("response" in verdict) return verdict.response;
      let upgraded;
      try {
        upgraded = Deno.upgradeWebSocket(request, { idleTimeout });
      } catch (error) {
        return refuse(400, `cannot upgrade: ${(error as Error).message}`);
      }
      try {
        upgraded.response.headers.set(PROJECT_HEADER, VERSION);
        this.#accept(upgraded.socket, address, handler, verdict);
      } catch (error) {
        // The 101 must still be returned: any other answer after an upgrade
        // closes Deno's whole listener. The client is told with 1011.
        log.error(`${address}: ${(error as Error).stack ?? error}`);
        upgraded.socket.onopen = () => upgraded.socket.close(1011);
      }
      return upgraded.response;
    });
  }

  /** Who a request is, if it may be upgraded; else the response it gets. */
  #admit(
    request: Request,
    address: string,
  ): { response: Response } | Identity {
    const { log, allowedOrigins, maxPeers } = this.#options;
    if (!this.#accepting) return { response: refuse(503, "shutting down") };
    const malformed = checkUpgrade(request);
    if (malformed) {
      log.debug(`${address}: upgrade refused (400): ${malformed.reason}`);
      return { response: malformed.response };
    }
    const origin = request.headers.get("origin");
    if (
      origin !== null && allowedOrigins !== undefined &&
      !allowedOrigins.includes(origin)
    ) {
      log.warn(
        `${address}: upgrade refused (403): Origin ${
          JSON.stringify(origin.slice(0, 200))
        } is not in allowedOrigins`,
      );
      return { response: refuse(403, "origin not allowed") };
    }
    const auth = this.#bearer.check(request.headers.get("authorization"));
    if (auth.kind === "refused") {
      log.warn(`${address}: connection refused (401): ${auth.reason}`);
      return {
        response: refuse(401, "unauthorized", { "www-authenticate": "Bearer" }),
      };
    }
    const name = auth.kind === "peer" ? auth.name : undefined;
    // A peer that reconnects replaces its old link, so it does not count.
    const replaces = name !== undefined &&
      this.#peers.named(name) !== undefined;
    if (this.#peers.size >= maxPeers && !replaces) {
      log.warn(
        `${address}: connection refused (503): ${maxPeers} clients connected (maxPeers)`,
      );
      return { response: refuse(503, "too many connections") };
    }
    // Credentials, or the project's header, mean a daemon of this project,
    // which sends HELLO at once; an original can send neither.
    return {
      identity: name,
      mustHello: !this.#bearer.open ||
        request.headers.get(PROJECT_HEADER) !== null,
    };
  }

  #accept(
    socket: WebSocket,
    address: string,
    handler: PeerHandler,
    who: Identity,
  ): void {
    const { log, trust, handshakeTimeoutMs } = this.#options;
    const link = new PeerLink(
      socket,
      `client#${this.#nextId++} (${address})`,
      this.#options,
    );
    link.state = "authenticated";
    link.identity = who.identity;
    const entry = trust.peers.find((peer) => peer.name === link.identity);
    link.policy = { scripts: entry?.scripts, commands: entry?.commands };
    this.#peers.add(link);
    let timer: ReturnType<typeof setTimeout> | undefined;
    link.attach({
      onOpen: (l) => {
        handler.onOpen(l);
        // An original never speaks first: it is ready as it is.
        if (!who.mustHello) return this.introduce(l, undefined);
        timer = setTimeout(() => {
          if (l.state !== "authenticated") return;
          log.warn(
            `${l.label}: no HELLO within ${handshakeTimeoutMs} ms; closing it`,
          );
          l.close(NO_HELLO, "no HELLO within handshakeTimeoutMs");
        }, handshakeTimeoutMs);
      },
      onFrame: (l, text) => handler.onFrame(l, text),
      onClose: (l, reason) => {
        clearTimeout(timer);
        this.#peers.delete(l);
        handler.onClose(l, reason);
      },
    });
  }

  introduce(link: PeerLink, hello: Hello | undefined): void {
    const { log } = this.#options;
    if (link.state === "closed") return;
    if (link.state === "ready" && (link.hello || !hello)) return;
    link.hello = hello;
    link.state = "introduced";
    const claimed = hello?.name || undefined;
    if (link.identity !== undefined) {
      if (claimed !== undefined && claimed !== link.identity) {
        log.warn(
          `${link.label}: says its name is ${
            JSON.stringify(claimed)
          }, but its token is ${link.identity}'s; it is ${link.identity}`,
        );
      }
      link.name = link.identity;
    } else {
      link.name = claimed ?? `peer-${link.label.match(/\d+/)![0]}`;
    }
    const old = this.#peers.named(link.name, link);
    if (old) {
      log.warn(
        `peer ${link.name}: a new connection (${link.label}) replaces ${old.label}`,
      );
      old.close(REPLACED, "replaced by a new connection");
    }
    link.state = "ready";
    logIntroduction(log, link, hello);
  }

  /** Refuses new clients, closes every connection with 1001, stops. */
  async close(): Promise<void> {
    this.#accepting = false;
    for (const link of this.#peers.all()) {
      link.close(GOING_AWAY, "server shutting down");
    }
    await this.#server?.shutdown();
  }
}

/** Who an accepted request is: its token's name, and whether it must HELLO. */
interface Identity {
  identity: string | undefined;
  mustHello: boolean;
}

function refuse(
  status: number,
  text: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(`ws-daemon: ${text}\n`, { status, headers });
}
