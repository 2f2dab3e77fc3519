import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { Journal, type JournalOptions } from "../../src/journal/journal.ts";
import { OutboxRows } from "../../src/outbox/outbox_rows.ts";
import { Logger } from "../../src/log.ts";

/** A logger that keeps what it is told instead of writing it. */
class KeptLines extends Logger {
  readonly lines: string[] = [];
  override info(message: string): void {
    this.lines.push(`INFO ${message}`);
  }
  override warn(message: string): void {
    this.lines.push(`WARN ${message}`);
  }
  override error(message: string): void {
    this.lines.push(`ERROR ${message}`);
  }
}

function options(
  dir: string | undefined,
  log = new KeptLines(),
): JournalOptions {
  return {
    dir,
    durability: "fsync",
    maxRows: 1_000,
    maxBytes: 64 * 1024 * 1024,
    log,
  };
}

const request = (ref: string, id?: string) => ({
  ref,
  hasId: id !== undefined,
  id,
  text: JSON.stringify({ name: "noop", id }),
  acceptedAt: Date.now(),
});

Deno.test("writes of one burst share one commit, and survive a reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const journal = Journal.open(options(`${dir}/state`));
    const rows = new OutboxRows(journal);
    for (let i = 0; i < 50; i++) rows.put(request(`r${i}`), "queued", null);
    const commit = journal.committed();
    rows.put(request("late"), "queued", null);
    assert(journal.committed() === commit, "one transaction for the burst");
    await commit;
    assertEquals(journal.rows, 51);
    // Reads see what is written, before the commit too.
    rows.finish(request("r0", undefined), { status: 3 });
    assertEquals(rows.unfinished().length, 50);
    journal.close();

    const again = Journal.open(options(`${dir}/state`));
    assertEquals(again.rows, 51);
    assertEquals(new OutboxRows(again).unfinished().length, 50);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unreadable journal is moved aside, said in one line, and a fresh one starts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/state`);
    await Deno.writeTextFile(
      `${dir}/state/journal.db`,
      "this is not a database ".repeat(200),
    );
    const log = new KeptLines();
    const journal = Journal.open(options(`${dir}/state`, log));
    assertEquals(journal.where, `${dir}/state/journal.db`);
    assertEquals(journal.rows, 0);
    new OutboxRows(journal).put(request("a"), "queued", null);
    journal.close();
    assertEquals(log.lines.length, 1, log.lines.join("\n"));
    assertMatch(
      log.lines[0],
      /^ERROR journal: .*journal\.db could not be read .*moved to .*journal\.db\.unreadable-\d+, starting with an empty journal/,
    );
    const names = [...Deno.readDirSync(`${dir}/state`)].map((e) => e.name);
    assert(
      names.some((name) => name.startsWith("journal.db.unreadable-")),
      `kept aside: ${names}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a journal is torn mid-write (WAL cut short): it opens with what was committed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const journal = Journal.open(options(`${dir}/state`));
    const rows = new OutboxRows(journal);
    rows.put(request("kept"), "queued", null);
    await journal.committed();
    // A copy of the files as they are on disk while the daemon runs (not
    // checkpointed), with the WAL's tail cut: a crash in mid-write.
    await Deno.mkdir(`${dir}/copy`);
    for (const suffix of ["", "-wal"]) {
      await Deno.copyFile(
        `${dir}/state/journal.db${suffix}`,
        `${dir}/copy/journal.db${suffix}`,
      );
    }
    journal.close();
    const wal = await Deno.readFile(`${dir}/copy/journal.db-wal`);
    await Deno.writeFile(
      `${dir}/copy/journal.db-wal`,
      wal.subarray(0, wal.length - 100),
    );
    const log = new KeptLines();
    const torn = Journal.open(options(`${dir}/copy`, log));
    // SQLite drops the torn frame; whatever survives, it opens and works.
    new OutboxRows(torn).put(request("after"), "queued", null);
    assert(torn.rows >= 1);
    torn.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a place where no file can be made gets a journal in memory, said once", () => {
  const log = new KeptLines();
  const journal = Journal.open(options("/proc/no-such-place/state", log));
  assertEquals(journal.where, "memory");
  new OutboxRows(journal).put(request("a"), "queued", null);
  assertEquals(journal.rows, 1);
  journal.close();
  assertEquals(log.lines.length, 1);
  assertMatch(log.lines[0], /keeping it in memory/);
});

