/**
 * Scripts' environment, on real daemons and scripts: a script never sees
 * `WSDAEMON_SECRET`, nor a variable whose name matches a `scrubEnv` glob
 * (default `*SECRET*`, `*TOKEN*`, `*PASSWORD*`, `*KEY*`, any case); every
 * other variable of the daemon's environment passes, with the `WSDAEMON_*`
 * variables the daemon adds. Checked in both directions (a script run by the
 * client for the server, and one run by the server for the client) with the
 * `dump-env` fixture, which writes `env` to a file in the prefix.
 *
 * Both daemons are started with `WSDAEMON_SECRET` in their environment, which
 * is also their shared secret: they must still pair, and the secret's value
 * must appear in no script's environment and in neither log.
 *
 * @module
 */

import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
} from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { StalledWebSocket } from "../helpers/stalled_ws.ts";

const TIMEOUT = 10_000;
const SECRET = "x".repeat(20);

/** The daemons' environment: a secret, secret-looking names, harmless ones. */
const ENV: Record<string, string> = {
  WSDAEMON_SECRET: SECRET,
  MY_API_TOKEN: "t",
  DB_PASSWORD: "p",
  SSH_KEY: "k",
  HARMLESS: "h",
  // Any case: the globs match names case-insensitively.
  lower_secret_name: "ls",
  Mixed_Token_Name: "mt",
  harmless: "hl",
  ALSO_FINE: "fine",
};

/** `env` output as a map (values on one line each, as these are). */
function parseEnv(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) vars.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return vars;
}

