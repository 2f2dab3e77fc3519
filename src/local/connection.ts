/**
 * One local client connection: reads lines, writes answers.
 *
 * The connection counts the requests it still owes an answer for. A client may
 * half-close after its last request; the connection then stays open until the
 * last answer is written, and closes itself. Writes go through a queue that is
 * bounded: a client that stops reading is cut off rather than letting the
 * daemon's memory grow.
 *
 * @module
 */

import { LineSplitter } from "../framing.ts";
import { encodeStatusLine, type StatusReport } from "../protocol.ts";
import type { Logger } from "../log.ts";
import type { Rate } from "../config.ts";
import { TokenBucket } from "../trust/rate.ts";

export interface LocalHandler {
  /** One complete message line from this connection. */
  onLine(connection: LocalConnection, text: string): void;
  /** A line over the size limit was skipped. */
  onOversize(connection: LocalConnection, limit: number): void;
}

export interface LocalConnectionOptions {
  maxMessageBytes: number;
  maxBufferedBytes: number;
  /** Requests per second this connection may send. */
  rate: Rate;
  log: Logger;
}

const encoder = new TextEncoder();
const READ_BUFFER_BYTES = 64 * 1024;
/**
 * Unwritten bytes past which event lines are dropped (and counted) rather
 * than queued, so that answers to requests always have room.
 */
const EVENT_BACKLOG_BYTES = 256 * 1024;

export class LocalConnection {
  readonly label: string;
  /** Requests this connection may send, per second. */
  readonly rate: TokenBucket;
  readonly #conn: Deno.Conn;
  readonly #options: LocalConnectionOptions;
  #owed = 0;
  #inputEnded = false;
  #closed = false;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #flushing: Promise<void> | undefined;
  readonly #finished = Promise.withResolvers<void>();
  /** Told each time everything queued has been written (subscriptions). */
  onDrained: (() => void) | undefined;
  /**
   * Set while the connection has a subscription: it stays open after its
   * input ends, for as long as the client reads.
   */
  #streaming = false;

  constructor(conn: Deno.Conn, label: string, options: LocalConnectionOptions) {
    this.#conn = conn;
    this.label = label;
    this.#options = options;
    this.rate = new TokenBucket(options.rate);
  }

  /** Requests of this connection waiting for their answer. */
  get owed(): number {
    return this.#owed;
  }

  /** Resolves when the connection is closed and its reader has stopped. */
  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Reads until end of input, handing each line to `handler`. */
  async serve(handler: LocalHandler): Promise<void> {
    const splitter = new LineSplitter(this.#options.maxMessageBytes);
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    const dispatch = (frames: ReturnType<LineSplitter["push"]>) => {
      for (const frame of frames) {
        // One line's failure must not end the reader for the lines after it.
        try {
          if (frame.kind === "line") handler.onLine(this, frame.text);
          else handler.onOversize(this, frame.limit);
        } catch (error) {
          this.#options.log.error(`${this.label}: ${(error as Error).stack}`);
        }
      }
    };
    try {
      while (!this.#closed) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        dispatch(splitter.push(buffer.subarray(0, n)));
      }
      if (!this.#closed) dispatch(splitter.end());
    } catch (error) {
      if (!this.#closed) {
        this.#options.log.debug(
          `${this.label}: read failed: ${(error as Error).message}`,
        );
      }
    }
    this.#inputEnded = true;
    this.#closeIfDone();
    await this.#finished.promise;
  }

  get streaming(): boolean {
    return this.#streaming;
  }

  /** Keeps the connection open for a subscription's events, or stops. */
  set streaming(on: boolean) {
    this.#streaming = on;
    if (!on) this.#closeIfDone();
  }

  /** Marks one request as waiting for an answer on this connection. */
  owe(): void {
    this.#owed++;
  }

  /** Writes the answer to a request marked with `owe()`. */
  settle(report: StatusReport): void {
    this.#owed--;
    this.reply(report);
    this.#closeIfDone();
  }

  /**
   * Writes one event line, unless the client has not read what it was sent
   * before: then false, and nothing is queued.
   */
  writeEvent(line: unknown): boolean {
    if (this.#closed) return true;
    if (this.#queuedBytes > EVENT_BACKLOG_BYTES) return false;
    this.#enqueue(encoder.encode(JSON.stringify(line) + "\n"));
    return true;
  }

  /** Writes one status line; dropped (and logged) if the client is gone. */
  reply(report: StatusReport): void {
    if (this.#closed) {
      this.#options.log.debug(
        `${this.label}: closed, dropping answer ${JSON.stringify(report)}`,
      );
      return;
    }
    this.#enqueue(encoder.encode(encodeStatusLine(report)));
  }

  #enqueue(bytes: Uint8Array): void {
    this.#queuedBytes += bytes.length;
    if (this.#queuedBytes > this.#options.maxBufferedBytes) {
      this.#options.log.warn(
        `${this.label}: more than ${this.#options.maxBufferedBytes} bytes of answers unread; closing it`,
      );
      this.close();
      return;
    }
    this.#queue.push(bytes);
    this.#flushing ??= this.#flush();
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const chunks = this.#queue;
        this.#queue = [];
        let bytes = chunks.length === 1 ? chunks[0] : concatAll(chunks);
        this.#queuedBytes -= bytes.length;
        while (bytes.length > 0) {
          bytes = bytes.subarray(await this.#conn.write(bytes));
        }
      }
    } catch (error) {
      this.#options.log.debug(
        `${this.label}: write failed: ${(error as Error).message}`,
      );
      this.close();
    } finally {
      this.#flushing = undefined;
    }
    if (!this.#closed) this.onDrained?.();
    this.#closeIfDone();
  }

  #closeIfDone(): void {
    if (
      this.#inputEnded && this.#owed <= 0 && this.#queue.length === 0 &&
      this.#flushing === undefined && !this.#streaming
    ) {
      this.close();
    }
  }

  /**
   * Flushes what is queued, then closes; gives up on a client that does not
   * read within `timeoutMs`.
   */
  async drainAndClose(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const giveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    const flushed = (async () => {
      while (this.#flushing !== undefined) await this.#flushing;
    })();
    await Promise.race([flushed, giveUp]);
    clearTimeout(timer);
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side.
    }
    this.#finished.resolve();
  }
}

function concatAll(chunks: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const chunk of chunks) length += chunk.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
