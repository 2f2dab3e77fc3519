/**
 * A raw WebSocket peer that speaks the literal frames of PROTOCOL.md Part 1,
 * as an original daemon would: it sends exactly the text a test gives it and
 * hands the test exactly the text it receives, nothing parsed or added. It
 * announces no features (it never sends HELLO).
 *
 * - {@linkcode RawPeerServer}: a WebSocket server on 127.0.0.1, port 0, that a
 *   client-mode daemon connects to.
 * - {@linkcode RawPeerClient}: connects to a server-mode daemon's URL.
 *
 * Every socket and the server are closed by `Symbol.asyncDispose`, so the
 * op/resource sanitizers pass.
 *
 * @module
 */

import { deadline } from "./wait.ts";

/** One WebSocket connection, as frames in and frames out. */
export class RawConnection {
  readonly socket: WebSocket;
  /** Resolves with the close event when the connection has closed. */
  readonly closed: Promise<CloseEvent>;
  readonly #frames: string[] = [];
  #waiting: (() => void) | undefined;
  #isClosed = false;

  constructor(socket: WebSocket) {
    this.socket = socket;
    const { promise, resolve } = Promise.withResolvers<CloseEvent>();
    this.closed = promise;
    socket.onmessage = (event) => {
      this.#frames.push(
        typeof event.data === "string"
          ? event.data
          : `<binary frame: ${String(event.data)}>`,
      );
      this.#waiting?.();
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      this.#isClosed = true;
      resolve(event);
      this.#waiting?.();
    };
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Frames received and not yet taken. */
  get buffered(): number {
    return this.#frames.length;
  }

  /** The next text frame, exactly as received. */
  next(timeoutMs = 10_000): Promise<string> {
    const wait = async () => {
      while (this.#frames.length === 0) {
        if (this.#isClosed) {
          throw new Error("connection closed while waiting for a frame");
        }
        await new Promise<void>((resolve) => this.#waiting = resolve);
      }
      return this.#frames.shift()!;
    };
    return deadline(wait(), timeoutMs, "a frame from the daemon");
  }

  /** The next frame, parsed as JSON. */
  async nextJson(timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const text = await this.next(timeoutMs);
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`frame is not JSON: ${JSON.stringify(text)}`);
    }
  }

  /** Sends one text frame, exactly as given. */
  send(text: string): void {
    this.socket.send(text);
  }

  /** Resolves when the daemon has closed the connection. */
  async waitClosed(timeoutMs = 10_000): Promise<CloseEvent> {
    return await deadline(this.closed, timeoutMs, "the connection to close");
  }

  /** Closes the connection and waits for it to be closed. */
  async close(): Promise<void> {
    if (!this.#isClosed) {
      try {
        this.socket.close();
      } catch {
        // Not open yet, or already closing.
      }
    }
    await deadline(this.closed, 10_000, "the raw peer's socket to close");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A WebSocket server on 127.0.0.1 (port 0) that plays an original server. */
export class RawPeerServer {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  /** Every upgraded connection, open or not, so close() reaches them all. */
  readonly #all: RawConnection[] = [];
  /** Connections in the order they opened. */
  readonly #connections: RawConnection[] = [];
  #accepted = 0;
  #waiting: (() => void) | undefined;

  private constructor() {
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: () => {},
    }, (request) => {
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("WebSocket only", { status: 426 });
      }
      const { socket, response } = Deno.upgradeWebSocket(request);
      const connection = new RawConnection(socket);
      this.#all.push(connection);
      socket.addEventListener("open", () => {
        this.#connections.push(connection);
        this.#waiting?.();
      });
      return response;
    });
  }

  static listen(): RawPeerServer {
    return new RawPeerServer();
  }

  get port(): number {
    return this.#server.addr.port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** How many connections have opened so far. */
  get connectionCount(): number {
    return this.#connections.length;
  }

  /** The next connection to open (in order), once it is open. */
  accept(timeoutMs = 10_000): Promise<RawConnection> {
    const wait = async () => {
      while (this.#connections.length <= this.#accepted) {
        await new Promise<void>((resolve) => this.#waiting = resolve);
      }
      return this.#connections[this.#accepted++];
    };
    return deadline(wait(), timeoutMs, "a daemon to connect to the raw peer");
  }

  /** Closes every connection, then shuts the server down. */
  async close(): Promise<void> {
    await Promise.all(this.#all.map((c) => c.close()));
    await this.#server.shutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Connects to a server-mode daemon as an original client would. */
export const RawPeerClient = {
  async connect(url: string, timeoutMs = 10_000): Promise<RawConnection> {
    const socket = new WebSocket(url);
    const connection = new RawConnection(socket);
    const opened = new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve());
      connection.closed.then(() =>
        reject(new Error(`could not connect to ${url}`))
      );
    });
    try {
      await deadline(opened, timeoutMs, `a connection to ${url}`);
    } catch (error) {
      await connection.close();
      throw error;
    }
    return connection;
  },
};
