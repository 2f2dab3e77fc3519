/**
 * `ws-daemon init`: sets up a server prefix (TLS certificate, a first peer
 * with its token, an example script) or adds a peer to an existing one, and
 * prints the one command a client runs to pair: `ws-daemon join <line>`.
 *
 * Everything that can be checked is checked before the first file is
 * written, and the files are written config.json last, so a failure leaves
 * either nothing or, for a new prefix, nothing that was not there before.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { DEFAULT_PREFIX } from "../config.ts";
import { generateSelfSigned } from "../tls/certificate.ts";
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
import { encodeJoinLine, isValidHost, isValidPeerName } from "./join_line.ts";
import { addPeer } from "./init_peer.ts";
import {
  joinCommand,
  joinHost,
  LOOPBACK_NAMES,
  newToken,
  type Plan,
  usage,
} from "./_pairing.ts";

const COMMAND = "ws-daemon init";
const DEFAULT_PORT = 3006;
const DEFAULT_PEER = "client-1";
/** Always in the certificate, so local tools can connect by these names. */

const USAGE =
  `Usage: ws-daemon init --mode server [--prefix DIR] [--port N] [--host NAME]... [--peer NAME]
       ws-daemon init --peer NAME [--prefix DIR] [--host NAME] [--port N]

The first form creates a server prefix: config.json, a self-signed TLS
certificate (tls/), a first peer with its token (secrets/) and an example
script (scripts/hello). The second adds a peer to an existing server prefix.
Both print, as their last line, the command that pairs a client:
ws-daemon join wsd://HOST:PORT/PEER#TOKEN@sha256:HEX

  --mode server   create a new server prefix (a client runs ws-daemon join)
  --prefix DIR    the prefix (default: $WSDAEMON_PREFIX, else ${DEFAULT_PREFIX})
  --port N        port the server listens on (default ${DEFAULT_PORT}); when
                  adding a peer: the port clients dial (default: config's)
  --host NAME     a name or address clients reach the server by; the first is
                  the join line's host; each goes into the certificate (which
                  also names this machine, localhost, 127.0.0.1 and ::1)
  --peer NAME     the client's name in "peers" (default ${DEFAULT_PEER}):
                  1 to 64 of A-Z a-z 0-9 . _ -, not starting with . or -
  --help          print this help

Exit codes: 0 done, 2 bad arguments, 73 a file exists or cannot be created,
78 the existing config.json cannot be used.
`;

