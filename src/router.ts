/**
 * Where each message goes and where its status returns.
 *
 * Local side: a script message goes to a peer (the one link in client mode,
 * the next client in turn in server mode) and is remembered in that link's
 * pending table together with the local connection that sent it; the peer's
 * STATUS is matched back to it and written to that connection only. Peer side:
 * a script message runs a script, and its status goes back over the same link.
 *
 * @module
 */

import { checkCommand, type Mode, pauseMs, peerMode } from "./commands.ts";
import {
  CommandCode,
  encodeCommand,
  encodeStatusFrame,
  FEATURES,
  LOCAL_COMMAND,
  type Message,
  parseCommand,
  parseHello,
  parseMessage,
  parseStatusData,
  ProtocolError,
  REMOTE_COMMAND,
  Status,
  type StatusData,
  type StatusReport,
  withId,
} from "./protocol.ts";
import { checkScriptName, type ScriptRunner } from "./scripts.ts";
import type { LocalConnection, LocalHandler } from "./local/connection.ts";
import type { PeerHandler, PeerLink } from "./remote/peer_link.ts";
import type { Logger } from "./log.ts";

export interface RouterOptions {
  mode: Mode;
  /** This daemon's name, sent in HELLO. */
  name: string;
  version: string;
  runner: ScriptRunner;
  log: Logger;
  /** The peer the next request goes to, if any is connected. */
  pickPeer(): PeerLink | undefined;
  /** Client mode only: drop the connection for `ms`. */
  pause?(ms: number): void;
}

const PONG = encodeCommand(REMOTE_COMMAND, CommandCode.PONG, null);

export class Router implements LocalHandler, PeerHandler {
  readonly #options: RouterOptions;
  #stopping = false;

  constructor(options: RouterOptions) {
    this.#options = options;
  }

  /** From now on, new work is refused with -2; what is under way goes on. */
  stopAccepting(): void {
    this.#stopping = true;
  }

  // ---- local side -------------------------------------------------------

  onOversize(connection: LocalConnection, limit: number): void {
    connection.reply({
      status: Status.REJECTED,
      error: `message rejected as it is longer than the ${limit}-byte limit`,
    });
  }

  onLine(connection: LocalConnection, text: string): void {
    let message: Message;
    try {
      message = parseMessage(text);
    } catch (error) {
      connection.reply((error as ProtocolError).toReport());
      return;
    }
    try {
      if (message.name === LOCAL_COMMAND) {
        this.#runLocalCommand(connection, message);
      } else if (message.name === REMOTE_COMMAND) {
        this.#sendRemoteCommand(connection, message, text);
      } else this.#sendScript(connection, message, text);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      connection.reply(error.toReport());
    }
  }

  #runLocalCommand(connection: LocalConnection, message: Message): void {
    const command = checkCommand(parseCommand(message), this.#options.mode);
    if ("error" in command) throw new ProtocolError(command.error, message);
    if (command.code === "STATUS") {
      connection.reply(command.data);
      return;
    }
    this.#options.pause?.(command.ms);
    connection.reply(withId({ status: 0 }, message));
  }

