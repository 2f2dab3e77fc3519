/**
 * One WebSocket connection to a peer, in either mode: where it is in its
 * lifecycle, who the peer is and what it may do, what it announced in HELLO,
 * and a bounded send. The requests it owes statuses for are the daemon's
 * (`outbox/`), so that they outlive the link.
 *
 * The lifecycle: `connecting` → `authenticated` (the server accepted the
 * upgrade: its secret or token was checked before it) → `introduced` (its
 * HELLO arrived, or, from an original that sends none, its first frame or a
 * silence) → `ready` (named, unique among the links, picked for requests) →
 * `closed`. Only a ready link is picked for requests.
 *
 * `send()` on a Deno WebSocket never blocks, so a peer that stops reading would
 * make the daemon buffer without limit; the link watches `bufferedAmount` and
 * cuts the connection once it passes the budget (`send_backlog.ts`). Closing
 * is idempotent and reported once, whether the socket closed by itself or the
 * daemon gave up on it (a dead TCP connection may never deliver its close
 * event).
 *
 * @module
 */

import { traffic } from "./traffic.ts";
import { type Feature, FEATURES, type Hello } from "../protocol.ts";
import type { Logger } from "../log.ts";
import { TokenBucket } from "../trust/rate.ts";
import type { Rate } from "../config.ts";
import { FRAME_SLACK_BYTES } from "./frame_limit.ts";
import { NOT_READING } from "./close_codes.ts";
import { SendBacklog } from "./send_backlog.ts";

export type LinkState =
  | "connecting"
  | "authenticated"
  | "introduced"
  | "ready"
  | "closed";

/** What a peer may do here; unset lists allow everything. */
export interface LinkPolicy {
  /** Script names or globs the peer may run on this daemon. */
  scripts?: string[];
  /** `&cmd` codes the peer may send. */
  commands?: string[];
}

/**
 * The parts of a WebSocket a link uses: the browser API, which both Deno's
 * WebSocket and npm:ws's implement.
 */
export interface LinkSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(text: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  /** npm:ws's: a ping frame, answered by a pong. */
  ping?(): void;
  /** npm:ws's: drops the TCP connection without a close handshake. */
  terminate?(): void;
  /** npm:ws's control frames, which say the peer is alive too. */
  on?(event: "ping" | "pong", listener: () => void): void;
}

export interface PeerHandler {
  onOpen(link: PeerLink): void;
  onFrame(link: PeerLink, text: string): void;
  /** The link is ready: named, unique, and may take requests. */
  onReady(link: PeerLink): void;
  onClose(link: PeerLink, reason: string): void;
}

/** What a link itself reports; readiness is the Remote's to decide. */
export type LinkEvents = Omit<PeerHandler, "onReady">;

export interface PeerLinkOptions {
  /** What this daemon announces in HELLO (default: every feature). */
  features?: readonly Feature[];
  maxMessageBytes: number;
  maxBufferedBytes: number;
  /** Requests per second this peer may send. */
  rate: Rate;
  log: Logger;
}

/**
 * How long a closing connection may wait for the peer's close frame before
 * its TCP connection is dropped: a peer that never answers must not keep it.
 */
const CLOSE_ABORT_MS = 3_000;

/** WebSocket readyState OPEN, the same in every implementation. */
const OPEN = 1;

export class PeerLink {
  /** Where the peer is, e.g. `client#2 (127.0.0.1:40112)` or the server URL. */
  readonly label: string;
  state: LinkState = "connecting";
  hello: Hello | undefined;
  /** The name of the token the peer presented, which is its name. */
  identity: string | undefined;
  policy: LinkPolicy = {};
  /** Requests and commands the peer may send, per second. */
  rate: TokenBucket;
  /** When the link opened. */
  readonly since = new Date();
  /** The WebSocket close code, once the socket has closed. */
  closeCode: number | undefined;
  /** When the peer was last heard from, for the heartbeat. */
  lastHeard = Date.now();
  /** Requests sent on this link whose status has come (PEERS). */
  done = 0;
  /** The last round trip measured, ping to pong, in ms (PEERS). */
  rttMs: number | undefined;
  #pingAt: number | undefined;
  readonly #socket: LinkSocket;
  readonly #options: PeerLinkOptions;
  #closed = false;
  readonly #backlog: SendBacklog;
  #handler: LinkEvents | undefined;
  #name: string | undefined;
  #aborting = false;
  /** Set while this daemon itself closes the socket. */
  #closing = false;
  readonly #socketClosed = Promise.withResolvers<void>();

  constructor(socket: LinkSocket, label: string, options: PeerLinkOptions) {
    this.#socket = socket;
    this.label = label;
    this.#options = options;
    this.#backlog = new SendBacklog(options);
    this.rate = new TokenBucket(options.rate);
    this.#watchPeerClose();
  }

  /** The peer's name once it is introduced, else where it is. */
  get name(): string {
    return this.#name ?? this.label;
  }

  /** Names the link: by its token, its HELLO, or as an original. */
  set name(name: string) {
    this.#name = name;
  }

  /** Name and place for logs: `web-1 (client#3 (10.0.0.5:41000))`. */
  get title(): string {
    return this.#name === undefined
      ? this.label
      : `${this.#name} (${this.label})`;
  }

