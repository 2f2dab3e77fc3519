/**
 * The client side of a WebSocket link, `ws://` and `wss://` through one path.
 *
 * Why npm:ws over node:net/node:tls and not Deno's own WebSocket:
 * - Deno's WebSocket can take a `Deno.createHttpClient({ caCerts })`, but
 *   those certificates are added to the roots: there is no way to accept one
 *   exact certificate (a pin) and refuse every other, nor to see the server's
 *   certificate before the upgrade request, which carries the secret, is sent.
 * - A refused upgrade surfaces in Deno's WebSocket as a bare error event; the
 *   HTTP status (401 wrong secret, 503 full, …) that tells the operator what to
 *   fix is lost. ws reports the response itself ('unexpected-response').
 *
 * So the socket is connected here, the pin is checked on that very TLS
 * connection, and only then is it handed to ws (`createConnection` returns it
 * already connected, which Deno's node:http accepts), so no byte of the
 * request leaves before the server has proven who it is.
 *
 * @example
 * ```ts
 * const socket = await dial({
 *   url: "wss://server.example:3006/",
 *   secret: "s3cret",
 *   pin: "sha256:14baed4e68179fafb7d9ea73435ca58295cb3c7381ec05161cc777dab799cb34",
 *   timeoutMs: 10_000,
 * });
 * socket.onmessage = (event) => console.log(event.data);
 * ```
 *
 * @module
 */

import WsWebSocket from "ws";
import net from "node:net";
import tls from "node:tls";
import type { ClientRequest, IncomingMessage } from "node:http";
import { parsePin } from "../tls/pin.ts";

export interface DialOptions {
  /** `ws://` or `wss://` URL of the server. */
  url: string;
  /** Sent as `Authorization: Bearer <secret>` in the upgrade request. */
  secret?: string;
  /** PEM of a CA trusted in addition to the system roots (`wss://` only). */
  ca?: string;
  /**
   * `sha256:<64 hex>`: accept exactly the server certificate with that
   * fingerprint, whoever issued it, and refuse any other, even one `ca` or a
   * public CA vouches for (`wss://` only).
   */
  pin?: string;
  /** Deadline for the whole attempt: TCP, TLS and the upgrade. */
  timeoutMs: number;
  /** The longest frame taken; a longer one closes the link (1009). */
  maxPayload?: number;
  /** Called with the headers of the server's 101 answer, before open. */
  onUpgrade?: (headers: Record<string, string | string[] | undefined>) => void;
  /** Extra headers for the upgrade request. */
  headers?: Record<string, string>;
}

export type DialErrorKind =
  | "refused-http"
  | "tls"
  | "pin"
  | "network"
  | "timeout";

export class DialError extends Error {
  readonly kind: DialErrorKind;
  /** The server's answer when it refused the upgrade (`refused-http`). */
  readonly httpStatus?: number;

  constructor(kind: DialErrorKind, message: string, httpStatus?: number) {
    super(message);
    this.name = "DialError";
    this.kind = kind;
    this.httpStatus = httpStatus;
  }
}

/** Frames larger than this are refused (the daemon's frames are far smaller). */
const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

