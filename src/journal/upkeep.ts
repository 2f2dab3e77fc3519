/**
 * Keeping the journal within its bounds: results past resultRetentionMs and
 * beyond maxResults are dropped every minute (with a WAL checkpoint), every
 * tenth of maxResults finished requests, and when the journal is full; a
 * full journal then drops its oldest results before anything is refused.
 *
 * @module
 */

import type { Journal } from "./journal.ts";
import type { OutboxRows } from "../outbox/outbox_rows.ts";
import type { RunRows } from "../inbox/run_rows.ts";
import type { Logger } from "../log.ts";

/** How often the journal drops results past their retention. */
const COMPACT_EVERY_MS = 60_000;

/** The bounds, read as they are used (SIGHUP may change them). */
export interface UpkeepBounds {
  resultRetentionMs: number;
  maxResults: number;
  journalMaxRows: number;
}

export class JournalUpkeep {
  readonly #journal: Journal;
  readonly #outboxRows: OutboxRows;
  readonly #runRows: RunRows;
  readonly #bounds: () => UpkeepBounds;
  readonly #log: Logger;
  #timer: ReturnType<typeof setInterval> | undefined;
  #compactedAt = 0;
  #finishedSinceCompact = 0;

  constructor(
    journal: Journal,
    rows: { outbox: OutboxRows; runs: RunRows },
    bounds: () => UpkeepBounds,
    log: Logger,
  ) {
    this.#journal = journal;
    this.#outboxRows = rows.outbox;
    this.#runRows = rows.runs;
    this.#bounds = bounds;
    this.#log = log;
  }

  /** Compacts now, then every minute. */
  start(): void {
    this.compact();
    this.#timer = setInterval(() => this.compact(true), COMPACT_EVERY_MS);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** A request ended: maxResults is kept within a tenth. */
  onFinished(): void {
    const { maxResults } = this.#bounds();
    if (++this.#finishedSinceCompact < Math.ceil(maxResults / 10)) return;
    this.compact();
  }

  /**
   * The journal is full: compaction (at most once a second), then the
   * oldest results make room, if there are any.
   */
  onFull(): void {
    if (Date.now() - this.#compactedAt >= 1_000) this.compact();
    if (this.#journal.hasRoom()) return;
    const evicted = this.#outboxRows.evict(
      Math.max(1, Math.ceil(this.#bounds().journalMaxRows / 100)),
    );
    if (evicted > 0) {
      this.#log.info(
        `journal full: the ${evicted} oldest result(s) dropped to make room`,
      );
    }
  }

  /**
   * Drops results past resultRetentionMs and runs no redelivery needs.
   * `checkpoint`: also fold the WAL into the database (the minute's
   * compaction only: a checkpoint syncs twice on the event loop).
   */
  compact(checkpoint = false): void {
    this.#compactedAt = Date.now();
    this.#finishedSinceCompact = 0;
    const { resultRetentionMs, maxResults } = this.#bounds();
    const removed =
      this.#outboxRows.compact(resultRetentionMs, maxResults, checkpoint) +
      this.#runRows.compact(resultRetentionMs, checkpoint);
    if (removed > 0) this.#log.debug(`journal: ${removed} old row(s) dropped`);
  }
}
