/**
 * Loading a config: `<prefix>/config.json`, the secret, token, certificate
 * and CA files it names, and the environment's overrides. Everything a
 * daemon trusts is resolved here, once, before anything is opened, so a
 * missing or unsafe file is one line at startup and never a surprise later.
 *
 * @module
 */

import { isAbsolute, join } from "node:path";
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import {
  type Config,
  ConfigError,
  HOST_PORT,
  type LoadedConfig,
  MIN_SECRET_BYTES,
  parseConfig,
  SECRET_CHARS,
  SECRET_RULE,
} from "./config.ts";

/** The environment variables a config may take from. */
export interface ConfigEnv {
  /** The secret, when the config names neither `secret` nor `secretFile`. */
  WSDAEMON_SECRET?: string;
  /** Overrides `localTcp` (the Docker image sets it). */
  WSDAEMON_LOCAL_TCP?: string;
}

const encoder = new TextEncoder();
const LOOPBACK = /^(127(?:\.\d{1,3}){3}|::1|localhost)$/i;

/** Reads and validates `<prefix>/config.json` and the files it names. */
export async function loadConfig(
  prefix: string,
  env: ConfigEnv = {},
): Promise<LoadedConfig> {
  const file = join(prefix, "config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "file not found (set WSDAEMON_PREFIX or --prefix to the folder that holds config.json)"
      : (error as Error).message;
    throw new ConfigError(`${file}: cannot read: ${reason}`);
  }
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `${file}: expected valid JSON, found a syntax error: ${
        (error as Error).message.replace(/\s+/g, " ")
      }`,
    );
  }
  const loaded = parseConfig(input, file);
  const { config, warnings } = loaded;
  if (env.WSDAEMON_LOCAL_TCP !== undefined) {
    if (!HOST_PORT.test(env.WSDAEMON_LOCAL_TCP)) {
      throw new ConfigError(
        `WSDAEMON_LOCAL_TCP: expected "host:port", found ${
          JSON.stringify(env.WSDAEMON_LOCAL_TCP)
        }`,
      );
    }
    config.localTcp = env.WSDAEMON_LOCAL_TCP;
  }
  const files = new SecretFiles(prefix, file, warnings);
  if (/"(secret|token)"\s*:/.test(text)) files.checkMode(file);
  resolveTrust(config, env, files);
  return loaded;
}

/** Reads the files a config names, relative to the prefix, and vets them. */
class SecretFiles {
  constructor(
    readonly prefix: string,
    readonly configFile: string,
    readonly warnings: string[],
  ) {}

  path(name: string): string {
    return isAbsolute(name) ? name : join(this.prefix, name);
  }

  /** A file's text; `field` names the config field in the error. */
  read(field: string, name: string): string {
    const path = this.path(name);
    try {
      return Deno.readTextFileSync(path);
    } catch (error) {
      throw new ConfigError(
        `${this.configFile}: field "${field}": expected a readable file, found ${
          JSON.stringify(path)
        } (${
          error instanceof Deno.errors.NotFound
            ? "no such file"
            : (error as Error).name
        })`,
      );
    }
  }

  /** A secret from a file: its first line, at least MIN_SECRET_BYTES long. */
  secret(field: string, name: string): string {
    const path = this.path(name);
    const value = this.read(field, name).split(/\r?\n/)[0].trim();
    checkLength(value, `${this.configFile}: field "${field}" (${path})`);
    this.checkMode(path);
    return value;
  }

  /** Warns when a file holding a secret can be read by group or others. */
  checkMode(path: string): void {
    try {
      const mode = Deno.statSync(path).mode;
      if (mode !== null && (mode & 0o077) !== 0) {
        this.warnings.push(
          `${path} holds a secret and is readable by group or others (mode ${
            (mode & 0o777).toString(8).padStart(4, "0")
          }); run: chmod 600 ${path}`,
        );
      }
    } catch {
      // Read a moment ago; a race with its removal is reported by the read.
    }
  }
}

