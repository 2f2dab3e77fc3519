/**
 * The trust features next to the original Node ws-daemon (PROTOCOL.md Part
 * 1), run as a real peer process, in both roles and both directions. Skipped
 * when WSDAEMON_ORIGINAL does not name its launcher.
 *
 * - Our client daemon WITH a `secret` (and a short `handshakeTimeoutMs`)
 *   against an original server: the original ignores the Authorization
 *   header, our client takes it for an original (it sends no HELLO) and does
 *   not drop it for that; scripts run both ways, statuses back by id.
 * - An original client against our open server (short `handshakeTimeoutMs`,
 *   `maxPeers` 2, and one of our client daemons connected as well): the
 *   original is served without a HELLO, scripts run both ways, and requests
 *   from the server's socket are spread over both clients with their true
 *   statuses.
 *
 * The original's quirks (shared/peers/README.md): one message per write on
 * its local socket, one at a time; one local connection kept open; never a
 * name it cannot run.
 *
 * @module
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
const SCRIPTS = ["exit-with", "sleep-exit"];
const SECRET = "interop-trust-secret-0123456789";

/**
 * Requests from our daemon's socket run on the original, in flight together,
 * each status back with its id; one of them outlasts handshakeTimeoutMs.
 */
async function checkOursRunOnOriginal(
  ours: DaemonProcess,
  original: OriginalProcess,
  label: string,
): Promise<void> {
  await using local = await LocalClient.connect(ours.socket);
  const requests = [
    ...[0, 1, 2].map((code) => ({
      name: "exit-with",
      id: `${label}-${code}`,
      params: code,
    })),
    // Longer than handshakeTimeoutMs: the link must outlive it.
    { name: "sleep-exit", id: `${label}-slow`, params: [0.6, 4] },
  ];
  await local.send(...requests);
  const answers = await local.take(requests.length, TIMEOUT);
  assertEquals(
    answers.map((a) => [a.id, a.status]).sort(),
    [
      [`${label}-0`, 0],
      [`${label}-1`, 1],
      [`${label}-2`, 2],
      [`${label}-slow`, 4],
    ],
    `statuses from the original: ${JSON.stringify(answers)}`,
  );
  for (const request of requests) {
    const line = JSON.stringify(request);
    assert(
      original.lines.some((l) =>
        l.endsWith(`Handling message received from WebSockets: ${line}`)
      ),
      `the original received the request unchanged: ${line}\n--- original log ---\n${original.log()}`,
    );
  }
  const noId = await local.request({ name: "exit-with", params: 3 }, TIMEOUT);
  assertEquals(noId.status, 3, "status of a request without id");
  assert(!Object.hasOwn(noId, "id"), `no id: ${JSON.stringify(noId)}`);
}

/** Requests from the original's socket run on our daemon, one at a time. */
async function checkOriginalRunsOnOurs(
  originalLocal: LocalClient,
  label: string,
): Promise<void> {
  for (let code = 0; code <= 2; code++) {
    const id = `${label}-${code}`;
    const answer = await originalLocal.request(
      { name: "exit-with", id, params: code },
      TIMEOUT,
    );
    assertEquals([answer.status, answer.id], [code, id], `status of ${id}`);
  }
}

function assertOriginalUndisturbed(original: OriginalProcess): void {
  assert(original.running, `the original exited:\n${original.log()}`);
  assertEquals(original.errors, [], "the original logged no errors");
}

