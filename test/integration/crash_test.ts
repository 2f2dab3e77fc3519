/**
 * kill -9 of either daemon with 100 requests in flight, then a restart on the
 * same prefix: each asker gets exactly one status and it is true, and no
 * script runs twice (issue 13's fault tests).
 *
 * The script `journal-run` appends "start <id>" and "end <id>" to runs.log;
 * it sleeps 0.5 s, so a kill lands while most of them run. Scripts have
 * process groups of their own: a killed daemon leaves them running to the
 * end, as a crash would.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
  startPair,
} from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";
import { until } from "../helpers/wait.ts";

const COUNT = 100;
const ids = Array.from({ length: COUNT }, (_, i) => `k${i}`);

/** Lines of runs.log as [event, id] pairs. */
async function runs(prefix: Prefix): Promise<[string, string][]> {
  const text = await Deno.readTextFile(prefix.file("runs.log")).catch(() => "");
  return text.split("\n").filter((line) => line !== "").map((line) => {
    const [event, id] = line.split(" ");
    return [event, id];
  });
}

function counted(
  pairs: [string, string][],
  event: string,
): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [seen, id] of pairs) {
    if (seen === event) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** No id started twice, and every id of `ids` started once. */
function assertEachRanOnce(pairs: [string, string][]): void {
  const starts = counted(pairs, "start");
  for (const [id, n] of starts) assertEquals(n, 1, `${id} started ${n} times`);
  for (const id of ids) assert(starts.has(id), `${id} never started`);
}

/** Every started script has ended (the orphans of a killed daemon too). */
async function allEnded(prefix: Prefix): Promise<[string, string][]> {
  return await until(
    async () => {
      const pairs = await runs(prefix);
      const ends = counted(pairs, "end");
      return ids.every((id) => ends.has(id)) ? pairs : undefined;
    },
    20_000,
    "every script to end",
  );
}

Deno.test("kill -9 of the daemon running 100 scripts, then a restart: one true status each (0 or -6, never -2), none run twice", async () => {
  await using pair = await startPair({
    client: { maxRunning: 64 },
    scripts: ["journal-run"],
  });
  await using local = await LocalClient.connect(pair.server.socket);
  for (const id of ids) {
    await local.send({ name: "journal-run", id, params: 0.5 });
  }
  // Most are running, the rest wait for a run slot, when the daemon dies.
  await until(
    async () => counted(await runs(pair.clientPrefix), "start").size >= 64,
    15_000,
    "64 scripts to start",
  );
  await pair.client.kill();

  await using restarted = await DaemonProcess.start(pair.clientPrefix);
  const answers = await local.take(COUNT, 30_000);
  const byId = new Map<unknown, Answer>();
  for (const answer of answers) {
    assert(!byId.has(answer.id), `${answer.id} answered twice`);
    byId.set(answer.id, answer);
    assert(
      answer.status === 0 || answer.status === -6,
      `status of ${answer.id}: ${JSON.stringify(answer)}`,
    );
    assertEquals(answer.peer, "client");
  }
  const unknown = answers.filter((a) => a.status === -6);
  assert(unknown.length >= 1, "the crash cut some runs off: -6");
  assert(
    unknown.length < COUNT,
    "the runs that waited for a slot ran after the restart: 0",
  );
  await local.send({
    name: "+cmd",
    id: "end",
    params: { code: "STATUS", data: { status: 0, id: "end" } },
  });
  assertEquals((await local.next()).id, "end", "no answer after the 100");

  const pairs = await allEnded(pair.clientPrefix);
  assertEachRanOnce(pairs);
  assert(
    restarted.count(
      /journal: \d+ received request\(s\) started, \d+ cut off/,
    ) ===
      1,
    "the restart says what it replayed",
  );
});

Deno.test("kill -9 of the asking daemon with 100 in flight, then a restart: every result is fetchable by RESULT, and each script ran once", async () => {
  await using serverPrefix = await Prefix.create(serverConfig(), {
    scripts: ["journal-run"],
  });
  const first = await DaemonProcess.start(serverPrefix);
  await using _first = first;
  const port = first.port;
  await using clientPrefix = await Prefix.create(
    clientConfig(port, { maxRunning: 128, reconnectMaxMs: 100 }),
    { scripts: ["journal-run"] },
  );
  await using client = await DaemonProcess.start(clientPrefix);
  await first.waitForLog(/peer client .* says hello/);
  {
    await using local = await LocalClient.connect(first.socket);
    for (const id of ids) {
      await local.send({ name: "journal-run", id, params: 0.5 });
    }
    // Every request has reached the client (each was journaled before it
    // was sent) when the asker dies.
    await until(
      async () => counted(await runs(clientPrefix), "start").size === COUNT,
      15_000,
      "all 100 scripts to start",
    );
    await first.kill();
  }

  await serverPrefix.writeConfig(serverConfig({ port }));
  await using second = await DaemonProcess.start(serverPrefix);
  await second.waitForLog(/peer client .* says hello/);
  await using asker = await LocalClient.connect(second.socket);
  const result = async (id: string) =>
    (await asker.request({
      name: "+cmd",
      id: `r-${id}`,
      params: { code: "RESULT", data: { id } },
    })).data as { state: string; result?: Answer };
  for (const id of ids) {
    const state = await until(
      async () => {
        const got = await result(id);
        return got.state === "done" ? got : undefined;
      },
      20_000,
      `RESULT of ${id} to be done`,
    );
    assertEquals(
      [state.result?.status, state.result?.id, state.result?.peer],
      [0, id, "client"],
      `result of ${id}`,
    );
  }
  assertEachRanOnce(await allEnded(clientPrefix));
  assertEquals(client.count(/ ERROR /), 0, "errors in the client's log");
});
