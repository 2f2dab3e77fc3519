import { join } from "node:path";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../helpers/assert.ts";
import {
  type ClientConfig,
  ConfigError,
  parseConfig,
} from "../../src/config.ts";
import { loadConfig } from "../../src/config_files.ts";

const FILE = "/etc/ws-daemon/config.json";

function clientUrl(input: Record<string, unknown>): string {
  const { config } = parseConfig({ mode: "client", ...input }, FILE);
  assertEquals(config.mode, "client");
  return (config as ClientConfig).url;
}

/** The port a URL connects to, with the scheme's default filled in. */
function effectivePort(url: string): number {
  const parsed = new URL(url);
  if (parsed.port !== "") return Number(parsed.port);
  return parsed.protocol === "wss:" ? 443 : 80;
}

/** Runs `fn`, which must throw a ConfigError, and returns its message. */
function configError(fn: () => unknown): string {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert(caught !== undefined, "expected a ConfigError, but nothing threw");
  assert(
    caught instanceof ConfigError,
    `expected a ConfigError, got ${caught}`,
  );
  return caught.message;
}

/**
 * Checks that a message is one line naming the file, the field, what was
 * expected and what was found.
 */
function assertOneLineError(
  message: string,
  { field, expected, found }: {
    field: string;
    expected: RegExp;
    found: string;
  },
): void {
  assert(!/[\r\n]/.test(message), `not one line: ${JSON.stringify(message)}`);
  assert(message.startsWith(`${FILE}: `), `no file name in: ${message}`);
  assert(message.includes(`field "${field}"`), `no field in: ${message}`);
  assertMatch(message, expected, "what was expected");
  assert(
    message.endsWith(`found ${found}`),
    `expected the message to end with "found ${found}": ${message}`,
  );
}

Deno.test("a minimal server config gets every default", () => {
  const { config, warnings } = parseConfig(
    { mode: "server", port: 3006 },
    FILE,
  );
  assertEquals(warnings, []);
  assert(config.mode === "server");
  assertEquals(config.port, 3006);
  assertEquals(config.host, undefined, "unset: every interface, IPv6 and IPv4");
  assertEquals(config.socketMode, "0600");
  assertEquals(config.maxMessageBytes, 1024 * 1024);
  assertEquals(config.maxBufferedBytes, 16 * 1024 * 1024);
  assertEquals(config.shutdownGraceMs, 10_000);
  assertEquals(config.heartbeatMs, 5_000);
  assertEquals(config.logLevel, "info");
  assertEquals(config.scriptLauncher, "auto");
  assertEquals(config.localTcp, undefined);
});

Deno.test("a server config keeps the values it sets", () => {
  const { config } = parseConfig({
    mode: "server",
    port: 4000,
    host: "127.0.0.1",
    socketMode: "660",
    name: "edge-1",
    localTcp: "127.0.0.1:9007",
    maxMessageBytes: 4096,
    shutdownGraceMs: 0,
    logLevel: "debug",
  }, FILE);
  assert(config.mode === "server");
  assertEquals(config.host, "127.0.0.1");
  assertEquals(config.socketMode, "660");
  assertEquals(config.name, "edge-1");
  assertEquals(config.localTcp, "127.0.0.1:9007");
  assertEquals(config.maxMessageBytes, 4096);
  assertEquals(config.shutdownGraceMs, 0);
  assertEquals(config.logLevel, "debug");
});

Deno.test("a minimal client config gets every default and a ws:// url", () => {
  const { config, warnings } = parseConfig(
    { mode: "client", proxy: "example.org", port: 3006 },
    FILE,
  );
  assertEquals(warnings, []);
  assert(config.mode === "client");
  assertEquals(config.url, "ws://example.org:3006");
  assertEquals(config.reconnectMinMs, 250);
  assertEquals(config.reconnectMaxMs, 30_000);
  assertEquals(config.socketMode, "0600");
  assertEquals(config.maxMessageBytes, 1024 * 1024);
  assertEquals(config.heartbeatMs, 5_000);
  assertEquals(config.logLevel, "info");
});

