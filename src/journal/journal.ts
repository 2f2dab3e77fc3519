/**
 * The journal: what this daemon must not forget across a crash, in an
 * embedded SQLite database (`node:sqlite`) at `<prefix>/state/journal.db`.
 *
 * Writes run at once inside an open transaction, so reads see them. The
 * transaction is committed once the event loop has handled this turn's I/O
 * when something waits for it (`committed()`: a request about to be sent, a
 * script about to start), else within LAZY_COMMIT_MS; either way every write
 * of one burst shares one fsync (group commit). An acknowledgement waits for
 * the commit (`committedLater()`), since an ack is a promise that what it
 * names survives a crash.
 *
 * Opening it, and what happens when it cannot be read, is open.ts.
 *
 * @module
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { clearImmediate, setImmediate } from "node:timers";
import type { Logger } from "../log.ts";
import { openDatabase } from "./open.ts";

export { JournalLockedError } from "./open.ts";

export type Durability = "fsync" | "relaxed";

export interface JournalOptions {
  /** `<prefix>/state`, or undefined for a journal in memory. */
  dir: string | undefined;
  durability: Durability;
  /** Rows the journal may hold; more requests are refused -5 "busy". */
  maxRows: number;
  /** Bytes the database file may take. */
  maxBytes: number;
  log: Logger;
}

const TABLES = ["outbox", "runs", "owed"] as const;

/** How long after a failed write new requests are refused. */
const FAILED_MS = 5_000;

/** How long writes nothing waits for may stay uncommitted. */
const LAZY_COMMIT_MS = 20;

export class Journal {
  readonly db: DatabaseSync;
  /** Where the database is, for logs: a path or "memory". */
  readonly where: string;
  readonly #options: JournalOptions;
  #inTransaction = false;
  #commit: PromiseWithResolvers<void> | undefined;
  /** The commit something waits for, after this turn's I/O. */
  #soon: ReturnType<typeof setImmediate> | undefined;
  /** The commit nothing waits for, a little later, joining more writes. */
  #later: ReturnType<typeof setTimeout> | undefined;
  #rows = 0;
  #closed = false;
  /** Compiled statements, by their text: compiling costs more than running. */
  readonly #statements = new Map<string, StatementSync>();
  /** The file's size as last measured, and how many writes ago. */
  #bytes = 0;
  #writesSinceMeasured = Infinity;
  /** When a write last failed; a transaction with a failed write. */
  #failedAt = -Infinity;
  #poisoned = false;
  /** Set when an fsync failed: why nothing is promised durable any more. */
  #broken = "";
  /**
   * The WAL, opened at the start to sync it ("fsync" durability only; else,
   * or if it could not be opened, undefined). With the exclusive lock it
   * stays (SQLite truncates it, and deletes it only at close). And the
   * commits whose fsync is under way.
   */
  #wal: Deno.FsFile | undefined;
  readonly #syncing = new Set<PromiseWithResolvers<void>>();
  /** The last transaction committed; resolves once it is durable. */
  #lastFlushed: Promise<void> = Promise.resolve();
  /** The same, resolved as soon as it is committed, before its fsync. */
  #written: PromiseWithResolvers<void> | undefined;
  #lastWritten: Promise<void> = Promise.resolve();

