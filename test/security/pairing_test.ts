/**
 * One-command pairing end to end: `ws-daemon init --mode server` and
 * `ws-daemon join <line>` run as the binary would (src/main.ts with the
 * permission list), then both daemons start from the prefixes they wrote,
 * with nothing else set up: they must pair over wss:// with the token and the
 * pin, and requests must go both ways. `init --peer` adds a second client.
 * The files holding secrets must be private from the start.
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type DaemonProcess, freePort } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { parseJoinLine } from "../../src/cli/join_line.ts";
import { fingerprintOf } from "../../src/tls/certificate.ts";
import { assertNoSecretInLogs, cli, startDaemon } from "./_support.ts";

const DEBUG = ["--log-level", "debug"];

/** The LINE of `ws-daemon join LINE`, which must be init's last line. */
function joinLineOf(stdout: string): string {
  const last = stdout.trimEnd().split("\n").at(-1) ?? "";
  const match = /^ws-daemon join (\S+)$/.exec(last);
  assert(
    match,
    `init's last line is the join command: ${JSON.stringify(last)}`,
  );
  return match[1].replace(/^'(.*)'$/, "$1");
}

/** Runs the CLI and asserts exit 0 with nothing on stderr. */
async function ok(args: string[]): Promise<string> {
  const run = await cli(args);
  assertEquals(
    { code: run.code, stderr: run.stderr },
    { code: 0, stderr: "" },
    `ws-daemon ${args[0]}`,
  );
  return run.stdout;
}

/** Paths (relative to `root`) whose mode is not the one expected. */
async function wrongModes(
  root: string,
  expected: Record<string, number>,
): Promise<string[]> {
  const wrong: string[] = [];
  for (const [path, mode] of Object.entries(expected)) {
    const found = (await Deno.lstat(join(root, path))).mode! & 0o777;
    if (found !== mode) {
      wrong.push(
        `${path || "."}: ${found.toString(8).padStart(4, "0")}, expected ${
          mode.toString(8).padStart(4, "0")
        }`,
      );
    }
  }
  return wrong;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(path));
}

/** Requests `hello` from `asker` and checks it ran on `runner`. */
async function hello(
  asker: DaemonProcess,
  runner: DaemonProcess,
  id: string,
  peer: string,
): Promise<void> {
  await using local = await LocalClient.connect(asker.socket);
  assertEquals(
    await local.request({ name: "hello", id, params: id }),
    { status: 0, id, peer },
  );
  await runner.waitForLog(
    new RegExp(`script hello id="${id}" stdout: hello "${id}"`),
  );
}

