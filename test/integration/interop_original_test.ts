/**
 * Interoperability with the original Node ws-daemon (PROTOCOL.md Part 1), run
 * as a real peer process, in both roles and both directions. Skipped when
 * WSDAEMON_ORIGINAL does not name its launcher (`make test` and `.ci/run` set
 * it).
 *
 * The original's quirks shape these tests (shared/peers/README.md): on its
 * local socket one message per write and one at a time, waiting for each
 * status; one connection kept open for the whole test; statuses matched by id.
 * It is never sent a name it cannot run: an unknown name gets no status at
 * all, and a non-executable one crashes it.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  freePort,
  ORIGINAL,
  Prefix,
  serverConfig,
} from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import {
  HELLO_RECEIVED,
  type OriginalProcess,
  startOriginal,
} from "../helpers/original.ts";

const TIMEOUT = 15_000;

/**
 * Requests from our daemon's socket run on the original: four in flight at
 * once (exit codes 0..3), each status back with its id, and one without id.
 */
async function checkOurRequestsRunOnOriginal(
  ours: DaemonProcess,
  original: OriginalProcess,
  label: string,
): Promise<void> {
  await using local = await LocalClient.connect(ours.socket);
  const lines = [0, 1, 2, 3].map((code) =>
    JSON.stringify({ name: "exit-with", id: `${label}-${code}`, params: code })
  );
  await local.send(...lines);
  const answers = await local.take(lines.length, TIMEOUT);
  assertEquals(
    answers.map((a) => [a.id, a.status]).sort(),
    [0, 1, 2, 3].map((code) => [`${label}-${code}`, code]),
    "each status comes back with its own id",
  );
  for (const line of lines) {
    assert(
      original.lines.some((l) =>
        l.endsWith(`Handling message received from WebSockets: ${line}`)
      ),
      `the original received the request unchanged: ${line}\n--- original log ---\n${original.log()}`,
    );
  }

  const noId = await local.request(
    { name: "exit-with", params: 2 },
    TIMEOUT,
  );
  assertEquals(noId.status, 2, "status of a request without id");
  assert(
    !Object.hasOwn(noId, "id"),
    `a request without id gets an answer without id: ${JSON.stringify(noId)}`,
  );
}

/**
 * Requests from the original's socket run on our daemon, one at a time as the
 * original needs, and their statuses reach the original's socket.
 */
async function checkOriginalRequestsRunOnOurs(
  originalLocal: LocalClient,
  label: string,
): Promise<void> {
  for (let code = 0; code <= 3; code++) {
    const id = `${label}-${code}`;
    const answer = await originalLocal.request(
      { name: "exit-with", id, params: code },
      TIMEOUT,
    );
    assertEquals(answer.status, code, `status of ${id}`);
    assertEquals(answer.id, id, `id of ${id}`);
  }
}

/** The original is still running and logged no error (nothing disturbed it). */
function assertOriginalUndisturbed(original: OriginalProcess): void {
  assert(original.running, `the original exited:\n${original.log()}`);
  assertEquals(original.errors, [], "the original logged no errors");
}

Deno.test({
  name:
    "our server daemon and an original client run each other's scripts, statuses back by id",
  ignore: !ORIGINAL,
  async fn() {
    await using serverPrefix = await Prefix.create(serverConfig(), {
      scripts: ["exit-with"],
    });
    await using server = await DaemonProcess.start(serverPrefix);
    await using originalPrefix = await Prefix.create({
      mode: "client",
      proxy: "127.0.0.1",
      port: server.port,
    }, { scripts: ["exit-with"] });
    await using original = await startOriginal(originalPrefix);
    await original.waitForLog(/Connected to server\./, TIMEOUT);
    // Our HELLO reached it: our side of the link is open, and everything
    // below happens after the original has seen a HELLO.
    await original.waitForLog(HELLO_RECEIVED, TIMEOUT);

    await checkOurRequestsRunOnOriginal(server, original, "to-original");
    await using originalLocal = await LocalClient.connect(original.socket);
    await checkOriginalRequestsRunOnOurs(originalLocal, "from-original");
    assertOriginalUndisturbed(original);
  },
});

