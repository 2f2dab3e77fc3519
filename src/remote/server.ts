/**
 * Server mode: a WebSocket server (ws:// or, with `tls`, wss://) that clients
 * connect to.
 *
 * Everything about who may connect is decided from the request head, before
 * the upgrade (`listener.ts` has the HTTP side): a malformed upgrade is 400, a
 * foreign Origin 403, missing or wrong credentials 401, a full server 503.
 * Nothing of the daemon runs for a refused connection.
 *
 * Dead clients are found by WebSocket ping: a client that has answered
 * nothing, not even a pong, for two heartbeats is cut, and the requests it
 * owed fail.
 *
 * @module
 */

import {
  type PeerHandler,
  PeerLink,
  type PeerLinkOptions,
} from "./peer_link.ts";
import { GOING_AWAY, NO_HELLO, REPLACED } from "./close_codes.ts";
import { FRAME_SLACK_BYTES } from "./frame_limit.ts";
import { PeerSet } from "./peers.ts";
import {
  livenessTick,
  logIntroduction,
  PROJECT_HEADER,
  type Remote,
  silenceLimitMs,
} from "./remote.ts";
import {
  type Decision,
  type HttpRoutes,
  type ServerSocket,
  UpgradeListener,
  type UpgradeRequest,
} from "./listener.ts";
import type { Refusal } from "./upgrade.ts";
import { VERSION } from "../version.ts";
import { BearerCheck } from "../trust/auth.ts";
import { TokenBucket } from "../trust/rate.ts";
import type { Hello } from "../protocol.ts";
import type { ServerTrust } from "../config.ts";

/** Close code for a link whose token a reload removed (policy). */
const TOKEN_REVOKED = 4003;
/** How long shutdown waits for clients to confirm the close. */
const CLOSE_HANDSHAKE_MS = 2_000;

export interface RemoteServerOptions extends PeerLinkOptions {
  /** Unset: every interface (`::`, else `0.0.0.0`). */
  hostname?: string;
  port: number;
  heartbeatMs: number;
  trust: ServerTrust;
  maxPeers: number;
  handshakeTimeoutMs: number;
  allowedOrigins?: string[];
  /** Plain HTTP GETs the WebSocket port answers too (`metrics.shared`). */
  http?: HttpRoutes;
}

export class RemoteServer implements Remote {
  readonly mode = "server";
  readonly #peers = new PeerSet();
  readonly #options: RemoteServerOptions;
  #bearer: BearerCheck;
  readonly #listener: UpgradeListener;
  #nextId = 1;
  #accepting = true;
  #liveness: ReturnType<typeof setInterval> | undefined;

