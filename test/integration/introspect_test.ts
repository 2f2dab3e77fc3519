import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";

const SCRIPTS = ["noop", "exit-with", "not-executable", "record"];

function command(marker: "+cmd" | "&cmd", code: string, data?: unknown) {
  return { name: marker, id: `${marker}-${code}`, params: { code, data } };
}

function dataOf(answer: Answer): Record<string, unknown> {
  assertEquals(answer.status, 0, JSON.stringify(answer));
  return answer.data as Record<string, unknown>;
}

Deno.test("INFO, PEERS, SCRIPTS and PING as +cmd (this daemon) and &cmd (the peer)", async () => {
  await using pair = await startPair({
    scripts: SCRIPTS,
    client: { peerScripts: ["noop", "exit-*"] },
  });
  await using onServer = await LocalClient.connect(pair.server.socket);

  const own = dataOf(await onServer.request(command("+cmd", "INFO")));
  assertEquals([own.name, own.mode, own.version], [
    "server",
    "server",
    "0.1.0",
  ]);
  assertEquals(own.pid, pair.server.child.pid);
  assert((own.uptimeMs as number) >= 0);
  assert(Array.isArray(own.listening) && own.listening.length === 2);
  assertEquals(own.features, ["request-ref", "heartbeat", "ack", "events"]);
  assertEquals(own.scripts, 3, "executable scripts only");
  assertEquals(own.running, 0);
  assert(Array.isArray(own.loadAverage));
  assert((own.freeMemoryBytes as number) > 0);

  const peer = await onServer.request(command("&cmd", "INFO"));
  assertEquals([peer.id, peer.peer], ["&cmd-INFO", "client"]);
  const theirs = dataOf(peer);
  assertEquals([theirs.name, theirs.mode], ["client", "client"]);
  assertEquals(theirs.pid, pair.client.child.pid);

  const links = dataOf(
    await onServer.request(command("+cmd", "PEERS")),
  ) as unknown as Record<string, unknown>[];
  assertEquals(links.length, 1);
  assertEquals([links[0].name, links[0].state], ["client", "ready"]);
  assertEquals(links[0].version, "0.1.0");
  assertEquals(links[0].inFlight, 0);
  assert(typeof links[0].since === "string");
  assert((links[0].done as number) >= 1, "the &cmd INFO was answered");

  const clientPeers = dataOf(
    await onServer.request(command("&cmd", "PEERS")),
  ) as unknown as Record<string, unknown>[];
  assertEquals(clientPeers.map((l) => l.name), ["server"]);

  // The server's own scripts, then the menu the client offers the server.
  const mine = dataOf(
    await onServer.request(command("+cmd", "SCRIPTS")),
  ) as unknown as Record<string, unknown>[];
  assertEquals(mine.map((s) => s.name), ["exit-with", "noop", "record"]);
  assert(
    typeof mine[0].size === "number" && typeof mine[0].modified === "string",
  );
  const menu = dataOf(
    await onServer.request(command("&cmd", "SCRIPTS")),
  ) as unknown as Record<string, unknown>[];
  assertEquals(menu.map((s) => s.name), ["exit-with", "noop"]);

  for (const marker of ["+cmd", "&cmd"] as const) {
    const ping = await onServer.request(command(marker, "PING"));
    assertEquals([ping.status, ping.peer], [0, "client"], JSON.stringify(ping));
    assert(typeof ping.rttMs === "number" && ping.rttMs >= 0, "rttMs");
    assertEquals((ping.data as Answer).rttMs, ping.rttMs);
  }

  // The same from the client's side.
  await using onClient = await LocalClient.connect(pair.client.socket);
  const server = dataOf(await onClient.request(command("&cmd", "INFO")));
  assertEquals(server.mode, "server");
  const serverMenu = dataOf(
    await onClient.request(command("&cmd", "SCRIPTS")),
  ) as unknown as Record<string, unknown>[];
  assertEquals(serverMenu.map((s) => s.name), ["exit-with", "noop", "record"]);
});

Deno.test("unknown and protocol command codes answer -4 and are never taken for another", async () => {
  await using pair = await startPair({ scripts: ["noop"] });
  await using local = await LocalClient.connect(pair.server.socket);
  for (const marker of ["+cmd", "&cmd"] as const) {
    for (const code of ["REBOOT", "pause", "HELLO", "ACK", "EVENT", "PONG"]) {
      const answer = await local.request(command(marker, code, 100));
      assertEquals([answer.status, answer.id], [-4, `${marker}-${code}`]);
      assertMatch(String(answer.error), /command code|link protocol/);
    }
  }
  // The link is still up and nothing was paused.
  const ok = await local.request({ name: "noop", id: "after" });
  assertEquals([ok.status, ok.peer], [0, "client"]);
  assert(!pair.client.log().includes("pausing"), "nothing paused");
});
