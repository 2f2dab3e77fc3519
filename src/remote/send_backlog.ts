/**
 * When a peer that has stopped reading is cut. `send()` on a Deno WebSocket
 * never blocks, so such a peer would make the daemon buffer without limit;
 * the link asks this before each send, with its socket's `bufferedAmount`.
 *
 * @module
 */

/** How long a send backlog may stay over budget before the peer is cut. */
const STALL_MS = 5_000;
/** A backlog this many times the budget is cut at once. */
const HARD_LIMIT_FACTOR = 4;

export class SendBacklog {
  /** The link's options, whose maxBufferedBytes is the budget. */
  readonly #options: { readonly maxBufferedBytes: number };
  /** Since when the send backlog has been over budget. */
  #overSince: number | undefined;

  constructor(options: { readonly maxBufferedBytes: number }) {
    this.#options = options;
  }

  /**
   * Whether the peer has stopped reading. `bufferedAmount` counts frames not
   * yet written at all, so a burst of sends lifts it even for a peer that
   * reads; only a backlog that stays over the budget for STALL_MS, or that
   * passes HARD_LIMIT_FACTOR times it, means the peer is not keeping up.
   */
  overBudget(buffered: number): boolean {
    const budget = this.#options.maxBufferedBytes;
    if (buffered <= budget) {
      this.#overSince = undefined;
      return false;
    }
    if (buffered > budget * HARD_LIMIT_FACTOR) return true;
    this.#overSince ??= Date.now();
    return Date.now() - this.#overSince > STALL_MS;
  }
}