Deno.test("a bare proxy host becomes ws://host:port, IPv6 in brackets", () => {
  assertEquals(
    clientUrl({ proxy: "10.0.0.5", port: 3006 }),
    "ws://10.0.0.5:3006",
  );
  assertEquals(clientUrl({ proxy: "::1", port: 3006 }), "ws://[::1]:3006");
  assertEquals(
    clientUrl({ proxy: "fe80::1:2", port: 80 }),
    "ws://[fe80::1:2]:80",
  );
  assertEquals(clientUrl({ proxy: "[::1]", port: 3006 }), "ws://[::1]:3006");
  // Each result is a URL that parses to the same host and port.
  const url = new URL(clientUrl({ proxy: "::1", port: 3006 }));
  assertEquals(url.hostname, "[::1]");
  assertEquals(url.port, "3006");
});

Deno.test("a ws:// or wss:// proxy URL with a port is used as written", () => {
  assertEquals(
    clientUrl({ proxy: "ws://h.example:1234/path", port: 3006 }),
    "ws://h.example:1234/path",
  );
  assertEquals(
    clientUrl({ proxy: "wss://h.example:8443/x" }),
    "wss://h.example:8443/x",
  );
  assertEquals(
    clientUrl({ proxy: "ws://[::1]:5000", port: 3006 }),
    "ws://[::1]:5000/",
  );
});

Deno.test("a proxy URL without a port takes `port` from the config", () => {
  assertEquals(
    clientUrl({ proxy: "ws://h.example/path", port: 3006 }),
    "ws://h.example:3006/path",
  );
  assertEquals(
    clientUrl({ proxy: "wss://h.example", port: 3006 }),
    "wss://h.example:3006/",
  );
  // No port anywhere: the scheme's default port.
  const url = clientUrl({ proxy: "wss://h.example/p" });
  assertEquals(url, "wss://h.example/p");
  assertEquals(effectivePort(url), 443);
});

Deno.test("a proxy URL naming its scheme's default port keeps that port", () => {
  // WHATWG URL parsing drops ":80" from ws:// and ":443" from wss://, so the
  // port written in the URL must not be mistaken for a missing one.
  assertEquals(
    effectivePort(clientUrl({ proxy: "ws://h.example:80/", port: 3006 })),
    80,
    "ws://h.example:80/ with port 3006",
  );
  assertEquals(
    effectivePort(clientUrl({ proxy: "wss://h.example:443/p", port: 3006 })),
    443,
    "wss://h.example:443/p with port 3006",
  );
});

Deno.test("mode errors are one line naming file, field, expectation and value", () => {
  assertOneLineError(
    configError(() => parseConfig({ mode: "proxy", port: 1 }, FILE)),
    { field: "mode", expected: /"server" or "client"/, found: '"proxy"' },
  );
  assertOneLineError(
    configError(() => parseConfig({ port: 3006 }, FILE)),
    { field: "mode", expected: /"server" or "client"/, found: "nothing" },
  );
});

Deno.test("port errors are one line naming file, field, expectation and value", () => {
  assertOneLineError(
    configError(() => parseConfig({ mode: "server", port: "3006" }, FILE)),
    { field: "port", expected: /expected a number/, found: '"3006"' },
  );
  assertOneLineError(
    configError(() => parseConfig({ mode: "server", port: 70000 }, FILE)),
    { field: "port", expected: /at most 65535/, found: "70000" },
  );
  assertOneLineError(
    configError(() => parseConfig({ mode: "server", port: -1 }, FILE)),
    { field: "port", expected: /at least 0/, found: "-1" },
  );
  assertOneLineError(
    configError(() => parseConfig({ mode: "server", port: 30.5 }, FILE)),
    { field: "port", expected: /an integer/, found: "30.5" },
  );
  assertOneLineError(
    configError(() => parseConfig({ mode: "server" }, FILE)),
    { field: "port", expected: /expected a number/, found: "nothing" },
  );
  assertOneLineError(
    configError(() =>
      parseConfig({ mode: "client", proxy: "h", port: 99999 }, FILE)
    ),
    { field: "port", expected: /at most 65535/, found: "99999" },
  );
  // A bare host needs a port to build the URL from.
  assertOneLineError(
    configError(() => parseConfig({ mode: "client", proxy: "h" }, FILE)),
    { field: "port", expected: /from 1 to 65535/, found: "nothing" },
  );
});

