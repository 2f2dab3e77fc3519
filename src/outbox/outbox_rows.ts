/**
 * The outbox's rows in the journal: one per request accepted from a local
 * process, from its acceptance until its result is past resultRetentionMs.
 *
 * `state` is where the request is: `queued` (not sent), `sent` (sent to
 * `peer`, not acknowledged), `acked` (the peer has recorded it), `blind`
 * (sent to a peer without acknowledgements: whether it arrived is unknown),
 * `done` (its status, in `status`, is known).
 *
 * @module
 */

import type { Journal } from "../journal/journal.ts";
import type { StatusReport } from "../protocol.ts";

export type RowState = "queued" | "sent" | "acked" | "blind" | "done";

export interface OutboxRow {
  ref: string;
  /** The request's id as JSON, or null when it had none. */
  id: string | null;
  /** The request's text, as the local process wrote it. */
  frame: string;
  peer: string | null;
  state: RowState;
  accepted_at: number;
  deadline_at: number | null;
  expires_at: number | null;
  status: string | null;
  done_at: number | null;
  /** The fan-out it is one delivery of, by the fan-out's ref. */
  fanout: string | null;
}

/** The id as the journal keys it: JSON, so 1 and "1" stay apart. */
export function idColumn(hasId: boolean, id: unknown): string | null {
  return hasId ? JSON.stringify(id) ?? null : null;
}

/** What the rows need to know of a request. */
export interface Journaled {
  readonly ref: string;
  readonly id?: unknown;
  readonly hasId: boolean;
  readonly text: string;
  readonly fanout?: string;
  /** The one peer it may go to. */
  readonly target?: string;
  deadlineAt?: number;
  expiresAt?: number;
  /** Whether its row exists. */
  journaled?: boolean;
  acceptedAt: number;
}

export class OutboxRows {
  readonly #journal: Journal;

  constructor(journal: Journal) {
    this.#journal = journal;
  }

  get journal(): Journal {
    return this.#journal;
  }

  /** Writes where a request is: its row on first sight, its state after. */
  put(entry: Journaled, state: RowState, peer: string | null): void {
    if (entry.journaled) {
      this.#journal.write(
        "UPDATE outbox SET state = ?, peer = ?, expires_at = ? WHERE ref = ?",
        [state, peer, entry.expiresAt ?? null, entry.ref],
      );
      return;
    }
    entry.journaled = true;
    this.#journal.write(
      `INSERT OR REPLACE INTO outbox
         (ref, id, frame, peer, state, accepted_at, deadline_at, expires_at,
          fanout)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        entry.ref,
        idColumn(entry.hasId, entry.id),
        entry.text,
        peer,
        state,
        entry.acceptedAt,
        entry.deadlineAt ?? null,
        entry.expiresAt ?? null,
        entry.fanout ?? null,
      ],
      1,
    );
  }

  /** Records a request's final status. */
  finish(entry: Journaled, report: StatusReport): void {
    if (!entry.journaled) {
      // A refusal for a full journal is not recorded: there is no room.
      if (!this.#journal.hasRoom()) return;
      this.put(entry, "done", entry.target ?? null);
    }
    this.#journal.write(
      "UPDATE outbox SET state = 'done', status = ?, done_at = ? WHERE ref = ?",
      [JSON.stringify(report), Date.now(), entry.ref],
    );
  }

  /** Requests not done, oldest first, for replay on start. */
  unfinished(): OutboxRow[] {
    return this.#journal.all<OutboxRow>(
      "SELECT * FROM outbox WHERE state != 'done' ORDER BY accepted_at, rowid",
    );
  }

  /** Drops a row that cannot be read. */
  drop(ref: string): void {
    this.#journal.write("DELETE FROM outbox WHERE ref = ?", [ref], -1);
  }

  /** The newest request with this id, for `RESULT`. */
  byId(id: string): OutboxRow | undefined {
    return this.#journal.all<OutboxRow>(
      "SELECT * FROM outbox WHERE id = ? ORDER BY accepted_at DESC, rowid DESC LIMIT 1",
      [id],
    )[0];
  }

  /** The deliveries of one fan-out. */
  ofFanOut(fanout: string): OutboxRow[] {
    return this.#journal.all<OutboxRow>(
      "SELECT * FROM outbox WHERE fanout = ? ORDER BY rowid",
      [fanout],
    );
  }

  /**
   * Drops the `count` oldest results, to make room in a full journal: a new
   * request matters more than an old answer nobody fetched.
   */
  evict(count: number): number {
    return this.#journal.write(
      `DELETE FROM outbox WHERE ref IN (
         SELECT ref FROM outbox WHERE state = 'done'
         ORDER BY done_at, rowid LIMIT ?)`,
      [count],
      -1,
    );
  }

  /**
   * Drops results older than `retentionMs`, and the oldest beyond
   * `maxResults`; returns how many went.
   */
  compact(retentionMs: number, maxResults: number, checkpoint = true): number {
    return this.#journal.compact([
      [
        "DELETE FROM outbox WHERE state = 'done' AND done_at < ?",
        [Date.now() - retentionMs],
      ],
      [
        `DELETE FROM outbox WHERE ref IN (
           SELECT ref FROM outbox WHERE state = 'done'
           ORDER BY done_at DESC, rowid DESC LIMIT -1 OFFSET ?)`,
        [maxResults],
      ],
    ], checkpoint);
  }
}
