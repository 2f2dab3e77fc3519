/**
 * A script's output kept for its status (`"output": true`): the first
 * `maxBytes` bytes of a stream, as UTF-8 text.
 *
 * @module
 */

const decoder = new TextDecoder(); // not fatal: invalid bytes become U+FFFD

/**
 * How many of `bytes` end on a character boundary: a cut that falls inside
 * a multi-byte sequence leaves that sequence out, rather than one U+FFFD.
 */
export function wholeCharacters(bytes: Uint8Array): number {
  let start = bytes.length;
  // Back over up to three continuation bytes to the sequence's lead byte.
  for (let i = 0; i < 3 && start > 0; i++) {
    if ((bytes[start - 1] & 0xc0) !== 0x80) break;
    start--;
  }
  if (start === 0) return bytes.length;
  const lead = bytes[start - 1];
  const need = lead >= 0xf8
    ? 1 // never a lead byte: nothing to wait for
    : lead >= 0xf0
    ? 4
    : lead >= 0xe0
    ? 3
    : lead >= 0xc0
    ? 2
    : 1;
  const have = bytes.length - (start - 1);
  return have < need && need > 1 ? start - 1 : bytes.length;
}

export class OutputCapture {
  readonly #maxBytes: number;
  readonly #chunks: Uint8Array[] = [];
  #kept = 0;
  #truncated = false;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  push(chunk: Uint8Array): void {
    const room = this.#maxBytes - this.#kept;
    if (chunk.length > room) this.#truncated = true;
    if (room <= 0) return;
    const part = chunk.length > room ? chunk.slice(0, room) : chunk.slice();
    this.#chunks.push(part);
    this.#kept += part.length;
  }

  get truncated(): boolean {
    return this.#truncated;
  }

  /** What was kept, as text. */
  text(): string {
    const all = new Uint8Array(this.#kept);
    let offset = 0;
    for (const chunk of this.#chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    const end = this.#truncated ? wholeCharacters(all) : all.length;
    return decoder.decode(all.subarray(0, end));
  }
}