Deno.test({
  name:
    "our client daemon with a secret and an original server: the header is ignored, scripts run both ways",
  ignore: !ORIGINAL,
  async fn() {
    const port = freePort();
    await using originalPrefix = await Prefix.create(
      { mode: "server", port },
      { scripts: SCRIPTS },
    );
    await using original = await startOriginal(originalPrefix);
    await using clientPrefix = await Prefix.create(
      clientConfig(port, { secret: SECRET, handshakeTimeoutMs: 300 }),
      { scripts: SCRIPTS },
    );
    // A config holding a secret is kept private (else the daemon warns).
    await Deno.chmod(clientPrefix.file("config.json"), 0o600);
    await using client = await DaemonProcess.start(clientPrefix);
    await client.waitForLog(/\bconnected to ws:/, TIMEOUT);
    await client.waitForLog(/taken for an original/, TIMEOUT);
    await original.waitForLog(/Endpoint 0 connected from/, TIMEOUT);
    await original.waitForLog(HELLO_RECEIVED, TIMEOUT);

    await checkOursRunOnOriginal(client, original, "to-original");
    await using originalLocal = await LocalClient.connect(original.socket);
    await checkOriginalRunsOnOurs(originalLocal, "from-original");

    assertEquals(
      client.count(
        /disconnected from|no HELLO within|cannot connect|cannot reach/,
      ),
      0,
      `our client kept its one connection:\n${client.log()}`,
    );
    assertEquals(
      original.count(/Endpoint \d+ disconnected/),
      0,
      "the original saw no disconnection",
    );
    assertEquals(originalLocal.buffered, 0, "no stray status");
    assertOriginalUndisturbed(original);
  },
});

Deno.test({
  name:
    "an original client and one of ours against our open server: the original is served without HELLO, scripts run both ways",
  ignore: !ORIGINAL,
  async fn() {
    await using serverPrefix = await Prefix.create(
      serverConfig({ handshakeTimeoutMs: 300, maxPeers: 2 }),
      { scripts: SCRIPTS },
    );
    await using server = await DaemonProcess.start(serverPrefix);
    await using ourClientPrefix = await Prefix.create(
      clientConfig(server.port),
      { scripts: SCRIPTS },
    );
    await using ourClient = await DaemonProcess.start(ourClientPrefix);
    await server.waitForLog(/peer client .* says hello/, TIMEOUT);

    await using originalPrefix = await Prefix.create({
      mode: "client",
      proxy: "127.0.0.1",
      port: server.port,
    }, { scripts: SCRIPTS });
    await using original = await startOriginal(originalPrefix);
    await original.waitForLog(/Connected to server\./, TIMEOUT);
    await original.waitForLog(HELLO_RECEIVED, TIMEOUT);
    const introduced = await server.waitForLog(
      /peer (peer-\d+) .*taken for an original/,
      TIMEOUT,
    );
    const originalName = introduced.match(/peer (peer-\d+)/)![1];

    // From the server's socket: spread over both clients, true statuses.
    {
      await using local = await LocalClient.connect(server.socket);
      const requests = [
        ...[0, 1, 2, 3].map((code) => ({
          name: "exit-with",
          id: `spread-${code}`,
          params: code + 10,
        })),
        { name: "sleep-exit", id: "spread-slow-a", params: [0.6, 5] },
        { name: "sleep-exit", id: "spread-slow-b", params: [0.6, 6] },
      ];
      await local.send(...requests);
      const answers = await local.take(requests.length, TIMEOUT);
      assertEquals(
        answers.map((a) => [a.id, a.status]).sort(),
        [
          ["spread-0", 10],
          ["spread-1", 11],
          ["spread-2", 12],
          ["spread-3", 13],
          ["spread-slow-a", 5],
          ["spread-slow-b", 6],
        ],
        `statuses: ${JSON.stringify(answers)}`,
      );
      const peers = new Set(answers.map((a) => a.peer));
      assertEquals(
        [...peers].sort(),
        ["client", originalName].sort(),
        `both clients ran requests: ${JSON.stringify(answers)}`,
      );
    }

    await using originalLocal = await LocalClient.connect(original.socket);
    await checkOriginalRunsOnOurs(originalLocal, "from-original");

    assertEquals(
      server.count(/no HELLO within|connection refused|disconnected/),
      0,
      `the server dropped or refused no one:\n${server.log()}`,
    );
    assertEquals(
      original.count(/Disconnected from server/),
      0,
      "the original kept its connection",
    );
    assertEquals(originalLocal.buffered, 0, "no stray status");
    assert(ourClient.running, "our client daemon is up");
    assertOriginalUndisturbed(original);
  },
});
