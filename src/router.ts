/**
 * Where each local message goes and where its status returns.
 *
 * A script message goes into the daemon's outbox with the local connection
 * that sent it; the outbox sends it to the link its `to` names, or the one
 * the `Remote` picks, and the peer's STATUS is matched back to it (see
 * `peer_frames.ts`) and written to that connection only. `+cmd` runs here
 * (`commands/local.ts`); `&cmd` goes to the peer (`command_forwarding.ts`).
 *
 * Every local message gets exactly one answer, whatever it holds (a fan-out:
 * one line per peer, then its summary): what cannot be read is -4, what is
 * not allowed -5, what cannot be delivered -2.
 *
 * @module
 */

import { checkCommand, type CheckedCommand } from "./commands/table.ts";
import {
  LOCAL_COMMAND,
  type Message,
  parseCommand,
  parseMessage,
  ProtocolError,
  REMOTE_COMMAND,
  shown,
  Status,
  type StatusReport,
  withId,
} from "./protocol.ts";
import { requestKey, requestMs } from "./request_fields.ts";
import { checkScriptName } from "./scripts.ts";
import { parseTarget, resolveTargets } from "./targets.ts";
import type { LocalConnection, LocalHandler } from "./local/connection.ts";
import type { Remote } from "./remote/remote.ts";
import type { Outbox } from "./outbox/outbox.ts";
import type { LocalCommands } from "./commands/local.ts";
import type { EventRelay } from "./events/relay.ts";
import type { EventBus } from "./events/bus.ts";
import { CommandForwarder, type CommandPeers } from "./command_forwarding.ts";
import type { Logger } from "./log.ts";

export interface RouterOptions {
  remote: Remote;
  /** Where requests wait for their status, beyond any one link. */
  outbox: Outbox;
  /** What `+cmd` runs. */
  commands: LocalCommands;
  relay: EventRelay;
  bus: EventBus;
  log: Logger;
  /** This daemon's frame limit: what a peer that does not say accepts. */
  maxMessageBytes: number;
  /** Requests one local connection may have in flight. */
  maxInFlight: number;
  /** How long a request waits for its status when it sets no deadlineMs. */
  deadlineMs?: number;
}

/** Request fields that must be booleans when present. */
const FLAGS = ["output", "stdin"] as const;

export class Router implements LocalHandler {
  readonly #options: RouterOptions;
  readonly #forwarder: CommandForwarder;
  #stopping = false;