Deno.test("the journal is bounded by journalMaxRows", () => {
  const journal = Journal.open({ ...options(undefined), maxRows: 3 });
  const rows = new OutboxRows(journal);
  for (let i = 0; i < 3; i++) {
    assert(journal.hasRoom(), `room for ${i}`);
    rows.put(request(`r${i}`), "queued", null);
  }
  assert(!journal.hasRoom(), "full at 3 rows");
  journal.close();
});

Deno.test("compaction drops results past their retention, and the oldest past maxResults", async () => {
  const journal = Journal.open(options(undefined));
  const rows = new OutboxRows(journal);
  for (let i = 0; i < 5; i++) {
    const entry = request(`r${i}`, `id${i}`);
    rows.put(entry, "sent", "peer");
    rows.finish(entry, { status: i, id: `id${i}` });
  }
  rows.put(request("open", "id-open"), "sent", "peer");
  await journal.committed();
  assertEquals(rows.compact(3_600_000, 3), 2, "the two oldest results go");
  assertEquals(rows.byId(JSON.stringify("id0")), undefined);
  assertEquals(rows.byId(JSON.stringify("id4"))?.state, "done");
  assertEquals(rows.byId(JSON.stringify("id-open"))?.state, "sent");
  assertEquals(rows.compact(-1, 100), 3, "past retention: every result goes");
  assertEquals(rows.unfinished().length, 1, "unfinished requests stay");
  assertEquals(journal.rows, 1);
  journal.close();
});

Deno.test("journalMaxBytes counts pages in use: room comes back once rows go", async () => {
  const journal = Journal.open({
    ...options(undefined),
    maxRows: 1_000_000,
    maxBytes: 1024 * 1024,
  });
  const rows = new OutboxRows(journal);
  const big = "x".repeat(4_000);
  let n = 0;
  while (journal.hasRoom() && n < 10_000) {
    const entry = { ...request(`r${n++}`), text: JSON.stringify({ big }) };
    rows.put(entry, "queued", null);
    rows.finish(entry, { status: 0 });
  }
  assert(!journal.hasRoom() && n > 10, `full after ${n} rows`);
  await journal.committed();
  rows.compact(-1, 0);
  assert(journal.hasRoom(), "room again after compaction");
  journal.close();
});

Deno.test("a write that fails (disk full) rolls its transaction back: what waits for it is told, and new requests are refused for a while", async () => {
  const log = new KeptLines();
  const journal = Journal.open(options(undefined, log));
  const rows = new OutboxRows(journal);
  rows.put(request("kept"), "queued", null);
  await journal.committed();
  // SQLite says "database or disk is full" past max_page_count.
  const { page_count: n } = journal.db.prepare("PRAGMA page_count").get() as {
    page_count: number;
  };
  journal.db.exec(`PRAGMA max_page_count = ${n}`);
  const big = { ...request("big"), text: "x".repeat(200_000) };
  rows.put(big, "queued", null);
  rows.put(request("small"), "queued", null);
  let failure = "";
  await journal.committed().catch((error) => failure = error.message);
  // Room again for a small row once the outage is over: it commits.
  journal.db.exec("PRAGMA max_page_count = 1000000");
  assertMatch(failure, /the journal could not be written/);
  assert(!journal.hasRoom(), "no room right after a failed write");
  assertEquals(rows.unfinished().map((row) => row.ref), ["kept"]);
  assertEquals(log.lines.filter((l) => l.startsWith("ERROR")).length, 1);
  journal.close();
});
