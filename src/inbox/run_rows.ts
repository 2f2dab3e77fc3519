/**
 * The inbox's rows in the journal: each request received from a peer of
 * this project, keyed by (asking peer, request key), with its run state, and
 * the statuses still owed to the refs that asked for it.
 *
 * `runs.state`: `received` (recorded, not started), `started` (its script
 * was started: after a crash it is never started again), `done` (its status
 * is in `status`). `owed`: one row per ref waiting for the run's status,
 * deleted when the asker acknowledges the status.
 *
 * @module
 */

import type { Journal } from "../journal/journal.ts";
import type { StatusData } from "../protocol.ts";

/** How long a status nobody acknowledges is kept for its asker: a week. */
const OWED_RETENTION_MS = 7 * 24 * 3_600_000;

export interface RunRow {
  peer: string;
  key: string;
  /** The ref of the request that first asked for this run. */
  ref: string;
  frame: string;
  state: "received" | "started" | "done";
  pid: number | null;
  started_at: number | null;
  status: string | null;
}

export class RunRows {
  readonly journal: Journal;

  constructor(journal: Journal) {
    this.journal = journal;
  }

  get(peer: string, key: string): RunRow | undefined {
    return this.journal.all<RunRow>(
      "SELECT * FROM runs WHERE peer = ? AND key = ?",
      [peer, key],
    )[0];
  }

  insert(peer: string, key: string, ref: string, frame: string): void {
    this.journal.write(
      "INSERT INTO runs (peer, key, ref, frame, state) VALUES (?, ?, ?, ?, 'received')",
      [peer, key, ref, frame],
      1,
    );
  }

  /** Rows held for `peer`: its runs and the statuses owed to it. */
  heldFor(peer: string): number {
    const [{ runs }] = this.journal.all<{ runs: number }>(
      "SELECT count(*) AS runs FROM runs WHERE peer = ?",
      [peer],
    );
    const [{ owed }] = this.journal.all<{ owed: number }>(
      "SELECT count(*) AS owed FROM owed WHERE peer = ?",
      [peer],
    );
    return Number(runs) + Number(owed);
  }

  /** Marks that `ref` waits for the run's status (once per ref). */
  owe(peer: string, ref: string, key: string): void {
    this.journal.write(
      "INSERT OR IGNORE INTO owed (peer, ref, key) VALUES (?, ?, ?)",
      [peer, ref, key],
      1,
    );
  }

  /** Marks a run started; false if its row is gone (a rolled-back batch). */
  started(peer: string, key: string): boolean {
    return this.journal.write(
      "UPDATE runs SET state = 'started', started_at = ? WHERE peer = ? AND key = ?",
      [Date.now(), peer, key],
    ) === 1;
  }

  pid(peer: string, key: string, pid: number): void {
    this.journal.write(
      "UPDATE runs SET pid = ? WHERE peer = ? AND key = ?",
      [pid, peer, key],
    );
  }

  finish(peer: string, key: string, status: StatusData): void {
    this.journal.write(
      "UPDATE runs SET state = 'done', status = ?, done_at = ? WHERE peer = ? AND key = ?",
      [JSON.stringify(status), Date.now(), peer, key],
    );
  }

  /** The refs waiting for the run `key` of `peer`. */
  owedRefs(peer: string, key: string): string[] {
    return this.journal.all<{ ref: string }>(
      "SELECT ref FROM owed WHERE peer = ? AND key = ?",
      [peer, key],
    ).map((row) => row.ref);
  }

  /** Statuses of finished runs owed to `peer`, to send when it comes back. */
  owedTo(peer: string): { ref: string; run: RunRow }[] {
    return this.journal.all<RunRow & { owed_ref: string }>(
      `SELECT owed.ref AS owed_ref, runs.* FROM owed
       JOIN runs ON runs.peer = owed.peer AND runs.key = owed.key
       WHERE owed.peer = ? AND runs.state = 'done'`,
      [peer],
    ).map((row) => ({ ref: row.owed_ref, run: row }));
  }

  /**
   * The asker has recorded the status for `ref`: nothing more is owed. A
   * run keyed by its ref is then forgotten, since its asker never sends a
   * request again once it has the status; one keyed by the request's own
   * `key` is kept for resultRetentionMs, for a local process that asks again.
   */
  paid(peer: string, ref: string): void {
    const owed = this.journal.all<{ key: string }>(
      "SELECT key FROM owed WHERE peer = ? AND ref = ?",
      [peer, ref],
    )[0];
    if (!owed) return;
    this.journal.write(
      "DELETE FROM owed WHERE peer = ? AND ref = ?",
      [peer, ref],
      -1,
    );
    if (!owed.key.startsWith("ref:")) return;
    this.journal.write(
      `DELETE FROM runs WHERE peer = ? AND key = ? AND state = 'done'
         AND NOT EXISTS (SELECT 1 FROM owed WHERE owed.peer = runs.peer
                         AND owed.key = runs.key)`,
      [peer, owed.key],
      -1,
    );
  }

  /** Runs not done, for replay on start. */
  unfinished(): RunRow[] {
    return this.journal.all<RunRow>(
      "SELECT * FROM runs WHERE state != 'done' ORDER BY rowid",
    );
  }

  drop(peer: string, key: string): void {
    this.journal.write(
      "DELETE FROM runs WHERE peer = ? AND key = ?",
      [peer, key],
      -1,
    );
  }

  /**
   * Forgets finished runs older than `retentionMs` whose statuses have all
   * been acknowledged (a redelivery comes long before). A status still owed
   * is kept for OWED_RETENTION_MS, for an asker that comes back late.
   */
  compact(retentionMs: number, checkpoint = true): number {
    const now = Date.now();
    const owedBefore = now - Math.max(retentionMs, OWED_RETENTION_MS);
    return this.journal.compact([
      [
        `DELETE FROM owed WHERE EXISTS (SELECT 1 FROM runs
           WHERE runs.peer = owed.peer AND runs.key = owed.key
           AND runs.state = 'done' AND runs.done_at < ?)`,
        [owedBefore],
      ],
      [
        `DELETE FROM runs WHERE state = 'done' AND done_at < ?
           AND NOT EXISTS (SELECT 1 FROM owed
             WHERE owed.peer = runs.peer AND owed.key = runs.key)`,
        [now - retentionMs],
      ],
    ], checkpoint);
  }
}
