/**
 * Newline-delimited framing for the local socket, with a size limit.
 *
 * Bytes go in as they arrive from reads (a message may be split across reads,
 * and one read may hold many); whole lines come out. A line longer than the
 * limit is never held in memory: the splitter reports it once and skips to its
 * end, so one bad client cannot make the daemon buffer without bound.
 *
 * @module
 */

export type Frame =
  | { kind: "line"; text: string }
  | { kind: "oversize"; limit: number };

const NEWLINE = 0x0a;
const decoder = new TextDecoder();

export class LineSplitter {
  readonly #maxBytes: number;
  #pending: Uint8Array = new Uint8Array(0);
  /** True while skipping the rest of an oversize line. */
  #discarding = false;

  /** @param maxBytes the longest line accepted, not counting `\n`. */
  constructor(maxBytes: number) {
    if (!Number.isInteger(maxBytes) || maxBytes < 1) {
      throw new RangeError(
        `Cannot split lines as 'maxBytes' must be a positive integer: current value is ${maxBytes}`,
      );
    }
    this.#maxBytes = maxBytes;
  }

  /** Takes the bytes of one read and returns the frames they complete. */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      if (this.#discarding) {
        if (newline !== -1) this.#discarding = false;
      } else if (this.#pending.length + (end - start) > this.#maxBytes) {
        this.#pending = new Uint8Array(0);
        frames.push({ kind: "oversize", limit: this.#maxBytes });
        this.#discarding = newline === -1;
      } else if (newline === -1) {
        this.#pending = concat(this.#pending, chunk.subarray(start));
      } else {
        const line = this.#pending.length === 0
          ? chunk.subarray(start, end)
          : concat(this.#pending, chunk.subarray(start, end));
        this.#pending = new Uint8Array(0);
        pushLine(frames, line);
      }
      if (newline === -1) break;
      start = newline + 1;
    }
    return frames;
  }

  /** At end of input: a last line without `\n` still counts. */
  end(): Frame[] {
    const frames: Frame[] = [];
    if (!this.#discarding && this.#pending.length > 0) {
      pushLine(frames, this.#pending);
    }
    this.#pending = new Uint8Array(0);
    this.#discarding = false;
    return frames;
  }
}

function pushLine(frames: Frame[], bytes: Uint8Array): void {
  const text = decoder.decode(bytes);
  // Blank lines (and a bare "\r" from CRLF senders) carry no message.
  if (text.trim() !== "") frames.push({ kind: "line", text });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
