import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type DaemonProcess, type Pair, startPair } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";

/** The time a log line was written (each line starts with an ISO timestamp). */
function loggedAt(line: string): number {
  const time = Date.parse(line.slice(0, line.indexOf(" ")));
  assert(!Number.isNaN(time), `no timestamp on log line ${line}`);
  return time;
}

/** How early a timer may fire, plus the millisecond rounding of log times. */
const SLACK_MS = 25;

const HELLO_FROM_CLIENT = /peer client .* says hello/;
const HELLO_FROM_SERVER = /peer server .* says hello/;

/**
 * Sends a PAUSE through `pause` (already connected to the daemon that takes
 * the command), then checks the whole outage: the link drops, the server
 * answers -2 while it is down and the client queues, the client stays away for at least
 * `ms`, comes back with a new hello, and requests work again.
 */
async function checkPause(
  pair: Pair,
  pause: LocalClient,
  command: { name: "&cmd" | "+cmd"; id: string },
  ms: number,
): Promise<void> {
  const { server, client } = pair;
  const serverMark = server.lines.length;
  const clientMark = client.lines.length;
  const helloCount = server.count(HELLO_FROM_CLIENT);

  const answer = await pause.request({
    ...command,
    params: { code: "PAUSE", data: ms },
  });
  assertEquals(answer.status, 0, `${command.name} PAUSE answer`);
  assertEquals(answer.id, command.id);

  const pausing = await client.waitForLog(
    new RegExp(`pausing: disconnecting for ${ms} ms`),
    10_000,
    clientMark,
  );
  await server.waitForLog(/peer client\b.*disconnected/, 10_000, serverMark);
  await client.waitForLog(/peer server\b.*disconnected/, 10_000, clientMark);

  // While the link is down the server has no peer to deliver to (its
  // offline policy is "reject"); the client's request waits for its server
  // (a client's is "queue") and goes out once the link is back.
  await using fromServer = await LocalClient.connect(server.socket);
  await using fromClient = await LocalClient.connect(client.socket);
  const down = await fromServer.request({ name: "noop", id: "during-s" });
  assertEquals([down.status, down.id], [-2, "during-s"], "server, paused");
  await fromClient.send({ name: "noop", id: "during-c" });

  const hello = await server.waitForLog(
    HELLO_FROM_CLIENT,
    ms + 10_000,
    serverMark,
  );
  await client.waitForLog(HELLO_FROM_SERVER, 10_000, clientMark);
  assertEquals(server.count(HELLO_FROM_CLIENT), helloCount + 1);
  const awayMs = loggedAt(hello) - loggedAt(pausing);
  assert(
    awayMs >= ms - SLACK_MS,
    `client came back ${awayMs} ms after dropping, before the ${ms} ms pause was over`,
  );

  const queued = await fromClient.next(ms + 10_000);
  assertEquals(
    [queued.status, queued.id],
    [0, "during-c"],
    "the client's request queued during the pause, delivered after it",
  );

  const after = [
    await fromServer.request({ name: "exit-with", id: "after-s", params: 3 }),
    await fromClient.request({ name: "exit-with", id: "after-c", params: 4 }),
  ];
  assertEquals(after.map((a) => [a.status, a.id]), [[3, "after-s"], [
    4,
    "after-c",
  ]], "requests after the pause");
}

function countPauses(client: DaemonProcess): number {
  return client.count(/pausing: disconnecting/);
}

Deno.test("PAUSE is refused with -4 on a server and with bad data, and nothing drops", async () => {
  await using pair = await startPair();
  await using onServer = await LocalClient.connect(pair.server.socket);
  await using onClient = await LocalClient.connect(pair.client.socket);

  const serverCommand = await onServer.request({
    name: "+cmd",
    id: "plus-on-server",
    params: { code: "PAUSE", data: 1000 },
  });
  assertEquals(serverCommand.status, -4, "+cmd PAUSE on a server");
  assertEquals(serverCommand.id, "plus-on-server");
  assertMatch(String(serverCommand.error), /PAUSE/);

  // &cmd from the client would run PAUSE on its peer, the server.
  const towardServer = await onClient.request({
    name: "&cmd",
    id: "amp-from-client",
    params: { code: "PAUSE", data: 1000 },
  });
  assertEquals(towardServer.status, -4, "&cmd PAUSE toward a server");
  assertEquals(towardServer.id, "amp-from-client");

  const badData: unknown[] = ["1000", -1, 1.5, null, { ms: 1000 }, 86_400_001];
  for (const [i, data] of badData.entries()) {
    for (
      const [local, name] of [[onClient, "+cmd"], [onServer, "&cmd"]] as const
    ) {
      const id = `${name}-bad-${i}`;
      const answer = await local.request({
        name,
        id,
        params: { code: "PAUSE", data },
      });
      assertEquals(
        [answer.status, answer.id],
        [-4, id],
        `${name} PAUSE with data ${JSON.stringify(data)}`,
      );
      assertMatch(String(answer.error), /PAUSE data/);
    }
  }
  const missing = await onClient.request({
    name: "+cmd",
    id: "no-data",
    params: { code: "PAUSE" },
  });
  assertEquals([missing.status, missing.id], [-4, "no-data"]);

  // None of that paused the client: the link is still up.
  assertEquals(countPauses(pair.client), 0);
  assertEquals(pair.server.count(/disconnected/), 0);
  const still = await onServer.request({
    name: "exit-with",
    id: "up",
    params: 2,
  });
  assertEquals([still.status, still.id], [2, "up"]);
});

Deno.test("&cmd PAUSE from the server drops the client for the delay, then it reconnects", async () => {
  await using pair = await startPair();
  await using onServer = await LocalClient.connect(pair.server.socket);
  await checkPause(pair, onServer, { name: "&cmd", id: "pause-1" }, 1500);
  assertEquals(countPauses(pair.client), 1);
});

Deno.test("+cmd PAUSE on the client's own socket drops and restores the link the same way", async () => {
  await using pair = await startPair();
  await using onClient = await LocalClient.connect(pair.client.socket);
  await checkPause(pair, onClient, { name: "+cmd", id: "pause-2" }, 1000);
  assertEquals(countPauses(pair.client), 1);
});
