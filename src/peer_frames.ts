/**
 * What each frame from a peer does: a script message runs a script (if the
 * peer may run it, at its rate) and its status goes back over the same link;
 * a STATUS settles the request it answers; HELLO introduces the peer.
 *
 * A frame never makes the daemon throw, and every request that can be
 * answered is: a bad one with -4, a forbidden one with -5, each carrying the
 * sender's ref so that the asker is told.
 *
 * @module
 */

import { checkCommand } from "./commands/table.ts";
import type { PeerCommands } from "./commands/peer.ts";
import {
  CommandCode,
  encodeCommand,
  encodeStatusFrame,
  type Feature,
  LOCAL_COMMAND,
  type Message,
  parseCommand,
  parseHello,
  parseMessage,
  parseStatusData,
  ProtocolError,
  REMOTE_COMMAND,
  shown,
  Status,
  type StatusData,
  withId,
} from "./protocol.ts";
import { requestMs } from "./request_fields.ts";
import type { EventBus } from "./events/bus.ts";
import type { EventRelay, PeerStreams } from "./events/relay.ts";
import { runFlags, type ScriptRunner } from "./scripts.ts";
import type { PeerHandler, PeerLink } from "./remote/peer_link.ts";
import { exceeds, frameLimit } from "./remote/frame_limit.ts";
import type { Remote } from "./remote/remote.ts";
import { allows } from "./trust/auth.ts";
import type { Outbox } from "./outbox/outbox.ts";
import type { Inbox } from "./inbox/inbox.ts";
import { type AckBatcher, parseAck } from "./outbox/acks.ts";
import type { Logger } from "./log.ts";

export interface PeerFramesOptions {
  /** This daemon's name, sent in HELLO. */
  name: string;
  version: string;
  /** What this daemon announces in HELLO. */
  features: readonly Feature[];
  maxMessageBytes: number;
  remote: Remote;
  runner: ScriptRunner;
  outbox: Outbox;
  inbox: Inbox;
  acks: AckBatcher;
  commands: PeerCommands;
  bus: EventBus;
  relay: EventRelay;
  streams: PeerStreams;
  log: Logger;
  /** Whether the daemon is shutting down (new work is refused). */
  stopping(): boolean;
}

const PONG = encodeCommand(REMOTE_COMMAND, CommandCode.PONG, null);

export class PeerFrames implements PeerHandler {
  readonly #options: PeerFramesOptions;
  readonly #helloSent = new WeakSet<PeerLink>();

  constructor(options: PeerFramesOptions) {
    this.#options = options;
  }

  onOpen(link: PeerLink): void {
    this.#hello(link);
    this.#options.log.debug(`${link.label}: connection open, HELLO sent`);
  }

  /**
   * Sends HELLO once per link. The peer's HELLO can be read before this
   * side's open event has run (npm:ws on the server), and what a ready link
   * sends (redeliveries, owed statuses) must follow this side's HELLO.
   */
  #hello(link: PeerLink): void {
    if (this.#helloSent.has(link)) return;
    this.#helloSent.add(link);
    const { name, version, maxMessageBytes } = this.#options;
    link.send(encodeCommand(REMOTE_COMMAND, CommandCode.HELLO, {
      version,
      name,
      features: this.#options.features,
      maxMessageBytes,
    }));
  }

  onReady(link: PeerLink): void {
    const { outbox, inbox, bus } = this.#options;
    this.#hello(link);
    bus.emit("peer.up", {
      peer: link.name,
      address: link.label,
      ...(link.hello ? { version: link.hello.version } : {}),
      features: link.hello?.features ?? [],
    });
    inbox.onReady(link);
    outbox.onReady(link);
  }

  onClose(link: PeerLink, reason: string): void {
    const { outbox, log, bus, relay, streams } = this.#options;
    streams.linkClosed(link);
    relay.linkClosed(link, reason);
    if (link.state !== "connecting" && link.state !== "authenticated") {
      bus.emit("peer.down", { peer: link.name, address: link.label, reason });
    }
    // Requests to a peer with acknowledgements wait for it to come back; one
    // sent blind (to an original) may have run: its outcome is unknown.
    const unknown = outbox.onClosed(link, reason);
    log.info(
      `peer ${link.title} disconnected: ${reason}${
        unknown ? `; ${unknown} request(s) answered -6 (outcome unknown)` : ""
      }`,
      { peer: link.name, address: link.label, reason },
    );
  }

