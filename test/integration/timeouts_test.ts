/**
 * A script's time limit: `timeoutMs` on the request, `scriptTimeoutMs` as
 * the default, capped by `maxTimeoutMs`. At the limit the script's whole
 * group gets SIGTERM, then SIGKILL after `killGraceMs`, and the asker gets
 * -3. At shutdown, past the grace, the same two steps.
 */

import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { until } from "../helpers/wait.ts";

/** Ignores SIGTERM (and its children inherit that): only SIGKILL ends it. */
const STUBBORN = `#!/bin/sh
trap '' TERM
echo $$ >"$WSDAEMON_PREFIX/stubborn.pid"
while :; do sleep 0.05; done
`;

/** Leaves a child in its group, then sleeps; SIGTERM ends both. */
const PARENT = `#!/bin/sh
sleep 30 &
echo $! >"$WSDAEMON_PREFIX/child.pid"
sleep 30
`;

/**
 * Whether `pid` runs: a zombie counts as dead (its exit is done; a pid 1
 * that does not reap, as in some containers, would otherwise keep it).
 */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

Deno.test("timeoutMs: the script's group gets SIGTERM, the asker -3; one that ignores it gets SIGKILL after killGraceMs", async () => {
  await using pair = await startPair({
    client: { killGraceMs: 300 },
    scripts: ["exit-with"],
  });
  await pair.clientPrefix.addScript("parent", PARENT);
  await pair.clientPrefix.addScript("stubborn", STUBBORN);
  await using local = await LocalClient.connect(pair.server.socket);

  const started = Date.now();
  const term = await local.request({ name: "parent", id: "p", timeoutMs: 300 });
  assertEquals([term.status, term.id, term.signal], [-3, "p", "SIGTERM"]);
  assertMatch(String(term.error), /timed out after 300 ms/);
  assert(Date.now() - started < 5_000, "answered at the limit");
  const child = Number(
    await Deno.readTextFile(pair.clientPrefix.file("child.pid")),
  );
  await until(() => !alive(child), 5_000, "the script's child to be gone");

  const kill = await local.request({
    name: "stubborn",
    id: "s",
    timeoutMs: 200,
  });
  assertEquals([kill.status, kill.id, kill.signal], [-3, "s", "SIGKILL"]);
  const stubborn = Number(
    await Deno.readTextFile(pair.clientPrefix.file("stubborn.pid")),
  );
  assert(!alive(stubborn), "SIGKILL ended it");

  // A script that ends in time is not touched.
  const quick = await local.request({
    name: "exit-with",
    id: "q",
    params: 4,
    timeoutMs: 10_000,
  });
  assertEquals(quick.status, 4);
});

Deno.test("scriptTimeoutMs is the default limit and maxTimeoutMs caps what a request asks", async () => {
  await using pair = await startPair({
    client: { scriptTimeoutMs: 200, maxTimeoutMs: 400, killGraceMs: 0 },
    scripts: ["sleep-exit"],
  });
  await using local = await LocalClient.connect(pair.server.socket);
  const byDefault = await local.request({
    name: "sleep-exit",
    id: "d",
    params: [30, 0],
  });
  assertEquals(byDefault.status, -3);
  assertMatch(String(byDefault.error), /timed out after 200 ms/);
  const capped = await local.request({
    name: "sleep-exit",
    id: "c",
    params: [30, 0],
    timeoutMs: 60_000,
  });
  assertEquals(capped.status, -3);
  assertMatch(String(capped.error), /timed out after 400 ms/);
});

Deno.test("a timeoutMs that is not a whole number of ms above 0 is -4 at the asker", async () => {
  await using pair = await startPair({ scripts: ["exit-with"] });
  await using local = await LocalClient.connect(pair.server.socket);
  for (const timeoutMs of [0, -5, 1.5, "100", null, 2 ** 31]) {
    const answer = await local.request({
      name: "exit-with",
      id: "t",
      params: 1,
      timeoutMs,
    });
    assertEquals(answer.status, -4, JSON.stringify(timeoutMs));
    assertMatch(String(answer.error), /'timeoutMs' must be an integer/);
    assertEquals(answer.id, "t");
  }
});

Deno.test("a second SIGTERM kills every script's group before the daemon exits", async () => {
  await using pair = await startPair({
    client: { shutdownGraceMs: 30_000 },
    scripts: ["exit-with"],
  });
  await pair.clientPrefix.addScript("parent", PARENT);
  await using local = await LocalClient.connect(pair.server.socket);
  await local.send({ name: "parent", id: "held" });
  const childFile = pair.clientPrefix.file("child.pid");
  await until(
    async () => (await Deno.readTextFile(childFile).catch(() => "")) !== "",
    10_000,
    "the script to start its child",
  );
  const child = Number(await Deno.readTextFile(childFile));
  Deno.kill(pair.client.child.pid, "SIGTERM");
  await pair.client.waitForLog(/shutting down/);
  Deno.kill(pair.client.child.pid, "SIGTERM");
  const status = await pair.client.exited();
  assertEquals(status.code, 1, "a second signal exits at once, with 1");
  await until(() => !alive(child), 5_000, "the script's child to be gone");
});

