/**
 * The HTTP side of server mode: a node:http (or, with a certificate,
 * node:https) listener that only upgrades to WebSocket, through npm:ws.
 *
 * Why not Deno.serve: it has no header-read or TLS-handshake timeout and no
 * per-connection hook, so a connection that sends half a request head, or
 * nothing, stays open for good (measured: still open after 600 s); and any
 * answer but the 101 after `Deno.upgradeWebSocket` closes its whole
 * listener. Here every connection gets `headTimeoutMs` to finish its request
 * head, from its first byte of TCP (before TLS), and each request is decided
 * by the daemon before ws sees it.
 *
 * @module
 */

import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import type { Socket } from "node:net";
import { WebSocketServer } from "ws";
import { checkUpgrade, type Refusal, refusalResponse } from "./upgrade.ts";
import type { LinkSocket } from "./peer_link.ts";
import type { Logger } from "../log.ts";

export interface ListenerOptions {
  /** PEM certificate and key: serve TLS. */
  tls?: { cert: string; key: string };
  /** How long a connection may take to send its whole request head. */
  headTimeoutMs: number;
  /**
   * Connections that may be waiting for their request head at once; more
   * are dropped as they connect, so slow connections cannot take every fd.
   */
  maxPending: number;
  /** Headers added to every 101 answer. */
  upgradeHeaders: Record<string, string>;
  /**
   * The longest frame taken; a longer one closes its connection with 1009
   * as soon as its header says so, before its payload is buffered.
   */
  maxFrameBytes: number;
  log: Logger;
  /**
   * Plain HTTP GETs this port also answers (`/healthz`, `/metrics` when
   * `metrics.shared`): undefined for a path it does not take.
   */
  http?: HttpRoutes;
}

/** Plain HTTP requests a listener answers besides its upgrades. */
export interface HttpRoutes {
  paths: readonly string[];
  respond(
    method: string,
    pathname: string,
    authorization: string | null,
  ): Promise<
    { status: number; headers: Record<string, string>; body: string }
  >;
}

/** What the daemon says of an upgrade request: refuse it, or take it. */
export type Decision =
  | { refuse: Refusal }
  | { accept: (socket: ServerSocket) => void };

/** A WebSocket of ws on the server side: the browser API, and liveness. */
export interface ServerSocket extends LinkSocket {
  ping(): void;
  terminate(): void;
  on(event: "pong", listener: () => void): void;
}

export interface UpgradeRequest {
  method: string;
  header(name: string): string | undefined;
  /** `host:port` of the remote end. */
  address: string;
}

/** Unfinished request heads one address may hold at once. */
const MAX_PENDING_PER_ADDRESS = 32;
/** How long a refused connection may take to read its answer. */
const REFUSAL_LINGER_MS = 2_000;

export class UpgradeListener {
  readonly #options: ListenerOptions;
  readonly #server: http.Server;
  readonly #ws: WebSocketServer;
  /** Open connections, each with its head timer until its request came. */
  readonly #connections = new Map<Socket, ReturnType<typeof setTimeout>>();
  /** Connections whose request head has not come yet, and their address. */
  readonly #pending = new Map<Socket, string>();
  /** How many of those each address holds. */
  readonly #pendingBy = new Map<string, number>();

