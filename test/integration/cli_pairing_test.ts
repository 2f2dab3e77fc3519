/**
 * One-command pairing: `ws-daemon init` on the server, `ws-daemon join` on
 * the client, each run as a process of its own (src/main.ts, with the
 * daemon's permission flags) in temporary prefixes, checked by the files it leaves: their modes, the
 * configs, the certificate's names and the pin in the join line.
 */

import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type JoinLine, parseJoinLine } from "../../src/cli/join_line.ts";
import { loadConfig } from "../../src/config_files.ts";
import { fingerprintOf } from "../../src/tls/certificate.ts";
import { PERMISSIONS } from "../helpers/daemon.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const ENTRY = join(ROOT, "src/main.ts");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout's lines, without the empty one after the final newline. */
  lines: string[];
}

/**
 * Runs `ws-daemon <args>` through the test entry. WSDAEMON_PREFIX points into
 * `dir` unless `env` says otherwise, so a run without --prefix never reaches
 * the real default prefix.
 */
async function cli(
  dir: TempDir,
  args: string[],
  env: Record<string, string> = {},
): Promise<Run> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--frozen", "--quiet", ...PERMISSIONS, ENTRY, ...args],
    cwd: ROOT,
    env: {
      WSDAEMON_PREFIX: dir.file("from-env"),
      NO_COLOR: "1",
      RUST_BACKTRACE: "0",
      ...env,
    },
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  const stdout = decoder.decode(output.stdout);
  return {
    code: output.code,
    stdout,
    stderr: decoder.decode(output.stderr),
    lines: stdout.split("\n").filter((line, i, all) =>
      i < all.length - 1 || line !== ""
    ),
  };
}

/** Asserts a successful run: exit 0, nothing on stderr. */
function ok(run: Run, what: string): Run {
  assertEquals(
    { code: run.code, stderr: run.stderr },
    { code: 0, stderr: "" },
    what,
  );
  return run;
}

/** Asserts a failure: `code`, nothing on stdout, one line on stderr. */
function failed(run: Run, code: number, command: "init" | "join"): string {
  assertEquals(run.code, code, `exit code (stderr: ${run.stderr})`);
  assertEquals(run.stdout, "", "stdout");
  assertMatch(run.stderr, new RegExp(`^ws-daemon ${command}: [^\\n]+\\n$`));
  return run.stderr.trimEnd();
}

/** The join line in `ws-daemon join LINE`, the last line of init's output. */
function joinLineOf(run: Run): string {
  const last = run.lines.at(-1) ?? "";
  const match = /^ws-daemon join (\S+)$/.exec(last);
  assert(match, `last line is the join command: ${JSON.stringify(last)}`);
  return match[1].replace(/^'(.*)'$/, "$1");
}

/** What one shell word `word` is to sh: it must come out as one argument. */
async function shellWords(word: string): Promise<string[]> {
  const output = await new Deno.Command("/bin/sh", {
    args: ["-c", `for a in ${word}; do printf '%s\\n' "$a"; done`],
  }).output();
  return new TextDecoder().decode(output.stdout).split("\n").slice(0, -1);
}

class TempDir {
  private constructor(readonly path: string) {}

  static async create(): Promise<TempDir> {
    return new TempDir(await Deno.makeTempDir({ prefix: "wsd-cli-test-" }));
  }

  file(...parts: string[]): string {
    return join(this.path, ...parts);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.path, { recursive: true });
  }
}

async function mode(path: string): Promise<string> {
  return ((await Deno.lstat(path)).mode! & 0o777).toString(8).padStart(4, "0");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await Deno.readTextFile(path));
}

/** Every name under `root`, relative, sorted (folders end with `/`). */
async function tree(root: string, under = ""): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(join(root, under))) {
    const name = join(under, entry.name);
    names.push(entry.isDirectory ? name + "/" : name);
    if (entry.isDirectory) names.push(...await tree(root, name));
  }
  return names.sort();
}

function subjectAltNames(certPem: string): string[] {
  const san = new x509.X509Certificate(certPem).getExtension(
    x509.SubjectAlternativeNameExtension,
  );
  return (san?.names.items ?? []).map((name) => `${name.type}:${name.value}`);
}

