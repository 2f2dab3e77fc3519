/**
 * Reading the outbox's rows back after a restart: which requests are still
 * to be sent or waited for, which went blind to an original (their status
 * can no longer come), and which rows cannot be read (dropped, and said).
 *
 * @module
 */

import {
  type Message,
  parseMessage,
  Status,
  type StatusReport,
} from "../protocol.ts";
import type { Logger } from "../log.ts";
import { type Entry, entryFromRow } from "./entry.ts";
import type { OutboxRows } from "./outbox_rows.ts";

export interface Replayed {
  /** Queued, sent or acknowledged: the outbox takes them up. */
  waiting: Entry[];
  /** Sent to a peer without acknowledgements: their outcome is unknown. */
  blind: Entry[];
}

/** Reads the unfinished rows, drops unreadable ones, and logs what it found. */
export function readJournal(rows: OutboxRows, log: Logger): Replayed {
  const replayed: Replayed = { waiting: [], blind: [] };
  let skipped = 0;
  for (const row of rows.unfinished()) {
    let message: Message;
    try {
      message = parseMessage(row.frame);
    } catch {
      rows.drop(row.ref);
      skipped++;
      continue;
    }
    const entry = entryFromRow(row, message);
    if (row.state === "blind") {
      replayed.blind.push(entry);
      continue;
    }
    if (!["queued", "sent", "acked"].includes(row.state)) {
      rows.drop(row.ref);
      skipped++;
      continue;
    }
    // Sent, but to nobody we know: it goes to the next peer, as if queued.
    if (entry.state === "sent" && entry.peer === undefined) {
      entry.state = "queued";
    }
    replayed.waiting.push(entry);
  }
  const { waiting, blind } = replayed;
  if (waiting.length + blind.length + skipped > 0) {
    log.info(
      `journal: ${waiting.length} request(s) from before the restart to deliver or wait for, ${blind.length} answered -6 (outcome unknown)${
        skipped ? `, ${skipped} unreadable row(s) skipped` : ""
      }`,
    );
  }
  return replayed;
}

/** The -6 for a blind request whose status could not come across a restart. */
export function unknownAfterRestart(entry: Entry): StatusReport {
  return {
    status: Status.OUTCOME_UNKNOWN,
    error:
      `this daemon restarted before ${entry.peer}'s status came back; the request was sent, so it may have run`,
    peer: entry.peer,
  };
}