  #sendRemoteCommand(
    connection: LocalConnection,
    message: Message,
    text: string,
  ): void {
    const command = checkCommand(
      parseCommand(message),
      peerMode(this.#options.mode),
    );
    if ("error" in command) throw new ProtocolError(command.error, message);
    const link = this.#stopping ? undefined : this.#options.pickPeer();
    if (!link?.send(text)) {
      connection.reply(withId(this.#noPeer(), message));
      return;
    }
    connection.reply(withId({ status: 0, peer: link.name }, message));
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
    const link = this.#stopping ? undefined : this.#options.pickPeer();
    if (!link) {
      connection.reply(withId(this.#noPeer(), message));
      return;
    }
    const entry = link.pending.add(connection, message);
    // To a peer without request-ref the message goes unchanged (Part 1).
    const frame = link.has("request-ref")
      ? JSON.stringify({ ...message.fields, ref: entry.ref })
      : text;
    connection.owe();
    // A refused send may have closed the link, which answers every pending
    // request itself; answer here only if this one was not among them.
    if (!link.send(frame) && link.pending.remove(entry)) {
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
        : this.#options.mode === "server"
        ? "no client is connected"
        : "not connected to the server",
    };
  }

  // ---- peer side --------------------------------------------------------

  onOpen(link: PeerLink): void {
    const { name, version } = this.#options;
    link.send(encodeCommand(REMOTE_COMMAND, CommandCode.HELLO, {
      version,
      name,
      features: FEATURES,
    }));
    this.#options.log.debug(`${link.label}: connection open, HELLO sent`);
  }

  onClose(link: PeerLink, reason: string): void {
    const orphans = link.pending.drain();
    this.#options.log.info(
      `peer ${link.name} disconnected: ${reason}${
        orphans.length ? `; ${orphans.length} request(s) answered -2` : ""
      }`,
    );
    for (const entry of orphans) {
      entry.owner.settle(withId({
        status: Status.NO_PEER,
        error: `peer ${link.name} disconnected before answering`,
      }, entry));
    }
  }

  onFrame(link: PeerLink, text: string): void {
    const { log } = this.#options;
    let message: Message;
    try {
      message = parseMessage(text);
    } catch (error) {
      log.warn(`from ${link.name}: frame dropped: ${(error as Error).message}`);
      return;
    }
    if (message.name === REMOTE_COMMAND) {
      this.#runPeerCommand(link, message);
    } else if (message.name === LOCAL_COMMAND) {
      log.warn(
        `from ${link.name}: "+cmd" frame dropped: it is for local sockets only`,
      );
    } else {
      this.#runScript(link, message).catch((error) => {
        log.error(`script ${message.name}: ${(error as Error).message}`);
      });
    }
  }

  #runPeerCommand(link: PeerLink, message: Message): void {
    const { log, mode } = this.#options;
    let code: string, data: unknown;
    try {
      ({ code, data } = parseCommand(message));
    } catch (error) {
      log.warn(
        `from ${link.name}: command dropped: ${(error as Error).message}`,
      );
      return;
    }
    switch (code) {
      case CommandCode.STATUS:
        return this.#deliverStatus(link, data);
      case CommandCode.HELLO: {
        link.hello = parseHello(data);
        const hello = link.hello;
        log.info(
          `peer ${link.name} (${link.label}) says hello: version ${hello?.version}, features [${
            hello?.features.join(", ")
          }]`,
        );
        return;
      }
      case CommandCode.PING:
        if (link.has("heartbeat")) link.send(PONG);
        return;
      case CommandCode.PONG:
        return;
      case CommandCode.PAUSE: {
        const ms = pauseMs(data);
        if (mode !== "client") {
          log.warn(`from ${link.name}: PAUSE ignored: a server does not pause`);
        } else if (typeof ms === "string") log.warn(`from ${link.name}: ${ms}`);
        else this.#options.pause?.(ms);
        return;
      }
      default:
        log.info(
          `from ${link.name}: unknown command code ${
            JSON.stringify(code)
          } ignored`,
        );
    }
  }

  #deliverStatus(link: PeerLink, data: unknown): void {
    const { log } = this.#options;
    // The original reports a script killed by a signal as status null.
    if (
      typeof data === "object" && data !== null &&
      (data as StatusData).status === null
    ) {
      data = {
        ...data,
        status: Status.CANNOT_RUN,
        error: "peer reported no exit code (script killed by a signal?)",
      };
    }
    const status = parseStatusData(data);
    if (typeof status === "string") {
      log.warn(`from ${link.name}: status dropped: ${status}`);
      return;
    }
    const entry = link.pending.take(status);
    if (!entry) {
      log.warn(
        `from ${link.name}: status for id ${
          JSON.stringify(status.id)
        } that no request waits for; dropped`,
      );
      return;
    }
    const { ref: _ref, ...report } = status;
    report.peer ??= link.name;
    entry.owner.settle(report);
  }

  async #runScript(link: PeerLink, message: Message): Promise<void> {
    const { log, runner } = this.#options;
    let status: StatusData;
    if (this.#stopping) {
      status = withId(
        { status: Status.NO_PEER, error: "peer is shutting down" },
        message,
      );
    } else {
      status = await runner.run({
        name: message.name,
        id: message.id,
        hasId: message.hasId,
        params: message.params,
        peer: link.name,
      });
    }
    const ref = message.fields.ref;
    if (typeof ref === "string") status.ref = ref;
    if (!link.send(encodeStatusFrame(status))) {
      log.warn(
        `status ${status.status} of script ${message.name} not delivered: ${link.name} is gone`,
      );
    }
  }
}
