import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  freePort,
  Prefix,
  serverConfig,
  startPair,
} from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";

const encoder = new TextEncoder();

/**
 * Checks a negative status: its code, an `error`, and the id as sent (absent
 * when `id` has none; not looked at for an oversize line, which the daemon
 * skips without reading).
 */
function assertFailure(
  answer: Answer,
  status: number,
  id: { id?: unknown } | "unchecked",
  what: string,
): void {
  assertEquals(
    answer.status,
    status,
    `${what}: status of ${JSON.stringify(answer)}`,
  );
  assert(
    typeof answer.error === "string" && answer.error !== "",
    `${what}: no error in ${JSON.stringify(answer)}`,
  );
  if (id === "unchecked") return;
  if (Object.hasOwn(id, "id")) assertEquals(answer.id, id.id, `${what}: id`);
  else {
    assert(
      !Object.hasOwn(answer, "id"),
      `${what}: unexpected id in ${JSON.stringify(answer)}`,
    );
  }
}

/** `+cmd STATUS` answered locally: proves the connection still reads lines. */
async function assertUsable(local: LocalClient, marker: string): Promise<void> {
  const data = { status: 0, id: marker };
  const answer = await local.request({
    name: "+cmd",
    params: { code: "STATUS", data },
  });
  assertEquals(answer, data, `after ${marker}, the next answer`);
}

/** A `+cmd STATUS` line padded with a `pad` field to exactly `bytes` bytes. */
function statusLineOf(bytes: number, id: string): string {
  const empty = JSON.stringify({
    name: "+cmd",
    params: { code: "STATUS", data: { status: 0, id, pad: "" } },
  });
  const pad = "p".repeat(bytes - encoder.encode(empty).length);
  const line = empty.replace('"pad":""', `"pad":"${pad}"`);
  assertEquals(encoder.encode(line).length, bytes);
  return line;
}

