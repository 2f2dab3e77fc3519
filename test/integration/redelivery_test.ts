/**
 * Redelivery seen from the wire, with a raw peer that speaks feature `ack`:
 * a redelivered request is answered by its first run (never refused for the
 * rate it already paid), and a request past its deadline is not sent again.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
} from "../helpers/daemon.ts";
import { RawPeerClient, RawPeerServer } from "../helpers/raw_peer.ts";
import { LocalClient } from "../helpers/local_client.ts";

const hello = (name: string) =>
  JSON.stringify({
    name: "&cmd",
    params: {
      code: "HELLO",
      data: {
        version: "9.9.9",
        name,
        features: ["request-ref", "heartbeat", "ack"],
      },
    },
  });
const REF = "0123456789abcdef0123456789abcdef";

type Frame = { name?: string; params?: { code?: string; data?: unknown } };
const codeOf = (frame: Frame) =>
  frame.name === "&cmd" ? frame.params?.code : undefined;

Deno.test("a redelivered request waits for its first run: one run, one true status, never -5 for the rate it already paid", async () => {
  await using prefix = await Prefix.create(
    serverConfig({ rate: { perSecond: 0.01, burst: 1 } }),
    { scripts: ["journal-run"] },
  );
  await using server = await DaemonProcess.start(prefix);
  await using peer = await RawPeerClient.connect(server.url);
  peer.send(hello("asker"));
  const request = JSON.stringify({
    name: "journal-run",
    id: "k1",
    params: 0.3,
    ref: REF,
  });
  peer.send(request);
  const frames: Frame[] = [];
  let status: Frame | undefined;
  while (!status) {
    const frame = await peer.nextJson() as Frame;
    frames.push(frame);
    // Acknowledged: sent again, as after a reconnect, over the rate.
    if (
      codeOf(frame) === "ACK" &&
      frames.filter((f) => codeOf(f) === "ACK").length === 1
    ) {
      peer.send(request);
    }
    if (codeOf(frame) === "STATUS") status = frame;
  }
  assertEquals(status.params?.data, { status: 0, ref: REF });
  const log = await Deno.readTextFile(prefix.file("runs.log"));
  assertEquals(log, "start k1\nend k1\n", "one run");
  assert(
    !frames.some((f) => JSON.stringify(f).includes('"status":-5')),
    `a -5 among ${JSON.stringify(frames)}`,
  );
});

Deno.test("a request past its deadline (its asker told -3) is not sent again when the peer comes back", async () => {
  await using raw = RawPeerServer.listen();
  await using prefix = await Prefix.create(
    clientConfig(raw.port, { reconnectMaxMs: 100 }),
    { scripts: [] },
  );
  await using client = await DaemonProcess.start(prefix);
  const first = await raw.accept();
  first.send(hello("runner"));
  await first.next(); // The client's HELLO.
  await using local = await LocalClient.connect(client.socket);
  await local.send({ name: "journal-run", id: "late", deadlineMs: 300 });
  assertEquals(JSON.parse(await first.next()).id, "late");
  await first.close(); // Dropped before the peer acknowledged it.
  const answer = await local.next();
  assertEquals([answer.status, answer.id], [-3, "late"]);

  const second = await raw.accept();
  second.send(hello("runner"));
  await second.next(); // The client's HELLO.
  await local.send({ name: "journal-run", id: "after" });
  // Redeliveries go out as the link becomes ready, before any new request.
  assertEquals(JSON.parse(await second.next()).id, "after");
  await second.close();
});