interface Pair {
  server: DaemonProcess;
  client: DaemonProcess;
  serverPrefix: Prefix;
  clientPrefix: Prefix;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A pair started with ENV, sharing WSDAEMON_SECRET as their secret. */
async function startPairWithEnv(
  fields: Record<string, unknown>,
): Promise<Pair> {
  const scripts = { scripts: ["dump-env", "noop"] };
  const serverPrefix = await Prefix.create(serverConfig(fields), scripts);
  const server = await DaemonProcess.start(serverPrefix, { env: ENV });
  const clientPrefix = await Prefix.create(
    clientConfig(server.port, fields),
    scripts,
  );
  const client = await DaemonProcess.start(clientPrefix, { env: ENV });
  try {
    await Promise.all([
      server.waitForLog(/peer client .* says hello/, TIMEOUT),
      client.waitForLog(/peer server .* says hello/, TIMEOUT),
    ]);
  } catch (error) {
    await Promise.all([client.kill(), server.kill()]);
    throw new Error(
      `${
        (error as Error).message
      }\n--- server ---\n${server.log()}\n--- client ---\n${client.log()}`,
    );
  }
  return {
    server,
    client,
    serverPrefix,
    clientPrefix,
    async [Symbol.asyncDispose]() {
      await Promise.all([client.kill(), server.kill()]);
      await Promise.all([
        clientPrefix[Symbol.asyncDispose](),
        serverPrefix[Symbol.asyncDispose](),
      ]);
    },
  };
}

/**
 * Runs dump-env from `asker`'s socket (so it runs on the other daemon, in
 * `runsIn`) and returns the script's environment and its raw text.
 */
async function scriptEnv(
  asker: DaemonProcess,
  runsIn: Prefix,
  id: string,
): Promise<{ vars: Map<string, string>; text: string }> {
  await using local = await LocalClient.connect(asker.socket);
  const answer = await local.request({ name: "dump-env", id }, TIMEOUT);
  assertEquals(
    [answer.status, answer.id],
    [0, id],
    `dump-env ran: ${JSON.stringify(answer)}`,
  );
  const text = await Deno.readTextFile(runsIn.file("out", `env-${id}`));
  return { vars: parseEnv(text), text };
}

/** The variables the daemon adds, and what the environment keeps anyway. */
function assertBasics(
  vars: Map<string, string>,
  runsIn: Prefix,
  id: string,
  peer: string,
  where: string,
): void {
  assertEquals(vars.get("WSDAEMON_PREFIX"), runsIn.path, `${where}: PREFIX`);
  assertEquals(vars.get("WSDAEMON_ID"), id, `${where}: WSDAEMON_ID`);
  assertEquals(vars.get("WSDAEMON_PEER"), peer, `${where}: WSDAEMON_PEER`);
  assert(vars.has("PATH"), `${where}: PATH passes`);
  assertEquals(vars.get("ALSO_FINE"), "fine", `${where}: ALSO_FINE passes`);
}

/** Neither daemon's log shows the secret's value. */
function assertSecretNotLogged(pair: Pair): void {
  for (const daemon of [pair.server, pair.client]) {
    assertEquals(
      daemon.lines.filter((line) => line.includes(SECRET)),
      [],
      "log lines showing the secret",
    );
  }
}

Deno.test("scrubEnv default: scripts on both sides get no WSDAEMON_SECRET and no *SECRET*/*TOKEN*/*PASSWORD*/*KEY* variable, in any case", async () => {
  await using pair = await startPairWithEnv({});
  // WSDAEMON_SECRET is in force: a peer without it is refused.
  const unauthenticated = await StalledWebSocket.connect(pair.server.url).then(
    (ws) => {
      ws.close();
      return "upgraded";
    },
    (error: Error) => error.message,
  );
  assertMatch(
    unauthenticated,
    /refused: HTTP\/1\.1 401/,
    "a peer without the secret",
  );
  for (
    const [where, asker, runsIn, peer] of [
      ["on the client", pair.server, pair.clientPrefix, "server"],
      ["on the server", pair.client, pair.serverPrefix, "client"],
    ] as const
  ) {
    const id = `env-${runsIn === pair.clientPrefix ? "c" : "s"}`;
    const { vars, text } = await scriptEnv(asker, runsIn, id);
    for (
      const name of [
        "WSDAEMON_SECRET",
        "MY_API_TOKEN",
        "DB_PASSWORD",
        "SSH_KEY",
        "lower_secret_name",
        "Mixed_Token_Name",
      ]
    ) {
      assert(!vars.has(name), `${where}: ${name} must not reach the script`);
    }
    assert(
      !text.includes(SECRET),
      `${where}: the secret's value appears in the script's environment`,
    );
    assertEquals(vars.get("HARMLESS"), "h", `${where}: HARMLESS passes`);
    assertEquals(vars.get("harmless"), "hl", `${where}: harmless passes`);
    assertBasics(vars, runsIn, id, peer, where);
  }
  assertSecretNotLogged(pair);
});

Deno.test('scrubEnv ["HARMLESS"]: that name goes (any case), WSDAEMON_SECRET always goes, the default globs no longer apply', async () => {
  await using pair = await startPairWithEnv({ scrubEnv: ["HARMLESS"] });
  for (
    const [where, asker, runsIn, peer] of [
      ["on the client", pair.server, pair.clientPrefix, "server"],
      ["on the server", pair.client, pair.serverPrefix, "client"],
    ] as const
  ) {
    const id = `custom-${runsIn === pair.clientPrefix ? "c" : "s"}`;
    const { vars, text } = await scriptEnv(asker, runsIn, id);
    assert(!vars.has("HARMLESS"), `${where}: HARMLESS must be scrubbed`);
    assert(!vars.has("harmless"), `${where}: harmless must be scrubbed`);
    assert(
      !vars.has("WSDAEMON_SECRET"),
      `${where}: WSDAEMON_SECRET must be scrubbed whatever scrubEnv says`,
    );
    assert(
      !text.includes(SECRET),
      `${where}: the secret's value appears in the script's environment`,
    );
    assertEquals(
      [
        vars.get("MY_API_TOKEN"),
        vars.get("DB_PASSWORD"),
        vars.get("SSH_KEY"),
        vars.get("lower_secret_name"),
        vars.get("Mixed_Token_Name"),
      ],
      ["t", "p", "k", "ls", "mt"],
      `${where}: names the custom list does not match pass`,
    );
    assertBasics(vars, runsIn, id, peer, where);
  }
  assertSecretNotLogged(pair);
});
