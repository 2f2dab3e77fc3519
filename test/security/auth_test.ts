/**
 * Who may connect, and what a connected peer may do, against real daemons on
 * loopback: the server's shared secret (config, `secretFile`, or
 * WSDAEMON_SECRET) checked before the upgrade, per-peer tokens that name the
 * peer and limit its scripts, the client's `peerScripts`, a second connection
 * under a name in use, and the checks on the secrets themselves (length, file
 * mode, never in a log line). Every daemon runs at log level debug, so the
 * "never logged" checks see every line there is.
 */

import { join } from "node:path";
import {
  assert,
  assertEquals,
  type AssertionError,
  assertMatch,
} from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
} from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import {
  assertNoSecretInLogs,
  exists,
  newSecret,
  RawHttp,
  runClient,
  runServer,
  textFrame,
  upgradeHead,
} from "./_support.ts";

const DEBUG = ["--log-level", "debug"];
const HELLO = (name: string) => new RegExp(`peer ${name} \\(.*\\) says hello`);

Deno.test("a client with no secret or a wrong one is refused (401) and retries; with the right one requests go both ways", async (t) => {
  const secret = newSecret("right");
  const wrong = newSecret("wrong");
  await using server = await runServer({ secret }, { args: DEBUG });
  const daemons: DaemonProcess[] = [server.daemon];

  const refusedCases: [string, Record<string, unknown>, string][] = [
    ["no secret", {}, "no Authorization header"],
    ["a wrong secret", { secret: wrong }, "wrong secret or token"],
  ];
  for (const [label, fields, reason] of refusedCases) {
    await t.step(
      `${label}: refused with 401, retried, nothing delivered`,
      async () => {
        const from = server.daemon.lines.length;
        // "reject": a request while refused is -2 at once, not queued.
        await using client = await runClient(
          server.port,
          { ...fields, offline: "reject" },
          { args: DEBUG },
        );
        daemons.push(client.daemon);
        await server.daemon.waitForLog(
          new RegExp(
            `WARN 127\\.0\\.0\\.1:\\d+: connection refused \\(401\\): ${reason}$`,
          ),
          10_000,
          from,
        );
        // Said once at ERROR; the client keeps trying (the server sees
        // it refused again), and says the same refusal again only at debug.
        const error = await client.daemon.waitForLog(/ ERROR /);
        assertMatch(error, /\b401\b/, "the client's error line");
        const refusal = new RegExp(`connection refused \\(401\\): ${reason}$`);
        const once = await server.daemon.waitForLog(refusal, 10_000, from);
        await server.daemon.waitForLog(
          refusal,
          10_000,
          server.daemon.lines.indexOf(once, from) + 1,
        );
        await client.daemon.waitForLog(/DEBUG connection attempt .* 401/);
        assertEquals(
          client.daemon.lines.filter((l) => / ERROR /.test(l)),
          [error],
          "one ERROR line, the 401",
        );

        const toClient = await server.request({ name: "record", id: "to" });
        assertEquals(toClient.status, -2, JSON.stringify(toClient));
        assertMatch(String(toClient.error), /no client/);
        const toServer = await client.request({ name: "record", id: "from" });
        assertEquals(toServer.status, -2, JSON.stringify(toServer));
        assert(!await exists(client.prefix.file("out", "to")), "ran on client");
        assert(
          !await exists(server.prefix.file("out", "from")),
          "ran on server",
        );
        assertEquals(
          server.daemon.lines.slice(from).filter((l) =>
            /says hello|sent no HELLO/.test(l)
          ),
          [],
          "introductions on the server",
        );
      },
    );
  }

  await t.step("the right secret: requests go both ways", async () => {
    await using client = await runClient(server.port, { secret }, {
      args: DEBUG,
    });
    daemons.push(client.daemon);
    await server.daemon.waitForLog(HELLO("client"));
    await client.daemon.waitForLog(HELLO("server"));
    assertEquals(
      await server.request({ name: "exit-with", id: "s", params: 3 }),
      { status: 3, id: "s", peer: "client" },
    );
    assertEquals(
      await client.request({ name: "exit-with", id: "c", params: 4 }),
      { status: 4, id: "c", peer: "server" },
    );
    assertEquals((await server.request({ name: "record", id: "r" })).status, 0);
    assert(await exists(client.prefix.file("out", "r")), "record ran there");
  });

  assertNoSecretInLogs(daemons, [secret, wrong]);
});