Deno.test("proxy errors are one line naming file, field, expectation and value", () => {
  assertOneLineError(
    configError(() => parseConfig({ mode: "client", port: 3006 }, FILE)),
    { field: "proxy", expected: /expected a string/, found: "nothing" },
  );
  assertOneLineError(
    configError(() =>
      parseConfig({ mode: "client", proxy: "", port: 3006 }, FILE)
    ),
    { field: "proxy", expected: /at least 1 character/, found: '""' },
  );
  assertOneLineError(
    configError(() =>
      parseConfig({ mode: "client", proxy: "http://h:80", port: 3006 }, FILE)
    ),
    { field: "proxy", expected: /ws:\/\/ or wss:\/\//, found: '"http://h:80"' },
  );
  assertOneLineError(
    configError(() =>
      parseConfig({ mode: "client", proxy: "ws://", port: 3006 }, FILE)
    ),
    { field: "proxy", expected: /ws:\/\/ or wss:\/\//, found: '"ws://"' },
  );
  assertOneLineError(
    configError(() =>
      parseConfig({ mode: "client", proxy: "host/path", port: 3006 }, FILE)
    ),
    { field: "proxy", expected: /host name/, found: '"host/path"' },
  );
});

Deno.test("other field errors are one line naming file, field, expectation and value", () => {
  const client = { mode: "client", proxy: "h", port: 3006 };
  assertOneLineError(
    configError(() => parseConfig({ ...client, socketMode: "rw-" }, FILE)),
    { field: "socketMode", expected: /octal mode like "0600"/, found: '"rw-"' },
  );
  assertOneLineError(
    configError(() => parseConfig({ ...client, socketMode: 600 }, FILE)),
    { field: "socketMode", expected: /expected a string/, found: "600" },
  );
  assertOneLineError(
    configError(() =>
      parseConfig(
        { ...client, reconnectMinMs: 5000, reconnectMaxMs: 1000 },
        FILE,
      )
    ),
    {
      field: "reconnectMinMs",
      expected: /at most reconnectMaxMs \(1000\)/,
      found: "5000",
    },
  );
  assertOneLineError(
    configError(() => parseConfig({ ...client, logLevel: "loud" }, FILE)),
    { field: "logLevel", expected: /"debug", "info"/, found: '"loud"' },
  );
  assertOneLineError(
    configError(() => parseConfig({ ...client, scriptLauncher: "fork" }, FILE)),
    {
      field: "scriptLauncher",
      expected: /"auto", "posix_spawn", "setsid", "detached"/,
      found: '"fork"',
    },
  );
  // A long value is shortened so the line stays readable.
  const message = configError(() =>
    parseConfig({ ...client, socketMode: "x".repeat(500) }, FILE)
  );
  assertOneLineError(message, {
    field: "socketMode",
    expected: /octal/,
    found: `"${"x".repeat(56)}...`,
  });
  assert(message.length < 200, `too long: ${message}`);
});

Deno.test("a config that is not an object is one error line naming the file", () => {
  for (
    const [input, found] of [
      ["server", '"server"'],
      [null, "null"],
      [[{ mode: "server" }], '[{"mode":"server"}]'],
      [3006, "3006"],
    ] as const
  ) {
    const message = configError(() => parseConfig(input, FILE));
    assert(!/[\r\n]/.test(message), `not one line: ${message}`);
    assertEquals(message, `${FILE}: expected a JSON object, found ${found}`);
  }
});

Deno.test("unknown keys are warnings, not errors", () => {
  const { config, warnings } = parseConfig(
    { mode: "server", port: 3006, proxyy: "x", Port: 1 },
    FILE,
  );
  assertEquals(config.port, 3006);
  assertEquals(warnings, [
    `${FILE}: unknown field "proxyy" is ignored`,
    `${FILE}: unknown field "Port" is ignored`,
  ]);
  // A key of the other mode is ignored too, and the warning says why.
  const client = parseConfig(
    { mode: "client", proxy: "h", port: 1, host: "x", comment: "hi" },
    FILE,
  );
  assertEquals(client.warnings, [
    `${FILE}: field "host" is for server mode and is ignored in client mode`,
    `${FILE}: unknown field "comment" is ignored`,
  ]);
  const server = parseConfig(
    { mode: "server", port: 1, reconnectMaxMs: 5 },
    FILE,
  );
  assertEquals(server.warnings, [
    `${FILE}: field "reconnectMaxMs" is for client mode and is ignored in server mode`,
  ]);
  assertEquals("reconnectMaxMs" in server.config, false);
});

async function withPrefix(fn: (prefix: string) => Promise<void>) {
  const prefix = await Deno.makeTempDir({ prefix: "wsd-config-test-" });
  try {
    await fn(prefix);
  } finally {
    await Deno.remove(prefix, { recursive: true });
  }
}

Deno.test("loadConfig reads and validates <prefix>/config.json", async () => {
  await withPrefix(async (prefix) => {
    await Deno.writeTextFile(
      join(prefix, "config.json"),
      JSON.stringify({ mode: "client", proxy: "127.0.0.1", port: 3006, x: 1 }),
    );
    const { config, warnings } = await loadConfig(prefix);
    assert(config.mode === "client");
    assertEquals(config.url, "ws://127.0.0.1:3006");
    assertEquals(warnings, [
      `${join(prefix, "config.json")}: unknown field "x" is ignored`,
    ]);
  });
});

Deno.test("loadConfig with no config.json is a one-line ConfigError", async () => {
  await withPrefix(async (prefix) => {
    const file = join(prefix, "config.json");
    const error = await assertRejects(() => loadConfig(prefix));
    assert(error instanceof ConfigError, `got ${error}`);
    assert(!/[\r\n]/.test(error.message), `not one line: ${error.message}`);
    assert(error.message.startsWith(`${file}: cannot read: `), error.message);
    assertMatch(error.message, /file not found/);
    assertMatch(error.message, /WSDAEMON_PREFIX/);
  });
});

Deno.test("loadConfig with config.json a folder is a one-line ConfigError", async () => {
  await withPrefix(async (prefix) => {
    const file = join(prefix, "config.json");
    await Deno.mkdir(file);
    const error = await assertRejects(() => loadConfig(prefix));
    assert(error instanceof ConfigError, `got ${error}`);
    assert(!/[\r\n]/.test(error.message), `not one line: ${error.message}`);
    assert(error.message.startsWith(`${file}: cannot read: `), error.message);
  });
});

Deno.test("loadConfig with invalid JSON is a one-line ConfigError", async () => {
  await withPrefix(async (prefix) => {
    const file = join(prefix, "config.json");
    for (
      const text of [
        '{"mode": "server", "port": 3006',
        '{\n  "mode": "server",\n  "port": 3006,\n}\n',
        "",
        // An unquoted value: V8 quotes the text around it in its message,
        // newlines included.
        '{"mode": "client",\n"port": 3006,\n"proxy": localhost\n}\n',
        "nope\n",
      ]
    ) {
      await Deno.writeTextFile(file, text);
      const error = await assertRejects(() => loadConfig(prefix));
      assert(error instanceof ConfigError, `got ${error}`);
      assert(
        !/[\r\n]/.test(error.message),
        `not one line for ${JSON.stringify(text)}: ${
          JSON.stringify(error.message)
        }`,
      );
      assert(
        error.message.startsWith(`${file}: expected valid JSON, found `),
        error.message,
      );
    }
  });
});

Deno.test("a short secret is a config error that does not show the secret", () => {
  const message = configError(() =>
    parseConfig({ mode: "server", port: 1, secret: "hunter2" }, FILE)
  );
  assert(!message.includes("hunter2"), message);
  assertMatch(
    message,
    /field "secret": expected a secret of at least 16 bytes/,
  );
  assertMatch(message, /found a string of 7 bytes$/);
  const token = configError(() =>
    parseConfig({
      mode: "server",
      port: 1,
      peers: { web: { token: "short-token" } },
    }, FILE)
  );
  assert(!token.includes("short-token"), token);
});

Deno.test("a pin is normalised, and needs a wss:// proxy", () => {
  const hex = "AB".repeat(32);
  const colons = Array(32).fill("ab").join(":");
  for (const pin of [`sha256:${hex}`, `sha256:${colons}`]) {
    const { config } = parseConfig({
      mode: "client",
      proxy: "wss://server.example:3006",
      pin,
    }, FILE);
    assert(config.mode === "client");
    assertEquals(config.pin, `sha256:${"ab".repeat(32)}`);
  }
  assertMatch(
    configError(() =>
      parseConfig({ mode: "client", proxy: "wss://h:1", pin: "md5:ab" }, FILE)
    ),
    /field "pin": expected a pin like/,
  );
  assertMatch(
    configError(() =>
      parseConfig({
        mode: "client",
        proxy: "ws://h:1",
        pin: `sha256:${hex}`,
      }, FILE)
    ),
    /field "pin": expected "proxy" to be a wss:\/\/ URL/,
  );
});

Deno.test("a peer entry has exactly one of token and tokenFile", () => {
  assertMatch(
    configError(() =>
      parseConfig({ mode: "server", port: 1, peers: { web: {} } }, FILE)
    ),
    /field "peers.web": expected exactly one of "token" and "tokenFile", found neither/,
  );
  assertMatch(
    configError(() =>
      parseConfig({
        mode: "server",
        port: 1,
        peers: { "../x": { token: "t".repeat(16) } },
      }, FILE)
    ),
    /peers/,
  );
});

Deno.test("loadConfig reads secret files, warns about open modes, and takes WSDAEMON_SECRET", async () => {
  await withPrefix(async (prefix) => {
    const secretFile = join(prefix, "secret");
    await Deno.writeTextFile(secretFile, "a-secret-of-enough-bytes\n");
    await Deno.chmod(secretFile, 0o644);
    await Deno.writeTextFile(
      join(prefix, "config.json"),
      JSON.stringify({
        mode: "server",
        port: 1,
        host: "127.0.0.1",
        secretFile: "secret",
        peers: { web: { tokenFile: secretFile + "-web" } },
      }),
    );
    await Deno.writeTextFile(secretFile + "-web", "a-token-of-enough-bytes");
    await Deno.chmod(secretFile + "-web", 0o600);
    const { config, warnings } = await loadConfig(prefix);
    assert(config.mode === "server");
    assertEquals(config.trust.secret, "a-secret-of-enough-bytes");
    assertEquals(config.trust.peers, [{
      name: "web",
      token: "a-token-of-enough-bytes",
      scripts: undefined,
      commands: undefined,
    }]);
    assertEquals(warnings.length, 1, warnings.join("\n"));
    assertMatch(warnings[0], /secret.*readable by group or others.*chmod 600/);

    await Deno.writeTextFile(
      join(prefix, "config.json"),
      JSON.stringify({ mode: "client", proxy: "127.0.0.1", port: 1 }),
    );
    const fromEnv = await loadConfig(prefix, {
      WSDAEMON_SECRET: "from-the-environment",
    });
    assert(fromEnv.config.mode === "client");
    assertEquals(fromEnv.config.trust.secret, "from-the-environment");
    const short = await assertRejects(() =>
      loadConfig(prefix, { WSDAEMON_SECRET: "short" })
    );
    assertMatch(
      (short as Error).message,
      /^WSDAEMON_SECRET: expected a secret of at least 16 bytes, found 5 bytes$/,
    );
  });
});

Deno.test("a secret with a space or non-ASCII could never be sent: a config error", () => {
  for (
    const secret of ["correct horse battery staple", "pässwörd-pässwörd-1"]
  ) {
    const message = configError(() =>
      parseConfig({ mode: "client", proxy: "h", port: 1, secret }, FILE)
    );
    assertMatch(message, /printable ASCII without spaces/);
    assert(!message.includes(secret), message);
  }
});

Deno.test("config errors say what the field takes: rate's shapes, exclusive bounds, peer names", () => {
  const server = (extra: Record<string, unknown>) =>
    configError(() => parseConfig({ mode: "server", port: 1, ...extra }, FILE));
  assertMatch(
    server({ rate: { rps: 5 } }),
    /field "rate": expected a positive number, or \{"perSecond": N, "burst": N\}, found \{"rps":5\}$/,
  );
  assertMatch(
    server({ handshakeTimeoutMs: 0 }),
    /expected a number greater than 0, found 0$/,
  );
  assertMatch(
    server({ peers: { "a b": { token: "t".repeat(16) } } }),
    /field "peers": expected peer names .*, found the name "a b"$/,
  );
});

Deno.test("times past what a timer can wait (2^31 - 1 ms) are config errors", () => {
  for (
    const field of [
      "scriptTimeoutMs",
      "maxTimeoutMs",
      "deadlineMs",
      "handshakeTimeoutMs",
      "killGraceMs",
      "shutdownGraceMs",
    ]
  ) {
    assertMatch(
      configError(() =>
        parseConfig({ mode: "server", port: 1, [field]: 3_000_000_000 }, FILE)
      ),
      new RegExp(`field "${field}": expected a number of at most 2147483647`),
    );
  }
});
