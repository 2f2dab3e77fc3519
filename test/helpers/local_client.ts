/**
 * A raw client of a daemon's local socket: writes lines, reads answer lines.
 *
 * @module
 */

import { assertEquals } from "./assert.ts";
import { deadline } from "./wait.ts";

const encoder = new TextEncoder();

export type Answer = Record<string, unknown> & { status: number };

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
    )
      .join("");
    await this.writeRaw(text);
  }

  /** Writes bytes exactly as given. */
  async writeRaw(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    while (bytes.length > 0) {
      bytes = bytes.subarray(await this.conn.write(bytes));
    }
  }

  /** The next answer line, parsed. */
  async next(timeoutMs = 10_000): Promise<Answer> {
    return (await this.take(1, timeoutMs))[0];
  }

  /** The next `n` answers, in arrival order. */
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

  /** Sends one message and returns the next answer. */
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

  /** Answers received and not yet taken. */
  get buffered(): number {
    return this.#answers.length;
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

/**
 * Checks that nothing more is owed on `local`: no answer is waiting, and a
 * fresh noop request's answer is the very next line.
 */
export async function assertNoStrayAnswers(
  local: LocalClient,
  marker: string,
): Promise<void> {
  assertEquals(local.buffered, 0, `answers left over before ${marker}`);
  const answer = await local.request({ name: "noop", id: marker });
  assertEquals([answer.status, answer.id], [0, marker], "the next answer");
}