Deno.test("raw upgrades: no Authorization or a wrong one gets 401 and runs nothing; the secret runs the script", async () => {
  const secret = newSecret();
  const other = newSecret("other");
  await using server = await runServer({ secret }, { args: DEBUG });
  const { port } = server;
  const refused: [string, string | null][] = [
    ["no Authorization header", null],
    ["a wrong bearer", `Bearer ${other}`],
    ["the secret, one character short", `Bearer ${secret.slice(0, -1)}`],
    ["the secret and one character more", `Bearer ${secret}x`],
    ["the secret without the Bearer scheme", secret],
    ["the secret as Basic credentials", `Basic ${btoa(`user:${secret}`)}`],
    ["an empty bearer", "Bearer"],
  ];
  // The request's first frame goes in the same write as the upgrade: a
  // server that ran anything for a refused request would run it.
  const attempt = (id: string, authorization: string | null) =>
    new Uint8Array([
      ...new TextEncoder().encode(
        upgradeHead({ port, headers: { Authorization: authorization } }),
      ),
      ...textFrame(JSON.stringify({ name: "record", id })),
    ]);

  for (const [index, [label, authorization]] of refused.entries()) {
    const from = server.daemon.lines.length;
    const head = await RawHttp.exchange(
      port,
      attempt(`refused-${index}`, authorization),
    );
    assertEquals(head.status, 401, `${label}: ${head.statusLine}`);
    assertEquals(head.headers.get("www-authenticate"), "Bearer", label);
    await server.daemon.waitForLog(
      /connection refused \(401\)/,
      5_000,
      from,
    );
  }

  await using accepted = await RawHttp.connect(port);
  await accepted.write(attempt("accepted", `Bearer ${secret}`));
  const head = await accepted.readHead();
  assertEquals(head.status, 101, head.statusLine);
  const hello = JSON.parse((await accepted.readFrame()).text);
  assertEquals(hello.params.code, "HELLO");
  const status = JSON.parse((await accepted.readFrame()).text);
  assertEquals(status.params, {
    code: "STATUS",
    data: { status: 0, id: "accepted" },
  });
  assert(await exists(server.prefix.file("out", "accepted")), "it ran");

  // Every refused request came (and was answered) before the accepted one.
  for (const index of refused.keys()) {
    assert(
      !await exists(server.prefix.file("out", `refused-${index}`)),
      `refused request ${index} (${refused[index][0]}) ran a script`,
    );
  }
  assertEquals(
    server.daemon.lines.filter((l) => /script record id="refused/.test(l)),
    [],
    "script lines of refused requests",
  );
  assertEquals(
    server.daemon.count(/connection refused \(401\)/),
    refused.length,
    "401 lines",
  );
  assertNoSecretInLogs([server.daemon], [secret, other]);
});

Deno.test("a per-peer token names the peer by its entry, whatever its HELLO says, and its scripts list is enforced (-5)", async () => {
  const token = newSecret("alpha");
  const record = await Deno.readTextFile(
    new URL("../fixtures/scripts/record", import.meta.url),
  );
  await using server = await runServer(
    { peers: { alpha: { token, scripts: ["exit-*"] } } },
    {
      args: DEBUG,
      setup: (prefix) => prefix.addScript("exit-record", record),
    },
  );
  await using client = await runClient(
    server.port,
    { name: "impostor", secret: token },
    { args: DEBUG },
  );
  await server.daemon.waitForLog(
    /peer alpha \(client#\d+ \(127\.0\.0\.1:\d+\)\) says hello/,
  );
  await server.daemon.waitForLog(
    /says its name is "impostor", but its token is alpha's/,
  );
  await client.daemon.waitForLog(HELLO("server"));
  assertEquals(
    server.daemon.count(/peer impostor/),
    0,
    "lines naming impostor",
  );

  // Answers from the client carry the entry's name.
  assertEquals(
    await server.request({ name: "exit-with", id: "s1", params: 3 }),
    { status: 3, id: "s1", peer: "alpha" },
  );

  // What alpha may run here: exit-*.
  assertEquals(
    await client.request({ name: "exit-with", id: "c1", params: 5 }),
    { status: 5, id: "c1", peer: "server" },
  );
  assertEquals(
    (await client.request({ name: "exit-record", id: "c2" })).status,
    0,
  );
  const recorded = await Deno.readTextFile(server.prefix.file("out", "c2"));
  assertMatch(recorded, /^WSDAEMON_PEER=alpha$/m, "the script's WSDAEMON_PEER");

  // What it may not: noop, record.
  const noop = await client.request({ name: "noop", id: "c3" });
  assertEquals([noop.status, noop.id], [-5, "c3"], JSON.stringify(noop));
  assertMatch(String(noop.error), /\balpha\b/, "the error names the peer");
  assertMatch(String(noop.error), /\bnoop\b/, "the error names the script");
  const forbidden = await client.request({ name: "record", id: "c4" });
  assertEquals(forbidden.status, -5, JSON.stringify(forbidden));
  assertMatch(String(forbidden.error), /alpha.*record/);
  assert(!await exists(server.prefix.file("out", "c4")), "record ran");

  assertNoSecretInLogs([server.daemon, client.daemon], [token]);
});

Deno.test("a client's peerScripts refuses the server's other requests with -5", async () => {
  const secret = newSecret();
  await using server = await runServer({ secret }, { args: DEBUG });
  await using client = await runClient(
    server.port,
    { secret, peerScripts: ["exit-*"] },
    { args: DEBUG },
  );
  await server.daemon.waitForLog(HELLO("client"));
  await client.daemon.waitForLog(HELLO("server"));

  const noop = await server.request({ name: "noop", id: "n" });
  assertEquals([noop.status, noop.id], [-5, "n"], JSON.stringify(noop));
  assertMatch(String(noop.error), /\bserver\b/, "the error names the peer");
  assertMatch(String(noop.error), /\bnoop\b/, "the error names the script");
  const record = await server.request({ name: "record", id: "r" });
  assertEquals(record.status, -5, JSON.stringify(record));
  assert(!await exists(client.prefix.file("out", "r")), "record ran");
  assertEquals(
    await server.request({ name: "exit-with", id: "e", params: 7 }),
    { status: 7, id: "e", peer: "client" },
  );
  // The list binds the server's requests only.
  assertEquals(
    await client.request({ name: "noop", id: "c" }),
    { status: 0, id: "c", peer: "server" },
  );
  assertNoSecretInLogs([server.daemon, client.daemon], [secret]);
});

Deno.test("a second connection with a token in use replaces the first: it is closed (4009), its requests are never answered -2, new ones go to the second", async () => {
  const token = newSecret("dup");
  await using server = await runServer({ peers: { dup: { token } } }, {
    args: DEBUG,
  });
  // The first one would reconnect (and take the name back) only after 30 s.
  await using first = await runClient(server.port, {
    name: "first",
    secret: token,
    reconnectMinMs: 30_000,
    reconnectMaxMs: 30_000,
    shutdownGraceMs: 0,
  }, { args: DEBUG });
  await server.daemon.waitForLog(/peer dup \(client#1 .*\) says hello/);

  await using asker = await LocalClient.connect(server.socket);
  await asker.send({
    name: "sleep-exit",
    id: "held",
    params: [8, 0],
    deadlineMs: 2_000,
  });
  await first.daemon.waitForLog(/script sleep-exit id="held": started/);
  const replacedAt = Date.now();

  await using second = await runClient(server.port, {
    name: "second",
    secret: token,
  }, { args: DEBUG });
  await server.daemon.waitForLog(
    /peer dup: a new connection \(client#2 [^)]*\)\) replaces client#1 /,
  );
  await first.daemon.waitForLog(
    /disconnected from \S+: closed with code 4009 \(replaced by a new connection\)/,
  );
  // It was delivered to (and is running on) the first: never -2. Its status
  // can come only from there, so the asker hears at its deadline.
  const held = await asker.next(5_000);
  assertEquals([held.status, held.id], [-3, "held"], JSON.stringify(held));
  assertMatch(String(held.error), /\bdup\b.*deadlineMs/);
  assert(
    Date.now() - replacedAt < 6_000,
    "the -3 came only when the script would have ended",
  );
  await server.daemon.waitForLog(/peer dup \(client#2 .*\) says hello/);

  for (const id of ["after-1", "after-2"]) {
    assertEquals(await asker.request({ name: "record", id }), {
      status: 0,
      id,
      peer: "dup",
    });
    assert(await exists(second.prefix.file("out", id)), `${id} on the second`);
    assert(!await exists(first.prefix.file("out", id)), `${id} on the first`);
  }
  assertEquals(server.daemon.count(/says hello/), 2, "introductions");
  await first.daemon.stop();
  assertNoSecretInLogs(
    [server.daemon, first.daemon, second.daemon],
    [token],
  );
});

Deno.test("a secretFile readable by others is warned about at startup, by name; one of mode 0600 is not", async () => {
  const secret = newSecret();
  const writeSecret = (mode: number) => async (prefix: Prefix) => {
    await Deno.mkdir(prefix.file("secrets"));
    const file = prefix.file("secrets", "secret");
    await Deno.writeTextFile(file, secret + "\n");
    await Deno.chmod(file, mode);
  };
  await using server = await runServer(
    { secretFile: "secrets/secret" },
    { args: DEBUG, setup: writeSecret(0o644) },
  );
  await using client = await runClient(
    server.port,
    { secretFile: "secrets/secret" },
    { args: DEBUG, setup: writeSecret(0o600) },
  );
  const serverFile = server.prefix.file("secrets", "secret");
  const warning = server.daemon.lines.findIndex((line) =>
    / WARN /.test(line) && line.includes(serverFile) && /0644/.test(line)
  );
  assert(
    warning !== -1,
    `no warning naming ${serverFile}:\n${server.daemon.log()}`,
  );
  const ready = server.daemon.lines.findIndex((l) => /ready: /.test(l));
  assert(warning < ready, "the warning comes at startup, before ready");
  const clientFile = client.prefix.file("secrets", "secret");
  assertEquals(
    client.daemon.lines.filter((line) => line.includes(clientFile)),
    [],
    "lines naming the client's 0600 file",
  );
  // The files' secret is the one used: they connect.
  await server.daemon.waitForLog(HELLO("client"));
  assertEquals(
    await server.request({ name: "exit-with", id: "f", params: 2 }),
    { status: 2, id: "f", peer: "client" },
  );
  assertNoSecretInLogs([server.daemon, client.daemon], [secret]);
});

Deno.test("a 10-byte secret is a config error: exit 78, one line, without the secret, nothing opened", async () => {
  const short = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);
  const cases: {
    label: string;
    config: Record<string, unknown>;
    secret: string;
    file?: string;
    env?: Record<string, string>;
  }[] = [];
  const add = (
    label: string,
    config: (s: string) => Record<string, unknown>,
    extra: { file?: string; env?: boolean } = {},
  ) => {
    const secret = short();
    cases.push({
      label,
      config: config(secret),
      secret,
      file: extra.file,
      env: extra.env ? { WSDAEMON_SECRET: secret } : undefined,
    });
  };
  add("server secret", (s) => serverConfig({ secret: s }));
  add("client secret", (s) => clientConfig(1, { secret: s }));
  add("server secretFile", () => serverConfig({ secretFile: "short" }), {
    file: "short",
  });
  add("client secretFile", () => clientConfig(1, { secretFile: "short" }), {
    file: "short",
  });
  add("server WSDAEMON_SECRET", () => serverConfig(), { env: true });
  add("client WSDAEMON_SECRET", () => clientConfig(1), { env: true });
  add("peer token", (s) => serverConfig({ peers: { p: { token: s } } }));
  add(
    "peer tokenFile",
    () => serverConfig({ peers: { p: { tokenFile: "short" } } }),
    { file: "short" },
  );

  const failures: string[] = [];
  await Promise.all(cases.map(async ({ label, config, secret, file, env }) => {
    await using prefix = await Prefix.create(config, { scripts: [] });
    if (file) {
      await Deno.writeTextFile(prefix.file(file), secret + "\n", {
        mode: 0o600,
      });
    }
    await using daemon = await DaemonProcess.start(prefix, {
      waitReady: false,
      env,
    });
    const status = await daemon.exited();
    try {
      assertEquals(status.code, 78, `${label}: exit code`);
      assertEquals(daemon.lines.length, 1, `${label}: lines ${daemon.log()}`);
      const [line] = daemon.lines;
      assertMatch(line, /^ws-daemon: config error: .*\b16 bytes\b/, label);
      assert(!line.includes(secret), `${label}: the line holds the secret`);
      assert(
        !await exists(join(prefix.path, "ws-daemon.sock")),
        `${label}: a socket was opened`,
      );
    } catch (error) {
      failures.push((error as AssertionError).message);
    }
  }));
  assertEquals(failures, [], "cases that failed");
});

Deno.test("WSDAEMON_SECRET works on both sides, is enforced, and does not reach scripts", async () => {
  const secret = newSecret("env");
  const env = { WSDAEMON_SECRET: secret };
  const envToFile = (prefix: Prefix) =>
    prefix.addScript(
      "env-to-file",
      '#!/bin/sh\nmkdir -p "$WSDAEMON_PREFIX/out"\nenv >"$WSDAEMON_PREFIX/out/env"\n',
    );
  await using server = await runServer({}, {
    args: DEBUG,
    env,
    setup: envToFile,
  });
  const refused = await RawHttp.exchange(
    server.port,
    upgradeHead({ port: server.port }),
  );
  assertEquals(refused.status, 401, "an upgrade without the secret");

  await using client = await runClient(server.port, {}, {
    args: DEBUG,
    env,
    setup: envToFile,
  });
  await server.daemon.waitForLog(HELLO("client"));
  await client.daemon.waitForLog(HELLO("server"));
  assertEquals(
    await server.request({ name: "exit-with", id: "s", params: 6 }),
    { status: 6, id: "s", peer: "client" },
  );
  assertEquals(
    await client.request({ name: "exit-with", id: "c", params: 9 }),
    { status: 9, id: "c", peer: "server" },
  );
  for (const [asker, runner] of [[server, client], [client, server]]) {
    assertEquals((await asker.request({ name: "env-to-file" })).status, 0);
    const dumped = await Deno.readTextFile(runner.prefix.file("out", "env"));
    assertMatch(dumped, /^WSDAEMON_PREFIX=/m, "the dump is the environment");
    assert(!dumped.includes(secret), "a script's environment holds it");
    assert(!/WSDAEMON_SECRET/.test(dumped), "WSDAEMON_SECRET reached a script");
  }
  assertNoSecretInLogs([server.daemon, client.daemon], [secret]);
});

Deno.test("the server's 401 line names the client's address and no secret", async () => {
  const secret = newSecret();
  const wrong = newSecret("wrong");
  await using server = await runServer({ secret }, { args: DEBUG });
  await using raw = await RawHttp.connect(server.port);
  const { port: localPort } = raw.conn.localAddr as Deno.NetAddr;
  await raw.write(upgradeHead({
    port: server.port,
    headers: { Authorization: `Bearer ${wrong}` },
  }));
  assertEquals((await raw.readHead()).status, 401);
  await server.daemon.waitForLog(
    new RegExp(
      `127\\.0\\.0\\.1:${localPort}: connection refused \\(401\\): wrong secret or token$`,
    ),
  );
  assertNoSecretInLogs([server.daemon], [secret, wrong]);
});
