import { assert, assertEquals } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
} from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { until } from "../helpers/wait.ts";

const HELLO_FROM_SERVER = /peer server .* says hello/;
const HELLO_FROM_CLIENT = /peer client .* says hello/;

Deno.test("the client reconnects after the server restarts, logging the outage once", async () => {
  await using serverPrefix = await Prefix.create(serverConfig());
  const first = await DaemonProcess.start(serverPrefix);
  await using _first = first;
  const port = first.port;
  const url = `ws://127.0.0.1:${port}`;

  await using clientPrefix = await Prefix.create(
    clientConfig(port, { reconnectMaxMs: 200 }),
  );
  await using client = await DaemonProcess.start(clientPrefix, {
    args: ["--log-level", "debug"],
  });
  await Promise.all([
    client.waitForLog(HELLO_FROM_SERVER),
    first.waitForLog(HELLO_FROM_CLIENT),
  ]);
  await using local = await LocalClient.connect(client.socket);
  const before = await local.request({ name: "exit-with", id: "a", params: 1 });
  assertEquals([before.status, before.id], [1, "a"]);

  const mark = client.lines.length;
  assertEquals((await first.stop("SIGTERM")).code, 0, "first server's exit");
  await client.waitForLog(/disconnected from .*1001/, 10_000, mark);

  // Down: the client keeps trying, quietly.
  await until(
    () => client.count(/DEBUG connection attempt to .* failed/) >= 3,
    15_000,
    "3 failed connection attempts in the client's debug log",
  );
  // A request while down waits for the server (offline "queue").
  await local.send({ name: "exit-with", id: "down", params: 5 });
  const warnings = client.lines.slice(mark).filter((line) =>
    / (WARN|ERROR) /.test(line) && line.includes(url)
  );
  assert(
    warnings.length <= 2,
    `expected at most 2 warnings about the server while it was down, got ${warnings.length}:\n${
      warnings.join("\n")
    }`,
  );

  // Same prefix, same port: the client's config still points there.
  await serverPrefix.writeConfig(serverConfig({ port }));
  await using second = await DaemonProcess.start(serverPrefix);
  assertEquals(second.port, port);
  await Promise.all([
    client.waitForLog(HELLO_FROM_SERVER, 15_000, mark),
    second.waitForLog(HELLO_FROM_CLIENT, 15_000),
  ]);
  assertEquals(client.count(HELLO_FROM_SERVER), 2);
  assertEquals(
    client.count(/WARN disconnected from/),
    1,
    "disconnected lines in the client's log",
  );

  const queued = await local.next();
  assertEquals(
    [queued.status, queued.id],
    [5, "down"],
    "the request sent while down, delivered once the server is back",
  );
  const after = await local.request({ name: "exit-with", id: "b", params: 2 });
  assertEquals([after.status, after.id], [2, "b"], "client to new server");
  await using onServer = await LocalClient.connect(second.socket);
  const back = await onServer.request({
    name: "exit-with",
    id: "c",
    params: 3,
  });
  assertEquals([back.status, back.id], [3, "c"], "new server to client");
});
