/**
 * The seam between the router and the WebSocket side: server mode (many
 * clients) and client mode (one server) both implement `Remote`, so the
 * router asks where a request goes and never switches on the mode.
 *
 * @module
 */

import type { Mode } from "../commands/table.ts";
import type { Hello } from "../protocol.ts";
import type { Logger } from "../log.ts";
import type { ClientTrust, ServerTrust } from "../config.ts";
import type { PeerHandler, PeerLink } from "./peer_link.ts";

export interface Remote {
  readonly mode: Mode;
  /** Opens the WebSocket side; returns what the ready line shows of it. */
  start(handler: PeerHandler): Promise<string>;
  /** Every open link, in any state. */
  links(): PeerLink[];
  /** The ready link the next request goes to, if there is one. */
  pick(): PeerLink | undefined;
  /** Why `pick()` found no link, for the -2 answer. */
  whyNone(): string;
  /**
   * Names a link and makes it ready: on its HELLO, or with `undefined` on
   * the first frame of (or a silence from) an original peer, which sends no
   * HELLO. A HELLO after that re-introduces it under its own name.
   */
  introduce(link: PeerLink, hello: Hello | undefined): void;
  /**
   * New credentials (SIGHUP): a server's trust, or a client's secret and
   * `peerScripts`.
   */
  reloadTrust(trust: ServerTrust | ClientTrust, peerScripts?: string[]): void;
  /** Client mode: drops the connection and reconnects after `ms`. */
  pause(ms: number): void;
  /** Closes every link and stops. */
  close(): Promise<void>;
}

/**
 * The header by which a daemon of this project says so, in its upgrade
 * request (client) and its 101 answer (server). A peer that says so must send
 * HELLO within handshakeTimeoutMs; an original never speaks first, so one
 * that does not is ready at once, named `peer-<n>`.
 */
export const PROJECT_HEADER = "ws-daemon";

/** Logs an introduction the way tests and operators look for it. */
export function logIntroduction(
  log: Logger,
  link: PeerLink,
  hello: Hello | undefined,
): void {
  if (hello === undefined) {
    log.info(
      `peer ${link.name} (${link.label}) sent no HELLO: taken for an original ws-daemon`,
      { peer: link.name, address: link.label, version: "original" },
    );
    return;
  }
  log.info(
    `peer ${link.name} (${link.label}) says hello: version ${hello.version}, features [${
      hello.features.join(", ")
    }]`,
    {
      peer: link.name,
      address: link.label,
      version: hello.version,
      features: hello.features,
    },
  );
}

/**
 * How often liveness is checked: forty times per heartbeat, so that a link
 * silent for 2 × heartbeatMs is dropped within a fortieth of a heartbeat of
 * that (125 ms at the default 5000), whatever the timer's phase.
 */
export function livenessTick(heartbeatMs: number): number {
  return Math.max(10, Math.floor(heartbeatMs / 40));
}

/**
 * How long a link may be silent before it is dropped: more than two
 * heartbeats. A live peer is heard at least once a heartbeat (a ping, its
 * pong, a frame).
 */
export function silenceLimitMs(heartbeatMs: number): number {
  return 2 * heartbeatMs;
}
