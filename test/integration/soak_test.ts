/**
 * A short soak (20 s; `make soak` runs it for longer): mixed load both ways
 * with torn, cut and stalled links and restarts of both daemons, killed and
 * stopped. Nothing is lost, answered twice, run twice, or misreported.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import { soak } from "../helpers/soak.ts";

const SECONDS = Number(Deno.env.get("WSDAEMON_SOAK_SECONDS") ?? "20");

Deno.test(`soak for ${SECONDS} s: 0 lost, 0 duplicates, 0 run twice, 0 false statuses`, async () => {
  const report = await soak(SECONDS, (line) => console.log(line));
  console.log(JSON.stringify({ ...report, rss: undefined }));
  console.log(
    `rss (s, server MiB, client MiB): ${
      report.rss.map(([t, s, c]) => `${t}:${s.toFixed(0)}/${c.toFixed(0)}`)
        .join(" ")
    }`,
  );
  assertEquals(report.problems, [], "problems");
  assertEquals(
    [report.lost, report.duplicates, report.ranTwice, report.falseStatuses],
    [0, 0, 0, 0],
    "lost, duplicates, run twice, false",
  );
  assert(report.sent > 100, `only ${report.sent} requests sent`);
  assert(
    Object.values(report.faults).reduce((a, b) => a + b, 0) >= 5,
    `faults: ${JSON.stringify(report.faults)}`,
  );
});
