/**
 * Part 1 compatibility, frame by frame: a raw peer inside the test suite sends
 * and expects the literal frames of PROTOCOL.md Part 1, as an original daemon
 * would, in both roles. It announces no features, so our daemon must speak
 * pure Part 1 to it (HELLO aside, which an original ignores). A change that
 * alters a frame's bytes, adds a field to a forwarded request, or answers a
 * frame an original would not expect an answer to fails here.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
} from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import {
  type RawConnection,
  RawPeerClient,
  RawPeerServer,
} from "../helpers/raw_peer.ts";

const ID = "cf2bf77f-6ad0-47ca-aba7-f300b3c63268";
/** PROTOCOL.md's example message, spaces and all. */
const SCRIPT_FRAME = `{"name": "exit-with", "id": "${ID}", "params": 3}`;
/** What the original sends back for it: JSON.stringify of its objects. */
const STATUS_FRAME =
  `{"name":"&cmd","params":{"code":"STATUS","data":{"status":3,"id":"${ID}"}}}`;
const NO_ID_SCRIPT_FRAME = `{"name": "exit-with", "params": 0}`;
const NO_ID_STATUS_FRAME =
  `{"name":"&cmd","params":{"code":"STATUS","data":{"status":0}}}`;

/**
 * A frame equal to `expected`: same structure, same key order at every level
 * (JSON.stringify keeps insertion order) and, Part 1 being byte-compatible,
 * the same text.
 */
function assertFrame(actual: string, expected: string, what: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(actual);
  } catch {
    throw new Error(`${what}: frame is not JSON: ${JSON.stringify(actual)}`);
  }
  const wanted = JSON.parse(expected);
  assertEquals(parsed, wanted, `${what}: structure`);
  assertEquals(
    JSON.stringify(parsed),
    JSON.stringify(wanted),
    `${what}: key order`,
  );
  assertEquals(actual, expected, `${what}: exact text`);
}

/** The first frame of a connection: our HELLO, a `&cmd` an original ignores. */
function assertHello(frame: string, name: string): void {
  const hello = JSON.parse(frame);
  assertEquals(
    Object.keys(hello),
    ["name", "params"],
    "HELLO is a Part 1 command frame",
  );
  assertEquals(hello.name, "&cmd", "HELLO is an &cmd");
  assertEquals(Object.keys(hello.params), ["code", "data"], "HELLO params");
  assertEquals(hello.params.code, "HELLO", "the first frame is HELLO");
  assertEquals(hello.params.data.name, name, "HELLO names the daemon");
  assertEquals(typeof hello.params.data.version, "string", "HELLO version");
  assert(
    Array.isArray(hello.params.data.features),
    `HELLO features must be an array: ${frame}`,
  );
}

/** A status line as the original writes it: status first, then id. */
function assertAnswer(
  answer: Record<string, unknown>,
  status: number,
  id: string | undefined,
  what: string,
): void {
  assertEquals(answer.status, status, `${what}: status`);
  if (id === undefined) {
    assert(
      !Object.hasOwn(answer, "id"),
      `${what}: a request without id gets an answer without id, got ${
        JSON.stringify(answer)
      }`,
    );
    return;
  }
  assertEquals(answer.id, id, `${what}: id`);
  assertEquals(
    Object.keys(answer).slice(0, 2),
    ["status", "id"],
    `${what}: key order`,
  );
}

/** The peer runs our scripts: literal frames in, literal STATUS frames out. */
async function checkPeerRunsScripts(conn: RawConnection): Promise<void> {
  conn.send(SCRIPT_FRAME);
  assertFrame(await conn.next(), STATUS_FRAME, "STATUS for the example frame");
  conn.send(NO_ID_SCRIPT_FRAME);
  assertFrame(
    await conn.next(),
    NO_ID_STATUS_FRAME,
    "STATUS for a script frame without id",
  );
}

/**
 * Requests from our local socket reach the peer as the very line written, and
 * its Part 1 STATUS frames come back to the right asker, matched by id.
 */