Deno.test({
  name:
    "an original server and our client daemon run each other's scripts, and its PAUSE pauses ours",
  ignore: !ORIGINAL,
  async fn() {
    const port = freePort();
    await using originalPrefix = await Prefix.create(
      { mode: "server", port },
      { scripts: ["exit-with"] },
    );
    await using original = await startOriginal(originalPrefix);
    await using clientPrefix = await Prefix.create(clientConfig(port), {
      scripts: ["exit-with"],
    });
    await using client = await DaemonProcess.start(clientPrefix);
    await client.waitForLog(/\bconnected to ws:/, TIMEOUT);
    await original.waitForLog(/Endpoint 0 connected from/, TIMEOUT);
    await original.waitForLog(HELLO_RECEIVED, TIMEOUT);

    await checkOurRequestsRunOnOriginal(client, original, "to-original");
    await using originalLocal = await LocalClient.connect(original.socket);
    await checkOriginalRequestsRunOnOurs(originalLocal, "from-original");

    // `&cmd PAUSE` from the original's socket: our client drops the link and
    // comes back. The original answers nothing for a forwarded command.
    const ourMark = client.lines.length;
    const originalMark = original.lines.length;
    await originalLocal.send({
      name: "&cmd",
      params: { code: "PAUSE", data: 300 },
    });
    await client.waitForLog(/paus/i, TIMEOUT, ourMark);
    await original.waitForLog(/Endpoint 0 disconnected/, TIMEOUT, originalMark);
    await client.waitForLog(/\bconnected to ws:/, TIMEOUT, ourMark);
    await original.waitForLog(
      /Endpoint 0 connected from/,
      TIMEOUT,
      originalMark,
    );
    await original.waitForLog(HELLO_RECEIVED, TIMEOUT, originalMark);
    assertEquals(
      client.lines.slice(ourMark).filter((l) => /\bconnected to ws:/.test(l))
        .length,
      1,
      "one reconnection after the PAUSE",
    );

    // The link works both ways again.
    await checkOurRequestsRunOnOriginal(client, original, "after-pause");
    await checkOriginalRequestsRunOnOurs(originalLocal, "after-pause");
    assertEquals(originalLocal.buffered, 0, "no stray status on its socket");
    assertOriginalUndisturbed(original);
  },
});

Deno.test({
  name:
    "a request sent to an original whose link then drops answers -6 (it may have run), never -2",
  ignore: !ORIGINAL,
  async fn() {
    await using serverPrefix = await Prefix.create(serverConfig(), {
      scripts: ["sleep-exit"],
    });
    await using server = await DaemonProcess.start(serverPrefix);
    await using originalPrefix = await Prefix.create({
      mode: "client",
      proxy: "127.0.0.1",
      port: server.port,
    }, { scripts: ["sleep-exit"] });
    await using original = await startOriginal(originalPrefix);
    await original.waitForLog(HELLO_RECEIVED, TIMEOUT);
    await using local = await LocalClient.connect(server.socket);
    // Short: the original's script outlives the original by that long.
    await local.send({ name: "sleep-exit", id: "cut", params: [2, 0] });
    await original.waitForLog(/"name":"sleep-exit"/, TIMEOUT);
    await original.stop("SIGKILL");
    const answer = await local.next(TIMEOUT);
    assertEquals([answer.status, answer.id], [-6, "cut"]);
    assert(/may have run/.test(String(answer.error)), String(answer.error));
  },
});

Deno.test({
  name:
    "to and fan-out with an original client: it gets the request without 'to', and INFO is -4",
  ignore: !ORIGINAL,
  async fn() {
    await using serverPrefix = await Prefix.create(serverConfig(), {
      scripts: ["exit-with"],
    });
    await using server = await DaemonProcess.start(serverPrefix);
    await using originalPrefix = await Prefix.create({
      mode: "client",
      proxy: "127.0.0.1",
      port: server.port,
    }, { scripts: ["exit-with"] });
    await using original = await startOriginal(originalPrefix);
    await original.waitForLog(HELLO_RECEIVED, TIMEOUT);
    await using oursPrefix = await Prefix.create(
      clientConfig(server.port, { name: "ours" }),
      { scripts: ["exit-with"] },
    );
    await using _ours = await DaemonProcess.start(oursPrefix);
    await server.waitForLog(/peer ours .* says hello/, TIMEOUT);

    await using local = await LocalClient.connect(server.socket);
    const peers = (await local.request({
      name: "+cmd",
      id: "peers",
      params: { code: "PEERS" },
    })).data as { name: string; version: string }[];
    const originalName = peers.find((p) => p.version === "original")?.name;
    assert(originalName !== undefined, JSON.stringify(peers));

    const named = await local.request(
      { name: "exit-with", id: "named", params: 4, to: originalName },
      TIMEOUT,
    );
    assertEquals([named.status, named.peer], [4, originalName]);
    assert(
      original.lines.some((l) =>
        l.endsWith(
          'Handling message received from WebSockets: {"name":"exit-with","id":"named","params":4}',
        )
      ),
      `the original got it without 'to':\n${original.log()}`,
    );

    await local.send({ name: "exit-with", id: "fan", params: 0, to: "*" });
    const lines = await local.take(3, TIMEOUT);
    assertEquals(lines[2], {
      id: "fan",
      done: true,
      status: 0,
      peers: { [originalName]: 0, ours: 0 },
    });

    const info = await local.request({
      name: "&cmd",
      id: "info",
      to: originalName,
      params: { code: "INFO" },
    });
    assertEquals(info.status, -4);
    assertEquals(info.id, "info");
    assertOriginalUndisturbed(original);
  },
});
