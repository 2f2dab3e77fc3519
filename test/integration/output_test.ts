import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";

const SCRIPTS = ["print", "print-bytes", "read-params", "noop", "exit-with"];

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

Deno.test("output: true returns stdout, stderr and durationMs; without it, the status is as before", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  await using local = await LocalClient.connect(pair.server.socket);
  const answer = await local.request({
    name: "print",
    id: "o",
    params: "hi",
    output: true,
  });
  assertEquals([answer.status, answer.id, answer.peer], [0, "o", "client"]);
  assertEquals(answer.stdout, 'out: "hi"\n');
  assertEquals(answer.stderr, 'err: "hi"\ndev: "hi"\n');
  assertEquals([answer.stdoutTruncated, answer.stderrTruncated], [
    false,
    false,
  ]);
  assert(typeof answer.durationMs === "number" && answer.durationMs >= 0);
  const plain = await local.request({ name: "print", id: "p", params: "hi" });
  assertEquals(plain, { status: 0, id: "p", peer: "client" });
  await pair.client.waitForLog(/stdout: out: "hi"/);
  const bad = await local.request({ name: "noop", id: "b", output: "yes" });
  assertEquals(bad.status, -4);
  assertMatch(String(bad.error), /'output' must be true or false/);
});

Deno.test("output is cut at maxOutputBytes on a character boundary, and invalid UTF-8 becomes U+FFFD", async () => {
  await using pair = await startPair({
    scripts: SCRIPTS,
    client: { maxOutputBytes: 15 },
  });
  await using local = await LocalClient.connect(pair.server.socket);
  // Nine "é" (2 bytes each): 15 bytes hold seven and half of the eighth.
  const cut = await local.request({
    name: "print-bytes",
    id: "cut",
    params: "\\303\\251".repeat(9),
    output: true,
  });
  assertEquals(cut.status, 0);
  assertEquals(cut.stdout, "é".repeat(7));
  assertEquals([cut.stdoutTruncated, cut.stderrTruncated], [true, false]);
  assertEquals(cut.stderr, "err");
  const invalid = await local.request({
    name: "print-bytes",
    id: "bad",
    params: "a\\377b\\376",
    output: true,
  });
  assertEquals(invalid.stdout, "a\ufffdb\ufffd");
  assertEquals(invalid.stdoutTruncated, false);
});

Deno.test("1 MiB of params goes to stdin with WSDAEMON_PARAMS=stdin; a script that ignores stdin exits normally", async () => {
  const big = { maxMessageBytes: 4 * 1024 * 1024 };
  await using pair = await startPair({
    scripts: SCRIPTS,
    server: big,
    client: big,
  });
  await using local = await LocalClient.connect(pair.server.socket);
  const params = "z".repeat(1024 * 1024);
  const json = JSON.stringify(params);
  const read = await local.request({
    name: "read-params",
    id: "mib",
    params,
    output: true,
  }, 30_000);
  assertEquals(read.status, 0, JSON.stringify(read).slice(0, 300));
  assertEquals(
    read.stdout,
    `via=- env=stdin bytes=${json.length} sha=${await sha256(json)}\n`,
  );
  // noop never reads its stdin: it must not hang on a full pipe.
  for (let i = 0; i < 3; i++) {
    const ignored = await local.request(
      { name: "noop", id: `i${i}`, params },
      30_000,
    );
    assertEquals([ignored.status, ignored.id], [0, `i${i}`]);
  }
  // Small params on stdin when asked.
  const small = await local.request({
    name: "read-params",
    id: "s",
    params: { a: 1 },
    stdin: true,
    output: true,
  });
  assertMatch(String(small.stdout), /^via=- env=stdin bytes=7 /);
});

Deno.test("every launcher passes params on stdin and captures output", async () => {
  for (const launcher of ["posix_spawn", "setsid", "detached"]) {
    await using pair = await startPair({
      scripts: SCRIPTS,
      client: { scriptLauncher: launcher },
    });
    await using local = await LocalClient.connect(pair.server.socket);
    const params = "q".repeat(200_000);
    const json = JSON.stringify(params);
    const read = await local.request({
      name: "read-params",
      id: launcher,
      params,
      output: true,
    }, 30_000);
    assertEquals(
      read.stdout,
      `via=- env=stdin bytes=${json.length} sha=${await sha256(json)}\n`,
      launcher,
    );
    const ignored = await local.request(
      { name: "noop", id: "n", params },
      30_000,
    );
    assertEquals(ignored.status, 0, launcher);
  }
});
