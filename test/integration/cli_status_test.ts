import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { runCli } from "../helpers/cli.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { PERMISSIONS } from "../helpers/daemon.ts";
import { deadline } from "../helpers/wait.ts";

const SCRIPTS = ["noop", "print"];
const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

Deno.test("status shows the daemon and its peers, as text and as JSON", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const prefix = pair.serverPrefix.path;
  const text = await runCli(["status", "--prefix", prefix]);
  assertEquals(text.code, 0, text.stderr);
  const lines = text.stdout.split("\n");
  assertMatch(
    lines[0],
    /^server: server mode, ws-daemon 0\.1\.0, pid \d+, up /,
  );
  assertMatch(text.stdout, /listening: ws:\/\/127\.0\.0\.1:\d+, \//);
  const header = lines.findIndex((l) => l.startsWith("PEER"));
  assert(header > 0, text.stdout);
  assertMatch(
    lines[header],
    /^PEER\s+STATE\s+ADDRESS\s+SINCE\s+VERSION\s+IN FLIGHT\s+DONE\s+RTT$/,
  );
  assertMatch(lines[header + 1], /^client\s+ready\s+client#1/);

  const json = await runCli(["status", "--json", "--prefix", prefix]);
  assertEquals(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout);
  assertEquals(parsed.info.name, "server");
  assertEquals(parsed.peers.map((p: { name: string }) => p.name), ["client"]);

  const none = await runCli(["status", "--prefix", "/nonexistent"]);
  assertEquals(none.code, 69);
  assertEquals(none.stderr.split("\n").length, 2, "one line");
});

Deno.test("watch prints one line per event, filtered, as text and as JSON", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const prefix = pair.serverPrefix.path;
  for (const json of [false, true]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--frozen",
        "--quiet",
        ...PERMISSIONS,
        MAIN,
        "watch",
        "--events",
        "status.returned",
        "--prefix",
        prefix,
        ...(json ? ["--json"] : []),
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    try {
      // Once it is subscribed, a request gives exactly one line.
      await using local = await LocalClient.connect(pair.server.socket);
      let text = "";
      // One read at a time: a read given up on would swallow its chunk.
      let pending = reader.read();
      await deadline(
        (async () => {
          for (let i = 0; !text.includes("\n"); i++) {
            await local.request({ name: "noop", id: `w${i}` });
            let timer: ReturnType<typeof setTimeout> | undefined;
            const got = await Promise.race([
              pending,
              new Promise<undefined>((r) => {
                timer = setTimeout(() => r(undefined), 300);
              }),
            ]);
            clearTimeout(timer);
            if (got === undefined) continue;
            text += got.value ?? "";
            pending = reader.read();
          }
        })(),
        15_000,
        "watch to print an event",
      );
      const line = text.split("\n")[0];
      if (json) {
        const event = JSON.parse(line);
        assertEquals(event.event, "status.returned");
        assertEquals(event.data.peer, "client");
      } else {
        assertMatch(
          line,
          /^\d{4}-\d\d-\d\dT[\d:.]+Z status.returned\s+noop id="w\d+" peer=client status=0 durationMs=/,
        );
      }
    } finally {
      child.kill("SIGINT");
      const status = await child.status;
      await reader.cancel().catch(() => {});
      const stderr = await new Response(child.stderr).text();
      assertEquals(status.code, 0, stderr);
    }
  }
});

Deno.test("watch checks --events before it connects: a typo is exit 2, not 'no daemon'", async () => {
  const run = await runCli([
    "watch",
    "--events",
    "script.finished,bogus",
    "--prefix",
    "/nonexistent",
  ]);
  assertEquals(run.code, 2, run.stderr);
  assertMatch(
    run.stderr,
    /^ws-daemon watch: --events names unknown event "bogus"/,
  );
});
