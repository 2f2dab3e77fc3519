/**
 * Client mode: one WebSocket connection to the server, kept up.
 *
 * Reconnection uses exponential backoff with jitter, capped (30 s by default),
 * so a fleet of clients does not hammer a server that comes back. Each state
 * change is logged once; failed attempts while down are logged at debug only.
 *
 * The Deno WebSocket client has no idle timeout, so a server that vanished
 * without a FIN would go unnoticed. With a peer that announces `heartbeat`, the
 * client sends `&cmd PING` each interval and gives the connection up when
 * nothing at all has arrived for two intervals.
 *
 * @module
 */

import { type PeerHandler, PeerLink } from "./peer_link.ts";
import { CommandCode, encodeCommand, REMOTE_COMMAND } from "../protocol.ts";
import type { Logger } from "../log.ts";

export interface RemoteClientOptions {
  url: string;
  heartbeatMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  maxMessageBytes: number;
  maxBufferedBytes: number;
  log: Logger;
}

/** How long one connection attempt may take before it is abandoned. */
const CONNECT_TIMEOUT_MS = 10_000;
/** How long shutdown waits for the server to confirm the close. */
const CLOSE_HANDSHAKE_MS = 2_000;
const PING = encodeCommand(REMOTE_COMMAND, CommandCode.PING, null);

export class RemoteClient {
  readonly #options: RemoteClientOptions;
  #handler: PeerHandler | undefined;
  #link: PeerLink | undefined;
  #failures = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  /** Whether the last state logged was "connected" (log changes once). */
  #wasUp: boolean | undefined;

  constructor(options: RemoteClientOptions) {
    this.#options = options;
  }

  /** The connection to the server, when it is open. */
  get link(): PeerLink | undefined {
    return this.#link?.isOpen ? this.#link : undefined;
  }

  start(handler: PeerHandler): void {
    this.#handler = handler;
    this.#connect();
  }

  /** PAUSE: drop the connection now and reconnect after `ms`. */
  pause(ms: number): void {
    if (this.#stopped) return;
    this.#options.log.info(`pausing: disconnecting for ${ms} ms`);
    clearTimeout(this.#timer);
    // Set the timer first: the close below must not schedule a backoff.
    this.#timer = setTimeout(() => this.#connect(), ms);
    const link = this.#link;
    this.#link = undefined;
    link?.close(1000, "paused");
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.#stopped) return;
    const { url, log } = this.#options;
    log.debug(`connecting to ${url}`);
    let socket: WebSocket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      log.error(`cannot connect to ${url}: ${(error as Error).message}`);
      this.#scheduleReconnect();
      return;
    }
    const link = new PeerLink(socket, url, this.#options);
    this.#link = link;
    let opened = false;
    const connectTimer = setTimeout(
      () => link.close(1000, "connect timed out"),
      CONNECT_TIMEOUT_MS,
    );
    link.attach({
      onOpen: (l) => {
        opened = true;
        clearTimeout(connectTimer);
        this.#failures = 0;
        log.info(`connected to ${url}`);
        this.#wasUp = true;
        this.#startHeartbeat(l);
        this.#handler?.onOpen(l);
      },
      onFrame: (l, text) => this.#handler?.onFrame(l, text),
      onClose: (l, reason) => {
        clearTimeout(connectTimer);
        if (this.#link === l) this.#link = undefined;
        this.#stopHeartbeat();
        const retry = this.#stopped || this.#timer !== undefined
          ? ""
          : "; reconnecting with backoff";
        if (opened) {
          this.#handler?.onClose(l, reason);
          log.warn(`disconnected from ${url}: ${reason}${retry}`);
        } else if (this.#wasUp !== false) {
          // Logged once per outage; later failed attempts only at debug.
          log.warn(`cannot reach ${url}: ${reason}${retry}`);
        } else {
          log.debug(`connection attempt to ${url} failed: ${reason}`);
        }
        this.#wasUp = false;
        this.#scheduleReconnect();
      },
    });
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const { reconnectMinMs, reconnectMaxMs } = this.#options;
    const ceiling = Math.min(
      reconnectMaxMs,
      reconnectMinMs * 2 ** Math.min(this.#failures, 20),
    );
    this.#failures++;
    // Jitter in [ceiling/2, ceiling] spreads clients that lost the same server.
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    this.#options.log.debug(`reconnecting in ${delay} ms`);
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  #startHeartbeat(link: PeerLink): void {
    const { heartbeatMs, log } = this.#options;
    this.#stopHeartbeat();
    this.#heartbeat = setInterval(() => {
      if (!link.has("heartbeat")) return;
      const silentMs = Date.now() - link.lastHeard;
      if (silentMs > 2 * heartbeatMs) {
        log.warn(`server silent for ${silentMs} ms; dropping the connection`);
        link.close(4000, "heartbeat lost");
        return;
      }
      link.send(PING);
    }, heartbeatMs);
  }

  #stopHeartbeat(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  /**
   * Stops reconnecting, closes the connection and waits (briefly) for the
   * close handshake, so statuses sent just before reach the server. A client
   * may not send 1001 (the WebSocket API allows it 1000 and 3000-4999), so it
   * says 1000 with the reason "going away".
   */
  async close(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#stopHeartbeat();
    const link = this.#link;
    link?.close(1000, "going away: client shutting down");
    await link?.closed(CLOSE_HANDSHAKE_MS);
  }
}
