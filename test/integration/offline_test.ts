/**
 * The offline policy, queueTtlMs, a full journal, and requests queued while
 * the client's server is down (issue 13, parts 2 and 4).
 */

import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  freePort,
  Prefix,
  serverConfig,
  startPair,
} from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";
import { until } from "../helpers/wait.ts";

const COUNT = 20;

Deno.test("requests queued while the client's server is down are all delivered once when it starts", async () => {
  const port = freePort();
  await using clientPrefix = await Prefix.create(
    clientConfig(port, { reconnectMaxMs: 100 }),
    { scripts: [] },
  );
  await using client = await DaemonProcess.start(clientPrefix);
  await using local = await LocalClient.connect(client.socket);
  for (let i = 0; i < COUNT; i++) {
    await local.send({ name: "record", id: `q${i}`, params: { i } });
  }
  // Nothing is answered while there is no server: they wait.
  const marker = await local.request({
    name: "+cmd",
    id: "marker",
    params: { code: "STATUS", data: { status: 0, id: "marker" } },
  });
  assertEquals(marker.id, "marker", "no answer came before the server");

  await using serverPrefix = await Prefix.create(serverConfig({ port }), {
    scripts: ["record"],
  });
  await using _server = await DaemonProcess.start(serverPrefix);
  const answers = await local.take(COUNT, 15_000);
  const ids = new Set(answers.map((answer) => answer.id));
  assertEquals(ids.size, COUNT, "one answer each");
  for (const answer of answers) {
    assertEquals([answer.status, answer.peer], [0, "server"], `${answer.id}`);
  }
  const ran = [...Deno.readDirSync(serverPrefix.file("out"))].map((e) =>
    e.name
  );
  assertEquals(ran.sort(), [...ids].map(String).sort(), "each ran once");
});

Deno.test("queueTtlMs: a request that finds no peer in time is -2, saying why", async () => {
  await using prefix = await Prefix.create(
    clientConfig(freePort(), { queueTtlMs: 300 }),
    { scripts: [] },
  );
  await using client = await DaemonProcess.start(prefix);
  await using local = await LocalClient.connect(client.socket);
  const asked = Date.now();
  const answer = await local.request({ name: "noop", id: "ttl" });
  const tookMs = Date.now() - asked;
  assertEquals([answer.status, answer.id], [-2, "ttl"]);
  assertMatch(String(answer.error), /no peer within queueTtlMs \(300 ms\)/);
  assert(tookMs >= 280 && tookMs < 5_000, `answered after ${tookMs} ms`);
  // A deadline shorter than queueTtlMs wins.
  const short = await local.request({
    name: "noop",
    id: "short",
    deadlineMs: 100,
  });
  assertMatch(String(short.error), /no peer within deadlineMs \(100 ms\)/);
});

Deno.test('offline "reject" on a client answers -2 at once; "queue" on a server waits for a client', async () => {
  await using rejecting = await Prefix.create(
    clientConfig(freePort(), { offline: "reject" }),
    { scripts: [] },
  );
  await using client = await DaemonProcess.start(rejecting);
  await using local = await LocalClient.connect(client.socket);
  const answer = await local.request({ name: "noop", id: "r" });
  assertEquals([answer.status, answer.id], [-2, "r"]);
  assertMatch(String(answer.error), /not connected/);

  await using serverPrefix = await Prefix.create(
    serverConfig({ offline: "queue" }),
    { scripts: [] },
  );
  await using server = await DaemonProcess.start(serverPrefix);
  await using asker = await LocalClient.connect(server.socket);
  await asker.send({ name: "exit-with", id: "waits", params: 4 });
  await using clientPrefix = await Prefix.create(clientConfig(server.port), {
    scripts: ["exit-with"],
  });
  await using _client = await DaemonProcess.start(clientPrefix);
  const waited = await asker.next(15_000);
  assertEquals([waited.status, waited.id, waited.peer], [4, "waits", "client"]);
});