const OPTIONS = {
  mode: { type: "string" },
  prefix: { type: "string" },
  port: { type: "string" },
  host: { type: "string", multiple: true },
  peer: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The environment `init` reads. */
export interface InitEnv {
  /** The prefix when `--prefix` is not given. */
  WSDAEMON_PREFIX?: string;
}

/**
 * Runs `ws-daemon init` with `args` (after the subcommand's name). Prints a
 * summary on stdout, the join command last; errors are one line on stderr.
 *
 * @returns the exit code: 0, or 2 (bad arguments), 73 (a file exists or
 * cannot be created), 78 (the existing config.json cannot be used).
 */
export async function runInit(
  args: string[],
  env: InitEnv = Deno.env.toObject(),
): Promise<number> {
  try {
    const { values } = parseOptions(args, OPTIONS);
    if (values.help) {
      console.log(USAGE);
      return EXIT.OK;
    }
    if (values.mode !== undefined && values.mode !== "server") {
      usage(
        `--mode ${
          JSON.stringify(values.mode)
        }: init creates a server prefix; on a client use \`ws-daemon join LINE\``,
      );
    }
    if (values.mode === undefined && values.peer === undefined) {
      usage(
        "say --mode server to create a server prefix, or --peer NAME to add a peer to an existing one (see --help)",
      );
    }
    if (values.prefix === "") usage('--prefix needs a folder, found ""');
    const prefix = resolve(
      values.prefix ?? (env.WSDAEMON_PREFIX || DEFAULT_PREFIX),
    );
    const port = values.port === undefined ? undefined : readPort(values.port);
    const hosts = (values.host ?? []).map(readHost);
    const peer = values.peer ?? DEFAULT_PEER;
    if (!isValidPeerName(peer)) {
      usage(
        `--peer must be 1 to 64 of A-Z a-z 0-9 . _ - not starting with '.' or '-': found ${
          JSON.stringify(peer)
        }`,
      );
    }
    const lines = values.mode === "server"
      ? await createServer({ prefix, port: port ?? DEFAULT_PORT, hosts, peer })
      : await addPeer({ prefix, port, hosts, peer });
    for (const line of lines) console.log(line);
    return EXIT.OK;
  } catch (error) {
    return reportError(COMMAND, error);
  }
}

/** Creates a new server prefix; returns the summary lines. */
async function createServer(
  { prefix, port, hosts, peer }: Plan & { port: number },
): Promise<string[]> {
  const configFile = join(prefix, "config.json");
  if (await exists(configFile)) {
    throw new CliError(
      `${configFile} exists; refusing to overwrite it (to add a client: ws-daemon init --peer NAME --prefix ${
        shellQuote(prefix)
      })`,
      EXIT.CANNOT_CREATE,
    );
  }
  const hostname = Deno.hostname();
  const names = [
    ...hosts,
    ...(isValidHost(hostname) ? [hostname] : []),
    ...LOOPBACK_NAMES,
  ];
  const host = joinHost(hosts[0], hostname);
  const { certPem, keyPem, fingerprint } = await generateSelfSigned({
    hosts: names,
  });
  const token = newToken();
  const line = encodeJoinLine({ host, port, peer, token, fingerprint });
  const tokenFile = `secrets/${peer}.token`;
  const config = {
    mode: "server",
    port,
    name: hostname,
    tls: { cert: "tls/cert.pem", key: "tls/key.pem" },
    peers: { [peer]: { tokenFile } },
  };

  const files = new NewFiles();
  let hello: boolean;
  try {
    await files.dir(prefix);
    hello = await addExampleScript(files, prefix);
    await files.dir(join(prefix, "tls"));
    await files.file(join(prefix, "tls/cert.pem"), certPem, 0o644);
    await files.file(join(prefix, "tls/key.pem"), keyPem, 0o600);
    await files.dir(join(prefix, "secrets"));
    await files.file(join(prefix, tokenFile), token + "\n", 0o600);
    await files.file(configFile, jsonFile(config), 0o600);
  } catch (error) {
    await files.undo();
    throw error;
  }
  return [
    `Created a server prefix in ${prefix}:`,
    `  config.json      server on port ${port}, name ${
      JSON.stringify(hostname)
    }, peer ${JSON.stringify(peer)}`,
    `  tls/cert.pem     self-signed certificate for ${
      [...new Set(names)].join(", ")
    }`,
    `  tls/key.pem      its private key`,
    `  ${tokenFile}  the token of peer ${JSON.stringify(peer)}`,
    `  scripts/hello    ${
      hello ? "an example script" : "kept the one already there"
    }`,
    `Certificate pin: ${fingerprint}`,
    `Start the server:  WSDAEMON_PREFIX=${shellQuote(prefix)} ws-daemon`,
    `Add a client:      ws-daemon init --peer NAME --prefix ${
      shellQuote(prefix)
    }`,
    `On the client (it holds the token: pass it on privately), run:`,
    joinCommand(line),
  ];
}

function readPort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    usage(
      `--port must be an integer from 1 to 65535: found ${
        JSON.stringify(text)
      }`,
    );
  }
  return port;
}

function readHost(text: string): string {
  if (!isValidHost(text)) {
    usage(
      `--host must be a DNS name or an IP address: found ${
        JSON.stringify(text)
      }`,
    );
  }
  return text.replace(/^\[(.*)\]$/, "$1");
}
