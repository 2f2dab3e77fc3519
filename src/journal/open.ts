/**
 * Opening the journal's database: one file per daemon (held with an
 * exclusive lock, `journal.db`, `journal-1.db`, … for daemons sharing a
 * prefix), checked, and given its tables.
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
import type { JournalOptions } from "./journal.ts";

/** The journal is held by another daemon on the same prefix. */
export class JournalLockedError extends Error {}

/** Daemons on one prefix, each with its journal. */
const MAX_JOURNALS = 16;

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
  done_at INTEGER,
  fanout TEXT
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

export interface Opened {
  db: DatabaseSync;
  /** Where the database is, for logs: a path or "memory". */
  where: string;
}

/**
 * Opens (or creates) the journal. Never throws for a bad file: an
 * unreadable one is moved aside, an unwritable place gives a journal in
 * memory, each with one log line.
 */
export function openDatabase(options: JournalOptions): Opened {
  const { dir, log } = options;
  if (dir === undefined) return inMemory();
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    log.error(
      `journal: cannot create ${dir} (${
        (error as Error).message
      }); keeping it in memory, so requests will not survive a restart`,
    );
    return inMemory();
  }
  // Daemons may share a prefix (each with a socket of its own): each holds
  // a journal of its own, the first one no other daemon holds.
  for (let n = 0; n < MAX_JOURNALS; n++) {
    const path = join(dir, n === 0 ? "journal.db" : `journal-${n}.db`);
    try {
      return openFile(path, options);
    } catch (error) {
      if (!(error instanceof JournalLockedError)) throw error;
      log.debug(`journal: ${path} is held by another daemon`);
    }
  }
  throw new JournalLockedError(
    `${MAX_JOURNALS} daemons already hold the journals in ${dir}`,
  );
}

function openFile(path: string, options: JournalOptions): Opened {
  const { log } = options;
  try {
    return { db: prepare(path), where: path };
  } catch (error) {
    if (error instanceof JournalLockedError) throw error;
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
      return { db: prepare(path), where: path };
    } catch (again) {
      log.error(
        `journal: ${path} cannot be created (${
          (again as Error).message
        }); keeping it in memory, so requests will not survive a restart`,
      );
      return inMemory();
    }
  }
}

function inMemory(): Opened {
  return { db: prepare(":memory:"), where: "memory" };
}

function prepare(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  try {
    // One daemon per journal: two would replay and run the same requests.
    // The lock is held from here until the daemon exits.
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    try {
      db.exec("BEGIN EXCLUSIVE");
      db.exec("COMMIT");
    } catch (error) {
      if (/locked|busy/i.test((error as Error).message)) {
        throw new JournalLockedError(
          `another ws-daemon is running on this prefix: ${path} is locked`,
        );
      }
      throw error;
    }
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(
      // NORMAL: a commit writes the WAL without waiting for the disk;
      // with "fsync", flush() then syncs the WAL off the event loop.
      "PRAGMA synchronous = NORMAL",
    );
    const check = db.prepare("PRAGMA quick_check").get() as
      | Record<string, unknown>
      | undefined;
    const verdict = check ? Object.values(check)[0] : "ok";
    if (verdict !== "ok") throw new Error(`integrity check: ${verdict}`);
    db.exec(SCHEMA);
    migrate(db);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/** Brings a journal written by an older version up to the schema. */
function migrate(db: DatabaseSync): void {
  const columns = db.prepare("PRAGMA table_info(outbox)").all() as {
    name: string;
  }[];
  // Fan-outs (`to` with many peers) group their requests by this column.
  if (!columns.some((column) => column.name === "fanout")) {
    db.exec("ALTER TABLE outbox ADD COLUMN fanout TEXT");
  }
  db.exec(
    "CREATE INDEX IF NOT EXISTS outbox_by_fanout ON outbox (fanout) WHERE fanout IS NOT NULL",
  );
}
