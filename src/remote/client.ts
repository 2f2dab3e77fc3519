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

import {
  type LinkSocket,
  type PeerHandler,
  PeerLink,
  type PeerLinkOptions,
} from "./peer_link.ts";
import { NO_HELLO, REPLACED } from "./close_codes.ts";
import { FRAME_SLACK_BYTES } from "./frame_limit.ts";
import {
  livenessTick,
  logIntroduction,
  PROJECT_HEADER,
  type Remote,
  silenceLimitMs,
} from "./remote.ts";
import { dial, DialError } from "./dial.ts";
import { VERSION } from "../version.ts";
import {
  CommandCode,
  encodeCommand,
  type Hello,
  REMOTE_COMMAND,
} from "../protocol.ts";
import type { ClientTrust } from "../config.ts";

export interface RemoteClientOptions extends PeerLinkOptions {
  url: string;
  heartbeatMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** How long one connection attempt may take before it is abandoned. */
  handshakeTimeoutMs: number;
  trust: ClientTrust;
  /** `sha256:<hex>` of the only server certificate accepted. */
  pin?: string;
  /** Scripts the server may run here; unset: every script. */
  peerScripts?: string[];
}

/** How long shutdown waits for the server to confirm the close. */
const CLOSE_HANDSHAKE_MS = 2_000;
const PING = encodeCommand(REMOTE_COMMAND, CommandCode.PING, null);

/** A link up this long was not caught in a replacement loop. */
const STABLE_MS = 60_000;

export class RemoteClient implements Remote {
  readonly mode = "client";
  readonly #options: RemoteClientOptions;
  #handler: PeerHandler | undefined;
  #link: PeerLink | undefined;
  #failures = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  #connections = 0;
  /** Numbers dial attempts; a stale one's socket is closed on arrival. */
  #attempt = 0;
  /** How the last connection attempt failed, to say each kind once. */
  #lastFailure: string | undefined;
  /** Times in a row another connection took this client's name (4009). */
  #replaced = 0;

  constructor(options: RemoteClientOptions) {
    this.#options = options;
  }

  links(): PeerLink[] {
    return this.#link?.isOpen ? [this.#link] : [];
  }

  pick(): PeerLink | undefined {
    return this.#link?.isReady ? this.#link : undefined;
  }

  whyNone(): string {
    return this.#link?.isOpen
      ? "the connection to the server has not finished its handshake"
      : "not connected to the server";
  }

  start(handler: PeerHandler): Promise<string> {
    this.#handler = handler;
    this.#connect();
    return Promise.resolve(`server ${this.#options.url}`);
  }