/** init --mode server with two hosts on port 4443, checked on the way. */
async function initServer(
  dir: TempDir,
): Promise<{ prefix: string; line: JoinLine; text: string; run: Run }> {
  const prefix = dir.file("server");
  const run = ok(
    await cli(dir, [
      "init",
      "--mode",
      "server",
      "--prefix",
      prefix,
      "--host",
      "srv.example",
      "--host",
      "10.1.2.3",
      "--port",
      "4443",
    ]),
    "init --mode server",
  );
  const text = joinLineOf(run);
  return { prefix, line: parseJoinLine(text), text, run };
}

Deno.test("init --mode server creates a server prefix", async (t) => {
  await using dir = await TempDir.create();
  const { prefix, line, text, run } = await initServer(dir);
  const hostname = Deno.hostname();

  await t.step("folders 0700, secrets 0600, the certificate 0644", async () => {
    assertEquals(await tree(prefix), [
      "config.json",
      "scripts/",
      "scripts/hello",
      "secrets/",
      "secrets/client-1.token",
      "tls/",
      "tls/cert.pem",
      "tls/key.pem",
    ]);
    const modes: Record<string, string> = {};
    for (const name of ["", ...await tree(prefix)]) {
      modes[name] = await mode(join(prefix, name));
    }
    assertEquals(modes, {
      "": "0700",
      "config.json": "0600",
      "scripts/": "0700",
      "scripts/hello": "0755",
      "secrets/": "0700",
      "secrets/client-1.token": "0600",
      "tls/": "0700",
      "tls/cert.pem": "0644",
      "tls/key.pem": "0600",
    });
  });

  await t.step("config.json names the certificate and the peer", async () => {
    assertEquals(await readJson(join(prefix, "config.json")), {
      mode: "server",
      port: 4443,
      name: hostname,
      tls: { cert: "tls/cert.pem", key: "tls/key.pem" },
      peers: { "client-1": { tokenFile: "secrets/client-1.token" } },
    });
    const token = await Deno.readTextFile(
      join(prefix, "secrets/client-1.token"),
    );
    assertMatch(token, /^[A-Za-z0-9_-]{43}\n$/);
    assertMatch(
      await Deno.readTextFile(join(prefix, "tls/key.pem")),
      /^-----BEGIN PRIVATE KEY-----\n/,
    );
  });

  await t.step("the certificate names every --host and loopback", async () => {
    const names = subjectAltNames(
      await Deno.readTextFile(join(prefix, "tls/cert.pem")),
    );
    for (
      const name of [
        "dns:srv.example",
        "ip:10.1.2.3",
        `dns:${hostname.toLowerCase()}`,
        "dns:localhost",
        "ip:127.0.0.1",
        "ip:::1",
      ]
    ) {
      assert(names.includes(name), `${name} in ${names.join(", ")}`);
    }
    assertEquals(names[0], "dns:srv.example", "the first --host comes first");
  });

  await t.step("the join line: first --host, the token, the pin", async () => {
    const cert = await Deno.readTextFile(join(prefix, "tls/cert.pem"));
    const token = await Deno.readTextFile(
      join(prefix, "secrets/client-1.token"),
    );
    assertEquals(line, {
      host: "srv.example",
      port: 4443,
      peer: "client-1",
      token: token.trimEnd(),
      fingerprint: fingerprintOf(cert),
    });
    assertEquals(run.lines.at(-1), `ws-daemon join ${text}`, "unquoted");
    assertEquals(await shellWords(text), [text], "one shell word as it is");
    assert(
      run.lines.some((l) => l.includes(fingerprintOf(cert))),
      "the summary shows the pin",
    );
  });

  await t.step("scripts/hello prints its argument and exits 0", async () => {
    const output = await new Deno.Command(join(prefix, "scripts/hello"), {
      args: ['"world"'],
    }).output();
    assertEquals(output.code, 0);
    assertMatch(new TextDecoder().decode(output.stdout), /"world"\n$/);
  });

  await t.step(
    "the daemon's config loader takes it, warning-free",
    async () => {
      const { config, warnings } = await loadConfig(prefix);
      assertEquals(config.mode, "server");
      assertEquals(warnings, []);
    },
  );
});

