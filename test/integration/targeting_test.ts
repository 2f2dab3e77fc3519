import { assertEquals, assertMatch } from "../helpers/assert.ts";
import { startFleet } from "../helpers/fleet.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";
import { startPair } from "../helpers/daemon.ts";
import { releaseAll, waitStarted } from "../security/_trust_helpers.ts";

const SCRIPTS = ["record", "exit-with", "noop", "sleep-exit", "wait-release"];

/** The WSDAEMON_PEER a `record` run saw on `prefix`, if it ran there. */
async function ranOn(prefix: { file(...p: string[]): string }, id: string) {
  try {
    return await Deno.readTextFile(prefix.file("out", id));
  } catch {
    return undefined;
  }
}

Deno.test("to: each client by name runs there only; an unknown name is -2 naming it", async () => {
  await using fleet = await startFleet(["web-1", "web-2", "db-1"], {
    scripts: SCRIPTS,
  });
  await using local = await LocalClient.connect(fleet.server.socket);
  for (const name of fleet.clients.keys()) {
    for (let i = 0; i < 3; i++) {
      const id = `${name}-${i}`;
      const answer = await local.request({ name: "record", id, to: name });
      assertEquals([answer.status, answer.id, answer.peer], [0, id, name]);
      for (const [other, { prefix }] of fleet.clients) {
        assertEquals(
          (await ranOn(prefix, id)) !== undefined,
          other === name,
          `${id} on ${other}`,
        );
      }
    }
  }
  const unknown = await local.request({ name: "record", id: "u", to: "web-9" });
  assertEquals([unknown.status, unknown.id], [-2, "u"]);
  assertMatch(String(unknown.error), /"web-9" is not connected/);
  for (const bad of [5, "", [], [1], { a: 1 }, ["a", "b*"]]) {
    const answer = await local.request({ name: "noop", id: "bad", to: bad });
    assertEquals([answer.status, answer.id], [-4, "bad"], JSON.stringify(bad));
    assertMatch(String(answer.error), /'to' must be/);
  }
});

Deno.test('to: "*" and a glob fan out: one line per peer as each ends, then the summary', async () => {
  await using fleet = await startFleet(["web-1", "web-2", "db-1"], {
    scripts: SCRIPTS,
  });
  // exit-with is missing on web-2: its line is -1.
  await Deno.remove(
    fleet.clients.get("web-2")!.prefix.file("scripts", "exit-with"),
  );
  await using local = await LocalClient.connect(fleet.server.socket);
  await local.send({ name: "exit-with", id: "all", params: 3, to: "*" });
  const lines = await local.take(4);
  const perPeer = lines.slice(0, 3);
  for (const line of perPeer) assertEquals(line.id, "all");
  const byPeer = Object.fromEntries(perPeer.map((l) => [l.peer, l.status]));
  assertEquals(byPeer, { "web-1": 3, "web-2": -1, "db-1": 3 });
  assertEquals(lines[3], {
    id: "all",
    done: true,
    // First non-zero in name order: db-1 (3) before web-1, web-2.
    status: 3,
    peers: { "db-1": 3, "web-1": 3, "web-2": -1 },
  });

  await local.send({ name: "noop", id: "webs", to: "web-*" });
  const webs = await local.take(3);
  assertEquals(
    webs.slice(0, 2).map((l) => l.peer).sort(),
    ["web-1", "web-2"],
  );
  assertEquals(webs[2], {
    id: "webs",
    done: true,
    status: 0,
    peers: { "web-1": 0, "web-2": 0 },
  });

  const none = await local.request({ name: "noop", id: "n", to: "app-*" });
  assertEquals([none.status, none.id], [-2, "n"]);
  assertMatch(String(none.error), /no connected peer matches "app-\*"/);

  // A list: a name not connected is its own -2 line.
  await local.send({ name: "noop", id: "list", to: ["db-1", "gone"] });
  const list = await local.take(3);
  const gone = list.find((l) => l.peer === "gone")!;
  assertEquals(gone.status, -2);
  assertEquals(list[2], {
    id: "list",
    done: true,
    status: -2,
    peers: { "db-1": 0, gone: -2 },
  });

  // RESULT of a fan-out: per-peer statuses and the summary.
  const result = await local.request({
    name: "+cmd",
    id: "r",
    params: { code: "RESULT", data: { id: "list" } },
  });
  assertEquals(result.status, 0);
  const data = result.data as Record<string, unknown>;
  assertEquals(data.state, "done");
  assertEquals(data.peers, { "db-1": 0, gone: -2 });
  assertEquals((data.result as Answer).status, -2);
});

Deno.test("a fan-out whose client dies mid-run still ends with its summary", async () => {
  await using fleet = await startFleet(["a", "b", "c"], { scripts: SCRIPTS });
  const prefixes = [...fleet.clients.values()].map((c) => c.prefix);
  try {
    await using local = await LocalClient.connect(fleet.server.socket);
    await local.send({ name: "wait-release", id: "slow", to: "*" });
    for (const prefix of prefixes) await waitStarted(prefix, "slow");
    fleet.clients.get("b")!.daemon.child.kill("SIGKILL");
    await fleet.server.waitForLog(/peer b .*disconnected/);
    await releaseAll(...prefixes);
    const lines = await local.take(4, 15_000);
    const b = lines.find((l) => l.peer === "b")!;
    // It was sent and had started: its outcome is unknown, never "not
    // delivered" (-2 would be a false status for a script that ran).
    assertEquals(b.status, -6, JSON.stringify(b));
    assertEquals(lines[3], {
      id: "slow",
      done: true,
      status: -6,
      peers: { a: 0, b: -6, c: 0 },
    });
  } finally {
    await releaseAll(...prefixes);
  }
});

Deno.test("to through a client: only the server by name, or *", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  await using local = await LocalClient.connect(pair.client.socket);
  const named = await local.request({ name: "noop", id: "s", to: "server" });
  assertEquals([named.status, named.peer], [0, "server"]);
  await local.send({ name: "noop", id: "all", to: "*" });
  const [line, summary] = await local.take(2);
  assertEquals([line.status, line.peer, line.id], [0, "server", "all"]);
  assertEquals(summary, {
    id: "all",
    done: true,
    status: 0,
    peers: { server: 0 },
  });
  const other = await local.request({ name: "noop", id: "o", to: "web-1" });
  assertEquals(other.status, -2);
  assertMatch(String(other.error), /only its server, "server"/);
});
