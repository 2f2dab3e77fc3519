/**
 * Who may connect and what they may do: the bearer check a server makes
 * before it upgrades a connection, and the name lists (`scripts`,
 * `commands`, `peerScripts`) checked for every request.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import type { ServerTrust } from "../config.ts";

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** Who a connection is, when its credentials are good. */
export type Authenticated =
  /** The server is open: no credentials are asked for. */
  | { kind: "open" }
  /** The shared secret: the peer's name comes from its HELLO. */
  | { kind: "secret" }
  /** A peer's own token: that entry's name is the peer's name. */
  | { kind: "peer"; name: string };

export type AuthResult = Authenticated | { kind: "refused"; reason: string };

/**
 * Checks `Authorization: Bearer <secret or token>` against a server's trust.
 * Every credential is compared, as SHA-256 digests in constant time, so how
 * long a check takes says nothing about which one was close.
 */
export class BearerCheck {
  readonly #open: boolean;
  readonly #secret: Uint8Array | undefined;
  readonly #peers: { name: string; digest: Uint8Array }[];

  constructor(trust: ServerTrust) {
    this.#open = trust.secret === undefined && trust.peers.length === 0;
    this.#secret = trust.secret === undefined
      ? undefined
      : digest(trust.secret);
    this.#peers = trust.peers.map((peer) => ({
      name: peer.name,
      digest: digest(peer.token),
    }));
  }

  /** Whether connections are let in without credentials. */
  get open(): boolean {
    return this.#open;
  }

  check(authorization: string | null): AuthResult {
    if (this.#open) return { kind: "open" };
    if (authorization === null) {
      return { kind: "refused", reason: "no Authorization header" };
    }
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (!match) {
      return { kind: "refused", reason: "Authorization is not a Bearer token" };
    }
    const presented = digest(match[1]);
    let found: Authenticated | undefined;
    for (const peer of this.#peers) {
      if (timingSafeEqual(presented, peer.digest) && !found) {
        found = { kind: "peer", name: peer.name };
      }
    }
    if (this.#secret && timingSafeEqual(presented, this.#secret) && !found) {
      found = { kind: "secret" };
    }
    return found ?? { kind: "refused", reason: "wrong secret or token" };
  }
}

/** Whether `name` matches one of `globs` (`*` is any run of characters). */
export function matchesAny(name: string, globs: readonly string[]): boolean {
  return globs.some((glob) => globToRegExp(glob).test(name));
}

const compiled = new Map<string, RegExp>();
/** Globs kept compiled at most: local processes may send any (`to`). */
const MAX_COMPILED = 1024;

function globToRegExp(glob: string): RegExp {
  let regexp = compiled.get(glob);
  if (regexp === undefined) {
    const source = glob.split("*").map((part) =>
      part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")
    ).join(".*");
    regexp = new RegExp(`^${source}$`, "s");
    if (compiled.size >= MAX_COMPILED) compiled.clear();
    compiled.set(glob, regexp);
  }
  return regexp;
}

/** Whether a list allows `name`: an unset list allows everything. */
export function allows(
  list: readonly string[] | undefined,
  name: string,
): boolean {
  return list === undefined || matchesAny(name, list);
}