  introduce(link: PeerLink, hello: Hello | undefined): void {
    if (link.state === "closed") return;
    if (link.state === "ready" && (link.hello || !hello)) return;
    link.hello = hello;
    link.state = "introduced";
    link.name = hello?.name || `peer-${this.#connections}`;
    link.state = "ready";
    logIntroduction(this.#options.log, link, hello);
    this.#handler?.onReady(link);
  }

  reloadTrust(trust: ClientTrust, peerScripts?: string[]): void {
    // The secret counts from the next connection attempt on; what the
    // server may run here, at once.
    this.#options.trust = trust;
    this.#options.peerScripts = peerScripts;
    if (this.#link) this.#link.policy = { scripts: peerScripts };
    this.#options.log.info("SIGHUP: credentials and peerScripts reloaded");
  }

  /** PAUSE: drop the connection now and reconnect after `ms`. */
  pause(ms: number): void {
    if (this.#stopped) return;
    this.#options.log.info(`pausing: disconnecting for ${ms} ms`);
    clearTimeout(this.#timer);
    // A dial still under way must not open a second link beside the next.
    this.#attempt++;
    // Set the timer first: the close below must not schedule a backoff.
    this.#timer = setTimeout(() => this.#connect(), ms);
    const link = this.#link;
    this.#link = undefined;
    link?.close(1000, "paused");
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.#stopped) return;
    const { url, log, handshakeTimeoutMs, trust, maxMessageBytes } =
      this.#options;
    log.debug(`connecting to ${url}`);
    const attempt = ++this.#attempt;
    const deadline = Date.now() + handshakeTimeoutMs;
    let speaksHello = false;
    dial({
      url,
      secret: trust.secret,
      ca: trust.ca,
      pin: this.#options.pin,
      timeoutMs: handshakeTimeoutMs,
      headers: { [PROJECT_HEADER]: VERSION },
      maxPayload: maxMessageBytes + FRAME_SLACK_BYTES,
      onUpgrade: (headers) =>
        speaksHello = headers[PROJECT_HEADER] !== undefined,
    }).then(
      (socket) => {
        const link = socket as unknown as LinkSocket;
        // Paused, stopped or superseded while dialling: not wanted any more.
        if (attempt !== this.#attempt || this.#stopped) {
          link.close(1000, "going away: connection no longer wanted");
        } else this.#opened(link, speaksHello, deadline);
      },
      (error) => {
        if (attempt === this.#attempt) this.#failed(error as Error);
      },
    );
  }

  /** A connection attempt that failed before the WebSocket opened. */
  #failed(error: Error): void {
    const { url, log } = this.#options;
    const reason = error instanceof DialError && error.kind === "refused-http"
      ? error.httpStatus === 401
        ? `${error.message}: the server does not accept this client's secret`
        : error.message
      : error.message;
    // Each kind of failure is said once per outage; retries that fail the
    // same way go to debug, a new way of failing is said again.
    const kind = error instanceof DialError
      ? `${error.kind}${error.httpStatus ?? ""}`
      : "error";
    if (kind === this.#lastFailure) {
      log.debug(`connection attempt to ${url} failed: ${reason}`);
    } else if (error instanceof DialError && error.httpStatus === 401) {
      log.error(`cannot connect to ${url}: ${reason}; retrying with backoff`);
    } else {
      log.warn(`cannot reach ${url}: ${reason}; reconnecting with backoff`);
    }
    this.#lastFailure = kind;
    this.#scheduleReconnect();
  }

  #opened(socket: LinkSocket, speaksHello: boolean, deadline: number): void {
    const { url, log, handshakeTimeoutMs } = this.#options;
    const link = new PeerLink(socket, url, this.#options);
    link.policy = { scripts: this.#options.peerScripts };
    this.#link = link;
    this.#connections++;
    let helloTimer: ReturnType<typeof setTimeout> | undefined;
    link.attach({
      onOpen: (l) => {
        l.state = "authenticated";
        // After a replacement the backoff must not reset, or two clients
        // with one name take it from each other several times a second.
        this.#failures = this.#replaced > 0 ? 2 + this.#replaced : 0;
        log.info(`connected to ${url}`);
        this.#startHeartbeat(l);
        this.#handler?.onOpen(l);
        // A server of this project says so in its 101 and then HELLO; an
        // original never speaks first, and is ready as it is.
        if (!speaksHello) this.introduce(l, undefined);
        else {
          // One handshakeTimeoutMs covers the dial and the HELLO.
          helloTimer = setTimeout(() => {
            if (l.state !== "authenticated") return;
            log.warn(`server sent no HELLO within ${handshakeTimeoutMs} ms`);
            l.close(NO_HELLO, "no HELLO within handshakeTimeoutMs");
          }, Math.max(0, deadline - Date.now()));
        }
      },
      onFrame: (l, text) => this.#handler?.onFrame(l, text),
      onClose: (l, reason) => {
        clearTimeout(helloTimer);
        if (this.#link !== l) {
          // An older link (paused away): its requests are answered, and the
          // current link's heartbeat and reconnecting are left alone.
          this.#handler?.onClose(l, reason);
          return;
        }
        this.#link = undefined;
        this.#stopHeartbeat();
        if (l.closeCode === REPLACED) {
          // Two clients with one name would replace each other for ever:
          // each time, wait longer before taking the name back.
          this.#replaced++;
          this.#failures = Math.max(this.#failures, 2 + this.#replaced);
          log.error(
            `another connection to the server took this client's name (${l.name}); give each client its own name or token`,
          );
        } else if (Date.now() - l.since.getTime() > STABLE_MS) {
          this.#replaced = 0;
        }
        const retry = this.#stopped || this.#timer !== undefined
          ? ""
          : "; reconnecting with backoff";
        this.#handler?.onClose(l, reason);
        log.warn(`disconnected from ${url}: ${reason}${retry}`);
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
    // Checked forty times per interval (livenessTick): silence is caught
    // at 2 × heartbeatMs of the last frame, whatever the timer's phase.
    const tick = livenessTick(heartbeatMs);
    const limit = silenceLimitMs(heartbeatMs);
    let lastPing = 0; // the first PING at the first tick: a fresh link's check
    this.#heartbeat = setInterval(() => {
      if (!link.has("heartbeat")) return;
      const now = Date.now();
      const silentMs = now - link.lastHeard;
      if (silentMs > limit) {
        log.warn(`server silent for ${silentMs} ms; dropping the connection`);
        link.terminate("heartbeat lost");
        return;
      }
      if (now - lastPing >= heartbeatMs) {
        lastPing = now;
        if (link.send(PING)) link.pinged();
      }
    }, tick);
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