  /** Bytes handed to the socket and not yet written. */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  /** The send backlog past which optional frames (events) are dropped. */
  get eventBudget(): number {
    return Math.floor(this.#options.maxBufferedBytes / 4);
  }

  get isOpen(): boolean {
    return !this.#closed && this.#socket.readyState === OPEN;
  }

  /** Open, introduced and unique: requests may go to it. */
  get isReady(): boolean {
    return this.state === "ready" && this.isOpen;
  }

  /** Whether both sides announced `feature`. */
  has(feature: Feature): boolean {
    return (this.#options.features ?? FEATURES).includes(feature) &&
      (this.hello?.features.includes(feature) ?? false);
  }

  /**
   * Wires the socket's events to `handler`. A handler that throws is logged
   * and the link goes on: an exception escaping a socket event would end the
   * daemon, and one after Deno's upgrade would hang its listener.
   */
  attach(handler: LinkEvents): void {
    this.#handler = handler;
    const socket = this.#socket;
    const guard = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (error) {
        this.#options.log.error(
          `${this.label}: ${what}: ${(error as Error).stack ?? error}`,
        );
      }
    };
    const opened = () => guard("open", () => handler.onOpen(this));
    // A socket the client dialled is open already.
    if (socket.readyState === OPEN) queueMicrotask(opened);
    else socket.onopen = opened;
    socket.onmessage = (event) => guard("frame", () => this.#onMessage(event));
    const heard = () => this.lastHeard = Date.now();
    socket.on?.("ping", heard);
    socket.on?.("pong", () => {
      heard();
      this.pong();
    });
    socket.onerror = (event) => {
      const message = (event as ErrorEvent).message;
      if (message) this.#options.log.debug(`${this.label}: ${message}`);
    };
    socket.onclose = (event) => {
      this.closeCode = event.code;
      this.#socketClosed.resolve();
      guard("close", () =>
        this.#finish(
          `closed with code ${event.code}${
            event.reason ? ` (${event.reason})` : ""
          }`,
        ));
    };
  }

  #onMessage(event: MessageEvent): void {
    this.lastHeard = Date.now();
    if (this.#closed) return;
    if (typeof event.data !== "string") {
      this.#options.log.warn(`${this.name}: binary frame dropped (text only)`);
      return;
    }
    if (
      event.data.length > this.#options.maxMessageBytes + FRAME_SLACK_BYTES
    ) {
      this.#options.log.warn(
        `${this.name}: frame of ${event.data.length} characters dropped (limit ${this.#options.maxMessageBytes} bytes)`,
      );
      return;
    }
    traffic.in += event.data.length;
    this.#handler!.onFrame(this, event.data);
  }

  /** Sends one text frame; false if it could not be sent. */
  send(text: string): boolean {
    if (!this.isOpen) return false;
    if (this.#backlog.overBudget(this.#socket.bufferedAmount)) {
      this.#options.log.warn(
        `${this.title}: ${this.#socket.bufferedAmount} bytes unsent (peer not reading); disconnecting it`,
      );
      this.close(NOT_READING, "not reading");
      return false;
    }
    try {
      this.#socket.send(text);
      traffic.out += text.length;
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
    this.#abortLater();
    this.#closing = true;
    try {
      this.#socket.close(code, reason);
    } catch (error) {
      // Not open yet, already closing, or a code this role may not send:
      // the link counts as closed either way.
      this.#options.log.debug(
        `${this.label}: close: ${(error as Error).message}`,
      );
      this.#socketClosed.resolve();
    }
    this.#finish(reason || `closed by this daemon (code ${code})`);
  }

  /** Drops the TCP connection if the close handshake does not end soon. */
  #abortLater(): void {
    const socket = this.#socket;
    if (!socket.terminate || this.#aborting) return;
    this.#aborting = true;
    const abort = setTimeout(() => socket.terminate?.(), CLOSE_ABORT_MS);
    this.#socketClosed.promise.then(() => clearTimeout(abort));
  }

  /**
   * npm:ws answers a peer's close frame by calling the socket's close()
   * itself, then waits up to 30 s for the peer to end TCP before it reports
   * the close. A peer that never does would hold its link (and a maxPeers
   * slot) for that long; seeing that call ends the link at once.
   */
  #watchPeerClose(): void {
    const socket = this.#socket;
    if (!socket.terminate) return;
    const close = socket.close.bind(socket);
    socket.close = (code?: number, reason?: string) => {
      close(code, reason);
      if (this.#closed || this.#closing) return;
      this.#abortLater();
      this.closeCode = code;
      this.#finish(
        `closed with code ${code ?? 1005}${reason ? ` (${reason})` : ""}`,
      );
    };
  }

  /** Sends a WebSocket ping, where the socket can. */
  ping(): void {
    try {
      if (this.isOpen && this.#socket.ping) {
        this.#socket.ping();
        this.pinged();
      }
    } catch {
      // Closing already.
    }
  }

  /** A ping (WebSocket or `&cmd PING`) went out now: its pong times it. */
  pinged(): void {
    this.#pingAt ??= performance.now();
  }

  /** The pong of the last ping came: the round trip is measured. */
  pong(): void {
    if (this.#pingAt === undefined) return;
    this.rttMs = Math.round((performance.now() - this.#pingAt) * 100) / 100;
    this.#pingAt = undefined;
  }

  /** Drops the connection at once, without a close handshake. */
  terminate(reason: string): void {
    try {
      this.#socket.terminate?.();
    } catch {
      // Gone already.
    }
    this.#socketClosed.resolve();
    this.#finish(reason);
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
    this.state = "closed";
    this.#handler?.onClose(this, reason);
  }
}
