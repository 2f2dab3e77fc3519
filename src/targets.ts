/**
 * A request's `to`: which peers it goes to. A name is that peer only; a list
 * of names, a glob (`*` matches any run of characters) or `"*"` is a
 * fan-out, one delivery per peer. Without `to` a request goes round-robin.
 *
 * @module
 */

import { type Message, ProtocolError, Status } from "./protocol.ts";
import { matchesAny } from "./trust/auth.ts";
import type { PeerLink } from "./remote/peer_link.ts";

/** Peers one fan-out may name. */
export const MAX_TARGETS = 256;
const MAX_NAME_CHARS = 256;

export type Target =
  | { kind: "one"; name: string }
  | { kind: "names"; names: string[] }
  | { kind: "glob"; glob: string };

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? "nothing";
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

/**
 * The request's `to`, or undefined when it has none.
 *
 * @throws {ProtocolError} (-4) when it is neither a name, a glob, nor a
 * list of 1 to 256 names.
 */
export function parseTarget(message: Message): Target | undefined {
  const to = message.fields.to;
  if (to === undefined) return undefined;
  const isName = (value: unknown): value is string =>
    typeof value === "string" && value.length > 0 &&
    value.length <= MAX_NAME_CHARS;
  if (isName(to)) {
    return to.includes("*")
      ? { kind: "glob", glob: to }
      : { kind: "one", name: to };
  }
  if (
    Array.isArray(to) && to.length > 0 && to.length <= MAX_TARGETS &&
    to.every((name) => isName(name) && !name.includes("*"))
  ) {
    return { kind: "names", names: [...new Set(to as string[])] };
  }
  throw new ProtocolError(
    `Cannot send the request as 'to' must be a peer's name, a glob such as "web-*", "*", or a list of 1 to ${MAX_TARGETS} names: found ${
      describe(to)
    }`,
    message,
  );
}

/** Where a targeted request goes. */
export type Targets =
  /** One peer, by name: sent like any request, but only there. */
  | { kind: "one"; name: string; link?: PeerLink }
  /** A fan-out: ready links, and names of peers not connected (-2 each). */
  | { kind: "fanout"; peers: (PeerLink | string)[] };

/**
 * The peers `target` names among `links` (ready ones only).
 *
 * @throws {ProtocolError} (-2) for a glob that matches no ready peer.
 */
export function resolveTargets(
  target: Target,
  links: PeerLink[],
  message: Message,
): Targets {
  const ready = links.filter((link) => link.isReady);
  switch (target.kind) {
    case "one":
      return {
        kind: "one",
        name: target.name,
        link: ready.find((link) => link.name === target.name),
      };
    case "names":
      return {
        kind: "fanout",
        peers: target.names.map((name) =>
          ready.find((link) => link.name === name) ?? name
        ),
      };
    case "glob": {
      const matched = ready.filter((link) =>
        matchesAny(link.name, [target.glob])
      );
      if (matched.length === 0) {
        throw new ProtocolError(
          `not delivered: no connected peer matches ${
            JSON.stringify(target.glob)
          }`,
          { ...message, status: Status.NO_PEER },
        );
      }
      return { kind: "fanout", peers: matched };
    }
  }
}