Deno.test("join writes a client prefix from init's line", async (t) => {
  await using dir = await TempDir.create();
  const { line, text } = await initServer(dir);
  const client = dir.file("client");
  const run = ok(
    await cli(dir, ["join", text, "--prefix", client]),
    "join",
  );

  await t.step("folders 0700, the secret 0600", async () => {
    assertEquals(await tree(client), [
      "config.json",
      "scripts/",
      "scripts/hello",
      "secrets/",
      "secrets/secret",
    ]);
    assertEquals(
      await Promise.all(
        [
          "",
          "config.json",
          "scripts",
          "scripts/hello",
          "secrets",
          "secrets/secret",
        ]
          .map((name) => mode(join(client, name))),
      ),
      ["0700", "0600", "0700", "0755", "0700", "0600"],
    );
  });

  await t.step("config.json: proxy, name, secretFile and pin", async () => {
    assertEquals(await readJson(join(client, "config.json")), {
      mode: "client",
      proxy: "wss://srv.example:4443",
      name: "client-1",
      secretFile: "secrets/secret",
      pin: line.fingerprint,
    });
    assertEquals(
      await Deno.readTextFile(join(client, "secrets/secret")),
      line.token + "\n",
    );
    const { config, warnings } = await loadConfig(client);
    assertEquals(config.mode, "client");
    assertEquals(warnings, []);
  });

  await t.step("it ends with how to start the daemon", () => {
    assertEquals(run.lines.at(-1), `WSDAEMON_PREFIX=${client} ws-daemon`);
    assert(!run.stdout.includes(line.token), "the token is not printed");
  });

  await t.step("--name sets the daemon's name", async () => {
    const other = dir.file("other");
    ok(
      await cli(dir, ["join", "--name", "edge-7", text, "--prefix", other]),
      "join --name",
    );
    const config = await readJson(join(other, "config.json"));
    assertEquals((config as { name: string }).name, "edge-7");
  });
});

Deno.test("init and join refuse to overwrite a prefix", async () => {
  await using dir = await TempDir.create();
  const { prefix, text } = await initServer(dir);
  const before = await Deno.readTextFile(join(prefix, "config.json"));
  const cert = await Deno.readTextFile(join(prefix, "tls/cert.pem"));
  const message = failed(
    await cli(dir, ["init", "--mode", "server", "--prefix", prefix]),
    73,
    "init",
  );
  assertMatch(message, /config\.json exists; refusing to overwrite it/);
  assertEquals(await Deno.readTextFile(join(prefix, "config.json")), before);
  assertEquals(await Deno.readTextFile(join(prefix, "tls/cert.pem")), cert);

  const client = dir.file("client");
  ok(await cli(dir, ["join", text, "--prefix", client]), "first join");
  const clientConfig = await Deno.readTextFile(join(client, "config.json"));
  assertMatch(
    failed(await cli(dir, ["join", text, "--prefix", client]), 73, "join"),
    /config\.json exists; refusing to overwrite it/,
  );
  assertEquals(
    await Deno.readTextFile(join(client, "config.json")),
    clientConfig,
  );
});

Deno.test("a failed init leaves the prefix as it found it", async () => {
  await using dir = await TempDir.create();
  const prefix = dir.file("server");
  await Deno.mkdir(join(prefix, "secrets"), { recursive: true });
  await Deno.writeTextFile(join(prefix, "secrets/client-1.token"), "old\n");
  const message = failed(
    await cli(dir, ["init", "--mode", "server", "--prefix", prefix]),
    73,
    "init",
  );
  assertMatch(message, /client-1\.token exists; refusing to overwrite it$/);
  assertEquals(await tree(prefix), ["secrets/", "secrets/client-1.token"]);
  assertEquals(
    await Deno.readTextFile(join(prefix, "secrets/client-1.token")),
    "old\n",
  );
});