/** The part of ws's EventEmitter side this module uses (ws ships no types). */
interface NodeWs {
  binaryType: string;
  on(
    event: "unexpected-response",
    listener: (req: ClientRequest, res: IncomingMessage) => void,
  ): void;
  on(event: "open" | "close", listener: () => void): void;
  on(event: "upgrade", listener: (res: IncomingMessage) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
  removeAllListeners(event: string): void;
  pause(): void;
  resume(): void;
  terminate(): void;
}

/**
 * Opens a WebSocket to `url`. Resolves with an OPEN socket that has the
 * browser WebSocket API (text frames arrive as strings, binary ones as
 * ArrayBuffer); rejects with a {@linkcode DialError}, after every socket and
 * timer of the attempt is gone. Bad options reject with a TypeError.
 */
export async function dial(options: DialOptions): Promise<WebSocket> {
  const { url, secret, ca, timeoutMs, headers = {} } = options;
  const target = parseTarget(url);
  const pin = options.pin === undefined ? undefined : parsePin(options.pin);
  if (options.pin !== undefined && pin === undefined) {
    throw new TypeError(
      `Cannot dial as 'pin' must be "sha256:" and 64 hex digits: current value is ${
        JSON.stringify(options.pin)
      }`,
    );
  }
  if (!target.secure && (pin || ca)) {
    throw new TypeError(
      `Cannot dial as 'pin' and 'ca' need a wss:// URL: current value is ${url}`,
    );
  }
  const upgradeHeaders = { ...headers };
  if (secret !== undefined) upgradeHeaders.Authorization = `Bearer ${secret}`;

  const { promise, resolve, reject } = Promise.withResolvers<WebSocket>();
  let settled = false;
  let tcpUp = false;
  let socketClosed = false;
  let ws: NodeWs | undefined;

  const socket: net.Socket = target.secure
    ? tls.connect({
      host: target.host,
      port: target.port,
      // SNI must not carry an IP literal; "" turns it off and makes Node
      // check the IP against the certificate's IP SANs instead.
      servername: net.isIP(target.host) ? "" : target.host,
      // With a pin the chain does not matter: the fingerprint decides below.
      rejectUnauthorized: !pin,
      ca: ca ? [...tls.rootCertificates, ca] : undefined,
      ALPNProtocols: ["http/1.1"],
    })
    : net.connect({ host: target.host, port: target.port });

  const timer = setTimeout(() => {
    fail(
      new DialError(
        "timeout",
        `no connection to ${target.where} within ${timeoutMs} ms`,
      ),
    );
  }, timeoutMs);

  // Settles only once the socket is closed, so a caller (or a test's resource
  // sanitizer) never sees a half-torn-down attempt.
  function fail(error: DialError): void {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (ws) ws.terminate();
    socket.destroy();
    if (socketClosed) reject(error);
    else socket.once("close", () => reject(error));
  }

  const onClose = () => {
    socketClosed = true;
    fail(new DialError("network", `${target.where} closed the connection`));
  };
  // Before ws has the socket, an error is the TCP connect's or, once TCP is
  // up on wss://, the TLS handshake's (a bad chain or name lands here).
  const onError = (error: Error) => {
    const kind = target.secure && tcpUp && !ws ? "tls" : "network";
    const what = kind === "tls" ? "TLS handshake with" : "connecting to";
    fail(
      new DialError(kind, `${what} ${target.where} failed: ${error.message}`),
    );
  };
  socket.once("close", onClose);
  socket.on("error", onError);
  socket.once("connect", () => {
    tcpUp = true;
    if (!target.secure) upgrade();
  });
  socket.once("secureConnect", () => {
    if (pin) {
      const found = normalise((socket as tls.TLSSocket).getPeerCertificate());
      if (found !== pin) {
        fail(
          new DialError(
            "pin",
            `${target.where} presented certificate ${found}, expected the pinned ${pin}`,
          ),
        );
        return;
      }
    }
    upgrade();
  });

  function upgrade(): void {
    if (settled) return;
    let client: NodeWs;
    try {
      client = new WsWebSocket(url, {
        createConnection: () => socket,
        headers: upgradeHeaders,
        perMessageDeflate: false,
        maxPayload: options.maxPayload ?? MAX_PAYLOAD_BYTES,
        followRedirects: false,
        // No handshakeTimeout: the one deadline above covers the upgrade too.
      });
    } catch (error) {
      // e.g. a header value node:http refuses; thrown inside a socket event.
      fail(new DialError("network", `cannot upgrade: ${String(error)}`));
      return;
    }
    ws = client;
    client.binaryType = "arraybuffer";
    client.on("unexpected-response", (_req, res) => {
      const status = res.statusCode ?? 0;
      fail(
        new DialError(
          "refused-http",
          `server refused the connection: ${status} ${res.statusMessage ?? ""}`
            .trimEnd(),
          status,
        ),
      );
    });
    client.on("error", (error) => {
      fail(
        new DialError(
          "network",
          `WebSocket handshake with ${target.where} failed: ${error.message}`,
        ),
      );
    });
    client.on("upgrade", (res) => options.onUpgrade?.(res.headers));
    client.on("open", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off("close", onClose);
      socket.off("error", onError);
      for (const event of ["unexpected-response", "error", "open", "upgrade"]) {
        client.removeAllListeners(event);
      }
      // An EventEmitter 'error' with no listener throws; a browser WebSocket
      // only fires onerror and then closes. Keep the latter.
      client.on("error", () => {});
      // Frames that came with the 101 are parsed on a tick, which can run
      // before the caller's `await dial()` resumes and sets onmessage. Hold
      // reading for one task, so handlers set right after the await see every
      // frame, as with a browser WebSocket.
      client.pause();
      setTimeout(() => client.resume(), 0);
      resolve(client as unknown as WebSocket);
    });
  }

  return await promise;
}

interface Target {
  secure: boolean;
  host: string;
  port: number;
  /** `host:port`, for messages. */
  where: string;
}

function parseTarget(url: string): Target {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(
      `Cannot dial as 'url' is not a URL: current value is ${url}`,
    );
  }
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new TypeError(
      `Cannot dial as 'url' must start with ws:// or wss://: current value is ${url}`,
    );
  }
  const secure = parsed.protocol === "wss:";
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = parsed.port ? Number(parsed.port) : secure ? 443 : 80;
  return { secure, host, port, where: `${parsed.hostname}:${port}` };
}

/** Node prints `AB:CD:…`; pins are `sha256:abcd…`. */
function normalise(cert: tls.PeerCertificate): string {
  const hex = (cert.fingerprint256 ?? "").replace(/:/g, "").toLowerCase();
  return `sha256:${hex || "none"}`;
}
