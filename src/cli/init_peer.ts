/**
 * `ws-daemon init --peer NAME`: adds a peer with a fresh token to an existing
 * server prefix and prints its join command.
 *
 * @module
 */

// @peculiar/x509 decorates its ASN.1 classes: the polyfill must load first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { isAbsolute, join, resolve } from "node:path";
import { fingerprintOf } from "../tls/certificate.ts";
import {
  CliError,
  EXIT,
  fsReason,
  jsonFile,
  NewFiles,
  replaceFile,
} from "./_files.ts";
import { encodeJoinLine, isValidHost } from "./join_line.ts";
import {
  configError,
  isLoopback,
  joinCommand,
  joinHost,
  newToken,
  type Plan,
} from "./_pairing.ts";

/** Adds a peer to an existing server prefix; returns the summary lines. */
export async function addPeer(
  { prefix, port, hosts, peer }: Plan & { port?: number },
): Promise<string[]> {
  const configFile = join(prefix, "config.json");
  const { text, config, certFile } = await readServerConfig(configFile);
  const peers = config.peers as Record<string, unknown>;
  if (Object.hasOwn(peers, peer)) {
    throw new CliError(
      `${configFile}: peer ${
        JSON.stringify(peer)
      } already exists; choose another --peer name`,
      EXIT.CANNOT_CREATE,
    );
  }
  const dialPort = port ?? config.port;
  if (
    typeof dialPort !== "number" || !Number.isInteger(dialPort) ||
    dialPort < 1 || dialPort > 65535
  ) {
    throw new CliError(
      `${configFile}: field "port": expected an integer from 1 to 65535 for the join line (or pass --port N), found ${
        JSON.stringify(dialPort) ?? "nothing"
      }`,
      EXIT.CONFIG,
    );
  }
  const { fingerprint, names, commonName } = readCertificate(certFile);
  const host = joinHost(
    hosts[0] ??
      (commonName !== undefined && isValidHost(commonName)
        ? commonName
        : names.find((name) => !isLoopback(name) && isValidHost(name))),
    Deno.hostname(),
  );
  const token = newToken();
  const line = encodeJoinLine({
    host,
    port: dialPort,
    peer,
    token,
    fingerprint,
  });
  const tokenFile = `secrets/${peer}.token`;
  const updated = { ...config, peers: { ...peers, [peer]: { tokenFile } } };

  const files = new NewFiles();
  try {
    await files.dir(join(prefix, "secrets"));
    await files.file(join(prefix, tokenFile), token + "\n", 0o600);
    // Another init adding a peer at the same moment would lose one of the
    // two; refuse rather than drop a peer silently.
    if (await Deno.readTextFile(configFile) !== text) {
      throw new CliError(
        `${configFile} changed while adding peer ${
          JSON.stringify(peer)
        }; nothing was changed, run again`,
        EXIT.CANNOT_CREATE,
      );
    }
    await replaceFile(configFile, jsonFile(updated), 0o600);
  } catch (error) {
    await files.undo();
    throw error instanceof CliError ? error : new CliError(
      `cannot update ${configFile}: ${fsReason(error)}`,
      EXIT.CANNOT_CREATE,
    );
  }
  return [
    `Added peer ${JSON.stringify(peer)} to ${configFile}`,
    `  ${tokenFile}  its token`,
    `Send the server daemon SIGHUP (or restart it) so it accepts the new peer.`,
    `On the client (it holds the token: pass it on privately), run:`,
    joinCommand(line),
  ];
}

interface ServerConfigFile {
  /** The file's text, to notice a concurrent change. */
  text: string;
  config: Record<string, unknown>;
  /** tls.cert, resolved against the prefix. */
  certFile: string;
}

/** Reads an existing server config far enough to add a peer to it. */
async function readServerConfig(file: string): Promise<ServerConfigFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new CliError(
      error instanceof Deno.errors.NotFound
        ? `${file}: not found; create a server prefix first with ws-daemon init --mode server`
        : `${file}: cannot read: ${fsReason(error)}`,
      EXIT.CONFIG,
    );
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    configError(
      `${file}: expected valid JSON, found a syntax error: ${
        (error as Error).message
      }`,
    );
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    configError(`${file}: expected a JSON object`);
  }
  const record = config as Record<string, unknown>;
  if (record.mode !== "server") {
    configError(
      `${file}: field "mode": expected "server" (peers are added on the server), found ${
        JSON.stringify(record.mode) ?? "nothing"
      }`,
    );
  }
  const tls = record.tls as Record<string, unknown> | undefined;
  if (typeof tls?.cert !== "string" || tls.cert === "") {
    configError(
      `${file}: field "tls.cert": expected the certificate's file name (a prefix made by ws-daemon init --mode server has it)`,
    );
  }
  const peers = record.peers;
  if (typeof peers !== "object" || peers === null || Array.isArray(peers)) {
    configError(
      `${file}: field "peers": expected an object of peers, found ${
        JSON.stringify(peers) ?? "nothing"
      }`,
    );
  }
  const prefix = resolve(file, "..");
  const certFile = isAbsolute(tls.cert) ? tls.cert : join(prefix, tls.cert);
  return { text, config: record, certFile };
}

/** The pin and the DNS and IP names of the certificate in `file`. */
function readCertificate(
  file: string,
): { fingerprint: string; names: string[]; commonName?: string } {
  let pem: string;
  try {
    pem = Deno.readTextFileSync(file);
  } catch (error) {
    configError(`${file}: cannot read the certificate: ${fsReason(error)}`);
  }
  try {
    const fingerprint = fingerprintOf(pem);
    const cert = new x509.X509Certificate(pem);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    // init puts the first --host in the subject: the address clients dial.
    const commonName = cert.subjectName.getField("CN")[0];
    const names = (san?.names.items ?? [])
      .filter((name) => name.type === "dns" || name.type === "ip")
      .map((name) => name.value);
    return { fingerprint, names, commonName };
  } catch (error) {
    configError(
      `${file}: expected a PEM certificate, found one that cannot be read: ${
        (error as Error).message
      }`,
    );
  }
}
