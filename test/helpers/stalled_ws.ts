/**
 * A WebSocket client on a raw TCP connection, with the handshake and the frame
 * format written out by hand, so a test decides exactly when bytes are read.
 * The Deno WebSocket client always reads; this one reads only when asked, so
 * it can play a peer that stops reading and let the kernel buffers fill up.
 *
 * Closed by `Symbol.asyncDispose`, so the op/resource sanitizers pass.
 *
 * @module
 */

import { deadline } from "./wait.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const READ_CHUNK_BYTES = 64 * 1024;

/** One frame from the server, unmasked as servers send them. */
export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

export const Opcode = {
  TEXT: 0x1,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** What the server sent up to and including its close frame. */
export interface Drained {
  /** The close code, or undefined when the close frame had no payload. */
  code: number | undefined;
  reason: string;
  /** Text frames read before the close frame. */
  textFrames: number;
  /** Payload bytes of those frames. */
  textBytes: number;
}

export class StalledWebSocket {
  readonly conn: Deno.TcpConn;
  /** Bytes read from the socket and not yet parsed. */
  #buffer: Uint8Array = new Uint8Array(0);
  #ended = false;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /**
   * Connects to `url` (`ws://host:port[/path]`) and completes the upgrade:
   * sends the GET request and reads the 101 response (bytes that arrived with
   * it are kept for the next frame), then reads nothing until asked.
   */
  static async connect(
    url: string,
    timeoutMs = 10_000,
  ): Promise<StalledWebSocket> {
    const { hostname, port, pathname } = new URL(url);
    const conn = await Deno.connect({
      hostname: hostname.replace(/^\[(.*)\]$/, "$1"),
      port: Number(port),
    });
    const socket = new StalledWebSocket(conn);
    try {
      const key = btoa(
        String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))),
      );
      await socket.#write(encoder.encode(
        `GET ${pathname || "/"} HTTP/1.1\r\n` +
          `Host: ${hostname}:${port}\r\n` +
          "Upgrade: websocket\r\n" +
          "Connection: Upgrade\r\n" +
          `Sec-WebSocket-Key: ${key}\r\n` +
          "Sec-WebSocket-Version: 13\r\n\r\n",
      ));
      const head = await deadline(
        socket.#readHead(),
        timeoutMs,
        `the upgrade response from ${url}`,
      );
      const statusLine = head.split("\r\n")[0];
      if (!/^HTTP\/1\.1 101 /.test(statusLine)) {
        throw new Error(`upgrade to ${url} refused: ${statusLine}`);
      }
    } catch (error) {
      socket.close();
      throw error;
    }
    return socket;
  }

  /** Reads the next frame from the server. */
  nextFrame(timeoutMs = 10_000): Promise<Frame> {
    return deadline(this.#readFrame(), timeoutMs, "a frame from the server");
  }

  /** The next text frame's text, skipping pings. */
  async nextText(timeoutMs = 10_000): Promise<string> {
    const read = async () => {
      while (true) {
        const frame = await this.#readFrame();
        if (frame.opcode === Opcode.TEXT) return decoder.decode(frame.payload);
        if (frame.opcode === Opcode.CLOSE) {
          throw new Error("close frame while waiting for a text frame");
        }
      }
    };
    return await deadline(read(), timeoutMs, "a text frame from the server");
  }

  /**
   * Reads everything the server sent, up to and including its close frame,
   * and reports that close frame.
   */
  async drainUntilClose(timeoutMs = 10_000): Promise<Drained> {
    const read = async () => {
      let textFrames = 0;
      let textBytes = 0;
      while (true) {
        const frame = await this.#readFrame();
        if (frame.opcode === Opcode.TEXT) {
          textFrames++;
          textBytes += frame.payload.length;
        } else if (frame.opcode === Opcode.CLOSE) {
          const p = frame.payload;
          return {
            code: p.length >= 2 ? (p[0] << 8) | p[1] : undefined,
            reason: decoder.decode(p.subarray(2)),
            textFrames,
            textBytes,
          };
        }
      }
    };
    return await deadline(read(), timeoutMs, "the server's close frame");
  }

  /** Sends one text frame, masked as a client must. */
  async sendText(text: string): Promise<void> {
    await this.#write(clientFrame(Opcode.TEXT, encoder.encode(text)));
  }

  /** Answers the server's close frame with one of ours. */
  async sendClose(code = 1000): Promise<void> {
    await this.#write(
      clientFrame(Opcode.CLOSE, new Uint8Array([code >> 8, code])),
    );
  }

  /** Resolves when the server has ended the TCP connection. */
  async ended(timeoutMs = 10_000): Promise<void> {
    const read = async () => {
      while (!this.#ended) {
        this.#buffer = new Uint8Array(0);
        await this.#fill(1).catch(() => {});
      }
    };
    await deadline(read(), timeoutMs, "the server to end the connection");
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  async #write(bytes: Uint8Array): Promise<void> {
    while (bytes.length > 0) {
      bytes = bytes.subarray(await this.conn.write(bytes));
    }
  }

  /** Reads until `#buffer` holds at least `n` bytes; throws at end of input. */
  async #fill(n: number): Promise<void> {
    while (this.#buffer.length < n) {
      if (this.#ended) throw new Error("the server ended the connection");
      const chunk = new Uint8Array(Math.max(READ_CHUNK_BYTES, n));
      let read: number | null;
      try {
        read = await this.conn.read(chunk);
      } catch (error) {
        // Reset by the peer, or closed by close(): nothing more will come.
        this.#ended = true;
        throw error;
      }
      if (read === null) {
        this.#ended = true;
        continue;
      }
      const joined = new Uint8Array(this.#buffer.length + read);
      joined.set(this.#buffer);
      joined.set(chunk.subarray(0, read), this.#buffer.length);
      this.#buffer = joined;
    }
  }

  #take(n: number): Uint8Array {
    const bytes = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return bytes;
  }

  async #readHead(): Promise<string> {
    while (true) {
      const end = indexOfHeadEnd(this.#buffer);
      if (end !== -1) return decoder.decode(this.#take(end + 4));
      await this.#fill(this.#buffer.length + 1);
    }
  }

  async #readFrame(): Promise<Frame> {
    await this.#fill(2);
    const fin = (this.#buffer[0] & 0x80) !== 0;
    const opcode = this.#buffer[0] & 0x0f;
    const masked = (this.#buffer[1] & 0x80) !== 0;
    let length = this.#buffer[1] & 0x7f;
    let header = 2;
    if (length === 126) {
      await this.#fill(4);
      length = (this.#buffer[2] << 8) | this.#buffer[3];
      header = 4;
    } else if (length === 127) {
      await this.#fill(10);
      const view = new DataView(
        this.#buffer.buffer,
        this.#buffer.byteOffset,
        10,
      );
      length = Number(view.getBigUint64(2));
      header = 10;
    }
    if (masked) throw new Error("a server must not mask its frames");
    await this.#fill(header + length);
    this.#take(header);
    return { fin, opcode, payload: this.#take(length).slice() };
  }
}

/** A masked client frame with FIN set (as every client frame must be). */
export function clientFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + extra + 4 + length);
  out[0] = 0x80 | opcode;
  const view = new DataView(out.buffer);
  if (extra === 0) out[1] = 0x80 | length;
  else if (extra === 2) {
    out[1] = 0x80 | 126;
    view.setUint16(2, length);
  } else {
    out[1] = 0x80 | 127;
    view.setBigUint64(2, BigInt(length));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, 2 + extra);
  const start = 2 + extra + 4;
  for (let i = 0; i < length; i++) out[start + i] = payload[i] ^ mask[i % 4];
  return out;
}

/** Where the blank line that ends an HTTP head starts in `bytes`, or -1. */
export function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (
      bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 &&
      bytes[i + 3] === 10
    ) return i;
  }
  return -1;
}
