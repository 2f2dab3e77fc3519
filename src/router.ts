/**
 * Where each local message goes and where its status returns.
 *
 * A script message goes into the daemon's outbox with the local connection
 * that sent it; the outbox sends it to the link the `Remote` picks, and the
 * peer's STATUS is matched back to it (see `peer_frames.ts`) and written to
 * that connection only. `+cmd` runs here; `&cmd` goes to the peer.
 *
 * Every local message gets exactly one answer, whatever it holds: what
 * cannot be read is -4, what is not allowed -5, what cannot be delivered -2.
 *
 * @module
 */

import { checkCommand, peerMode } from "./commands.ts";
import {
  CommandCode,
  type Message,
  parseCommand,
  parseMessage,
  ProtocolError,
  REMOTE_COMMAND,
  requestKey,
  requestMs,
  Status,
  type StatusReport,
  withId,
} from "./protocol.ts";
import { LOCAL_COMMAND } from "./protocol.ts";
import { checkScriptName } from "./scripts.ts";
import type { LocalConnection, LocalHandler } from "./local/connection.ts";
import type { Remote } from "./remote/remote.ts";
import type { Outbox } from "./outbox/outbox.ts";
import type { Logger } from "./log.ts";

export interface RouterOptions {
  remote: Remote;
  /** Where requests wait for their status, beyond any one link. */
  outbox: Outbox;
  log: Logger;
  /** This daemon's frame limit: what a peer that does not say accepts. */
  maxMessageBytes: number;
  /** Requests one local connection may have in flight. */
  maxInFlight: number;
  /** How long a request waits for its status when it sets no deadlineMs. */
  deadlineMs?: number;
}

export class Router implements LocalHandler {
  readonly #options: RouterOptions;
  #stopping = false;

  constructor(options: RouterOptions) {
    this.#options = options;
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
        connection.reply(error.toReport());
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
    const { remote } = this.#options;
    const command = checkCommand(parseCommand(message), remote.mode);
    if ("error" in command) throw new ProtocolError(command.error, message);
    if (command.code === "STATUS") {
      connection.reply(command.data);
      return;
    }
    if (command.code === "RESULT") {
      connection.reply(withId({
        status: 0,
        data: this.#options.outbox.result(command.id),
      }, message));
      return;
    }
    remote.pause(command.ms);
    connection.reply(withId({ status: 0 }, message));
  }

  #sendRemoteCommand(
    connection: LocalConnection,
    message: Message,
    text: string,
  ): void {
    const { remote } = this.#options;
    const { code, data } = parseCommand(message);
    const command = checkCommand({ code, data }, peerMode(remote.mode));
    if ("error" in command) throw new ProtocolError(command.error, message);
    if (code === CommandCode.RESULT) {
      throw new ProtocolError(
        "RESULT is answered by the daemon that holds the request: send it as +cmd",
        message,
      );
    }
    const link = this.#stopping ? undefined : remote.pick();
    if (!link) {
      connection.reply(withId(this.#noPeer(), message));
      return;
    }
    if (!link.has("request-ref")) {
      // An original runs it without a word back (Part 1): sent is all we know.
      if (!link.send(text)) {
        connection.reply(withId(this.#noPeer(), message));
        return;
      }
      connection.reply(withId({ status: 0, peer: link.name }, message));
      return;
    }
    if (code === CommandCode.STATUS) {
      // A status settles a request only when the daemon that ran it sends
      // it; one relayed from a local process would be a forgery.
      throw new ProtocolError(
        `refused: a STATUS is not relayed to ${link.name}: a peer of this project takes a status only from the daemon that ran the request`,
        { ...message, status: Status.REFUSED },
      );
    }
    // A peer of this project answers the command with a status for its ref.
    this.#options.outbox.submit(connection, message, text, {
      command: true,
      link,
    });
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
    const deadlineMs = requestMs(message, "deadlineMs") ??
      this.#options.deadlineMs;
    if (this.#stopping) {
      connection.reply(withId(this.#noPeer(), message));
      return;
    }
    this.#options.outbox.submit(connection, message, text, { deadlineMs });
  }

  #noPeer(): StatusReport {
    return {
      status: Status.NO_PEER,
      error: this.#stopping
        ? "daemon is shutting down"
        : this.#options.remote.whyNone(),
    };
  }
}
