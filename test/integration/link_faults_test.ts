/**
 * A TCP proxy between a client and its server tears the link mid-frame, cuts
 * it, and stalls it (no bytes either way for 3 × heartbeat, then the held
 * bytes go on), over and over, while both sides send requests: nothing is
 * lost, nothing runs twice, every status is the true one, and each stall is
 * noticed within 2 × heartbeatMs (issue 13's fault tests).
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
} from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";
import { TcpProxy } from "../helpers/tcp_proxy.ts";

const HEARTBEAT_MS = 500;
/** Log timestamps are whole milliseconds; timers fire a little late. */
const SLACK_MS = 250;
/** How often liveness is looked at (remote.ts: livenessTick). */
const TICK_MS = HEARTBEAT_MS / 40;
const PER_SIDE = 90;
const ROUNDS = 2;

const HELLO_FROM_CLIENT = /peer client .* says hello/;
const HELLO_FROM_SERVER = /peer server .* says hello/;

function loggedAt(line: string): number {
  return Date.parse(line.slice(0, line.indexOf(" ")));
}

async function startedIds(prefix: Prefix): Promise<Map<string, number>> {
  const text = await Deno.readTextFile(prefix.file("runs.log")).catch(() => "");
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [event, id] = line.split(" ");
    if (event === "start") counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** A wait that is the fault itself (the stall's length), not a sync. */
function faultLasts(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("link torn mid-frame, cut and stalled, repeatedly, under load both ways: 0 lost, 0 run twice, 0 false statuses, stalls noticed within 2 × heartbeat", async () => {
  const timing = { heartbeatMs: HEARTBEAT_MS };
  await using serverPrefix = await Prefix.create(
    serverConfig({ ...timing, offline: "queue" }),
    { scripts: ["journal-run"] },
  );
  await using server = await DaemonProcess.start(serverPrefix);
  await using proxy = TcpProxy.start(server.port);
  await using clientPrefix = await Prefix.create(
    clientConfig(proxy.port, { ...timing, reconnectMaxMs: 100 }),
    { scripts: ["journal-run"] },
  );
  await using client = await DaemonProcess.start(clientPrefix);
  await server.waitForLog(HELLO_FROM_CLIENT);
  await client.waitForLog(HELLO_FROM_SERVER);

  await using fromServer = await LocalClient.connect(server.socket);
  await using fromClient = await LocalClient.connect(client.socket);
  let sending = true;
  const load = (async () => {
    for (let i = 0; i < PER_SIDE; i++) {
      await fromServer.send({ name: "journal-run", id: `s${i}`, params: 0.02 });
      await fromClient.send({ name: "journal-run", id: `c${i}`, params: 0.02 });
      await faultLasts(25); // Paced, so the faults land in the middle.
    }
    sending = false;
  })();

  /** Waits until each side has said hello once more than at `marks`. */
  const reconnected = async (marks: [number, number]) => {
    await server.waitForLog(HELLO_FROM_CLIENT, 10_000, marks[0]);
    await client.waitForLog(HELLO_FROM_SERVER, 10_000, marks[1]);
  };
  const marks = (): [number, number] => [
    server.lines.length,
    client.lines.length,
  ];

  const detections: number[] = [];
  for (let round = 0; round < ROUNDS || sending; round++) {
    let at = marks();
    await proxy.tear();
    await reconnected(at);

    at = marks();
    proxy.cut();
    await reconnected(at);

    at = marks();
    const stalledAt = Date.now();
    proxy.stall();
    const [serverSaw, clientSaw] = await Promise.all([
      server.waitForLog(/peer client .* disconnected/, 10_000, at[0]),
      client.waitForLog(/disconnected from /, 10_000, at[1]),
    ]);
    detections.push(
      loggedAt(serverSaw) - stalledAt,
      loggedAt(clientSaw) - stalledAt,
    );
    await faultLasts(3 * HEARTBEAT_MS - (Date.now() - stalledAt));
    // The bytes held since the stall arrive on links declared dead.
    await proxy.resume();
    await reconnected(at);
    if (round > 20) throw new Error("the load never finished");
  }
  await load;

  const check = (answers: Answer[], side: string) => {
    const byId = new Map<unknown, Answer>();
    for (const answer of answers) {
      assert(!byId.has(answer.id), `${answer.id} answered twice`);
      byId.set(answer.id, answer);
      assertEquals(answer.status, 0, `${JSON.stringify(answer)}`);
    }
    for (let i = 0; i < PER_SIDE; i++) {
      assert(byId.has(`${side}${i}`), `no answer for ${side}${i}`);
    }
  };
  check(await fromServer.take(PER_SIDE, 30_000), "s");
  check(await fromClient.take(PER_SIDE, 30_000), "c");

  // Each ran exactly once, on the other side.
  for (
    const [prefix, side] of [[clientPrefix, "s"], [serverPrefix, "c"]] as const
  ) {
    const started = await startedIds(prefix);
    for (let i = 0; i < PER_SIDE; i++) {
      assertEquals(started.get(`${side}${i}`), 1, `runs of ${side}${i}`);
    }
  }

  for (const ms of detections) {
    assert(
      ms <= 2 * HEARTBEAT_MS + TICK_MS + SLACK_MS,
      `a stall noticed after ${ms} ms (heartbeatMs ${HEARTBEAT_MS}): ${detections}`,
    );
  }
  assert(proxy.accepted >= 3 * ROUNDS + 1, `connections: ${proxy.accepted}`);
});
