import { assert, assertEquals } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";

Deno.test('logFormat "json": every log line is one JSON object, with the request\'s fields', async () => {
  await using pair = await startPair({
    scripts: ["print", "noop"],
    client: { logFormat: "json" },
  });
  await using local = await LocalClient.connect(pair.server.socket);
  assertEquals(
    (await local.request({ name: "print", id: "j1", params: "x" })).status,
    0,
  );
  await pair.client.waitForLog(/"msg":"ran print id=\\"j1\\"/);
  await pair.client.waitForLog(/stdout: out/);
  const lines = pair.client.lines.filter((line) => line.trim() !== "");
  const parsed = lines.map((line) => JSON.parse(line));
  for (const entry of parsed) {
    assert(typeof entry.time === "string" && !isNaN(Date.parse(entry.time)));
    assert(["debug", "info", "warn", "error"].includes(entry.level));
    assert(typeof entry.msg === "string");
  }
  const ran = parsed.find((entry) => entry.msg.startsWith("ran print"));
  assertEquals(
    [ran.level, ran.script, ran.id, ran.peer, ran.status, ran.signal],
    ["info", "print", "j1", "server", 0, null],
  );
  assert(typeof ran.durationMs === "number");
  const hello = parsed.find((entry) => entry.msg.includes("says hello"));
  assertEquals([hello.peer, hello.version], ["server", "0.1.0"]);
  // The text format is unchanged on the other side.
  await pair.server.waitForLog(
    /INFO request print id="j1" peer=client: status 0 in /,
  );
});