Deno.test("a daemon without a peer answers locally", async (t) => {
  await using serverPrefix = await Prefix.create(
    serverConfig({ maxMessageBytes: 1024 }),
    { scripts: ["noop"] },
  );
  // Nothing listens on this port: the client never gets its server.
  await using clientPrefix = await Prefix.create(clientConfig(freePort()), {
    scripts: ["noop"],
  });
  await using server = await DaemonProcess.start(serverPrefix);
  await using client = await DaemonProcess.start(clientPrefix);

  await t.step("-2 at once in server mode with no client", async () => {
    await using local = await LocalClient.connect(server.socket);
    assertFailure(
      await local.request({ name: "noop", id: "n1" }, 5_000),
      -2,
      { id: "n1" },
      "script",
    );
    assertFailure(
      await local.request({ name: "noop" }, 5_000),
      -2,
      {},
      "script without id",
    );
    assertFailure(
      await local.request({
        name: "&cmd",
        id: "n2",
        params: { code: "STATUS", data: { status: 0, id: "x" } },
      }, 5_000),
      -2,
      { id: "n2" },
      "&cmd",
    );
  });

  await t.step(
    "-2 in client mode while its server is down: at the deadline for a request (it waits for its server), at once for a command",
    async () => {
      await using local = await LocalClient.connect(client.socket);
      const answer = await local.request(
        { name: "noop", id: "n3", deadlineMs: 200 },
        5_000,
      );
      assertFailure(answer, -2, { id: "n3" }, "script");
      assertMatch(String(answer.error), /no peer within deadlineMs/);
      assertFailure(
        await local.request({
          name: "&cmd",
          id: "n4",
          params: { code: "STATUS", data: { status: 0, id: "x" } },
        }, 5_000),
        -2,
        { id: "n4" },
        "&cmd",
      );
    },
  );

  await t.step(
    "-4 for each malformed line, and the connection stays usable",
    async () => {
      await using local = await LocalClient.connect(server.socket);
      const cases: [string, string, { id?: unknown }][] = [
        ["not JSON", '{"name": "noop", "id": "nj"', {}],
        ["plain text", "hello daemon", {}],
        ["a JSON array", '["noop", "arr"]', {}],
        ["a number", "42", {}],
        ["null", "null", {}],
        ["a JSON string", '"noop"', {}],
        ["no name", '{"id": "no-name", "params": {}}', { id: "no-name" }],
        ["name not a string", '{"name": 7, "id": "num-name"}', {
          id: "num-name",
        }],
        ["name an array", '{"name": ["noop"], "id": "arr-name"}', {
          id: "arr-name",
        }],
        [
          "+cmd with an unknown code",
          '{"name": "+cmd", "id": "local-unknown", "params": {"code": "NOPE", "data": 1}}',
          { id: "local-unknown" },
        ],
        [
          "+cmd without params",
          '{"name": "+cmd", "id": "local-no-params"}',
          { id: "local-no-params" },
        ],
        [
          "+cmd with a code that is not a string",
          '{"name": "+cmd", "id": "local-code-num", "params": {"code": 1}}',
          { id: "local-code-num" },
        ],
        [
          "+cmd STATUS with data not an object",
          '{"name": "+cmd", "id": "status-text", "params": {"code": "STATUS", "data": "text"}}',
          { id: "status-text" },
        ],
        [
          "+cmd STATUS without a status",
          '{"name": "+cmd", "id": "status-none", "params": {"code": "STATUS", "data": {"id": "x"}}}',
          { id: "status-none" },
        ],
        [
          "+cmd STATUS with a status that is not an integer",
          '{"name": "+cmd", "id": "status-str", "params": {"code": "STATUS", "data": {"status": "0", "id": "x"}}}',
          { id: "status-str" },
        ],
        [
          "&cmd with an unknown code",
          '{"name": "&cmd", "id": "remote-unknown", "params": {"code": "NOPE"}}',
          { id: "remote-unknown" },
        ],
        [
          "&cmd STATUS with bad data",
          '{"name": "&cmd", "id": "remote-status", "params": {"code": "STATUS", "data": [0]}}',
          { id: "remote-status" },
        ],
      ];
      for (const [what, line, id] of cases) {
        await local.send(line);
        assertFailure(await local.next(), -4, id, what);
        await assertUsable(local, `after ${what}`);
      }
    },
  );

  await t.step(
    "+cmd STATUS writes its data back to the same connection only",
    async () => {
      await using asker = await LocalClient.connect(server.socket);
      await using other = await LocalClient.connect(server.socket);
      const data = { status: 5, id: "mine", extra: { k: [1, "two"] } };
      const answer = await asker.request({
        name: "+cmd",
        params: { code: "STATUS", data },
      });
      assertEquals(answer, data);
      await assertUsable(other, "other connection");
      await assertUsable(asker, "asker");
    },
  );

  await t.step(
    "-4 for a line over maxMessageBytes, then reading goes on",
    async () => {
      await using local = await LocalClient.connect(server.socket);
      // Exactly at the limit is accepted; one byte more is not.
      const edge = statusLineOf(1024, "edge");
      assertEquals(await local.request(edge), JSON.parse(edge).params.data);
      assertFailure(
        await local.request(statusLineOf(1025, "over")),
        -4,
        "unchecked",
        "1025 bytes",
      );
      await assertUsable(local, "1025 bytes");

      const big = JSON.stringify({
        name: "noop",
        id: "big",
        params: "x".repeat(5000),
      });
      const answer = await local.request(big);
      assertFailure(answer, -4, "unchecked", "5000 bytes");
      assertMatch(answer.error as string, /1024/);
      await assertUsable(local, "5000 bytes");

      // Over the limit in several writes: still one answer for the one line.
      for (let at = 0; at < big.length; at += 1500) {
        await local.writeRaw(big.slice(at, at + 1500));
      }
      await local.writeRaw("\n");
      assertFailure(
        await local.next(),
        -4,
        "unchecked",
        "5000 bytes in pieces",
      );
      await assertUsable(local, "5000 bytes in pieces");
    },
  );

  await t.step("-4 for a line over the default limit of 1 MiB", async () => {
    await using local = await LocalClient.connect(client.socket);
    const answer = await local.request(JSON.stringify({
      name: "noop",
      id: "huge",
      params: "x".repeat(1_100_000),
    }));
    assertFailure(answer, -4, "unchecked", "1.1 MiB");
    assertMatch(answer.error as string, /1048576/);
    await assertUsable(local, "1.1 MiB");
  });
});