Deno.test("a full journal refuses new requests with -5 busy, and takes them again once there is room", async () => {
  await using pair = await startPair({
    server: { journalMaxRows: 3 },
    scripts: ["wait-release", "exit-with"],
  });
  await using local = await LocalClient.connect(pair.server.socket);
  for (let i = 0; i < 3; i++) {
    await local.send({ name: "wait-release", id: `hold${i}`, params: 0 });
  }
  const refused = await local.request({ name: "exit-with", id: "more" });
  assertEquals([refused.status, refused.id], [-5, "more"]);
  assertMatch(String(refused.error), /busy: the journal is full/);
  await Deno.mkdir(pair.clientPrefix.file("release"), { recursive: true });
  await Deno.writeTextFile(pair.clientPrefix.file("release", "all"), "");
  const held: Answer[] = await local.take(3);
  assertEquals(held.map((a) => a.status), [0, 0, 0]);
  // Full of results now: the oldest is dropped to make room.
  const again = await local.request({
    name: "exit-with",
    id: "again",
    params: 0,
  });
  assertEquals([again.status, again.id], [0, "again"]);
  await pair.server.waitForLog(
    /journal full: the 1 oldest result\(s\) dropped/,
  );
});

Deno.test('SIGHUP changes the offline policy: "reject" answers -2 at once, "queue" again waits', async () => {
  const port = freePort();
  await using prefix = await Prefix.create(clientConfig(port), {
    scripts: [],
  });
  await using client = await DaemonProcess.start(prefix, {
    args: ["--log-level", "debug"],
  });
  await using local = await LocalClient.connect(client.socket);
  await local.send({ name: "exit-with", id: "queued", params: 6 });
  await client.waitForLog(/request [0-9a-f]+ queued/);

  await prefix.writeConfig(clientConfig(port, { offline: "reject" }));
  Deno.kill(client.child.pid, "SIGHUP");
  await client.waitForLog(/SIGHUP: configuration reloaded/);
  const rejected = await local.request({ name: "noop", id: "rejected" });
  assertEquals([rejected.status, rejected.id], [-2, "rejected"]);

  // What was queued before stays queued, and goes out when a server comes.
  await using serverPrefix = await Prefix.create(serverConfig({ port }), {
    scripts: ["exit-with"],
  });
  await using _server = await DaemonProcess.start(serverPrefix);
  const queued = await local.next(15_000);
  assertEquals([queued.status, queued.id], [6, "queued"]);
});

Deno.test("SIGTERM with only queued requests (no peer, nothing running) stops at once and keeps them", async () => {
  const port = freePort();
  await using prefix = await Prefix.create(clientConfig(port), {
    scripts: [],
  });
  const client = await DaemonProcess.start(prefix, {
    args: ["--log-level", "debug"],
  });
  await using _client = client;
  await using local = await LocalClient.connect(client.socket);
  await local.send({ name: "exit-with", id: "kept", params: 7 });
  await client.waitForLog(/request [0-9a-f]+ queued/);
  const asked = Date.now();
  assertEquals((await client.stop("SIGTERM")).code, 0);
  assert(Date.now() - asked < 5_000, "did not sit out shutdownGraceMs");
  assertEquals(client.count(/1 request\(s\) not finished are kept/), 1);

  await using again = await DaemonProcess.start(prefix);
  await using serverPrefix = await Prefix.create(serverConfig({ port }), {
    scripts: ["exit-with"],
  });
  await using _server = await DaemonProcess.start(serverPrefix);
  await using asker = await LocalClient.connect(again.socket);
  const result = await until(
    async () => {
      const answer = await asker.request({
        name: "+cmd",
        id: "r",
        params: { code: "RESULT", data: { id: "kept" } },
      });
      const data = answer.data as { state: string; result?: Answer };
      return data.state === "done" ? data.result : undefined;
    },
    15_000,
    "the kept request to run after the restart",
  );
  assertEquals([result?.status, result?.id], [7, "kept"]);
});
