/**
 * `+cmd RESULT` within its bounds: resultRetentionMs and maxResults hold at
 * once (not only when compaction runs), and a bad `key` is answered -4.
 */

import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";
import { until } from "../helpers/wait.ts";

function resultOf(local: LocalClient, id: string) {
  return async () => ((await local.request({
    name: "+cmd",
    id: `r-${id}`,
    params: { code: "RESULT", data: { id } },
  })).data as { state: string; result?: Answer });
}

Deno.test("a result is fetchable for resultRetentionMs, then unknown; at most maxResults are kept, the oldest go first", async () => {
  await using pair = await startPair({
    server: { resultRetentionMs: 400, maxResults: 3 },
    scripts: ["exit-with"],
  });
  await using local = await LocalClient.connect(pair.server.socket);
  const doneAt = Date.now();
  assertEquals(
    (await local.request({ name: "exit-with", id: "kept", params: 5 })).status,
    5,
  );
  const first = await resultOf(local, "kept")();
  assertEquals([first.state, first.result?.status], ["done", 5]);
  await until(
    async () => (await resultOf(local, "kept")()).state === "unknown",
    10_000,
    "the result to pass its retention",
  );
  assert(Date.now() - doneAt >= 400, "not before resultRetentionMs");

  for (let i = 0; i < 5; i++) {
    await local.request({ name: "exit-with", id: `n${i}`, params: i });
  }
  const states = [];
  for (let i = 0; i < 5; i++) {
    states.push((await resultOf(local, `n${i}`)()).state);
  }
  assertEquals(states, ["unknown", "unknown", "done", "done", "done"]);
});

Deno.test("a request's key must be a string of 1 to 256 characters: anything else is -4, and nothing runs", async () => {
  await using pair = await startPair({ scripts: ["record"] });
  await using local = await LocalClient.connect(pair.server.socket);
  for (const key of [123, null, "", "x".repeat(257), ["a"], { a: 1 }]) {
    const answer = await local.request({ name: "record", id: "k", key });
    assertEquals([answer.status, answer.id], [-4, "k"], JSON.stringify(key));
    assertMatch(String(answer.error), /'key' must be a string of 1 to 256/);
  }
  const good = await local.request({
    name: "record",
    id: "k",
    key: "deploy-1",
  });
  assertEquals(good.status, 0);
  const again = await local.request({
    name: "record",
    id: "k2",
    key: "deploy-1",
  });
  assertEquals([again.status, again.id, again.duplicate], [0, "k2", true]);
  const ran = [...Deno.readDirSync(pair.clientPrefix.file("out"))].map((e) =>
    e.name
  );
  assertEquals(ran, ["k"], "one run for the key");
});