Deno.test("init --peer adds a peer to an existing server prefix", async (t) => {
  await using dir = await TempDir.create();
  const { prefix, line: first } = await initServer(dir);
  const cert = await Deno.readTextFile(join(prefix, "tls/cert.pem"));

  const run = ok(
    await cli(dir, ["init", "--peer", "second", "--prefix", prefix]),
    "init --peer second",
  );
  const second = parseJoinLine(joinLineOf(run));

  await t.step("its own token, in secrets/second.token (0600)", async () => {
    const token = await Deno.readTextFile(join(prefix, "secrets/second.token"));
    assertEquals(token, second.token + "\n");
    assert(second.token !== first.token, "a token of its own");
    assertEquals(await mode(join(prefix, "secrets/second.token")), "0600");
  });

  await t.step("config.json gains the peer and stays 0600", async () => {
    assertEquals(await readJson(join(prefix, "config.json")), {
      mode: "server",
      port: 4443,
      name: Deno.hostname(),
      tls: { cert: "tls/cert.pem", key: "tls/key.pem" },
      peers: {
        "client-1": { tokenFile: "secrets/client-1.token" },
        second: { tokenFile: "secrets/second.token" },
      },
    });
    assertEquals(await mode(join(prefix, "config.json")), "0600");
    assert(
      !(await tree(prefix)).some((name) => name.endsWith(".tmp")),
      "no temporary file left",
    );
    const { warnings } = await loadConfig(prefix);
    assertEquals(warnings, []);
  });

  await t.step("its join line: the certificate's host, port, pin", () => {
    assertEquals(second, {
      host: "srv.example",
      port: 4443,
      peer: "second",
      token: second.token,
      fingerprint: fingerprintOf(cert),
    });
  });

  await t.step("--host and --port name where clients dial", async () => {
    const run = ok(
      await cli(dir, [
        "init",
        "--peer",
        "third",
        "--prefix",
        prefix,
        "--host",
        "::1",
        "--port",
        "443",
      ]),
      "init --peer third",
    );
    const last = run.lines.at(-1)!;
    assertMatch(last, /^ws-daemon join 'wsd:\/\/\[::1\]:443\/third#/);
    const text = joinLineOf(run);
    assertEquals(
      await shellWords(last.slice("ws-daemon join ".length)),
      [text],
      "the quoted line is one shell word",
    );
    const third = parseJoinLine(text);
    assertEquals([third.host, third.port], ["::1", 443]);
    const client = dir.file("client-v6");
    ok(await cli(dir, ["join", text, "--prefix", client]), "join [::1]");
    const config = await readJson(join(client, "config.json"));
    assertEquals((config as { proxy: string }).proxy, "wss://[::1]:443");
  });

  await t.step("a name already in peers is refused (73)", async () => {
    const before = await Deno.readTextFile(join(prefix, "config.json"));
    assertMatch(
      failed(
        await cli(dir, ["init", "--peer", "second", "--prefix", prefix]),
        73,
        "init",
      ),
      /peer "second" already exists/,
    );
    assertEquals(await Deno.readTextFile(join(prefix, "config.json")), before);
  });

  await t.step("a config that is not a server's with peers is 78", async () => {
    const cases: [string, unknown, RegExp][] = [
      ["missing", undefined, /config\.json: not found/],
      ["not-json", "{", /expected valid JSON/],
      ["client", { mode: "client", proxy: "wss://h:1" }, /field "mode"/],
      ["no-tls", { mode: "server", port: 1, peers: {} }, /field "tls\.cert"/],
      [
        "no-peers",
        { mode: "server", port: 1, tls: { cert: "c", key: "k" } },
        /field "peers"/,
      ],
    ];
    for (const [name, config, pattern] of cases) {
      const other = dir.file(name);
      await Deno.mkdir(other);
      if (config !== undefined) {
        await Deno.writeTextFile(
          join(other, "config.json"),
          typeof config === "string" ? config : JSON.stringify(config),
        );
      }
      const message = failed(
        await cli(dir, ["init", "--peer", "x", "--prefix", other]),
        78,
        "init",
      );
      assertMatch(message, pattern, name);
      assertEquals(
        await tree(other),
        config === undefined ? [] : ["config.json"],
        `${name}: nothing written`,
      );
    }
  });
});

Deno.test("bad arguments: one line, exit 2, no prefix", async () => {
  await using dir = await TempDir.create();
  const prefix = dir.file("p");
  const { text } = await initServer(dir);
  const cases: ["init" | "join", string[], RegExp][] = [
    ["init", ["--bogus"], /unknown option --bogus/],
    ["init", ["-x"], /unknown option -x/],
    ["init", ["--mode"], /option --mode needs a value/],
    [
      "init",
      ["--mode", "client"],
      /init creates a server prefix; on a client use `ws-daemon join/,
    ],
    ["init", ["--mode", "nonsense"], /init creates a server prefix/],
    ["init", [], /--mode server .* or --peer NAME/],
    ["init", ["--mode", "server", "extra"], /unexpected argument "extra"/],
    [
      "init",
      ["--mode", "server", "--port", "0"],
      /--port must be an integer from 1 to 65535: found "0"/,
    ],
    ["init", ["--mode", "server", "--port", "70000"], /--port must be/],
    [
      "init",
      ["--mode", "server", "--port", "80", "--port", "81"],
      /--port is given more than once/,
    ],
    [
      "init",
      ["--mode", "server", "--host", "a b"],
      /--host must be a DNS name or an IP address/,
    ],
    ["init", ["--mode", "server", "--peer=-p"], /--peer must be 1 to 64/],
    ["init", ["--mode", "server", "--peer", "a/b"], /--peer must be/],
    ["init", ["--help=yes"], /option --help takes no value/],
    [
      "init",
      ["--mode", "server", "--prefix", "--help"],
      /option --prefix needs a value/,
    ],
    ["join", [], /missing the join line/],
    ["join", [text, text], /expected one join line, found 2 arguments/],
    ["join", ["--bogus", text], /unknown option --bogus/],
    [
      "join",
      ["wsd://srv.example:3006/client-1"],
      /Cannot read join line as it has no token after '#'/,
    ],
    [
      "join",
      [text.slice(0, text.indexOf("@"))],
      /Cannot read join line as it has no certificate pin after '@'/,
    ],
    ["join", [text, "--name", ".x"], /--name must be 1 to 64/],
  ];
  for (const [command, args, pattern] of cases) {
    const run = await cli(dir, [command, ...args, "--prefix", prefix]);
    const message = failed(run, 2, command);
    assertMatch(message, pattern, `${command} ${args.join(" ")}`);
    assert(
      !/Unknown option|argument missing|ambiguous|Did you forget|positional/
        .test(message),
      `not parseArgs' text: ${message}`,
    );
    assert(!(await exists(prefix)), `${command} ${args.join(" ")}: no prefix`);
  }
});

Deno.test("--help prints the usage and exits 0", async () => {
  await using dir = await TempDir.create();
  const prefix = dir.file("p");
  for (const command of ["init", "join"]) {
    for (const flag of ["--help", "-h"]) {
      const run = ok(await cli(dir, [command, flag, "--prefix", prefix]), flag);
      assertMatch(run.stdout, new RegExp(`^Usage: ws-daemon ${command} `));
      assertMatch(run.stdout, /Exit codes: 0/);
    }
  }
  assert(!(await exists(prefix)), "no prefix");
});

Deno.test("the prefix defaults to WSDAEMON_PREFIX", async () => {
  await using dir = await TempDir.create();
  const server = dir.file("env-server");
  const run = ok(
    await cli(dir, ["init", "--mode", "server", "--host", "127.0.0.1"], {
      WSDAEMON_PREFIX: server,
    }),
    "init",
  );
  assert(await exists(join(server, "config.json")), "server config");
  const text = joinLineOf(run);
  assertEquals(parseJoinLine(text).host, "127.0.0.1");
  assertEquals(parseJoinLine(text).port, 3006, "the default port");
  const client = dir.file("env-client");
  ok(await cli(dir, ["join", text], { WSDAEMON_PREFIX: client }), "join");
  assert(await exists(join(client, "config.json")), "client config");
});
