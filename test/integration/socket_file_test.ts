import { assertEquals, assertMatch } from "../helpers/assert.ts";
import { DaemonProcess, freePort, Prefix } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";

const SERVER = { mode: "server", port: 0, host: "127.0.0.1" };

/** The file's type and permission bits, or undefined when it is gone. */
async function fileMode(
  path: string,
): Promise<{ socket: boolean; mode: number } | undefined> {
  try {
    const info = await Deno.lstat(path);
    return { socket: info.isSocket === true, mode: info.mode! & 0o777 };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function socketFiles(prefix: Prefix): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(prefix.path)) {
    if (entry.name.endsWith(".sock")) names.push(entry.name);
  }
  return names.sort();
}

/** The daemon answers on its socket: `+cmd STATUS` comes back to us. */
async function assertAnswers(daemon: DaemonProcess, id: string): Promise<void> {
  await using local = await LocalClient.connect(daemon.socket);
  const answer = await local.request({
    name: "+cmd",
    params: { code: "STATUS", data: { status: 7, id } },
  });
  assertEquals(
    [answer.status, answer.id],
    [7, id],
    `answer on ${daemon.socket}`,
  );
}

Deno.test("daemons sharing a prefix number their sockets, reclaim a stale one, and remove theirs on exit", async () => {
  await using prefix = await Prefix.create(SERVER, { scripts: [] });
  await using a = await DaemonProcess.start(prefix);
  await using b = await DaemonProcess.start(prefix);
  await using c = await DaemonProcess.start(prefix);
  assertEquals(
    [a.socket, b.socket, c.socket],
    [
      prefix.file("ws-daemon.sock"),
      prefix.file("ws-daemon0.sock"),
      prefix.file("ws-daemon1.sock"),
    ],
  );
  for (const daemon of [a, b, c]) {
    assertEquals(
      await fileMode(daemon.socket),
      { socket: true, mode: 0o600 },
      `${daemon.socket} by default`,
    );
  }
  await assertAnswers(a, "a");
  await assertAnswers(b, "b");
  await assertAnswers(c, "c");

  // A crash leaves ws-daemon.sock behind with nobody answering on it.
  await a.kill();
  assertEquals((await fileMode(a.socket))?.socket, true, "stale file left");
  await using d = await DaemonProcess.start(prefix);
  assertEquals(d.socket, prefix.file("ws-daemon.sock"), "stale name reclaimed");
  await d.waitForLog(/ws-daemon\.sock is a stale socket/);
  await assertAnswers(d, "d");
  // The live daemons' sockets were left alone.
  await assertAnswers(b, "b2");
  await assertAnswers(c, "c2");

  for (const daemon of [c, b, d]) {
    assertEquals((await daemon.stop()).code, 0, `${daemon.socket} exit code`);
    assertEquals(await fileMode(daemon.socket), undefined, "socket removed");
  }
  assertEquals(await socketFiles(prefix), []);
});

Deno.test("a regular file named ws-daemon.sock is skipped and never deleted; socketMode sets the mode", async () => {
  await using prefix = await Prefix.create({ ...SERVER, socketMode: "0660" }, {
    scripts: [],
  });
  const occupant = prefix.file("ws-daemon.sock");
  await Deno.writeTextFile(occupant, "not a socket\n");
  await using daemon = await DaemonProcess.start(prefix);
  assertEquals(daemon.socket, prefix.file("ws-daemon0.sock"));
  assertEquals(await fileMode(daemon.socket), { socket: true, mode: 0o660 });
  assertEquals(await Deno.readTextFile(occupant), "not a socket\n");
  await assertAnswers(daemon, "e");

  assertEquals((await daemon.stop()).code, 0);
  assertEquals(await fileMode(daemon.socket), undefined, "socket removed");
  assertEquals(await Deno.readTextFile(occupant), "not a socket\n");
  assertEquals(await socketFiles(prefix), ["ws-daemon.sock"]);
});

Deno.test("a TCP local listener, from the config or WSDAEMON_LOCAL_TCP, serves requests and creates no socket file", async () => {
  await using prefix = await Prefix.create({
    ...SERVER,
    localTcp: `127.0.0.1:${freePort()}`,
  }, { scripts: [] });
  const envPort = freePort();
  const cases: { how: string; env: Record<string, string> }[] = [
    { how: "config", env: {} },
    { how: "env", env: { WSDAEMON_LOCAL_TCP: `127.0.0.1:${envPort}` } },
  ];
  for (const { how, env } of cases) {
    // The env case runs on a config without localTcp: the env alone switches.
    if (how === "env") await prefix.writeConfig(SERVER);
    await using daemon = await DaemonProcess.start(prefix, { env });
    assertMatch(daemon.socket, /^tcp:\/\/127\.0\.0\.1:\d+$/, how);
    if (how === "env") {
      assertEquals(daemon.socket, `tcp://127.0.0.1:${envPort}`, how);
    }
    await assertAnswers(daemon, how);
    // No peer is connected: a script request still gets its answer over TCP.
    await using local = await LocalClient.connect(daemon.socket);
    const answer = await local.request({ name: "noop", id: `${how}-noop` });
    assertEquals([answer.status, answer.id], [-2, `${how}-noop`]);
    assertEquals(await socketFiles(prefix), [], `${how}: socket files`);
    assertEquals((await daemon.stop()).code, 0, `${how}: exit code`);
  }
});
