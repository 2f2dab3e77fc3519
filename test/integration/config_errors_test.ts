import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { DaemonProcess, Prefix } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { deadline } from "../helpers/wait.ts";

const GOOD = { mode: "server", port: 0, host: "127.0.0.1" };

async function socketFiles(prefix: Prefix): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(prefix.path)) {
    if (entry.name.endsWith(".sock")) names.push(entry.name);
  }
  return names;
}

/** Runs the daemon to its exit; returns the exit code and its stderr lines. */
async function runToExit(
  prefix: Prefix,
  args: string[] = [],
): Promise<{ code: number; lines: string[] }> {
  await using daemon = await DaemonProcess.start(prefix, {
    args,
    waitReady: false,
  });
  const status = await deadline(daemon.exited(), 15_000, "the daemon to exit");
  return {
    code: status.code,
    lines: daemon.lines.filter((line) => line.trim() !== ""),
  };
}

const BAD_CONFIGS: {
  what: string;
  config: string | undefined;
  /** What the one stderr line must say besides the file's path. */
  says: RegExp;
}[] = [
  { what: "missing config.json", config: undefined, says: /not found/ },
  {
    what: "invalid JSON",
    config: '{"mode": "server", port: 3006',
    says: /JSON/,
  },
  {
    what: "wrong mode",
    config: '{"mode": "proxy", "port": 3006}',
    says: /field "mode".*"proxy"/,
  },
  {
    what: "port out of range",
    config: '{"mode": "server", "port": 70000}',
    says: /field "port".*70000/,
  },
  {
    what: "port not a number",
    config: '{"mode": "server", "port": "3006"}',
    says: /field "port".*"3006"/,
  },
  {
    what: "client without proxy",
    config: '{"mode": "client", "port": 3006}',
    says: /field "proxy"/,
  },
];

Deno.test("a bad config stops the daemon before it opens anything, with one line naming file and field", async () => {
  const prefixes = await Promise.all(
    BAD_CONFIGS.map(() => Prefix.create(GOOD, { scripts: [] })),
  );
  try {
    // The daemons run side by side: each only reads its config and exits.
    const results = await Promise.all(
      BAD_CONFIGS.map(async ({ config }, i) => {
        const prefix = prefixes[i];
        if (config === undefined) await Deno.remove(prefix.file("config.json"));
        else await prefix.writeConfig(config);
        return await runToExit(prefix);
      }),
    );
    for (const [i, { what, says }] of BAD_CONFIGS.entries()) {
      const { code, lines } = results[i];
      assert(code !== 0, `${what}: exit code ${code}`);
      assertEquals(lines.length, 1, `${what}: stderr lines ${lines.join("|")}`);
      assert(
        lines[0].includes(prefixes[i].file("config.json")),
        `${what}: "${lines[0]}" does not name the config file`,
      );
      assertMatch(lines[0], says, what);
      assertEquals(await socketFiles(prefixes[i]), [], `${what}: socket files`);
    }
  } finally {
    await Promise.all(prefixes.map((p) => p[Symbol.asyncDispose]()));
  }
});

Deno.test("check exits 0 on a good config and non-zero on a bad one, opening nothing", async () => {
  await using prefix = await Prefix.create(GOOD, { scripts: [] });
  const good = await runToExit(prefix, ["check"]);
  assertEquals(good.code, 0, `check on a good config: ${good.lines.join("|")}`);
  assertEquals(await socketFiles(prefix), []);

  await prefix.writeConfig({ ...GOOD, port: -1 });
  const bad = await runToExit(prefix, ["check"]);
  assert(bad.code !== 0, "check on a bad config exited 0");
  assertMatch(bad.lines.join("\n"), /field "port"/);
  assertEquals(await socketFiles(prefix), []);
});

Deno.test("an unknown config key is a warning; the daemon starts and serves", async () => {
  await using prefix = await Prefix.create({ ...GOOD, colour: "blue" }, {
    scripts: [],
  });
  await using daemon = await DaemonProcess.start(prefix);
  const warning = await daemon.waitForLog(/WARN .*colour/);
  assert(
    warning.includes(prefix.file("config.json")),
    `warning does not name the file: ${warning}`,
  );
  await using local = await LocalClient.connect(daemon.socket);
  const answer = await local.request({
    name: "+cmd",
    params: { code: "STATUS", data: { status: 5, id: "up" } },
  });
  assertEquals([answer.status, answer.id], [5, "up"]);
  assertEquals((await daemon.stop()).code, 0);
});

Deno.test("--log-level with a bad value exits 2 and names the option", async () => {
  await using prefix = await Prefix.create(GOOD, { scripts: [] });
  const { code, lines } = await runToExit(prefix, ["--log-level", "loud"]);
  assertEquals(code, 2);
  assertEquals(lines.length, 1, `stderr lines ${lines.join("|")}`);
  assertMatch(lines[0], /--log-level.*"loud"/);
  assertEquals(await socketFiles(prefix), []);
});
