/**
 * What both halves of `init` (a new server prefix, a new peer) share: tokens,
 * the join command, the host a join line names, and the errors they exit with.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { CliError, EXIT, shellQuote } from "./_files.ts";
import { isValidHost } from "./join_line.ts";

/** What `init` is asked to make: where, for which hosts, for which peer. */
export interface Plan {
  prefix: string;
  hosts: string[];
  peer: string;
}

/** Names a certificate always carries, which a join line never dials. */
export const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"];

export function isLoopback(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === "localhost" || lower === "127.0.0.1" ||
    /^(?:0{0,4}:){2,7}0{0,3}1$/.test(lower);
}

/** The join line's host: the one given, else this machine's name. */
export function joinHost(host: string | undefined, hostname: string): string {
  if (host !== undefined) return host;
  if (!isValidHost(hostname)) {
    usage(
      `this machine's host name ${
        JSON.stringify(hostname)
      } cannot go in a join line; name the server with --host NAME`,
    );
  }
  return hostname;
}

/** 32 random bytes, base64url without padding: 43 characters. */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

export function joinCommand(line: string): string {
  return `ws-daemon join ${shellQuote(line)}`;
}

export function usage(message: string): never {
  throw new CliError(message, EXIT.USAGE);
}

export function configError(message: string): never {
  throw new CliError(message, EXIT.CONFIG);
}
