/**
 * The journal: what this daemon must not forget across a crash, in an
 * embedded SQLite database (`node:sqlite`) at `<prefix>/state/journal.db`.
 *
 * Writes run at once inside an open transaction, so reads see them; the
 * transaction is committed on the next turn of the event loop, which makes
 * every write of one burst share one fsync (group commit). `committed()`
 * resolves once what was written so far is on disk: a request is
 * acknowledged, and a script started, only after it.
 *
 * A journal that cannot be read never keeps the daemon from starting: the
 * file is moved aside and a fresh one begins, and the log says what was
 * skipped. A prefix where no file can be written gets a journal in memory,
 * which still carries requests across a dropped link, not a restart.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import type { Logger } from "../log.ts";

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

/** The tables, created on first open; `IF NOT EXISTS` makes it idempotent. */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  ref TEXT PRIMARY KEY,
  id TEXT,
  frame TEXT NOT NULL,
  peer TEXT,
  state TEXT NOT NULL,
  accepted_at INTEGER NOT NULL,
  deadline_at INTEGER,
  expires_at INTEGER,
  status TEXT,
  done_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_by_id ON outbox (id);
CREATE TABLE IF NOT EXISTS runs (
  peer TEXT NOT NULL,
  key TEXT NOT NULL,
  ref TEXT NOT NULL,
  frame TEXT NOT NULL,
  state TEXT NOT NULL,
  pid INTEGER,
  started_at INTEGER,
  status TEXT,
  done_at INTEGER,
  PRIMARY KEY (peer, key)
);
CREATE TABLE IF NOT EXISTS owed (
  peer TEXT NOT NULL,
  ref TEXT NOT NULL,
  key TEXT NOT NULL,
  PRIMARY KEY (peer, ref)
);
CREATE INDEX IF NOT EXISTS owed_by_key ON owed (peer, key);
`;

const TABLES = ["outbox", "runs", "owed"] as const;

export class Journal {
  readonly db: DatabaseSync;
  /** Where the database is, for logs: a path or "memory". */
  readonly where: string;
  readonly #options: JournalOptions;
  #inTransaction = false;
  #commit: PromiseWithResolvers<void> | undefined;
  #commitTimer: ReturnType<typeof setTimeout> | undefined;
  #rows = 0;
  #closed = false;

  private constructor(
    db: DatabaseSync,
    where: string,
    options: JournalOptions,
  ) {
    this.db = db;
    this.where = where;
    this.#options = options;
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
   * memory, each with one log line.
   */
  static open(options: JournalOptions): Journal {
    const { dir, log } = options;
    if (dir === undefined) return Journal.#inMemory(options);
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      log.error(
        `journal: cannot create ${dir} (${
          (error as Error).message
        }); keeping it in memory, so requests will not survive a restart`,
      );
      return Journal.#inMemory(options);
    }
    const path = join(dir, "journal.db");
    try {
      return new Journal(Journal.#prepare(path, options), path, options);
    } catch (error) {
      const aside = `${path}.unreadable-${Date.now()}`;
      try {
        Deno.renameSync(path, aside);
        for (const suffix of ["-wal", "-shm"]) {
          try {
            Deno.renameSync(path + suffix, aside + suffix);
          } catch {
            // Not there.
          }
        }
      } catch {
        // Nothing to move: the error was not the file's.
      }
      log.error(
        `journal: ${path} could not be read (${
          (error as Error).message
        }); moved to ${aside}, starting with an empty journal: requests and results it held are skipped`,
      );
      try {
        return new Journal(Journal.#prepare(path, options), path, options);
      } catch (again) {
        log.error(
          `journal: ${path} cannot be created (${
            (again as Error).message
          }); keeping it in memory, so requests will not survive a restart`,
        );
        return Journal.#inMemory(options);
      }
    }
  }

  static #inMemory(options: JournalOptions): Journal {
    return new Journal(
      Journal.#prepare(":memory:", options),
      "memory",
      options,
    );
  }

  static #prepare(path: string, { durability }: JournalOptions): DatabaseSync {
    const db = new DatabaseSync(path);
    try {
      db.exec("PRAGMA busy_timeout = 2000");
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(
        `PRAGMA synchronous = ${durability === "fsync" ? "FULL" : "NORMAL"}`,
      );
      const check = db.prepare("PRAGMA quick_check").get() as
        | Record<string, unknown>
        | undefined;
      const verdict = check ? Object.values(check)[0] : "ok";
      if (verdict !== "ok") throw new Error(`integrity check: ${verdict}`);
      db.exec(SCHEMA);
      return db;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** Whether one more row fits within journalMaxRows and journalMaxBytes. */
  hasRoom(): boolean {
    if (this.#rows >= this.#options.maxRows) return false;
    return this.bytes() < this.#options.maxBytes;
  }

  /** Rows held, across the tables. */
  get rows(): number {
    return this.#rows;
  }

  /** The database's size in bytes (pages in use). */
  bytes(): number {
    const { n } = this.db.prepare(
      "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()",
    ).get() as { n: number };
    return Number(n);
  }

  /**
   * Runs one write in the open transaction and schedules its commit.
   * `delta` is the change in rows it makes, for the bound.
   */
  write(sql: string, params: (string | number | null)[], delta = 0): number {
    if (this.#closed) return 0;
    this.#begin();
    const result = this.db.prepare(sql).run(...params);
    const changed = Number(result.changes);
    this.#rows = Math.max(0, this.#rows + delta * changed);
    return changed;
  }

  /** Rows for a read; sees what the open transaction wrote. */
  all<T>(sql: string, params: (string | number | null)[] = []): T[] {
    if (this.#closed) return [];
    return this.db.prepare(sql).all(...params) as T[];
  }

  /** Resolves once every write so far is committed (durable per durability). */
  committed(): Promise<void> {
    return this.#commit?.promise ?? Promise.resolve();
  }

  #begin(): void {
    if (this.#inTransaction) return;
    this.db.exec("BEGIN");
    this.#inTransaction = true;
    this.#commit = Promise.withResolvers<void>();
    // The next macrotask: frames that arrived in this burst join the batch.
    this.#commitTimer = setTimeout(() => this.flush(), 0);
  }

  /** Commits the open transaction now. */
  flush(): void {
    clearTimeout(this.#commitTimer);
    if (!this.#inTransaction) return;
    const commit = this.#commit!;
    this.#inTransaction = false;
    this.#commit = undefined;
    try {
      this.db.exec("COMMIT");
    } catch (error) {
      this.#options.log.error(
        `journal: commit failed: ${(error as Error).message}`,
      );
    }
    commit.resolve();
  }

  /**
   * Deletes rows no longer needed (`sql` statements with their params) and
   * gives the file's free pages back: called now and then, off the hot path.
   */
  compact(statements: [string, (string | number | null)[]][]): number {
    let removed = 0;
    for (const [sql, params] of statements) {
      removed += this.write(sql, params, -1);
    }
    this.flush();
    if (removed > 0) {
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
    this.flush();
    this.#closed = true;
    this.db.close();
  }
}
