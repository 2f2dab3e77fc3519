/**
 * `ws-daemon join LINE`: sets up a client prefix from the join line that
 * `ws-daemon init` printed on the server: the server's address, this
 * client's peer name and token, and the pin of the server's certificate.
 *
 * @module
 */

import { isIP } from "node:net";
import { join, resolve } from "node:path";
import { DEFAULT_PREFIX } from "../config.ts";
import {
  addExampleScript,
  CliError,
  exists,
  EXIT,
  jsonFile,
  NewFiles,
  parseOptions,
  reportError,
  shellQuote,
} from "./_files.ts";
import { isValidPeerName, type JoinLine, parseJoinLine } from "./join_line.ts";

const COMMAND = "ws-daemon join";
const SECRET_FILE = "secrets/secret";
const FORMAT = "wsd://HOST:PORT/PEER#TOKEN@sha256:HEX";

const USAGE = `Usage: ws-daemon join LINE [--prefix DIR] [--name NAME]

Creates a client prefix that connects to the server named in LINE, the join
line \`ws-daemon init\` printed on the server (${FORMAT}):
config.json, secrets/secret (the token) and an example script (scripts/hello).

  --prefix DIR    the prefix (default: $WSDAEMON_PREFIX, else ${DEFAULT_PREFIX})
  --name NAME     this daemon's name (default: the peer name in LINE)
  --help          print this help

Exit codes: 0 done, 2 bad arguments or join line, 73 the prefix already has a
config.json, or a file cannot be created.
`;

const OPTIONS = {
  prefix: { type: "string" },
  name: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The environment `join` reads. */
export interface JoinEnv {
  /** The prefix when `--prefix` is not given. */
  WSDAEMON_PREFIX?: string;
}

/**
 * Runs `ws-daemon join` with `args` (after the subcommand's name). Prints
 * what it wrote and how to start the daemon; errors are one line on stderr.
 *
 * @returns the exit code: 0, or 2 (bad arguments or join line), 73 (the
 * prefix already has a config.json, or a file cannot be created).
 */
export async function runJoin(
  args: string[],
  env: JoinEnv = Deno.env.toObject(),
): Promise<number> {
  try {
    const { values, positionals } = parseOptions(args, OPTIONS, true);
    if (values.help) {
      console.log(USAGE);
      return EXIT.OK;
    }
    if (positionals.length === 0) {
      usage(
        `missing the join line: ws-daemon join ${FORMAT} (ws-daemon init prints it on the server)`,
      );
    }
    if (positionals.length > 1) {
      usage(
        `expected one join line, found ${positionals.length} arguments (quote the line if the shell split it)`,
      );
    }
    let line: JoinLine;
    try {
      line = parseJoinLine(positionals[0]);
    } catch (error) {
      usage((error as Error).message);
    }
    const name = values.name ?? line.peer;
    if (!isValidPeerName(name)) {
      usage(
        `--name must be 1 to 64 of A-Z a-z 0-9 . _ - not starting with '.' or '-': found ${
          JSON.stringify(name)
        }`,
      );
    }
    if (values.prefix === "") usage('--prefix needs a folder, found ""');
    const prefix = resolve(
      values.prefix ?? (env.WSDAEMON_PREFIX || DEFAULT_PREFIX),
    );
    for (const text of await createClient(prefix, line, name)) {
      console.log(text);
    }
    return EXIT.OK;
  } catch (error) {
    return reportError(COMMAND, error);
  }
}

/** Writes the client prefix; returns the summary lines. */
async function createClient(
  prefix: string,
  line: JoinLine,
  name: string,
): Promise<string[]> {
  const configFile = join(prefix, "config.json");
  if (await exists(configFile)) {
    throw new CliError(
      `${configFile} exists; refusing to overwrite it (pass --prefix DIR for a new prefix)`,
      EXIT.CANNOT_CREATE,
    );
  }
  const host = isIP(line.host) === 6 ? `[${line.host}]` : line.host;
  const proxy = `wss://${host}:${line.port}`;
  const config = {
    mode: "client",
    proxy,
    name,
    secretFile: SECRET_FILE,
    pin: line.fingerprint,
  };

  const files = new NewFiles();
  let hello: boolean;
  try {
    await files.dir(prefix);
    hello = await addExampleScript(files, prefix);
    await files.dir(join(prefix, "secrets"));
    await files.file(join(prefix, SECRET_FILE), line.token + "\n", 0o600);
    await files.file(configFile, jsonFile(config), 0o600);
  } catch (error) {
    await files.undo();
    throw error;
  }
  return [
    `Created a client prefix in ${prefix}:`,
    `  config.json     connects to ${proxy} as ${
      JSON.stringify(name)
    }, trusting only the certificate ${line.fingerprint}`,
    `  ${SECRET_FILE}  the token of peer ${JSON.stringify(line.peer)}`,
    `  scripts/hello   ${
      hello
        ? "an example script the server can run"
        : "kept the one already there"
    }`,
    `Start it:`,
    `WSDAEMON_PREFIX=${shellQuote(prefix)} ws-daemon`,
  ];
}

function usage(message: string): never {
  throw new CliError(message, EXIT.USAGE);
}
