/**
 * What changes without a restart, and what a dropped link leaves undone:
 * SIGHUP reloads the server's tokens; requests still waiting for a run slot
 * when their asker's link drops are never started; TLS files that cannot
 * work are a config error at startup, not silent handshake failures.
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
  startPair,
} from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { generateSelfSigned } from "../../src/tls/certificate.ts";
import { newSecret, runClient, runServer } from "./_support.ts";
import { exists, releaseAll, waitStarted } from "./_trust_helpers.ts";

Deno.test("SIGHUP reloads the server's tokens: a new peer gets in, a removed one is cut", async () => {
  const a = newSecret("a");
  const b = newSecret("b");
  await using server = await runServer({ peers: { a: { token: a } } });
  await using clientA = await runClient(server.port, { secret: a, name: "a" });
  await server.daemon.waitForLog(/peer a \(.*\) says hello/);

  await server.prefix.writeConfig(serverConfig({
    port: server.port,
    peers: { a: { token: a }, b: { token: b } },
  }));
  Deno.kill(server.daemon.child.pid, "SIGHUP");
  await server.daemon.waitForLog(/credentials reloaded: 2 peer token/);
  await using _clientB = await runClient(server.port, {
    secret: b,
    name: "b",
  });
  await server.daemon.waitForLog(/peer b \(.*\) says hello/);

  await server.prefix.writeConfig(serverConfig({
    port: server.port,
    peers: { b: { token: b } },
  }));
  Deno.kill(server.daemon.child.pid, "SIGHUP");
  await server.daemon.waitForLog(/credentials reloaded: 1 peer token/);
  await clientA.daemon.waitForLog(/4003 \(its token is no longer in peers\)/);
  await clientA.daemon.waitForLog(/401/);

  // A config that does not load leaves the old credentials in force.
  await server.prefix.writeConfig('{"mode": "server", "port": "x"}');
  Deno.kill(server.daemon.child.pid, "SIGHUP");
  await server.daemon.waitForLog(/SIGHUP: config not reloaded/);
  assertEquals(
    (await server.request({ name: "exit-with", id: "still", params: 6 }))
      .status,
    6,
  );
});

Deno.test("requests waiting for a run slot when their asker's link drops run once, and their statuses arrive after the reconnect", async () => {
  await using pair = await startPair({
    client: { maxRunning: 1, rate: 1_000_000 },
  });
  try {
    await using local = await LocalClient.connect(pair.server.socket);
    await local.send({ name: "wait-release", id: "holder", params: 0 });
    await waitStarted(pair.clientPrefix, "holder");
    for (let i = 0; i < 5; i++) {
      await local.send({ name: "record", id: `queued-${i}` });
    }
    // One link, in order: the queued requests reach the client before PAUSE.
    await local.send({
      name: "&cmd",
      id: "pause",
      params: { code: "PAUSE", data: 100 },
    });
    assertEquals((await local.next()).status, 0, "PAUSE");
    await pair.server.waitForLog(/peer client \(.*\) disconnected/);
    await releaseAll(pair.clientPrefix);
    await pair.server.waitForLog(/peer client \(.*\) says hello/, 10_000, 1);
    const answers = await local.take(6, 10_000);
    const byId = new Map(answers.map((a) => [a.id, a]));
    assertEquals(byId.get("holder")?.status, 0, "holder");
    for (let i = 0; i < 5; i++) {
      assertEquals(byId.get(`queued-${i}`)?.status, 0, `queued-${i}`);
      assert(
        await exists(pair.clientPrefix.file("out", `queued-${i}`)),
        `queued-${i} ran`,
      );
    }
  } finally {
    await releaseAll(pair.clientPrefix);
  }
});

Deno.test("TLS files that cannot work are a config error at startup (78), naming the field", async () => {
  const one = await generateSelfSigned({ hosts: ["127.0.0.1"] });
  const other = await generateSelfSigned({ hosts: ["127.0.0.1"] });
  for (
    const [label, cert, key, field] of [
      ["not PEM", "hello", one.keyPem, "tls.cert"],
      ["no key", one.certPem, "hello", "tls.key"],
      ["another cert's key", one.certPem, other.keyPem, "tls.key"],
    ]
  ) {
    await using prefix = await Prefix.create(
      serverConfig({ tls: { cert: "cert.pem", key: "key.pem" } }),
      { scripts: [] },
    );
    await Deno.writeTextFile(join(prefix.path, "cert.pem"), cert);
    await Deno.writeTextFile(join(prefix.path, "key.pem"), key, {
      mode: 0o600,
    });
    const daemon = await DaemonProcess.start(prefix, { waitReady: false });
    const status = await daemon.exited();
    assertEquals(status.code, 78, `${label}: ${daemon.log()}`);
    assertMatch(daemon.log(), new RegExp(`field "${field}"`), label);
  }
});

Deno.test("SIGHUP reloads limits, timeouts and peerScripts without dropping the link", async () => {
  await using pair = await startPair({ scripts: ["sleep-exit", "exit-with"] });
  const { client, clientPrefix, server } = pair;
  await clientPrefix.writeConfig(clientConfig(server.port, {
    scriptTimeoutMs: 200,
    killGraceMs: 0,
    peerScripts: ["sleep-*"],
  }));
  Deno.kill(client.child.pid, "SIGHUP");
  await client.waitForLog(/SIGHUP: configuration reloaded/);
  await using local = await LocalClient.connect(server.socket);
  const timed = await local.request({
    name: "sleep-exit",
    id: "t",
    params: [30, 0],
  });
  assertEquals(timed.status, -3);
  assertMatch(String(timed.error), /timed out after 200 ms/);
  const refused = await local.request({
    name: "exit-with",
    id: "r",
    params: 1,
  });
  assertEquals(refused.status, -5);
  assertMatch(String(refused.error), /may not run script "exit-with"/);
  assertEquals(
    client.count(/disconnected from/) + server.count(/disconnected/),
    0,
    "the link stayed up",
  );
});

Deno.test("SIGHUP with a higher maxRunning starts the requests waiting for a slot", async () => {
  await using pair = await startPair({
    client: { maxRunning: 1 },
    scripts: ["wait-release"],
  });
  const { client, clientPrefix, server } = pair;
  try {
    await using local = await LocalClient.connect(server.socket);
    await local.send(
      { name: "wait-release", id: "first", params: 0 },
      { name: "wait-release", id: "second", params: 0 },
    );
    await waitStarted(clientPrefix, "first");
    await clientPrefix.writeConfig(
      clientConfig(server.port, { maxRunning: 2 }),
    );
    Deno.kill(client.child.pid, "SIGHUP");
    await client.waitForLog(/SIGHUP: configuration reloaded/);
    // Started while "first" still holds its slot: two run at once now.
    await waitStarted(clientPrefix, "second");
  } finally {
    await releaseAll(clientPrefix);
  }
});