  private constructor(
    db: DatabaseSync,
    where: string,
    options: JournalOptions,
  ) {
    this.db = db;
    this.where = where;
    this.#options = options;
    if (options.durability === "fsync" && where !== "memory") {
      try {
        // A write makes SQLite create the WAL, which stays while it is open.
        db.exec("PRAGMA user_version = 1");
        this.#wal = Deno.openSync(`${where}-wal`, { read: true });
      } catch (error) {
        // Without a handle to sync, SQLite syncs each commit itself.
        db.exec("PRAGMA synchronous = FULL");
        options.log.warn(
          `journal: ${where}-wal cannot be opened (${
            (error as Error).message
          }); each commit is synced by SQLite, holding the event loop`,
        );
      }
    }
    this.#rows = TABLES.reduce(
      (sum, table) =>
        sum +
        Number(
          (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as {
            n: number;
          }).n,
        ),
      0,
    );
  }

  /**
   * Opens (or creates) the journal. Never throws for a bad file: an
   * unreadable one is moved aside, an unwritable place gives a journal in
   * memory, each with one log line (see open.ts).
   */
  static open(options: JournalOptions): Journal {
    const { db, where } = openDatabase(options);
    return new Journal(db, where, options);
  }

  /** Whether one more row fits within journalMaxRows and journalMaxBytes. */
  hasRoom(): boolean {
    if (this.#broken) return false;
    if (Date.now() - this.#failedAt < FAILED_MS) return false;
    if (this.#rows >= this.#options.maxRows) return false;
    // Measured every 64 writes: a row is small against the bound.
    if (this.#writesSinceMeasured >= 64) {
      this.#bytes = this.bytes();
      this.#writesSinceMeasured = 0;
    }
    return this.#bytes < this.#options.maxBytes;
  }

  /** Rows held, across the tables. */
  get rows(): number {
    return this.#rows;
  }

  /** journalMaxRows. */
  get maxRows(): number {
    return this.#options.maxRows;
  }

  /** Bytes in use: pages holding data (free pages are reused first). */
  bytes(): number {
    const { n } = this.#statement(
      `SELECT (page_count - freelist_count) * page_size AS n
         FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()`,
    ).get() as { n: number };
    return Number(n);
  }

  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * Runs one write in the open transaction and schedules its commit.
   * `delta` is the change in rows it makes, for the bound.
   */
  write(sql: string, params: (string | number | null)[], delta = 0): number {
    if (this.#closed) return 0;
    this.#begin();
    this.#writesSinceMeasured++;
    // Between two measures of the file, what is written counts in full, so
    // that a few large rows cannot pass journalMaxBytes unseen.
    for (const param of params) {
      if (typeof param === "string") this.#bytes += param.length;
    }
    try {
      const result = this.#statement(sql).run(...params);
      const changed = Number(result.changes);
      this.#rows = Math.max(0, this.#rows + delta * changed);
      return changed;
    } catch (error) {
      // Disk full, I/O error: this transaction cannot be trusted; it is
      // rolled back, and what waits for it is told (see flush()).
      this.#fail(error as Error);
      this.#poisoned = true;
      return 0;
    }
  }

  /** Logs a failure once per outage, and refuses new work for a while. */
  #fail(error: Error): void {
    if (Date.now() - this.#failedAt > FAILED_MS) {
      this.#options.log.error(
        `journal: ${this.where}: a write failed (${error.message}); new requests are refused -5 for a while`,
      );
    }
    this.#failedAt = Date.now();
  }

  /** Rows for a read; sees what the open transaction wrote. */
  all<T>(sql: string, params: (string | number | null)[] = []): T[] {
    if (this.#closed) return [];
    return this.#statement(sql).all(...params) as T[];
  }

  /**
   * Resolves once every write so far is committed (durable per durability),
   * committing right after this turn's I/O: for what waits on it (a request
   * about to be sent, a script about to start).
   */
  committed(): Promise<void> {
    if (this.#broken) return this.#refusal();
    if (!this.#inTransaction) return this.#lastFlushed;
    if (this.#soon === undefined) {
      // setTimeout(0) would wait 2 ms here; setImmediate does not.
      this.#soon = setImmediate(() => this.flush());
    }
    return this.#commit!.promise;
  }

  /**
   * Resolves once every write so far is committed, before its fsync: it
   * then survives the daemon's death (kill -9), not yet a power loss. For
   * a request about to be sent: a power loss in that window can lose its
   * record, not make anything run twice.
   */
  written(): Promise<void> {
    if (this.#broken) return this.#refusal();
    if (!this.#inTransaction) return this.#lastWritten;
    this.committed(); // Schedules the commit right after this turn's I/O.
    return this.#written!.promise;
  }

  /**
   * Resolves once every write so far is committed, whenever that happens:
   * for what may wait (an acknowledgement), so that a commit, which holds
   * the event loop for its fsync, does not run between a status and the
   * next request.
   */
  committedLater(): Promise<void> {
    if (this.#broken) return this.#refusal();
    return this.#commit?.promise ?? this.#lastFlushed;
  }

  /** A rejected promise, handled once so that it never goes unhandled. */
  #refusal(): Promise<void> {
    const refused = Promise.reject(new Error(this.#broken));
    refused.catch(() => {});
    return refused;
  }

  #begin(): void {
    if (this.#inTransaction) {
      // SQLite may have rolled a failed transaction back itself (it does for
      // a full disk): later writes of this batch go into a new one, to be
      // rolled back with it, rather than commit on their own.
      if (!this.db.isTransaction) this.db.exec("BEGIN");
      return;
    }
    this.db.exec("BEGIN");
    this.#inTransaction = true;
    this.#commit = Promise.withResolvers<void>();
    this.#written = Promise.withResolvers<void>();
    // Handled here too: a failed commit nobody waits for is only logged.
    this.#commit.promise.catch(() => {});
    this.#written.promise.catch(() => {});
    this.#later = setTimeout(() => this.flush(), LAZY_COMMIT_MS);
  }

  /**
   * Commits the open transaction now; its waiters hear once it is durable
   * (`sync`: before this returns, at close).
   */
  flush(sync = false): void {
    clearTimeout(this.#later);
    if (this.#soon !== undefined) clearImmediate(this.#soon);
    this.#later = undefined;
    this.#soon = undefined;
    if (!this.#inTransaction) return;
    const commit = this.#commit!;
    const written = this.#written!;
    // Until the next one, what waits for "everything so far" waits for this.
    this.#lastFlushed = commit.promise;
    this.#lastWritten = written.promise;
    this.#written = undefined;
    const poisoned = this.#poisoned;
    this.#inTransaction = false;
    this.#commit = undefined;
    this.#poisoned = false;
    try {
      if (poisoned) throw new Error("a write in it failed");
      this.db.exec("COMMIT");
    } catch (error) {
      this.#fail(error as Error);
      try {
        if (this.db.isTransaction) this.db.exec("ROLLBACK");
      } catch {
        // SQLite rolled it back itself.
      }
      // Nothing may be acknowledged or started on the strength of it.
      const failure = new Error(
        `the journal could not be written: ${(error as Error).message}`,
      );
      commit.reject(failure);
      written.reject(failure);
      return;
    }
    written.resolve();
    const wal = this.#wal;
    if (!wal) return commit.resolve();
    if (sync) {
      this.#syncNow(wal, commit);
      return;
    }
    // The fsync runs on a thread of its own, not holding the event loop;
    // one that starts after this commit covers it (and those before).
    this.#syncing.add(commit);
    wal.syncData().then(
      () => commit.resolve(),
      (error: Error) => {
        if (!this.#closed) {
          this.#fail(error);
          // Linux reports a lost write-back once: a later fsync may succeed
          // over frames that never reached the disk. Nothing is promised
          // durable again until a restart replays the journal.
          this.#broken =
            `the journal's disk failed (${error.message}); restart the daemon`;
          this.#options.log.error(`journal: ${this.#broken}`);
        }
        commit.reject(
          new Error(`the journal could not be synced: ${error.message}`),
        );
      },
    ).finally(() => this.#syncing.delete(commit));
  }

  /** Syncs the WAL on this thread (at close): covers every commit so far. */
  #syncNow(wal: Deno.FsFile, commit?: PromiseWithResolvers<void>): void {
    try {
      wal.syncDataSync();
      commit?.resolve();
      for (const waiting of this.#syncing) waiting.resolve();
    } catch (error) {
      this.#fail(error as Error);
      commit?.reject(error);
    }
  }

  /**
   * Deletes rows no longer needed (`sql` statements with their params) and
   * gives the file's free pages back: called now and then, off the hot path.
   */
  compact(
    statements: [string, (string | number | null)[]][],
    checkpoint = true,
  ): number {
    let removed = 0;
    for (const [sql, params] of statements) {
      removed += this.write(sql, params, -1);
    }
    this.flush();
    this.#writesSinceMeasured = Infinity; // Measure the room again.
    if (removed > 0 && checkpoint) {
      try {
        this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch {
        // A reader holds the WAL: the next compaction will do it.
      }
    }
    return removed;
  }

  /** Commits what is open and closes the database. */
  close(): void {
    if (this.#closed) return;
    this.flush(true);
    const wal = this.#wal;
    if (wal && this.#syncing.size > 0) this.#syncNow(wal);
    this.#closed = true;
    this.#wal?.close();
    this.#wal = undefined;
    this.#statements.clear();
    this.db.close();
  }
}