Deno.test("init --mode server, join, start: the pair talks over wss:// with its token, both ways; init --peer adds a second client", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "wsd-pairing-" });
  await using stack = new AsyncDisposableStack();
  stack.defer(() => Deno.remove(dir, { recursive: true }));
  const serverDir = join(dir, "server");
  const firstDir = join(dir, "client-1");
  const secondDir = join(dir, "second");
  const port = freePort();
  const hostname = Deno.hostname();
  const daemons: DaemonProcess[] = [];
  const start = async (prefix: string) => {
    const daemon = await startDaemon(prefix, { args: DEBUG });
    stack.use(daemon);
    daemons.push(daemon);
    return daemon;
  };

  const initOut = await ok([
    "init",
    "--mode",
    "server",
    "--prefix",
    serverDir,
    "--port",
    String(port),
    "--host",
    "127.0.0.1",
  ]);
  const line1 = joinLineOf(initOut);
  const parsed1 = parseJoinLine(line1);
  await ok(["join", line1, "--prefix", firstDir]);

  await t.step(
    "the files: what each side trusts, and private modes",
    async () => {
      assertEquals(
        [parsed1.host, parsed1.port, parsed1.peer],
        ["127.0.0.1", port, "client-1"],
      );
      const certPem = await Deno.readTextFile(join(serverDir, "tls/cert.pem"));
      assertEquals(parsed1.fingerprint, fingerprintOf(certPem), "the pin");
      const serverConfig = await readJson(join(serverDir, "config.json"));
      assertEquals(serverConfig.port, port);
      assertEquals(serverConfig.tls, {
        cert: "tls/cert.pem",
        key: "tls/key.pem",
      });
      const token = (await Deno.readTextFile(
        join(serverDir, "secrets/client-1.token"),
      )).trim();
      assertEquals(token, parsed1.token, "the server's token file");
      const clientConfig = await readJson(join(firstDir, "config.json"));
      assertEquals(clientConfig.proxy, `wss://127.0.0.1:${port}`);
      assertEquals(clientConfig.pin, parsed1.fingerprint);
      const secretFile = String(clientConfig.secretFile);
      assertEquals(
        (await Deno.readTextFile(join(firstDir, secretFile))).trim(),
        token,
        "the client's secret file",
      );
      assert(!JSON.stringify(serverConfig).includes(token), "token in config");
      assert(!JSON.stringify(clientConfig).includes(token), "token in config");

      assertEquals(
        [
          ...await wrongModes(serverDir, {
            "": 0o700,
            "tls": 0o700,
            "secrets": 0o700,
            "scripts": 0o700,
            "config.json": 0o600,
            "tls/key.pem": 0o600,
            "secrets/client-1.token": 0o600,
            "tls/cert.pem": 0o644,
            "scripts/hello": 0o755,
          }),
          ...await wrongModes(firstDir, {
            "": 0o700,
            "secrets": 0o700,
            "scripts": 0o700,
            "config.json": 0o600,
            [secretFile]: 0o600,
            "scripts/hello": 0o755,
          }),
        ],
        [],
        "modes",
      );
    },
  );

  let server = await start(serverDir);
  assertMatch(server.url, new RegExp(`^wss://\\S+:${port}$`), "ready line");
  const first = await start(firstDir);

  await t.step("the pair talks: server to client and back", async () => {
    await server.waitForLog(
      // The server listens on every interface (init sets no host): the
      // client's address may be IPv4-mapped.
      /peer client-1 \(client#\d+ \((?:::ffff:)?127\.0\.0\.1:\d+\)\) says hello/,
    );
    await first.waitForLog(/INFO connected to wss:\/\/127\.0\.0\.1:/);
    await first.waitForLog(/peer \S+ \(wss:\/\/.*\) says hello/);
    await hello(server, first, "to-client", "client-1");
    await hello(first, server, "to-server", hostname);
    // The sockets are private too.
    for (const daemon of [server, first]) {
      const mode = (await Deno.lstat(daemon.socket)).mode! & 0o777;
      assertEquals(mode.toString(8), "600", `${daemon.socket}'s mode`);
    }
  });

  await t.step(
    "init --peer second, join, restart: both clients are served, by name",
    async () => {
      const addOut = await ok([
        "init",
        "--peer",
        "second",
        "--prefix",
        serverDir,
      ]);
      const line2 = joinLineOf(addOut);
      const parsed2 = parseJoinLine(line2);
      assertEquals(parsed2.peer, "second");
      assertEquals(parsed2.port, port);
      assertEquals(parsed2.fingerprint, parsed1.fingerprint, "the same pin");
      assert(parsed2.token !== parsed1.token, "a token of its own");
      await ok(["join", line2, "--prefix", secondDir]);
      assertEquals(
        [
          ...await wrongModes(serverDir, {
            "config.json": 0o600,
            "secrets/second.token": 0o600,
          }),
          ...await wrongModes(secondDir, {
            "": 0o700,
            "secrets": 0o700,
            "config.json": 0o600,
            "secrets/secret": 0o600,
          }),
        ],
        [],
        "modes",
      );

      assertEquals((await server.stop()).code, 0, "the server's stop");
      server = await start(serverDir);
      const second = await start(secondDir);
      await server.waitForLog(/peer client-1 \(client#\d+ \(.*\)\) says hello/);
      await server.waitForLog(/peer second \(client#\d+ \(.*\)\) says hello/);
      await second.waitForLog(/peer \S+ \(wss:\/\/.*\) says hello/);

      // Round robin: two requests in a row go to the two clients.
      await using local = await LocalClient.connect(server.socket);
      const answers = [
        await local.request({ name: "hello", id: "a", params: "a" }),
        await local.request({ name: "hello", id: "b", params: "b" }),
      ];
      assertEquals(
        answers.map((a) => a.status),
        [0, 0],
        JSON.stringify(answers),
      );
      assertEquals(
        answers.map((a) => a.peer).sort(),
        ["client-1", "second"],
        "the peers that answered",
      );
      await hello(second, server, "from-second", hostname);

      assertNoSecretInLogs(daemons, [parsed1.token, parsed2.token]);
      for (const daemon of daemons) {
        assertEquals(
          daemon.lines.filter((l) => /readable by group or others/.test(l)),
          [],
          `mode warnings of ${daemon.prefix}`,
        );
      }
    },
  );
});
