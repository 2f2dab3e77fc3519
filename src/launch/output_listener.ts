/**
 * Where scripts started by posix_spawn write their output: a private Unix
 * listener. Each script's stdout and stderr are one connection to it, made
 * by the daemon before the spawn and tagged with a token, so the output can
 * be read with Deno's async I/O (a pipe made through FFI could only be read
 * by blocking a thread per script).
 *
 * @module
 */

import { join } from "node:path";
import type { Logger } from "../log.ts";
import { OutputLines } from "./launcher.ts";

/** Bytes of the token a connection starts with: a little-endian u32. */
export const TOKEN_BYTES = 4;
/** Read size for output; a pipe holds 64 KiB, most scripts write far less. */
const READ_BYTES = 16 * 1024;

export class OutputListener {
  readonly #log: Logger;
  readonly #dir: string;
  readonly #listener: Deno.UnixListener;
  /** Log tags of scripts whose connection has not been accepted yet. */
  readonly #expected = new Map<number, string>();
  readonly #connections = new Set<Deno.UnixConn>();
  #nextToken = 1;

  /** Listens in a new private temporary folder; throws if it cannot. */
  constructor(log: Logger) {
    this.#log = log;
    this.#dir = Deno.makeTempDirSync({ prefix: "ws-daemon-" });
    try {
      Deno.chmodSync(this.#dir, 0o700);
      this.#listener = Deno.listen({
        transport: "unix",
        path: join(this.#dir, "output.sock"),
      });
    } catch (error) {
      Deno.removeSync(this.#dir, { recursive: true });
      throw error;
    }
    this.#accept();
  }

  /** The socket's path, to connect to. */
  get path(): string {
    return (this.#listener.addr as Deno.UnixAddr).path;
  }

  /**
   * The first bytes to write on a new connection whose lines get `tag`: a
   * token the listener knows the tag by. Write it right after connecting:
   * the tag is kept until that connection is accepted.
   */
  announce(tag: string): Uint8Array {
    const token = this.#nextToken;
    this.#nextToken = (this.#nextToken + 1) >>> 0 || 1;
    this.#expected.set(token, tag);
    const header = new Uint8Array(TOKEN_BYTES);
    new DataView(header.buffer).setUint32(0, token, true);
    return header;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) this.#read(conn);
    } catch (error) {
      this.#log.debug(`output listener: ${(error as Error).message}`);
    }
  }

  async #read(conn: Deno.UnixConn): Promise<void> {
    this.#connections.add(conn);
    const buffer = new Uint8Array(READ_BYTES);
    let filled = 0;
    let lines: OutputLines | undefined;
    try {
      while (true) {
        const n = await conn.read(buffer.subarray(filled));
        if (n === null) break;
        if (lines !== undefined) {
          lines.push(buffer.subarray(0, n));
          continue;
        }
        filled += n;
        if (filled < TOKEN_BYTES) continue;
        const token = new DataView(buffer.buffer).getUint32(0, true);
        const tag = this.#expected.get(token);
        if (tag === undefined) return;
        this.#expected.delete(token);
        lines = new OutputLines(this.#log, tag);
        lines.push(buffer.subarray(TOKEN_BYTES, filled));
        filled = 0;
      }
    } catch (error) {
      this.#log.debug(`script output: ${(error as Error).message}`);
    } finally {
      lines?.end();
      this.#connections.delete(conn);
      try {
        conn.close();
      } catch {
        // Closed by close() already.
      }
    }
  }

  /** Stops listening, drops output still coming, removes the folder. */
  close(): void {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const conn of this.#connections) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    try {
      Deno.removeSync(this.#dir, { recursive: true });
    } catch {
      // Gone already; nothing else to free.
    }
  }
}
