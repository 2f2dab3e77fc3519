import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { startFleet } from "../helpers/fleet.ts";
import { runCli } from "../helpers/cli.ts";

const SCRIPTS = ["exit-with", "print", "read-params", "sleep-exit", "noop"];

Deno.test("send exits with the script's exit code, and a documented code for each negative status", async () => {
  await using pair = await startPair({
    scripts: SCRIPTS,
    // noop is not the server's to run on the client: -5.
    client: { peerScripts: ["exit-with", "sleep-exit"] },
  });
  const prefix = pair.serverPrefix.path;
  const send = (...args: string[]) =>
    runCli(["send", ...args, "--prefix", prefix]);

  const ok = await send("exit-with", "0");
  assertEquals(ok.code, 0, ok.stderr);
  assertMatch(ok.stdout, /^exit-with on client: status 0/);
  assertEquals((await send("exit-with", "3")).code, 3);
  const missing = await send("exit-with", "0", "--to", "client", "--json");
  assertEquals(missing.code, 0);
  const invalid = await send(".hidden");
  assertEquals(invalid.code, 127, invalid.stdout);
  assertMatch(invalid.stdout, /status -1: invalid script name/);
  assertEquals((await send("exit-with", "0", "--to", "nobody")).code, 69);
  const late = await send("sleep-exit", "[5,0]", "--deadline", "300ms");
  assertEquals(late.code, 124, late.stdout);
  const json = await send("exit-with", "4", "--json", "--id", "j1");
  assertEquals(JSON.parse(json.stdout), {
    status: 4,
    id: "j1",
    peer: "client",
  });
  const refused = await send("noop");
  assertEquals(refused.code, 77, refused.stdout);
  assertMatch(
    refused.stdout,
    /status -5: peer server may not run script "noop"/,
  );
  const bad = await send("noop", "--deadline", "soon");
  assertEquals(bad.code, 2);
  assertMatch(bad.stderr, /--deadline must be a duration/);
});

Deno.test("send --output writes the script's streams; - reads params from stdin", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const prefix = pair.serverPrefix.path;
  const out = await runCli([
    "send",
    "print",
    '"hi"',
    "--output",
    "--prefix",
    prefix,
  ]);
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.stdout, 'out: "hi"\n');
  assertEquals(out.stderr, 'err: "hi"\ndev: "hi"\n');
  const piped = await runCli(
    ["send", "read-params", "-", "--output", "--prefix", prefix],
    { stdin: '{"from": "stdin"}\n' },
  );
  assertEquals(piped.code, 0, piped.stderr);
  assertMatch(piped.stdout, /^via=argv env= bytes=16 /);
  const bad = await runCli(["send", "noop", "{nope", "--prefix", prefix]);
  assertEquals(bad.code, 2);
  assertMatch(bad.stderr, /^ws-daemon send: PARAMS must be JSON/);
  const unknown = await runCli(["send", "noop", "--bogus", "--prefix", prefix]);
  assertEquals(unknown.code, 2);
  assertEquals(
    unknown.stderr,
    "ws-daemon send: unknown option --bogus (see --help)\n",
  );
  const nobody = await runCli(["send", "noop", "--prefix", "/nonexistent"]);
  assertEquals(nobody.code, 69);
  assertMatch(
    nobody.stderr,
    /no daemon answers on \/nonexistent\/ws-daemon.sock/,
  );
});

Deno.test("send --to '*' prints one line per peer and exits with the summary's status", async () => {
  await using fleet = await startFleet(["a", "b"], { scripts: SCRIPTS });
  await Deno.remove(
    fleet.clients.get("b")!.prefix.file("scripts", "exit-with"),
  );
  const run = await runCli([
    "send",
    "exit-with",
    "0",
    "--to",
    "*",
    "--prefix",
    fleet.serverPrefix.path,
  ]);
  assertEquals(run.code, 127, run.stdout + run.stderr);
  const lines = run.stdout.trim().split("\n");
  assertEquals(lines.length, 3, run.stdout);
  assert(
    lines.some((l) => l.startsWith("exit-with on a: status 0")),
    run.stdout,
  );
  assert(
    lines.some((l) => l.startsWith("exit-with on b: status -1")),
    run.stdout,
  );
  assertEquals(lines[2], "exit-with: status -1 (a=0 b=-1)");
});

Deno.test("send takes a negative number as PARAMS; an unknown subcommand is one line", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const negative = await runCli([
    "send",
    "read-params",
    "-1.5",
    "--output",
    "--prefix",
    pair.serverPrefix.path,
  ]);
  assertEquals(negative.code, 0, negative.stderr);
  assertMatch(negative.stdout, /^via=argv env= bytes=4 /);
  const unknown = await runCli(["bogus"]);
  assertEquals(unknown.code, 2);
  assertEquals(unknown.stderr.trim().split("\n").length, 1, unknown.stderr);
  assertMatch(unknown.stderr, /unknown command "bogus"/);
});
