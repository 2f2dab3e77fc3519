/**
 * One WebSocket connection to a peer, in either mode: what the peer announced
 * in HELLO, the requests it still owes a status for, and a bounded send.
 *
 * `send()` on a Deno WebSocket never blocks, so a peer that stops reading would
 * make the daemon buffer without limit; the link watches `bufferedAmount` and
 * cuts the connection once it passes the budget. Closing is idempotent and
 * reported once, whether the socket closed by itself or the daemon gave up on
 * it (a dead TCP connection may never deliver its close event).
 *
 * @module
 */

import { type Feature, FEATURES, type Hello } from "../protocol.ts";
import { PendingTable } from "./pending.ts";
import type { LocalConnection } from "../local/connection.ts";
import type { Logger } from "../log.ts";

export interface PeerHandler {
  onOpen(link: PeerLink): void;
  onFrame(link: PeerLink, text: string): void;
  onClose(link: PeerLink, reason: string): void;
}

export interface PeerLinkOptions {
  maxMessageBytes: number;
  maxBufferedBytes: number;
  log: Logger;
}

/** WebSocket close code for "going away", sent on shutdown. */
export const GOING_AWAY = 1001;

export class PeerLink {
  /** Where the peer is, e.g. `client#2 (127.0.0.1:40112)` or the server URL. */
  readonly label: string;
  hello: Hello | undefined;
  /** Requests sent to this peer, waiting for its STATUS. */
  readonly pending = new PendingTable<LocalConnection>();
  /** When the peer was last heard from, for the heartbeat. */
  lastHeard = Date.now();
  readonly #socket: WebSocket;
  readonly #options: PeerLinkOptions;
  #closed = false;
  #handler: PeerHandler | undefined;
  readonly #socketClosed = Promise.withResolvers<void>();

  constructor(socket: WebSocket, label: string, options: PeerLinkOptions) {
    this.#socket = socket;
    this.label = label;
    this.#options = options;
  }

  /** The peer's name from HELLO, else where it is. */
  get name(): string {
    return this.hello?.name || this.label;
  }

  get isOpen(): boolean {
    return !this.#closed && this.#socket.readyState === WebSocket.OPEN;
  }

  /** Whether both sides announced `feature`. */
  has(feature: Feature): boolean {
    return FEATURES.includes(feature) &&
      (this.hello?.features.includes(feature) ?? false);
  }

  /** Wires the socket's events to `handler`. */
  attach(handler: PeerHandler): void {
    this.#handler = handler;
    const socket = this.#socket;
    socket.onopen = () => handler.onOpen(this);
    socket.onmessage = (event) => {
      this.lastHeard = Date.now();
      if (this.#closed) return;
      if (typeof event.data !== "string") {
        this.#options.log.warn(
          `${this.name}: binary frame dropped (text only)`,
        );
        return;
      }
      if (event.data.length > this.#options.maxMessageBytes) {
        this.#options.log.warn(
          `${this.name}: frame of ${event.data.length} characters dropped (limit ${this.#options.maxMessageBytes} bytes)`,
        );
        return;
      }
      handler.onFrame(this, event.data);
    };
    socket.onerror = (event) => {
      const message = (event as ErrorEvent).message;
      if (message) this.#options.log.debug(`${this.label}: ${message}`);
    };
    socket.onclose = (event) => {
      this.#socketClosed.resolve();
      this.#finish(
        `closed with code ${event.code}${
          event.reason ? ` (${event.reason})` : ""
        }`,
      );
    };
  }

  /** Sends one text frame; false if it could not be sent. */
  send(text: string): boolean {
    if (!this.isOpen) return false;
    if (this.#socket.bufferedAmount > this.#options.maxBufferedBytes) {
      this.#options.log.warn(
        `${this.name}: more than ${this.#options.maxBufferedBytes} bytes unsent (peer not reading); disconnecting it`,
      );
      this.close(1008, "not reading");
      return false;
    }
    try {
      this.#socket.send(text);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Closes the connection and reports it closed at once. Frames sent before
   * are still delivered ahead of the close frame; `closed()` waits for that.
   */
  close(code = 1000, reason = ""): void {
    if (this.#closed) return;
    try {
      this.#socket.close(code, reason);
    } catch (error) {
      // Not open yet, or already closing; any other error is a bug here.
      if (
        !(error instanceof DOMException && error.name === "InvalidStateError")
      ) {
        throw error;
      }
      this.#socketClosed.resolve();
    }
    this.#finish(reason || `closed by this daemon (code ${code})`);
  }

  /** Resolves when the socket has closed, or after `timeoutMs`. */
  async closed(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([this.#socketClosed.promise, timeout]);
    clearTimeout(timer);
  }

  #finish(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handler?.onClose(this, reason);
  }
}