function checkLength(value: string, where: string): void {
  const bytes = encoder.encode(value).length;
  if (bytes < MIN_SECRET_BYTES) {
    throw new ConfigError(
      `${where}: expected a secret of at least ${MIN_SECRET_BYTES} bytes, found ${bytes} bytes`,
    );
  }
  if (!SECRET_CHARS.test(value)) {
    throw new ConfigError(
      `${where}: expected ${SECRET_RULE}, found a string with other characters`,
    );
  }
}

/**
 * Checks that the TLS files are PEM and belong together: node:https in Deno
 * takes anything, and only each handshake fails later, silently.
 */
function checkKeyPair(
  tls: { cert: string; key: string },
  pem: { cert: string; key: string },
  files: SecretFiles,
): void {
  const fail = (field: "cert" | "key", found: string): never => {
    throw new ConfigError(
      `${files.configFile}: field "tls.${field}": expected ${
        field === "cert"
          ? "a PEM certificate"
          : "the PEM private key of tls.cert"
      }, found ${JSON.stringify(files.path(tls[field]))} (${found})`,
    );
  };
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem.cert);
  } catch {
    return fail("cert", "no certificate in it");
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem.key);
  } catch {
    return fail("key", "no private key in it");
  }
  if (!certificate.checkPrivateKey(key)) {
    fail("key", "another certificate's key");
  }
}

function resolveTrust(config: Config, env: ConfigEnv, files: SecretFiles) {
  const { warnings } = files;
  let secret = config.secret;
  if (secret === undefined && config.secretFile !== undefined) {
    secret = files.secret("secretFile", config.secretFile);
  }
  if (secret === undefined && env.WSDAEMON_SECRET !== undefined) {
    secret = env.WSDAEMON_SECRET;
    checkLength(secret, "WSDAEMON_SECRET");
  }
  if (config.mode === "client") {
    config.trust.secret = secret;
    if (config.ca !== undefined) {
      const ca = files.read("ca", config.ca);
      if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
        throw new ConfigError(
          `${files.configFile}: field "ca": expected a PEM certificate file, found ${
            JSON.stringify(files.path(config.ca))
          } with no "BEGIN CERTIFICATE"`,
        );
      }
      config.trust.ca = ca;
    }
    const host = new URL(config.url).hostname.replace(/^\[(.*)\]$/, "$1");
    if (
      secret !== undefined && config.url.startsWith("ws:") &&
      !LOOPBACK.test(host)
    ) {
      warnings.push(
        `the secret goes to ${config.url} unencrypted; use a wss:// proxy (TLS) with "pin" or "ca"`,
      );
    }
    return;
  }
  const trust = config.trust;
  trust.secret = secret;
  const seen = new Map<string, string>();
  for (const peer of trust.peers) {
    const entry = config.peers![peer.name];
    if (entry.tokenFile !== undefined) {
      peer.token = files.secret(
        `peers.${peer.name}.tokenFile`,
        entry.tokenFile,
      );
    }
    const other = seen.get(peer.token) ??
      (peer.token === secret ? "secret" : undefined);
    if (other !== undefined) {
      throw new ConfigError(
        `${files.configFile}: field "peers.${peer.name}": expected a token of its own, found the same token as ${
          other === "secret" ? '"secret"' : `peer "${other}"`
        }`,
      );
    }
    seen.set(peer.token, peer.name);
  }
  if (config.tls !== undefined) {
    const cert = files.read("tls.cert", config.tls.cert);
    const key = files.read("tls.key", config.tls.key);
    files.checkMode(files.path(config.tls.key));
    checkKeyPair(config.tls, { cert, key }, files);
    trust.tls = { cert, key };
  }
  const open = trust.secret === undefined && trust.peers.length === 0;
  if (open && (config.host === undefined || !LOOPBACK.test(config.host))) {
    warnings.push(
      `anyone who reaches port ${config.port} can run every script: set "secret" or "peers" (ws-daemon init sets up tokens and TLS), or "host": "127.0.0.1"`,
    );
  }
}