Deno.test("deadlineMs: no status in time is -3 to the asker, once; the late status is kept for RESULT", async () => {
  await using pair = await startPair({
    server: { deadlineMs: 5_000 },
    scripts: ["wait-release", "exit-with"],
  });
  await using local = await LocalClient.connect(pair.server.socket);
  const asked = Date.now();
  const late = await local.request({
    name: "wait-release",
    id: "late",
    params: 0,
    deadlineMs: 300,
  });
  const tookMs = Date.now() - asked;
  assertEquals([late.status, late.id, late.peer], [-3, "late", "client"]);
  assertMatch(String(late.error), /within deadlineMs \(300 ms\)/);
  assert(tookMs >= 300 && tookMs < 5_000, `answered after ${tookMs} ms`);

  // Meanwhile RESULT says it is pending.
  const result = (id: string) =>
    local.request({
      name: "+cmd",
      id: `result-${id}`,
      params: { code: "RESULT", data: { id } },
    });
  assertEquals((await result("late")).data, { state: "pending" });

  // The script ends after all: its status is kept for RESULT, and the asker
  // gets no second answer.
  await Deno.mkdir(pair.clientPrefix.file("release"), { recursive: true });
  await Deno.writeTextFile(pair.clientPrefix.file("release", "all"), "");
  await until(
    async () =>
      ((await result("late")).data as { state: string }).state === "done",
    10_000,
    "RESULT of the late request to be done",
  );
  const done = (await result("late")) as {
    id: unknown;
    status: number;
    data: { result: { status: number; id: unknown; peer: string } };
  };
  assertEquals(done.id, "result-late");
  assertEquals(done.status, 0);
  assertEquals(
    [done.data.result.status, done.data.result.id, done.data.result.peer],
    [0, "late", "client"],
  );
  assertEquals((await result("never-sent")).data, { state: "unknown" });
  await local.send({
    name: "+cmd",
    id: "end",
    params: { code: "STATUS", data: { status: 9, id: "end" } },
  });
  assertEquals((await local.next()).id, "end", "no answer after the -3");

  // The config's deadlineMs is the default; one in time is not touched.
  const quick = await local.request({ name: "exit-with", id: "q", params: 2 });
  assertEquals(quick.status, 2);
  const bad = await local.request({
    name: "exit-with",
    id: "b",
    deadlineMs: "soon",
  });
  assertEquals(bad.status, -4);
  assertMatch(String(bad.error), /'deadlineMs' must be an integer/);
});

/** A leader that dies at SIGTERM, and a child of it that does not. */
const LEADER_AND_STUBBORN_CHILD = `#!/bin/sh
sh -c 'trap "" TERM; while :; do sleep 0.05; done' &
echo $! >"$WSDAEMON_PREFIX/child.pid"
sleep 30
`;

async function startedChild(prefix: { file(...p: string[]): string }) {
  const file = prefix.file("child.pid");
  await until(
    async () => (await Deno.readTextFile(file).catch(() => "")) !== "",
    10_000,
    "the script to start its child",
  );
  return Number(await Deno.readTextFile(file));
}

Deno.test("shutdown waits for the SIGKILL step: a child that ignores SIGTERM does not outlive the daemon", async () => {
  await using pair = await startPair({
    client: { shutdownGraceMs: 200, killGraceMs: 600 },
    scripts: ["exit-with"],
  });
  await pair.clientPrefix.addScript("mixed", LEADER_AND_STUBBORN_CHILD);
  await using local = await LocalClient.connect(pair.server.socket);
  await local.send({ name: "mixed", id: "m" });
  const child = await startedChild(pair.clientPrefix);
  const status = await pair.client.stop("SIGTERM");
  assertEquals(status.code, 0);
  assert(
    !alive(child),
    "the child ignoring SIGTERM got SIGKILL before the exit",
  );
});

Deno.test("a second SIGTERM kills a group whose leader already died at the first", async () => {
  await using pair = await startPair({
    client: { shutdownGraceMs: 200, killGraceMs: 20_000 },
    scripts: ["exit-with"],
  });
  await pair.clientPrefix.addScript("mixed", LEADER_AND_STUBBORN_CHILD);
  await using local = await LocalClient.connect(pair.server.socket);
  await local.send({ name: "mixed", id: "m" });
  const child = await startedChild(pair.clientPrefix);
  Deno.kill(pair.client.child.pid, "SIGTERM");
  await pair.client.waitForLog(
    /ending script process group \d+ after the grace/,
  );
  assert(alive(child), "SIGTERM alone does not end it");
  Deno.kill(pair.client.child.pid, "SIGTERM");
  assertEquals((await pair.client.exited()).code, 1);
  assert(!alive(child), "the second signal's SIGKILL reached it");
});