  onFrame(link: PeerLink, text: string): void {
    const { log, remote } = this.#options;
    let message: Message;
    try {
      message = parseMessage(text);
    } catch (error) {
      const { ref, message: reason } = error as ProtocolError;
      log.warn(`from ${link.name}: frame rejected: ${reason}`);
      if (link.state === "authenticated") remote.introduce(link, undefined);
      // A peer of this project is told, by the request's ref; an original
      // could not match an answer to anything, and gets none (Part 1).
      if (ref !== undefined) {
        this.answer(link, { status: Status.REJECTED, error: reason }, ref);
      }
      return;
    }
    const code = commandCode(message);
    if (code === CommandCode.HELLO) {
      remote.introduce(link, parseHello(parseCommand(message).data));
      return;
    }
    if (link.state === "authenticated") remote.introduce(link, undefined);
    if (message.name === REMOTE_COMMAND) {
      this.#runPeerCommand(link, message, code);
    } else if (message.name === LOCAL_COMMAND) {
      log.warn(
        `from ${link.name}: "+cmd" frame dropped: it is for local sockets only`,
      );
    } else {
      this.#runScript(link, message, text).catch((error) => {
        log.error(`script ${message.name}: ${(error as Error).stack}`);
      });
    }
  }

  /** Sends a status for a request of `link`, with its ref when it had one. */
  answer(link: PeerLink, status: StatusData, ref: string | undefined): void {
    if (ref !== undefined) {
      // The asker matches by ref and puts its own id back: echoing the id
      // would only make the answer longer than the request.
      delete status.id;
      status.ref = ref;
    }
    let frame = encodeStatusFrame(status);
    if (exceeds(frame, frameLimit(link, this.#options.maxMessageBytes))) {
      // An error quoting a long name can outgrow the peer's frame limit;
      // the status itself must still arrive.
      this.#options.log.warn(
        `status ${status.status} for ${link.name} too long to send whole; sent without its error text`,
      );
      const short: StatusData = { status: status.status };
      if (ref !== undefined) short.ref = ref;
      else if (Object.hasOwn(status, "id")) short.id = status.id;
      short.error = "the answer was too long to send; see the peer's log";
      frame = encodeStatusFrame(short);
    }
    if (!link.send(frame)) {
      this.#options.log.warn(
        `status ${status.status} not delivered: ${link.name} is gone`,
      );
    }
  }

  #runPeerCommand(
    link: PeerLink,
    message: Message,
    code: string | undefined,
  ): void {
    const { log, remote } = this.#options;
    const ref = typeof message.fields.ref === "string"
      ? message.fields.ref
      : undefined;
    if (code === undefined) {
      log.warn(`from ${link.name}: command dropped: no string params.code`);
      if (ref) {
        this.answer(link, { status: Status.REJECTED, error: "no code" }, ref);
      }
      return;
    }
    const data = parseCommand(message).data;
    // The link's own protocol first: never a user's command.
    switch (code) {
      case CommandCode.STATUS:
        if (ref === undefined) return this.#deliverStatus(link, data);
        break;
      case CommandCode.ACK: {
        if (!link.has("ack")) return;
        const { requests, statuses } = parseAck(data);
        this.#options.outbox.onAck(link, requests);
        this.#options.inbox.onStatusAck(link, statuses);
        return;
      }
      case CommandCode.PING:
        // A heartbeat has no ref; a user's PING does, and is answered.
        if (ref !== undefined) break;
        if (link.has("heartbeat")) link.send(PONG);
        return;
      case CommandCode.PONG:
        link.pong();
        return;
      case CommandCode.EVENT:
        if (link.has("events")) this.#options.relay.deliver(link, data);
        return;
      case CommandCode.HELLO:
        return;
    }
    // A command a user of the peer sent: the peer's policy, then its checks.
    const refuse = (status: number, error: string) => {
      log.warn(`from ${link.name}: command ${shown(code)} refused: ${error}`);
      this.#options.bus.emit("refused", {
        reason: error,
        status,
        peer: link.name,
        name: `&cmd ${code.slice(0, 40)}`,
      });
      if (ref) this.answer(link, withId({ status, error }, message), ref);
    };
    if (!allows(link.policy.commands, code)) {
      return refuse(
        Status.REFUSED,
        `peer ${link.name} may not send command ${
          shown(code)
        } (not in its "commands")`,
      );
    }
    if (!link.rate.take()) {
      return refuse(Status.REFUSED, `peer ${link.name} is over its rate`);
    }
    const checked = checkCommand({ code, data }, remote.mode, "peer");
    if ("error" in checked) return refuse(Status.REJECTED, checked.error);
    const { report, after } = this.#options.commands.run(link, checked, ref);
    if (report.status !== 0) return refuse(report.status, report.error ?? "");
    if (ref) this.answer(link, withId(report, message), ref);
    after?.();
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
    // A request sent with its ref matches only that ref, and only from the
    // link it went to (outbox.ts).
    const taken = this.#options.outbox.take(link, status);
    if (typeof status.ref === "string" && link.has("ack")) {
      // Acked even when nobody waits (a status sent again after a restart):
      // the peer may then stop sending it.
      this.#options.acks.status(link, status.ref);
    }
    if (!taken && typeof status.ref === "string" && link.has("ack")) {
      // Sent again after a reconnect or restart, recorded already.
      log.debug(`from ${link.name}: status for ${status.ref} again; acked`);
    } else if (!taken) {
      log.warn(
        `from ${link.name}: status that no request of this link waits for; dropped`,
      );
    }
  }

  async #runScript(
    link: PeerLink,
    message: Message,
    text: string,
  ): Promise<void> {
    const { runner, stopping } = this.#options;
    const ref = typeof message.fields.ref === "string"
      ? message.fields.ref
      : undefined;
    const about = {
      name: message.name,
      ...(message.hasId ? { id: message.id } : {}),
      peer: link.name,
    };
    this.#options.bus.emit("request.received", {
      ...about,
      ...(ref === undefined ? {} : { ref }),
    });
    const refuse = (error: string) => {
      this.#options.log.warn(`from ${link.name}: ${error}`);
      this.#options.bus.emit("refused", {
        ...about,
        reason: error,
        status: Status.REFUSED,
      });
      this.answer(
        link,
        withId({ status: Status.REFUSED, error }, message),
        ref,
      );
    };
    const acked = ref !== undefined && link.has("ack");
    // A request seen before (a redelivery) is answered by its first run: it
    // costs no rate, and a policy changed since cannot turn it into a -5.
    if (acked && this.#options.inbox.again(link, message, ref)) return;
    if (!allows(link.policy.scripts, message.name)) {
      return refuse(
        `peer ${link.name} may not run script ${shown(message.name)} here`,
      );
    }
    if (!link.rate.take()) {
      return refuse(
        `peer ${link.name} sends requests faster than its rate allows (rate)`,
      );
    }
    let timeoutMs: number | undefined;
    try {
      timeoutMs = requestMs(message, "timeoutMs");
    } catch (error) {
      const reason = (error as ProtocolError).message;
      this.answer(
        link,
        withId({ status: Status.REJECTED, error: reason }, message),
        ref,
      );
      return;
    }
    if (acked) {
      if (stopping()) return; // Not acknowledged: it comes again after.
      this.#options.inbox.receive(link, message, ref, text);
      return;
    }
    const status = stopping()
      ? withId(
        { status: Status.NO_PEER, error: "peer is shutting down" },
        message,
      )
      : await runner.run({
        name: message.name,
        id: message.id,
        hasId: message.hasId,
        params: message.params,
        peer: link.name,
        timeoutMs,
        ...runFlags(message),
        abandoned: () => !link.isOpen,
      });
    this.answer(link, status, ref);
  }
}

/** The `params.code` of a command message, if it has one. */
function commandCode(message: Message): string | undefined {
  if (message.name !== REMOTE_COMMAND) return undefined;
  try {
    return parseCommand(message).code;
  } catch {
    return undefined;
  }
}
