import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { until } from "../helpers/wait.ts";

/**
 * How the server logs a client that closed its WebSocket properly on
 * shutdown. Going away is 1001, but a WebSocket client may only send 1000 or
 * 3000-4999 (Deno's `close(1001)` throws InvalidAccessError), so 1000 is
 * accepted too; what must not happen is code 0, the TCP connection dropping
 * without a close frame.
 */
const CLEAN_CLOSE = /closed with code (1000|1001)\b/;

/** Processes (not zombies) whose process group is `pgid`, from /proc. */
async function liveInGroup(pgid: number): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
    } catch {
      continue; // Gone meanwhile.
    }
    // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z") found.push(Number(entry.name));
  }
  return found;
}

/**
 * A server and a client, both logging at debug (so "started" lines show) and
 * both able to run sleep-exit; `client` adds to the client's config. Returns
 * after both have heard the other's hello.
 */
function startDebugPair(client: Record<string, unknown> = {}) {
  return startPair({
    client,
    args: ["--log-level", "debug"],
    scripts: ["sleep-exit"],
  });
}

async function gone(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return false;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
}

const cases = [
  // SIGTERM on the client: a client can only close with 1000 (see CLEAN_CLOSE).
  { signal: "SIGTERM", stops: "client", closeSeen: CLEAN_CLOSE },
  // SIGINT on the server, whose side of a WebSocket can send 1001.
  { signal: "SIGINT", stops: "server", closeSeen: /closed with code 1001\b/ },
] as const;

for (const { signal, stops, closeSeen } of cases) {
  Deno.test(`${signal} on the ${stops} lets a running script finish, delivers its status, then exits 0`, async () => {
    await using pair = await startDebugPair();
    const runner = pair[stops];
    const other = stops === "client" ? pair.server : pair.client;
    await using asker = await LocalClient.connect(other.socket);
    await asker.send({ name: "sleep-exit", id: "running", params: [1, 3] });
    await runner.waitForLog(/script sleep-exit id="running": started/);

    const exited = runner.stop(signal);
    await runner.waitForLog(new RegExp(`${signal} received`));
    const answer = await asker.next(15_000);
    assertEquals(
      [answer.status, answer.id, answer.peer],
      [3, "running", stops],
      "status delivered to the asker",
    );
    assertEquals((await exited).code, 0, `${stops}'s exit code`);
    assert(await gone(runner.socket), `${runner.socket} still exists`);
    const scriptEnded = runner.lines.findIndex((l) => /exited with 3/.test(l));
    const stopped = runner.lines.findIndex((l) => /INFO stopped/.test(l));
    assert(
      scriptEnded !== -1 && stopped !== -1 && scriptEnded < stopped,
      "the script ended before the daemon stopped",
    );

    // The peer saw a WebSocket close, not a dropped connection (code 0).
    assertMatch(
      await other.waitForLog(new RegExp(`peer ${stops}\\b.*disconnected`)),
      closeSeen,
    );
    // The peer runs on, with nobody to send to now: a server answers -2 at
    // once; a client (offline "queue") waits for its server, up to the
    // request's deadline, then answers -2, as it was never sent.
    const after = await asker.request({
      name: "sleep-exit",
      id: "after",
      deadlineMs: 300,
    });
    assertEquals([after.status, after.id], [-2, "after"]);
    if (stops === "server") {
      assertMatch(String(after.error), /within deadlineMs/);
    }
  });
}

Deno.test("past shutdownGraceMs a running script's process group gets SIGTERM; the asker gets 143 and the daemon exits 0", async () => {
  await using pair = await startDebugPair({ shutdownGraceMs: 300 });
  const { server, client } = pair;
  await using asker = await LocalClient.connect(server.socket);
  await asker.send({ name: "sleep-exit", id: "long", params: [30, 0] });
  const started = await client.waitForLog(
    /script sleep-exit id="long": started, pid (\d+)/,
  );
  const pid = Number(started.match(/pid (\d+)/)![1]);
  // Should the daemon fail to, end what the script started.
  await using _group = {
    [Symbol.asyncDispose]: () => {
      try {
        Deno.kill(-pid, "SIGKILL");
      } catch {
        // Already gone, as it should be.
      }
      return Promise.resolve();
    },
  };

  const signalledAt = Date.now();
  const status = await client.stop("SIGTERM");
  const tookMs = Date.now() - signalledAt;
  assertEquals(status.code, 0, "client's exit code");
  assert(tookMs < 5_000, `the daemon took ${tookMs} ms to exit`);
  await client.waitForLog(/ending script process group \d+ after the grace/);

  const answer = await asker.next(10_000);
  assertEquals(
    [answer.status, answer.id, answer.signal],
    [143, "long", "SIGTERM"],
    "status delivered to the asker",
  );
  assert(await gone(client.socket), `${client.socket} still exists`);
  // The whole group went: the script's `sleep 30` child too.
  await until(
    async () => (await liveInGroup(pid)).length === 0,
    5_000,
    `process group ${pid} to be gone`,
  );
  assertMatch(
    await server.waitForLog(/peer client\b.*disconnected/),
    CLEAN_CLOSE,
  );
});