  constructor(options: RemoteServerOptions) {
    this.#options = options;
    this.#bearer = new BearerCheck(options.trust);
    this.#listener = new UpgradeListener({
      tls: options.trust.tls,
      headTimeoutMs: options.handshakeTimeoutMs,
      maxPending: options.maxPeers,
      upgradeHeaders: { [PROJECT_HEADER]: VERSION },
      maxFrameBytes: options.maxMessageBytes + FRAME_SLACK_BYTES,
      log: options.log,
      http: options.http,
    }, (request) => this.#decide(request));
  }

  #handler: PeerHandler | undefined;
  /** The rate bucket of each token's peer, kept across its connections. */
  readonly #buckets = new Map<string, TokenBucket>();

  #bucketOf(identity: string): TokenBucket {
    let bucket = this.#buckets.get(identity);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.#options.rate);
      this.#buckets.set(identity, bucket);
    }
    return bucket;
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
  async start(handler: PeerHandler): Promise<string> {
    this.#handler = handler;
    const { port, hostname } = this.#options;
    const candidates = hostname === undefined ? ["::", "0.0.0.0"] : [hostname];
    let shown = candidates[0];
    let bound: number | undefined;
    for (const [index, candidate] of candidates.entries()) {
      shown = candidate;
      try {
        bound = await this.#listener.listen(candidate, port);
        break;
      } catch (error) {
        // No IPv6 on this host: fall back to every IPv4 interface.
        const last = index === candidates.length - 1;
        if (last || (error as { code?: string }).code === "EADDRINUSE") {
          throw new Error(
            `cannot listen on ${candidate}:${port}: ${
              (error as Error).message
            }`,
          );
        }
      }
    }
    this.#startLiveness();
    const host = shown.includes(":") ? `[${shown}]` : shown;
    const scheme = this.#options.trust.tls ? "wss" : "ws";
    return `${scheme}://${host}:${bound}`;
  }

  /**
   * Pings every client each heartbeat; one silent for two heartbeats (no
   * frame, no pong) is cut. Its close handshake is not waited for: a dead
   * peer would never answer it.
   */
  #startLiveness(): void {
    const { heartbeatMs, log } = this.#options;
    const tick = livenessTick(heartbeatMs);
    const limit = silenceLimitMs(heartbeatMs);
    let lastPing = Date.now();
    this.#liveness = setInterval(() => {
      const now = Date.now();
      const ping = now - lastPing >= heartbeatMs;
      if (ping) lastPing = now;
      for (const link of this.#peers.all()) {
        const silentMs = now - link.lastHeard;
        if (silentMs > limit) {
          log.warn(
            `${link.title}: silent for ${silentMs} ms (no pong); dropping it`,
          );
          link.terminate("no answer to ping");
        } else if (ping) link.ping();
      }
    }, tick);
  }

  /** Who a request is, if it may be upgraded; else the response it gets. */
  #decide(request: UpgradeRequest): Decision {
    const verdict = this.#admit(request);
    if ("refuse" in verdict) return verdict;
    return {
      accept: (socket) => this.#accept(socket, request.address, verdict),
    };
  }

  #admit(request: UpgradeRequest): { refuse: Refusal } | Identity {
    const { log, allowedOrigins, maxPeers } = this.#options;
    const address = request.address;
    if (!this.#accepting) return refuse(503, "shutting down");
    const origin = request.header("origin") ?? null;
    if (
      origin !== null && allowedOrigins !== undefined &&
      !allowedOrigins.includes(origin)
    ) {
      log.warn(
        `${address}: upgrade refused (403): Origin ${
          JSON.stringify(origin.slice(0, 200))
        } is not in allowedOrigins`,
      );
      return refuse(403, "origin not allowed");
    }
    const auth = this.#bearer.check(request.header("authorization") ?? null);
    if (auth.kind === "refused") {
      log.warn(`${address}: connection refused (401): ${auth.reason}`);
      return refuse(401, "unauthorized", { "www-authenticate": "Bearer" });
    }
    const name = auth.kind === "peer" ? auth.name : undefined;
    // A peer that reconnects replaces its old link, so it does not count.
    const replaces = name !== undefined &&
      this.#peers.all().some((link) => link.identity === name);
    if (this.#peers.size >= maxPeers && !replaces) {
      log.warn(
        `${address}: connection refused (503): ${maxPeers} clients connected (maxPeers)`,
      );
      return refuse(503, "too many connections");
    }
    // Credentials, or the project's header, mean a daemon of this project,
    // which sends HELLO at once; an original can send neither.
    return {
      identity: name,
      mustHello: !this.#bearer.open ||
        request.header(PROJECT_HEADER) !== undefined,
    };
  }

  #accept(socket: ServerSocket, address: string, who: Identity): void {
    const handler = this.#handler!;
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
    if (link.identity !== undefined) {
      // A token's name is known now: its older link goes at once, so one
      // token holds one link (and one maxPeers slot) however often it dials,
      // and keeps one rate bucket across its connections.
      for (const old of this.#peers.all()) {
        if (old.identity !== link.identity) continue;
        log.warn(
          `peer ${link.identity}: a new connection (${link.label}) replaces ${old.label}`,
        );
        old.close(REPLACED, "replaced by a new connection");
      }
      link.rate = this.#bucketOf(link.identity);
    }
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
    let claimed = hello?.name || undefined;
    if (
      link.identity === undefined && claimed !== undefined &&
      this.#options.trust.peers.some((peer) => peer.name === claimed)
    ) {
      // Only that peer's token gives its name; a shared secret does not.
      log.warn(
        `${link.label}: says its name is ${
          JSON.stringify(claimed)
        }, which belongs to a peer with a token of its own; it is not that peer`,
      );
      claimed = undefined;
    }
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
    this.#handler?.onReady(link);
  }

  /**
   * New credentials (SIGHUP): new connections are checked against them, a
   * link whose token is gone is closed, the others get their new lists.
   */
  reloadTrust(trust: ServerTrust): void {
    const { log } = this.#options;
    if (
      this.#bearer.open !==
        (trust.secret === undefined && trust.peers.length === 0)
    ) {
      log.warn("SIGHUP: the server turns open or closed; existing links stay");
    }
    this.#options.trust = { ...trust, tls: this.#options.trust.tls };
    this.#bearer = new BearerCheck(trust);
    for (const link of this.#peers.all()) {
      if (link.identity === undefined) continue;
      const entry = trust.peers.find((peer) => peer.name === link.identity);
      if (entry === undefined) {
        link.close(TOKEN_REVOKED, "its token is no longer in peers");
      } else link.policy = { scripts: entry.scripts, commands: entry.commands };
    }
    log.info(
      `SIGHUP: credentials reloaded: ${trust.peers.length} peer token(s)${
        trust.secret === undefined ? "" : " and a shared secret"
      }`,
    );
  }

  /**
   * Refuses new clients, closes every connection with 1001, waits (briefly)
   * for the clients to confirm, and stops.
   */
  async close(): Promise<void> {
    this.#accepting = false;
    clearInterval(this.#liveness);
    const links = this.#peers.all();
    for (const link of links) link.close(GOING_AWAY, "server shutting down");
    await Promise.all(links.map((link) => link.closed(CLOSE_HANDSHAKE_MS)));
    await this.#listener.close();
  }
}

/** Who an accepted request is: its token's name, and whether it must HELLO. */
interface Identity {
  identity: string | undefined;
  mustHello: boolean;
}

function refuse(
  status: number,
  reason: string,
  headers: Record<string, string> = {},
): { refuse: Refusal } {
  return { refuse: { status, reason, headers } };
}
