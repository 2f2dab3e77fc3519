/**
 * The local listener: a Unix socket in the prefix (or, when configured, a TCP
 * port) that accepts local clients and serves each as a `LocalConnection`.
 *
 * @module
 */

import {
  LocalConnection,
  type LocalConnectionOptions,
  type LocalHandler,
} from "./connection.ts";
import { encodeStatusLine, Status } from "../protocol.ts";
import { listenOnFreeSocket } from "./socket_path.ts";
import type { Logger } from "../log.ts";

export interface LocalServerOptions extends LocalConnectionOptions {
  prefix: string;
  /** Listen on TCP instead of the Unix socket. */
  tcp?: { hostname: string; port: number };
  /** Mode of the socket file, e.g. 0o600. */
  socketMode: number;
  /** Connections at once; one more gets one -5 line and is closed. */
  maxLocalConnections: number;
  log: Logger;
}

/** How long a refused connection may take to hang up by itself. */
const REFUSE_LINGER_MS = 1_000;

export class LocalServer {
  readonly #options: LocalServerOptions;
  #listener: Deno.Listener | undefined;
  #accepting: Promise<void> | undefined;
  readonly #connections = new Set<LocalConnection>();
  #nextId = 1;

  constructor(options: LocalServerOptions) {
    this.#options = options;
  }

  /** Opens the listener; returns where it listens, for the log. */
  async listen(): Promise<string> {
    const { tcp, prefix, socketMode, log } = this.#options;
    if (tcp) {
      const listener = Deno.listen({ transport: "tcp", ...tcp });
      this.#listener = listener;
      return `tcp://${tcp.hostname}:${listener.addr.port}`;
    }
    const listener = await listenOnFreeSocket(prefix, log);
    this.#listener = listener;
    await Deno.chmod(listener.addr.path, socketMode);
    return listener.addr.path;
  }

  /** Accepts clients until `stopAccepting()`. */
  serve(handler: LocalHandler): void {
    const listener = this.#listener;
    if (!listener) {
      throw new Error("LocalServer.serve() called before listen()");
    }
    this.#accepting = (async () => {
      let backoffMs = 0;
      while (true) {
        let conn: Deno.Conn;
        try {
          conn = await listener.accept();
          backoffMs = 0;
        } catch (error) {
          if (error instanceof Deno.errors.BadResource) return;
          // EMFILE and the like pass: keep accepting after a pause.
          backoffMs = Math.min(1000, backoffMs * 2 || 50);
          this.#options.log.error(
            `local listener: ${
              (error as Error).message
            }; retrying in ${backoffMs} ms`,
          );
          await new Promise((resolve) => setTimeout(resolve, backoffMs));
          continue;
        }
        if (this.#connections.size >= this.#options.maxLocalConnections) {
          this.#refuse(conn);
          continue;
        }
        const connection = new LocalConnection(
          conn,
          `local#${this.#nextId++}`,
          this.#options,
        );
        this.#connections.add(connection);
        this.#options.log.debug(`${connection.label}: connected`);
        connection.serve(handler).finally(() => {
          this.#connections.delete(connection);
          this.#options.log.debug(`${connection.label}: closed`);
        });
      }
    })();
  }

  /** Tells a connection over the limit why, and closes it. */
  #refuse(conn: Deno.Conn): void {
    const limit = this.#options.maxLocalConnections;
    this.#options.log.warn(
      `local connection refused: ${limit} are open (maxLocalConnections)`,
    );
    const line = new TextEncoder().encode(encodeStatusLine({
      status: Status.REFUSED,
      error:
        `refused: ${limit} local connections are open (maxLocalConnections)`,
    }));
    (async () => {
      // One short line fits the socket buffer, so the write never waits
      // long. What the client sent is read and dropped until it closes (or
      // a second passes): a TCP close with unread input would reset the
      // connection and could lose the line.
      const timer = setTimeout(() => close(), REFUSE_LINGER_MS);
      const close = () => {
        clearTimeout(timer);
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      };
      try {
        await conn.write(line);
        await conn.closeWrite();
        const sink = new Uint8Array(4096);
        while ((await conn.read(sink)) !== null) { /* dropped */ }
      } catch {
        // Gone, or closed by the timer.
      }
      close();
    })();
  }

  /** Closes the listener (which removes the socket file); clients stay. */
  async stopAccepting(): Promise<void> {
    try {
      this.#listener?.close();
    } catch {
      // Already closed.
    }
    await this.#accepting;
  }

  /**
   * Writes what each client is owed so far, then closes every client; one
   * that does not read within `timeoutMs` is closed regardless.
   */
  async closeAll(timeoutMs: number): Promise<void> {
    const open = [...this.#connections];
    await Promise.all(open.map((c) => c.drainAndClose(timeoutMs)));
    await Promise.all(open.map((c) => c.finished));
  }
}