  constructor(
    options: ListenerOptions,
    decide: (request: UpgradeRequest) => Decision,
  ) {
    this.#options = options;
    const { log } = options;
    this.#ws = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: options.maxFrameBytes,
    });
    this.#ws.on("headers", (headers: string[]) => {
      for (const [name, value] of Object.entries(options.upgradeHeaders)) {
        headers.push(`${name}: ${value}`);
      }
    });
    this.#server = options.tls
      ? https.createServer({ cert: options.tls.cert, key: options.tls.key })
      : http.createServer();
    this.#server.on("connection", (socket: Socket) => this.#track(socket));
    this.#server.on("upgrade", (req, socket, head) => {
      try {
        this.#upgrade(req, socket, head, decide);
      } catch (error) {
        log.error(`upgrade: ${(error as Error).stack ?? error}`);
        socket.destroy();
      }
    });
    // node:http sends a request here when it is no upgrade at all, or lacks
    // `Connection: upgrade`; either is refused with the same checks.
    this.#server.on("request", (req, res) => {
      this.#headDone(req.socket);
      const path = (req.url ?? "").split("?")[0];
      const routes = options.http;
      if (routes?.paths.includes(path)) {
        routes.respond(
          req.method ?? "",
          path,
          req.headers.authorization ?? null,
        )
          .then((answer) => {
            res.writeHead(answer.status, answer.headers);
            res.end(req.method === "HEAD" ? undefined : answer.body);
          }, (error) => {
            log.warn(`${path}: ${(error as Error).message}`);
            res.writeHead(500).end();
          });
        return;
      }
      const refusal = checkUpgrade(req.method ?? "", headerOf(req)) ??
        { status: 400, reason: "bad upgrade request" };
      res.writeHead(refusal.status, {
        "content-type": "text/plain; charset=utf-8",
        connection: "close",
        ...refusal.headers,
      });
      res.end(`ws-daemon: ${refusal.reason}\n`);
    });
    this.#server.on("clientError", (_error, socket: Duplex) => {
      if (socket.writable) {
        socket.end(refusalResponse({ status: 400, reason: "bad request" }));
      } else socket.destroy();
    });
    this.#server.on("tlsClientError", (error: Error, socket: Duplex) => {
      log.debug(`TLS handshake failed: ${error.message}`);
      socket.destroy();
    });
  }

  /** Starts listening; resolves with the port taken. */
  listen(hostname: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.#server.once("error", onError);
      this.#server.listen(port, hostname, () => {
        this.#server.off("error", onError);
        this.#server.on("error", (error: Error) => {
          this.#options.log.error(`WebSocket listener: ${error.message}`);
        });
        resolve((this.#server.address() as { port: number }).port);
      });
    });
  }

  /** A new TCP connection: it has headTimeoutMs to send its request head. */
  #track(socket: Socket): void {
    const { headTimeoutMs, log, maxPending } = this.#options;
    const address = socket.remoteAddress ?? "?";
    const fromAddress = this.#pendingBy.get(address) ?? 0;
    if (
      this.#pending.size >= maxPending || fromAddress >= MAX_PENDING_PER_ADDRESS
    ) {
      log.warn(
        `${address}: connection dropped: ${
          fromAddress >= MAX_PENDING_PER_ADDRESS
            ? `${fromAddress} connections from it are`
            : `${this.#pending.size} connections are`
        } still sending their request head`,
      );
      socket.destroy();
      return;
    }
    this.#pending.set(socket, address);
    this.#pendingBy.set(address, fromAddress + 1);
    const timer = setTimeout(() => {
      log.debug(
        `${socket.remoteAddress}:${socket.remotePort}: no request head within ${headTimeoutMs} ms; closing it`,
      );
      socket.destroy();
    }, headTimeoutMs);
    this.#connections.set(socket, timer);
    socket.once("close", () => {
      clearTimeout(this.#connections.get(socket));
      this.#connections.delete(socket);
      this.#unpend(socket);
    });
  }

  #unpend(socket: Socket): void {
    const address = this.#pending.get(socket);
    if (address === undefined) return;
    this.#pending.delete(socket);
    const left = (this.#pendingBy.get(address) ?? 1) - 1;
    if (left > 0) this.#pendingBy.set(address, left);
    else this.#pendingBy.delete(address);
  }

  /** The request head has come: the connection's head timer stops. */
  #headDone(socket: Duplex): void {
    // Behind TLS, 'connection' saw the TCP socket under this TLS socket.
    const tcp = (socket as { _parent?: Socket })._parent ?? socket as Socket;
    clearTimeout(this.#connections.get(tcp));
    this.#unpend(tcp);
  }

  #upgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Uint8Array,
    decide: (request: UpgradeRequest) => Decision,
  ): void {
    this.#headDone(socket);
    const tcp = (socket as { _parent?: Socket })._parent ?? socket as Socket;
    const header = headerOf(req);
    const method = req.method ?? "";
    const malformed = checkUpgrade(method, header);
    const decision: Decision = malformed ? { refuse: malformed } : decide({
      method,
      header,
      address: `${tcp.remoteAddress}:${tcp.remotePort}`,
    });
    if ("refuse" in decision) {
      socket.end(refusalResponse(decision.refuse));
      setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
      return;
    }
    this.#ws.handleUpgrade(req, socket, head, (ws: unknown) => {
      try {
        decision.accept(ws as ServerSocket);
      } catch (error) {
        this.#options.log.error(`accept: ${(error as Error).stack ?? error}`);
        (ws as ServerSocket).close(1011);
      }
    });
  }

  /** Stops listening and drops every connection still open. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) =>
      this.#server.close(() => resolve())
    );
    for (const socket of this.#connections.keys()) socket.destroy();
    await closed;
  }
}

function headerOf(
  req: http.IncomingMessage,
): (name: string) => string | undefined {
  return (name) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value.join(", ") : value;
  };
}
