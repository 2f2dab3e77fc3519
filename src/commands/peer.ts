/**
 * The handlers of a peer's commands (`&cmd` a user of the peer sent): what
 * this daemon answers, for the peer's ref. Checked by the same table as
 * local commands (`table.ts`), after the peer's `commands` list and rate.
 *
 * @module
 */

import { Status, type StatusReport } from "../protocol.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import type { Remote } from "../remote/remote.ts";
import type { Outbox } from "../outbox/outbox.ts";
import type { PeerStreams } from "../events/relay.ts";
import type { CheckedCommand } from "./table.ts";
import { type DaemonFacts, info, listScripts, peers } from "./introspect.ts";

export interface PeerCommandsOptions {
  remote: Remote;
  outbox: Outbox;
  facts: DaemonFacts;
  streams: PeerStreams;
}

/** A command's answer, and what runs once it is sent. */
export interface PeerAnswer {
  report: StatusReport;
  after?: () => void;
}

export class PeerCommands {
  readonly #options: PeerCommandsOptions;

  constructor(options: PeerCommandsOptions) {
    this.#options = options;
  }

  run(
    link: PeerLink,
    command: CheckedCommand,
    ref: string | undefined,
  ): PeerAnswer {
    const { remote, outbox, facts, streams } = this.#options;
    switch (command.code) {
      case "PAUSE":
        // Answered first: the pause drops the link the answer goes on.
        return {
          report: { status: 0 },
          after: () => remote.pause(command.data),
        };
      case "STATUS":
        // One with a ref was relayed by a user: Part 2 never lets it settle
        // a request.
        return {
          report: {
            status: Status.REFUSED,
            error:
              "a relayed STATUS settles nothing: statuses come only from the daemon that ran the request",
          },
        };
      case "RESULT":
        return {
          report: {
            status: Status.REJECTED,
            error:
              "RESULT is answered by the daemon that holds the request: send it as +cmd",
          },
        };
      case "INFO":
        return { report: { status: 0, data: info(facts) } };
      case "PEERS":
        return {
          report: {
            status: 0,
            data: peers(remote.links(), (l) => outbox.inFlight(l)),
          },
        };
      case "SCRIPTS":
        // The peer's menu: what it may run here, not what exists.
        return {
          report: {
            status: 0,
            data: listScripts(facts.scriptsDir, link.policy.scripts),
          },
        };
      case "PING":
        return { report: { status: 0 } };
      case "SUBSCRIBE":
        if (ref === undefined) {
          return {
            report: {
              status: Status.REJECTED,
              error: "SUBSCRIBE needs a ref to name its events by",
            },
          };
        }
        // On a server, a client sees only what concerns itself.
        streams.subscribe(link, ref, command.data, remote.mode === "server");
        return {
          report: {
            status: 0,
            data: {
              events: command.data.events ?? "all",
              peers: command.data.peers ?? "all",
            },
          },
        };
      case "UNSUBSCRIBE":
        streams.unsubscribe(link, command.data);
        return { report: { status: 0 } };
    }
  }
}
