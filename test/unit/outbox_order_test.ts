import { EventBus } from "../../src/events/bus.ts";
import { assertEquals } from "../helpers/assert.ts";
import { until } from "../helpers/wait.ts";
import { Journal } from "../../src/journal/journal.ts";
import { OutboxRows } from "../../src/outbox/outbox_rows.ts";
import { Outbox } from "../../src/outbox/outbox.ts";
import { Logger } from "../../src/log.ts";

const log = new Logger("error");

for (const durability of ["relaxed", "fsync"] as const) {
  Deno.test(`${durability}: a command never overtakes an earlier request waiting for its commit, even when a compaction commits in between`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const journal = Journal.open({
        dir: `${dir}/state`,
        durability,
        maxRows: 2,
        maxBytes: 1e9,
        log,
      });
      const rows = new OutboxRows(journal);
      // An old result fills the journal, so the request's arrival compacts.
      const old = { ref: "old", hasId: false, text: "{}", acceptedAt: 0 };
      rows.put(old, "done", null);
      rows.finish(old, { status: 0 });
      journal.flush();
      const sent: string[] = [];
      // The parts of a link and a Remote the outbox uses: a ready peer
      // with acknowledgements that records what it is sent.
      const link = {
        name: "P",
        isReady: true,
        isOpen: true,
        hello: undefined,
        has: (feature: string) =>
          feature === "ack" || feature === "request-ref",
        send: (text: string) => {
          sent.push(JSON.parse(text).name);
          return true;
        },
      };
      const outbox = new Outbox({
        remote: { pick: () => link, whyNone: () => "none" } as never,
        bus: new EventBus(),
        rows,
        log,
        maxMessageBytes: 1 << 20,
        offline: "queue",
        queueTtlMs: 60_000,
        resultRetentionMs: 60_000,
        onFull: () => rows.compact(-1, 0, false),
      });
      const owner = { owe() {}, reply() {}, settle() {} };
      const message = (name: string) => ({
        name,
        hasId: false,
        params: null,
        fields: { name },
      });
      // One read from a local connection: a request, then a command.
      outbox.submit(owner, message("first"), '{"name":"first"}', {});
      outbox.submit(owner, message("second"), '{"name":"second"}', {
        command: true,
      });
      await until(() => sent.length === 2, 5_000, "both to be sent");
      assertEquals(sent, ["first", "second"]);
      journal.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
