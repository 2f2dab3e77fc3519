/**
 * Forwarding a command to a peer (a `&cmd`, or the round trip of a
 * `+cmd PING`), once the router knows where it goes: a peer that cannot take
 * it is answered here, an original is sent it blind, and any other goes
 * into the outbox, answered by the peer.
 *
 * @module
 */

import { type CheckedCommand, needs } from "./commands/table.ts";
import {
  type Message,
  ProtocolError,
  Status,
  type StatusReport,
  withoutTo,
} from "./protocol.ts";
import { newRef } from "./outbox/ref.ts";
import type { LocalConnection } from "./local/connection.ts";
import type { PeerLink } from "./remote/peer_link.ts";
import type { Outbox } from "./outbox/outbox.ts";
import type { EntryOptions, Owner } from "./outbox/entry.ts";
import type { EventRelay } from "./events/relay.ts";

export interface CommandForwarderOptions {
  /** Where a command waits for the peer's answer. */
  outbox: Outbox;
  /** Where a SUBSCRIBE's events are routed to its asker. */
  relay: EventRelay;
  /**
   * The -2 for a command with no peer to go to (the router's: it knows
   * whether the daemon is stopping, and what a client may reach).
   */
  noPeer: (name?: string) => StatusReport;
  /** Answers the connection here, as the router does (log line, event). */
  answer: (
    connection: LocalConnection,
    message: Message,
    report: StatusReport,
  ) => void;
}

/** Where a command goes: one peer (its link, if it is ready), or many. */
export type CommandPeers =
  | { name?: string; link?: PeerLink }
  | (PeerLink | string)[];

export class CommandForwarder {
  readonly #options: CommandForwarderOptions;

  constructor(options: CommandForwarderOptions) {
    this.#options = options;
  }

  /** Sends `command` to `peers`, answered from there. */
  forward(
    connection: LocalConnection,
    message: Message,
    command: CheckedCommand,
    text: string,
    peers: CommandPeers,
  ): void {
    const options: EntryOptions = { command: true, code: command.code };
    if (Array.isArray(peers)) {
      return this.#fanOut(connection, message, text, command, peers);
    }
    const link = peers.link;
    if (!link) {
      this.#options.answer(
        connection,
        message,
        this.#options.noPeer(peers.name),
      );
      return;
    }
    const refused = refusal(link, command);
    if (refused !== undefined) {
      throw new ProtocolError(refused.error, {
        ...message,
        status: refused.status,
      });
    }
    if (!link.has("request-ref")) {
      // An original runs it without a word back (Part 1): sent is all we know.
      if (!link.send(text)) {
        this.#options.answer(connection, message, this.#options.noPeer());
        return;
      }
      this.#options.answer(connection, message, { status: 0, peer: link.name });
      return;
    }
    if (command.code !== "SUBSCRIBE") {
      this.#options.outbox.submit(connection, message, text, {
        ...options,
        link,
      });
      return;
    }
    // Its events come under its ref, from the moment the peer answers.
    const ref = newRef();
    const relay = this.#options.relay;
    relay.expect(ref, connection, link);
    const owner: Owner = {
      owe: () => connection.owe(),
      reply: (report) => connection.reply(report),
      settle: (report) => {
        relay.answered(ref, report.status);
        connection.settle(report);
      },
    };
    this.#options.outbox.submit(owner, message, text, {
      ...options,
      link,
      ref,
    });
  }

  /**
   * A command to many peers: each peer's answer, then the summary. A peer
   * that cannot take it is answered here, and an original is sent it blind.
   */
  #fanOut(
    connection: LocalConnection,
    message: Message,
    text: string,
    command: CheckedCommand,
    peers: (PeerLink | string)[],
  ): void {
    if (command.code === "SUBSCRIBE") {
      throw new ProtocolError(
        "Cannot subscribe as 'to' must name one peer: subscribe to each peer on its own",
        message,
      );
    }
    const answered = new Map<string, StatusReport>();
    const sent: (PeerLink | string)[] = [];
    for (const peer of peers) {
      if (typeof peer === "string") {
        sent.push(peer);
        continue;
      }
      const refused = refusal(peer, command);
      if (refused !== undefined) {
        answered.set(peer.name, { ...refused, peer: peer.name });
      } else if (!peer.has("request-ref")) {
        answered.set(
          peer.name,
          peer.send(withoutTo(text))
            ? { status: 0, peer: peer.name }
            : { status: Status.NO_PEER, error: "link closed", peer: peer.name },
        );
      } else sent.push(peer);
    }
    this.#options.outbox.submitFanOut(
      connection,
      message,
      text,
      { command: true, code: command.code },
      sent,
      answered,
    );
  }
}

/** Why `link` cannot take `command`, if it cannot. */
function refusal(
  link: PeerLink,
  command: CheckedCommand,
): { status: number; error: string } | undefined {
  const { original, feature } = needs(command.code);
  if (!link.has("request-ref")) {
    return original ? undefined : {
      status: Status.REJECTED,
      error:
        `peer ${link.name} is an original ws-daemon, which does not answer ${command.code}`,
    };
  }
  if (feature !== undefined && !link.has(feature)) {
    return {
      status: Status.REJECTED,
      error:
        `peer ${link.name} does not answer ${command.code} (it does not announce "${feature}")`,
    };
  }
  if (command.code === "STATUS") {
    // A status settles a request only when the daemon that ran it sends
    // it; one relayed from a local process would be a forgery.
    return {
      status: Status.REFUSED,
      error:
        `refused: a STATUS is not relayed to ${link.name}: a peer of this project takes a status only from the daemon that ran the request`,
    };
  }
  return undefined;
}