Deno.test("a connected pair turns every failure into a status and runs on", async (t) => {
  // Debug logging on the client shows the pid of each script it starts.
  await using pair = await startPair({ client: { logLevel: "debug" } });
  const { server, client, serverPrefix, clientPrefix } = pair;
  const sides = [
    { label: "server to client", asker: server, runner: clientPrefix },
    { label: "client to server", asker: client, runner: serverPrefix },
  ];

  for (const { label, asker, runner } of sides) {
    await t.step(
      `-1 with an error for names that cannot run (${label})`,
      async () => {
        await Deno.mkdir(runner.file("scripts", "a-dir"));
        // Valid scripts whose names alone are refused.
        await runner.addScript(".hidden", "#!/bin/sh\nexit 0\n");
        await runner.addScript("-n", "#!/bin/sh\nexit 0\n");
        await using local = await LocalClient.connect(asker.socket);
        // Each name, and a word the error must use to say which rule failed.
        const names: [string, RegExp][] = [
          ["no-such-script", /no script|not found/i],
          ["not-executable", /not executable/i],
          ["a-dir", /regular file|directory/i],
          ["../config.json", /'\/'/],
          ["/bin/sh", /'\/'/],
          ["..", /'\.\.'/],
          [".", /'\.'/],
          ["", /empty/i],
          ["noop\0x", /NUL/],
          [".hidden", /starts with '\.'/],
          ["-n", /starts with '-'/],
          ["x".repeat(256), /255/],
        ];
        for (const [name, rule] of names) {
          const what = `name ${JSON.stringify(name.slice(0, 20))}`;
          const id = `bad ${name.slice(0, 20)}`;
          const answer = await local.request({ name, id });
          assertFailure(answer, -1, { id }, what);
          assertMatch(answer.error as string, rule, what);
          const alive = await local.request({ name: "noop", id: "alive" });
          assertEquals([alive.status, alive.id], [0, "alive"], `after ${what}`);
        }
      },
    );
  }

  await t.step(
    "params up to 131071 bytes of JSON are argv[1]; one byte more go to stdin",
    async () => {
      await using local = await LocalClient.connect(server.socket);
      const fits = await local.request({
        name: "read-params",
        id: "fits",
        params: "x".repeat(131_069),
        output: true,
      });
      assertEquals([fits.status, fits.id], [0, "fits"]);
      assertMatch(String(fits.stdout), /^via=argv env= bytes=131071 /);
      const answer = await local.request({
        name: "read-params",
        id: "over",
        params: "x".repeat(131_070),
        output: true,
      });
      assertEquals([answer.status, answer.id], [0, "over"]);
      assertMatch(String(answer.stdout), /^via=- env=stdin bytes=131072 /);
    },
  );

  for (const { label, asker, runner } of sides) {
    await t.step(
      `a script sees WSDAEMON_* and params as argv[1] (${label})`,
      async () => {
        await using local = await LocalClient.connect(asker.socket);
        const params = {
          text: "quotes \" ' `x` $HOME \\ * ; newline\n tab\t é ☃ \u{1f600}",
          list: [1, 2.5, -0, null, true, "", []],
          nested: { a: {}, "key with space": "v" },
        };
        const id = `env-${label.replaceAll(" ", "-")}`;
        const answer = await local.request({ name: "record", id, params });
        assertEquals([answer.status, answer.id], [0, id]);
        const lines = (await Deno.readTextFile(runner.file("out", id)))
          .split("\n");
        assertEquals(lines, [
          JSON.stringify(params),
          "argc=1",
          `WSDAEMON_PREFIX=${runner.path}`,
          `WSDAEMON_ID=${id}`,
          `WSDAEMON_PEER=${asker === server ? "server" : "client"}`,
          "",
        ]);
      },
    );
  }

  // Last: it takes the client down.
  await t.step(
    "-3 at the deadline when the peer dies while a script runs: it was delivered, so never -2",
    async () => {
      await using local = await LocalClient.connect(server.socket);
      const mark = client.lines.length;
      await local.send({
        name: "sleep-exit",
        id: "dying",
        params: [30, 0],
        deadlineMs: 1_500,
      });
      const started = await client.waitForLog(
        /script sleep-exit id="dying": started, pid (\d+)/,
        10_000,
        mark,
      );
      const pid = Number(started.match(/pid (\d+)/)![1]);
      try {
        await client.kill();
        const answer = await local.next();
        assertFailure(answer, -3, { id: "dying" }, "peer gone");
        assertMatch(answer.error as string, /within deadlineMs/);
      } finally {
        try {
          // The script has its own process group; the dead daemon left it.
          Deno.kill(-pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    },
  );
});
