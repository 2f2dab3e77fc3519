/**
 * The join line: everything a client needs to pair with a server, in one
 * argument that `ws-daemon init` prints and `ws-daemon join` reads.
 *
 *     wsd://<host>:<port>/<peer>#<token>@sha256:<64 hex>
 *
 * The characters are chosen so the line needs no quoting in sh or bash: the
 * token is base64url, the peer name and host are letters, digits, `.`, `_`,
 * `-`, and `#` only starts a comment at the start of a word. An IPv6 host
 * needs brackets, which a shell may read as a glob (zsh refuses an unmatched
 * one), so such a line is printed in single quotes (see `shellQuote` in
 * `_files.ts`).
 *
 * The line carries a secret (the token): errors never repeat it.
 *
 * @example
 * ```ts
 * const line = encodeJoinLine({
 *   host: "srv.example",
 *   port: 3006,
 *   peer: "client-1",
 *   token: "Zk9v".repeat(10) + "Zk9",
 *   fingerprint: "sha256:" + "ab".repeat(32),
 * });
 * parseJoinLine(line).peer; // "client-1"
 * ```
 *
 * @module
 */

import { PEER_NAME } from "../config.ts";

import { isIP } from "node:net";

/** What a join line says. */
export interface JoinLine {
  /** DNS name, IPv4 address or IPv6 address (without brackets). */
  host: string;
  /** 1…65535. */
  port: number;
  /** The server's name for this client, a key of its `peers`. */
  peer: string;
  /** The client's token: 32 random bytes as 43 base64url characters. */
  token: string;
  /** The server certificate's pin, `sha256:<64 lowercase hex>`. */
  fingerprint: string;
}

const SCHEME = "wsd://";
const FORMAT = "wsd://HOST:PORT/PEER#TOKEN@sha256:HEX";
/** Peer names, as in a server's `peers`: 1–64 characters, no leading `.`/`-`. */
const PEER_RULE =
  "1 to 64 characters of A-Z a-z 0-9 . _ - not starting with '.' or '-'";
