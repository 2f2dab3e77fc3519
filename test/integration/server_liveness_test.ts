/**
 * The server's side of liveness: it pings each client every heartbeatMs and
 * drops one from which nothing, not even a pong, has come for two of them,
 * caught within a quarter heartbeat of that, whatever the timer's phase.
 */

import { assert, assertMatch } from "../helpers/assert.ts";
import { DaemonProcess, Prefix, serverConfig } from "../helpers/daemon.ts";
import { StalledWebSocket } from "../helpers/stalled_ws.ts";

const HEARTBEAT_MS = 400;

Deno.test("a client that answers nothing, not even a ping, is dropped within 2 × heartbeatMs", async () => {
  await using prefix = await Prefix.create(
    serverConfig({ heartbeatMs: HEARTBEAT_MS }),
    { scripts: ["noop"] },
  );
  await using server = await DaemonProcess.start(prefix);
  await using stalled = await StalledWebSocket.connect(server.url);
  assertMatch(await stalled.nextText(), /"code":"HELLO"/);
  const line = await server.waitForLog(
    /silent for (\d+) ms \(no pong\); dropping it/,
    10 * HEARTBEAT_MS,
  );
  const silentMs = Number(line.match(/silent for (\d+) ms/)![1]);
  assert(silentMs >= 2 * HEARTBEAT_MS, `dropped early: ${line}`);
  // A quarter heartbeat for the check, and room for a loaded machine.
  assert(silentMs < 2 * HEARTBEAT_MS + HEARTBEAT_MS, `dropped late: ${line}`);
});
