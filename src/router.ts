/**
 * Where each local message goes and where its status returns.
 *
 * A script message goes to the link the `Remote` picks, and is remembered in
 * that link's pending table with the local connection that sent it; the
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
  requestMs,
  Status,
  type StatusReport,
  withId,
  withRef,
} from "./protocol.ts";
import { LOCAL_COMMAND } from "./protocol.ts";
import { checkScriptName } from "./scripts.ts";
import type { LocalConnection, LocalHandler } from "./local/connection.ts";
import { FRAME_SLACK_BYTES, type PeerLink } from "./remote/peer_link.ts";
import type { Remote } from "./remote/remote.ts";
import type { Logger } from "./log.ts";

export interface RouterOptions {
  remote: Remote;
  log: Logger;
  /** This daemon's frame limit: what a peer that does not say accepts. */
  maxMessageBytes: number;
  /** Requests one local connection may have in flight. */
  maxInFlight: number;
  /** How long a request waits for its status when it sets no deadlineMs. */
  deadlineMs?: number;
}

const encoder = new TextEncoder();

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
    const link = this.#pick(connection, message);
    if (!link) return;
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
    this.#sendTracked(connection, message, text, link);
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
    const deadline = requestMs(message, "deadlineMs") ??
      this.#options.deadlineMs;
    const link = this.#pick(connection, message);
    if (link) this.#sendTracked(connection, message, text, link, deadline);
  }

  /** The link a request goes to; undefined after answering -2. */
  #pick(
    connection: LocalConnection,
    message: Message,
  ): PeerLink | undefined {
    const link = this.#stopping ? undefined : this.#options.remote.pick();
    if (!link) connection.reply(withId(this.#noPeer(), message));
    return link;
  }

  /** Sends a request that the peer answers, and waits for its status. */
  #sendTracked(
    connection: LocalConnection,
    message: Message,
    text: string,
    link: PeerLink,
    deadlineMs?: number,
  ): void {
    // To a peer without request-ref the message goes unchanged (Part 1).
    const withRefs = link.has("request-ref");
    const entry = link.pending.add(connection, message, withRefs);
    const frame = withRefs ? withRef(text, entry.ref) : text;
    const limit = link.hello?.maxMessageBytes ?? this.#options.maxMessageBytes;
    // A peer takes frames a little over its limit, for the ref we add.
    const most = limit + FRAME_SLACK_BYTES;
    // Cheap first: only a frame that might be too long is measured.
    if (frame.length * 3 > most && encoder.encode(frame).length > most) {
      link.pending.remove(entry);
      throw new ProtocolError(
        `message rejected as it would be longer than ${link.name}'s ${limit}-byte frame limit`,
        message,
      );
    }
    connection.owe();
    if (deadlineMs !== undefined) {
      // The status may still come (the script may be running): the asker is
      // told the truth, that none came in time.
      entry.timer = setTimeout(() => {
        if (!link.pending.remove(entry)) return;
        connection.settle(withId({
          status: Status.TIMEOUT,
          error:
            `no status from ${link.name} within deadlineMs (${deadlineMs} ms)`,
          peer: link.name,
        }, message));
      }, deadlineMs);
    }
    // A refused send may have closed the link, which answers every pending
    // request itself; answer here only if this one was not among them.
    // A send the budget refuses closes the link inside send(), which answers
    // this entry as never sent.
    entry.sent = false;
    const sent = link.send(frame);
    entry.sent = sent;
    if (!sent && link.pending.remove(entry)) {
      connection.settle(withId(
        {
          status: Status.NO_PEER,
          error: `could not send to peer ${link.name}`,
        },
        message,
      ));
    }
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