const TOKEN = /^[A-Za-z0-9_-]{43}$/;
const PIN = /^sha256:[0-9a-f]{64}$/;
/** DNS labels; `_` is allowed since some container host names have it. */
const DNS_NAME =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** Whether `name` may be a peer name (and so a token file's name). */
export function isValidPeerName(name: string): boolean {
  return PEER_NAME.test(name);
}

/**
 * Whether `host` can go in a join line: a DNS name, an IPv4 address, or an
 * IPv6 address with or without brackets.
 */
export function isValidHost(host: string): boolean {
  const bare = host.startsWith("[") && host.endsWith("]")
    ? host.slice(1, -1)
    : host;
  if (bare !== host) return isIP(bare) === 6;
  return isIP(host) !== 0 || DNS_NAME.test(host);
}

/**
 * Writes a join line.
 *
 * @throws {RangeError} when a field could not be read back by
 * {@linkcode parseJoinLine}.
 */
export function encodeJoinLine(line: JoinLine): string {
  const { host, port, peer, token, fingerprint } = line;
  if (!isValidHost(host)) {
    throw new RangeError(
      `Cannot write join line as 'host' must be a DNS name or an IP address: current value is ${
        JSON.stringify(host)
      }`,
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(
      `Cannot write join line as 'port' must be an integer from 1 to 65535: current value is ${port}`,
    );
  }
  if (!PEER_NAME.test(peer)) {
    throw new RangeError(
      `Cannot write join line as 'peer' must be ${PEER_RULE}: current value is ${
        JSON.stringify(peer)
      }`,
    );
  }
  if (!TOKEN.test(token)) {
    throw new RangeError(
      `Cannot write join line as 'token' must be 43 base64url characters: current value has ${token.length} characters`,
    );
  }
  if (!PIN.test(fingerprint)) {
    throw new RangeError(
      `Cannot write join line as 'fingerprint' must be "sha256:" and 64 lowercase hex digits: current value is ${
        JSON.stringify(fingerprint)
      }`,
    );
  }
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  const authority = isIP(bare) === 6 ? `[${bare}]:${port}` : `${host}:${port}`;
  return `${SCHEME}${authority}/${peer}#${token}@${fingerprint}`;
}

/**
 * Reads a join line; surrounding whitespace (a pasted newline) is ignored and
 * the pin's hex digits may be upper case.
 *
 * @throws {Error} with one line saying which part is missing or wrong.
 */
export function parseJoinLine(text: string): JoinLine {
  const line = text.trim();
  if (line === "") fail(`it is empty (expected ${FORMAT})`);
  if (/\s/.test(line)) {
    fail(
      "it contains whitespace: pass it as one argument, in quotes if need be",
    );
  }
  if (line.slice(0, SCHEME.length).toLowerCase() !== SCHEME) {
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(line)?.[1];
    fail(
      `it does not start with 'wsd://': found ${
        scheme === undefined ? "no scheme" : `'${scheme}://'`
      } (expected ${FORMAT})`,
    );
  }
  const rest = line.slice(SCHEME.length);
  const hashAt = rest.indexOf("#");
  // Without '#', the part before '@' is read as usual so that the error is
  // the missing token, not a peer name that runs into the pin.
  const head = hashAt !== -1 ? rest.slice(0, hashAt) : rest.split("@", 1)[0];
  const slashAt = head.indexOf("/");
  const authority = slashAt === -1 ? head : head.slice(0, slashAt);
  const { host, port } = parseAuthority(authority);

  const peer = slashAt === -1 ? "" : head.slice(slashAt + 1);
  if (peer === "") {
    fail(`it has no peer name after the port (expected ${FORMAT})`);
  }
  if (!PEER_NAME.test(peer)) {
    fail(`its peer name must be ${PEER_RULE}: found ${JSON.stringify(peer)}`);
  }

  if (hashAt === -1) fail(`it has no token after '#' (expected ${FORMAT})`);
  const tail = rest.slice(hashAt + 1);
  const atAt = tail.indexOf("@");
  const token = atAt === -1 ? tail : tail.slice(0, atAt);
  if (token === "") fail(`it has no token after '#' (expected ${FORMAT})`);
  if (!TOKEN.test(token)) {
    fail(
      `its token must be 43 base64url characters (A-Z a-z 0-9 _ -): found ${token.length} characters${
        TOKEN_CHARS.test(token) ? "" : " with others among them"
      }`,
    );
  }

  const pin = atAt === -1 ? "" : tail.slice(atAt + 1);
  if (pin === "") {
    fail(`it has no certificate pin after '@' (expected ${FORMAT})`);
  }
  const fingerprint = pin.toLowerCase();
  if (!PIN.test(fingerprint)) {
    fail(
      `its certificate pin must be 'sha256:' and 64 hex digits: found ${
        JSON.stringify(pin.length > 80 ? pin.slice(0, 77) + "..." : pin)
      }`,
    );
  }
  return { host, port, peer, token, fingerprint };
}

const TOKEN_CHARS = /^[A-Za-z0-9_-]*$/;

function parseAuthority(authority: string): { host: string; port: number } {
  let host: string;
  let portText: string | undefined;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close === -1) fail("its IPv6 host has no closing ']'");
    host = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) {
      fail(
        `it has ${
          JSON.stringify(after)
        } after the IPv6 host where ':PORT' belongs`,
      );
    }
    portText = after === "" ? undefined : after.slice(1);
    if (isIP(host) !== 6) {
      fail(
        `its host in brackets must be an IPv6 address: found ${
          JSON.stringify(host)
        }`,
      );
    }
  } else {
    const colon = authority.lastIndexOf(":");
    host = colon === -1 ? authority : authority.slice(0, colon);
    portText = colon === -1 ? undefined : authority.slice(colon + 1);
    if (host === "") fail(`it has no host after 'wsd://' (expected ${FORMAT})`);
    if (host.includes(":")) {
      fail("its IPv6 host must be in brackets, as in wsd://[::1]:3006/...");
    }
    if (!isValidHost(host)) {
      fail(
        `its host must be a DNS name or an IP address: found ${
          JSON.stringify(host)
        }`,
      );
    }
  }
  if (portText === undefined || portText === "") {
    fail(`it has no port after the host (expected ${FORMAT})`);
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    fail(
      `its port must be an integer from 1 to 65535: found ${
        JSON.stringify(portText)
      }`,
    );
  }
  return { host, port };
}

function fail(reason: string): never {
  throw new Error(`Cannot read join line as ${reason}`);
}