async function checkForwarding(
  conn: RawConnection,
  socket: string,
): Promise<void> {
  await using first = await LocalClient.connect(socket);
  await using second = await LocalClient.connect(socket);

  const line =
    `{"name": "exit-with", "id": "${ID}", "params": {"param1": "val1"}}`;
  await first.writeRaw(line + "\n");
  assertEquals(await conn.next(), line, "a request is forwarded unchanged");
  conn.send(
    `{"name": "&cmd", "params": {"code": "STATUS", "data": {"status": 4, "id": "${ID}"}}}`,
  );
  assertAnswer(await first.next(), 4, ID, "answer to a Part 1 STATUS");

  // Two in flight from two connections, answered in the other order.
  const one = `{"name":"exit-with","id":"one","params":1}`;
  const two = `{"name":"exit-with","id":"two","params":2}`;
  await first.writeRaw(one + "\n");
  assertEquals(await conn.next(), one, "first request forwarded unchanged");
  await second.writeRaw(two + "\n");
  assertEquals(await conn.next(), two, "second request forwarded unchanged");
  conn.send(
    `{"name":"&cmd","params":{"code":"STATUS","data":{"status":2,"id":"two"}}}`,
  );
  conn.send(
    `{"name":"&cmd","params":{"code":"STATUS","data":{"status":1,"id":"one"}}}`,
  );
  assertAnswer(await second.next(), 2, "two", "status matched by id");
  assertAnswer(await first.next(), 1, "one", "status matched by id");

  // No id on either side.
  const noId = `{"name":"exit-with","params":5}`;
  await second.writeRaw(noId + "\n");
  assertEquals(await conn.next(), noId, "a request without id unchanged");
  conn.send(`{"name":"&cmd","params":{"code":"STATUS","data":{"status":5}}}`);
  assertAnswer(await second.next(), 5, undefined, "Part 1 status without id");

  assertEquals(first.buffered, 0, "no stray answer on the first connection");
  assertEquals(second.buffered, 0, "no stray answer on the second connection");
}

/**
 * Frames an original might send that mean nothing to us are dropped without
 * an answer, and the link goes on: the next frame we send is the status of
 * the next script.
 */
async function checkIgnored(conn: RawConnection): Promise<void> {
  conn.send(
    `{"name": "&cmd", "params": {"code": "FROBNICATE", "data": {"x": 1}}}`,
  );
  conn.send("this is not JSON {");
  conn.send("[1, 2, 3]");
  conn.send(`{"id": "no-name"}`);
  conn.send(SCRIPT_FRAME);
  assertFrame(
    await conn.next(),
    STATUS_FRAME,
    "after ignored frames: nothing sent back for them, and the link works",
  );
  assert(!conn.isClosed, "the daemon kept the connection");
}

Deno.test("a client daemon speaks literal Part 1 frames to an original-style server", async () => {
  await using peer = RawPeerServer.listen();
  await using prefix = await Prefix.create(clientConfig(peer.port), {
    scripts: ["exit-with"],
  });
  await using daemon = await DaemonProcess.start(prefix);

  const conn = await peer.accept();
  assertHello(await conn.next(), "client");
  await checkPeerRunsScripts(conn);
  await checkForwarding(conn, daemon.socket);
  await checkIgnored(conn);

  // PAUSE from the server: the client drops the connection and comes back.
  conn.send(`{"name": "&cmd", "params": {"code": "PAUSE", "data": 200}}`);
  await conn.waitClosed();
  const again = await peer.accept();
  assertHello(await again.next(), "client");
  await checkPeerRunsScripts(again);
  await checkForwarding(again, daemon.socket);
  assertEquals(peer.connectionCount, 2, "one reconnection after the PAUSE");
});

Deno.test("a server daemon speaks literal Part 1 frames to an original-style client", async () => {
  await using prefix = await Prefix.create(serverConfig(), {
    scripts: ["exit-with"],
  });
  await using daemon = await DaemonProcess.start(prefix);
  await using conn = await RawPeerClient.connect(daemon.url);

  assertHello(await conn.next(), "server");
  await checkPeerRunsScripts(conn);
  await checkForwarding(conn, daemon.socket);
  await checkIgnored(conn);

  // `&cmd PAUSE` written to the server's socket reaches the client unchanged.
  await using local = await LocalClient.connect(daemon.socket);
  const pause = `{"name": "&cmd", "params": {"code": "PAUSE", "data": 1000}}`;
  await local.writeRaw(pause + "\n");
  assertEquals(await conn.next(), pause, "&cmd is forwarded unchanged");

  // A PAUSE sent to a server means nothing there: ignored, the link goes on.
  conn.send(pause);
  conn.send(SCRIPT_FRAME);
  assertFrame(await conn.next(), STATUS_FRAME, "after a PAUSE to the server");
  assert(!conn.isClosed, "the server kept the connection");
});