  constructor(options: RouterOptions) {
    this.#options = options;
    this.#forwarder = new CommandForwarder({
      outbox: options.outbox,
      relay: options.relay,
      noPeer: (name) => this.#noPeer(name),
      answer: (connection, message, report) =>
        this.#answer(connection, message, report),
    });
  }

  /**
   * Answers a request here, without a peer: the answer is logged and on the
   * bus as any other status returned.
   */
  #answer(
    connection: LocalConnection,
    message: Message | undefined,
    report: StatusReport,
  ): void {
    const shown = message ? withId(report, message) : report;
    connection.reply(shown);
    const name = message === undefined
      ? "(unreadable)"
      : message.name === LOCAL_COMMAND || message.name === REMOTE_COMMAND
      ? `${message.name} ${commandCode(message)}`
      : message.name;
    this.#options.bus.emit("status.returned", {
      name,
      ...(shown.id !== undefined || message?.hasId ? { id: shown.id } : {}),
      ...(typeof shown.peer === "string" ? { peer: shown.peer } : {}),
      status: shown.status,
      durationMs: 0,
      ...(typeof shown.error === "string" ? { error: shown.error } : {}),
    });
  }

  /** New limits (SIGHUP), for requests from now on. */
  configure(limits: Pick<RouterOptions, "maxInFlight" | "deadlineMs">): void {
    this.#options.maxInFlight = limits.maxInFlight;
    this.#options.deadlineMs = limits.deadlineMs;
  }

  /** From now on, new work is refused with -2; what is under way goes on. */
  stopAccepting(): void {
    this.#stopping = true;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  onOversize(connection: LocalConnection, limit: number): void {
    connection.reply({
      status: Status.REJECTED,
      error: `message rejected as it is longer than the ${limit}-byte limit`,
    });
  }

  onLine(connection: LocalConnection, text: string): void {
    let message: Message | undefined;
    try {
      message = parseMessage(text);
      if (message.name === LOCAL_COMMAND) {
        this.#runLocalCommand(connection, message);
      } else if (message.name === REMOTE_COMMAND) {
        this.#admit(connection, message);
        this.#sendRemoteCommand(connection, message, text);
      } else {
        this.#admit(connection, message);
        this.#sendScript(connection, message, text);
      }
    } catch (error) {
      if (error instanceof ProtocolError) {
        if (error.status === Status.REFUSED) {
          this.#options.bus.emit("refused", {
            reason: error.message,
            status: error.status,
            ...(message ? { name: message.name } : {}),
            ...(message?.hasId ? { id: message.id } : {}),
          });
        }
        this.#answer(connection, message, error.toReport());
        return;
      }
      // A bug must still answer the request, and never end the reader.
      this.#options.log.error(
        `${connection.label}: ${(error as Error).stack ?? error}`,
      );
      connection.reply(withId({
        status: Status.REJECTED,
        error: "message could not be handled (see the daemon's log)",
      }, message ?? { hasId: false }));
    }
  }

  /** The local connection's limits: requests in flight, and its rate. */
  #admit(connection: LocalConnection, message: Message): void {
    const { maxInFlight } = this.#options;
    if (connection.owed >= maxInFlight) {
      throw new ProtocolError(
        `refused: ${maxInFlight} requests of this connection are in flight (maxInFlight)`,
        { ...message, status: Status.REFUSED },
      );
    }
    if (!connection.rate.take()) {
      throw new ProtocolError(
        "refused: this connection sends requests faster than its rate allows (rate)",
        { ...message, status: Status.REFUSED },
      );
    }
  }

  #runLocalCommand(connection: LocalConnection, message: Message): void {
    const command = checkCommand(
      parseCommand(message),
      this.#options.remote.mode,
      "+cmd",
    );
    if ("error" in command) throw new ProtocolError(command.error, message);
    this.#options.commands.run(connection, message, command);
  }

  #sendRemoteCommand(
    connection: LocalConnection,
    message: Message,
    text: string,
  ): void {
    const { remote } = this.#options;
    const command = checkCommand(parseCommand(message), remote.mode, "&cmd");
    if ("error" in command) throw new ProtocolError(command.error, message);
    if (command.code === "UNSUBSCRIBE") {
      // Bookkeeping of this daemon's own subscriptions through links.
      const count = this.#options.relay.unsubscribe(connection, command.data);
      connection.reply(
        withId({ status: 0, data: { subscriptions: count } }, message),
      );
      return;
    }
    this.forward(connection, message, command, text);
  }

  /**
   * Sends a command to the peer (or the peers `to` names), answered from
   * there: a `&cmd`, or the round trip of a `+cmd PING`.
   */
  forward(
    connection: LocalConnection,
    message: Message,
    command: CheckedCommand,
    // A `+cmd PING` goes to the peer as the `&cmd` it stands for.
    text = JSON.stringify({ ...message.fields, name: REMOTE_COMMAND }),
  ): void {
    const peers = this.#peersFor(message);
    if (peers === "stopping") {
      this.#answer(connection, message, this.#noPeer());
      return;
    }
    this.#forwarder.forward(connection, message, command, text, peers);
  }

  /**
   * Where a message with `to` goes: one peer (its link, if it is ready), or
   * the peers of a fan-out; without `to`, the next in turn.
   */
  #peersFor(
    message: Message,
  ): "stopping" | CommandPeers {
    if (this.#stopping) return "stopping";
    const { remote } = this.#options;
    const target = parseTarget(message);
    if (target === undefined) return { link: remote.pick() };
    const targets = resolveTargets(target, remote.links(), message);
    if (targets.kind === "fanout") return targets.peers;
    return targets;
  }

  #sendScript(
    connection: LocalConnection,
    message: Message,
    text: string,
  ): void {
    // The peer checks the name too; checking here as well answers at once and
    // spares an original peer names that would crash it.
    const badName = checkScriptName(message.name);
    if (badName !== undefined) {
      throw new ProtocolError(`invalid script name: ${badName}`, {
        status: Status.CANNOT_RUN,
        id: message.id,
        hasId: message.hasId,
      });
    }
    requestMs(message, "timeoutMs"); // a bad one is -4 here, before it travels
    requestKey(message);
    for (const flag of FLAGS) {
      const value = message.fields[flag];
      if (value !== undefined && typeof value !== "boolean") {
        throw new ProtocolError(
          `Cannot run the request as '${flag}' must be true or false: found ${
            typeof value === "string" ? shown(value) : JSON.stringify(value)
          }`,
          message,
        );
      }
    }
    const deadlineMs = requestMs(message, "deadlineMs") ??
      this.#options.deadlineMs;
    const target = parseTarget(message);
    if (this.#stopping) {
      this.#answer(connection, message, this.#noPeer());
      return;
    }
    const { outbox, remote } = this.#options;
    if (target === undefined) {
      outbox.submit(connection, message, text, { deadlineMs });
      return;
    }
    const targets = resolveTargets(target, remote.links(), message);
    if (targets.kind === "fanout") {
      outbox.submitFanOut(
        connection,
        message,
        text,
        { deadlineMs },
        targets.peers,
      );
      return;
    }
    if (!targets.link) {
      this.#answer(connection, message, this.#noPeer(targets.name));
      return;
    }
    outbox.submit(connection, message, text, {
      deadlineMs,
      target: targets.name,
      link: targets.link,
    });
  }

  #noPeer(name?: string): StatusReport {
    if (this.#stopping) {
      return { status: Status.NO_PEER, error: "daemon is shutting down" };
    }
    if (name === undefined) {
      return { status: Status.NO_PEER, error: this.#options.remote.whyNone() };
    }
    const server = this.#options.remote.mode === "client"
      ? this.#options.remote.pick()?.name
      : undefined;
    return {
      status: Status.NO_PEER,
      error: `peer ${JSON.stringify(name)} is not connected${
        server === undefined
          ? ""
          : `: a client reaches only its server, ${JSON.stringify(server)}`
      }`,
      peer: name,
    };
  }
}

/** A command message's code, for the log: "?" when it has none. */
function commandCode(message: Message): string {
  const params = message.params as { code?: unknown } | null;
  return typeof params?.code === "string" ? params.code.slice(0, 40) : "?";
}
