/**
 * A client of a daemon's local socket, for the CLI (`send`, `status`,
 * `watch`), the benchmarks and the tests: finds the live socket of a prefix,
 * writes JSON lines, reads answer lines.
 *
 * @module
 */

import { join } from "node:path";
import { socketNames } from "../local/socket_path.ts";
import { deadline } from "../timers.ts";

const encoder = new TextEncoder();

/** One line the daemon wrote: a status, or an event. */
export type Answer = Record<string, unknown> & { status: number };

/**
 * The socket a daemon on `prefix` answers on: the first of `ws-daemon.sock`,
 * `ws-daemon0.sock`, … that accepts a connection, or `tcp://host:port` when
 * the daemon listens on TCP (`localTcp`, `WSDAEMON_LOCAL_TCP`).
 *
 * @throws {Error} saying where it looked, when no daemon answers there.
 */
export async function findSocket(
  prefix: string,
  localTcp?: string,
): Promise<string> {
  if (localTcp) return `tcp://${localTcp}`;
  for (const name of socketNames()) {
    const path = join(prefix, name);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch {
      continue; // A daemon that held it may have gone; a later one may not.
    }
    if (!info.isSocket) continue;
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      conn.close();
      return path;
    } catch {
      // Stale: a daemon died and left it.
    }
  }
  throw new Error(
    `no daemon answers on ${
      join(prefix, "ws-daemon.sock")
    } (is it running, with this prefix?)`,
  );
}

export class LocalClient {
  readonly conn: Deno.UnixConn | Deno.TcpConn;
  readonly #answers: Answer[] = [];
  #waiting: (() => void) | undefined;
  #ended = false;
  readonly #reading: Promise<void>;

  private constructor(conn: Deno.UnixConn | Deno.TcpConn) {
    this.conn = conn;
    this.#reading = this.#read();
  }

  /** Connects to a socket path, or to `tcp://host:port`. */
  static async connect(socket: string): Promise<LocalClient> {
    if (socket.startsWith("tcp://")) {
      const url = new URL(socket);
      return new LocalClient(
        await Deno.connect({ hostname: url.hostname, port: Number(url.port) }),
      );
    }
    return new LocalClient(
      await Deno.connect({ transport: "unix", path: socket }),
    );
  }

  /** Writes messages (objects are JSON-encoded, strings go as they are), each with `\n`. */
  async send(...messages: (object | string)[]): Promise<void> {
    const text = messages.map((m) =>
      (typeof m === "string" ? m : JSON.stringify(m)) + "\n"
    ).join("");
    await this.writeRaw(text);
  }

  /** Writes bytes exactly as given. */
  async writeRaw(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    while (bytes.length > 0) {
      bytes = bytes.subarray(await this.conn.write(bytes));
    }
  }

  /** The next line, parsed. */
  async next(timeoutMs = 10_000): Promise<Answer> {
    return (await this.take(1, timeoutMs))[0];
  }

  /** The next `n` lines, in arrival order. */
  async take(n: number, timeoutMs = 10_000): Promise<Answer[]> {
    const wait = async () => {
      while (this.#answers.length < n) {
        if (this.#ended) {
          throw new Error(
            `connection ended after ${this.#answers.length} of ${n} answers`,
          );
        }
        await new Promise<void>((resolve) => this.#waiting = resolve);
      }
      return this.#answers.splice(0, n);
    };
    return await deadline(wait(), timeoutMs, `${n} answer(s)`);
  }

  /** Sends one message and returns the next line. */
  async request(message: object | string, timeoutMs = 10_000): Promise<Answer> {
    await this.send(message);
    return await this.next(timeoutMs);
  }

  /** Shuts down the writing side (half-close); answers can still be read. */
  async closeWrite(): Promise<void> {
    await this.conn.closeWrite();
  }

  /** Resolves when the daemon has closed the connection. */
  async ended(timeoutMs = 10_000): Promise<void> {
    await deadline(
      this.#reading,
      timeoutMs,
      "the daemon to close the connection",
    );
  }

  /** Lines received and not yet taken. */
  get buffered(): number {
    return this.#answers.length;
  }

  /** Whether the daemon has closed the connection. */
  get isEnded(): boolean {
    return this.#ended;
  }

  async #read(): Promise<void> {
    let carry = "";
    try {
      for await (
        const text of this.conn.readable.pipeThrough(new TextDecoderStream())
      ) {
        const parts = (carry + text).split("\n");
        carry = parts.pop()!;
        for (const line of parts) {
          if (line.trim() !== "") this.#answers.push(JSON.parse(line));
        }
        this.#waiting?.();
      }
    } catch {
      // Closed by close().
    }
    this.#ended = true;
    this.#waiting?.();
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.#reading;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
