/**
 * How a request in the outbox leaves this daemon: the link it goes to, its
 * journal row committed first when that peer acknowledges requests, and the
 * frame as that peer takes it. A request with nowhere to go is queued or
 * answered -2, as the offline policy says.
 *
 * @module
 */

import { Status, type StatusReport, withoutTo, withRef } from "../protocol.ts";
import { exceeds, frameLimit } from "../remote/frame_limit.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import type { Remote } from "../remote/remote.ts";
import type { Logger } from "../log.ts";
import type { EventBus } from "../events/bus.ts";
import type { OutboxRows, RowState } from "./outbox_rows.ts";
import type { Entry } from "./entry.ts";
import type { BlindIndex } from "./blind.ts";
import type { RequestTimers } from "./timers.ts";

export type OfflinePolicy = "queue" | "reject";

/** What sending needs of the outbox's options, read as each request goes. */
export interface SendOptions {
  remote: Remote;
  rows: OutboxRows;
  log: Logger;
  bus: EventBus;
  /** This daemon's frame limit: what a peer that does not say accepts. */
  maxMessageBytes: number;
  offline: OfflinePolicy;
  /** How long a request may wait for a peer, when its deadline is longer. */
  queueTtlMs: number;
}

export class Sender {
  readonly #options: SendOptions;
  /** Requests sent without a ref (to an original), by link and id. */
  readonly #blind: BlindIndex;
  readonly #timers: RequestTimers;
  /** The outbox's single exit for a request. */
  readonly #finish: (entry: Entry, report: StatusReport) => void;
  /** Requests waiting for their row's commit before they go out. */
  #committing = 0;

  constructor(
    options: SendOptions,
    blind: BlindIndex,
    timers: RequestTimers,
    finish: (entry: Entry, report: StatusReport) => void,
  ) {
    this.#options = options;
    this.#blind = blind;
    this.#timers = timers;
    this.#finish = finish;
  }

  /** Sends a request just accepted to `link`, or to the next ready one. */
  send(entry: Entry, link: PeerLink | undefined): void {
    if (link && this.#committing > 0 && !(link.has("ack") && !entry.command)) {
      // Requests before it wait for their commit; this one (a command, or
      // to a peer without ack) must not overtake them on the link.
      entry.state = "committing";
      entry.link = link;
      this.#committing++;
      const go = () => {
        this.#committing--;
        if (entry.state !== "committing") return;
        entry.state = "queued";
        this.dispatch(entry, link.isReady ? link : undefined);
      };
      this.#options.rows.journal.written().then(go, go);
      return;
    }
    this.dispatch(entry, link);
  }

  /** The link a request goes to: its target's, or the next in turn. */
  pick(entry: Entry): PeerLink | undefined {
    if (entry.target === undefined) return this.#options.remote.pick();
    return this.#options.remote.links().find((link) =>
      link.isReady && link.name === entry.target
    );
  }

  /** Why a request has nowhere to go. */
  #whyNone(entry: Entry): string {
    return entry.target === undefined
      ? this.#options.remote.whyNone()
      : `peer ${JSON.stringify(entry.target)} is not connected`;
  }

  /** Sends a queued request to `link`, or to the next ready one. */
  dispatch(entry: Entry, link = this.pick(entry)): void {
    if (!link) {
      // A request for one peer by name is not kept for it: -2 at once.
      if (
        this.#options.offline === "reject" || entry.command ||
        entry.target !== undefined
      ) {
        return this.#finish(entry, {
          status: Status.NO_PEER,
          error: this.#whyNone(entry),
          ...(entry.target === undefined ? {} : { peer: entry.target }),
        });
      }
      entry.state = "queued";
      entry.expiresAt ??= Date.now() + this.#options.queueTtlMs;
      this.#record(entry, "queued", null);
      this.#timers.arm(entry);
      this.#options.log.debug(
        `request ${entry.ref} queued: ${this.#whyNone(entry)}`,
      );
      return;
    }
    if (link.has("ack") && !entry.command) {
      // Where it goes is on disk before it goes: after a crash, a redelivery
      // goes to the same peer, which runs it at most once.
      entry.state = "committing";
      entry.link = link;
      entry.peer = link.name;
      // A new row may go out once committed (it survives kill -9; a power
      // loss can only lose it, see Journal.written()). A row that was on
      // disk already, queued, must be durable in its new state first: a
      // power loss would send it to another peer after a restart.
      const { journal } = this.#options.rows;
      const wasOnDisk = entry.journaled === true;
      this.#record(entry, "sent", link.name);
      this.#committing++;
      (wasOnDisk ? journal.committed() : journal.written()).then(() => {
        this.#committing--;
        if (entry.state !== "committing") return;
        if (entry.link?.isReady) this.transmit(entry, entry.link);
        else this.dispatch(entry);
      }, (error: Error) => {
        this.#committing--;
        if (entry.state !== "committing") return;
        // Not on disk, so not sent: it never ran and never will.
        this.#finish(entry, {
          status: Status.REFUSED,
          error: `busy: ${error.message}`,
        });
      });
      return;
    }
    this.transmit(entry, link);
  }

  /** Hands the frame to the link's socket. */
  transmit(entry: Entry, link: PeerLink): void {
    const withRefs = link.has("request-ref");
    // An original is sent the request as Part 1 has it: no `to`.
    const frame = withRefs
      ? withRef(entry.text, entry.ref)
      : entry.hasTo
      ? withoutTo(entry.text)
      : entry.text;
    if (exceeds(frame, frameLimit(link, this.#options.maxMessageBytes))) {
      const limit = link.hello?.maxMessageBytes ??
        this.#options.maxMessageBytes;
      return this.#finish(entry, {
        status: Status.REJECTED,
        error:
          `message rejected as it would be longer than ${link.name}'s ${limit}-byte frame limit`,
      });
    }
    const acked = link.has("ack") && !entry.command;
    entry.link = link;
    entry.peer = link.name;
    entry.withRef = withRefs;
    // A blind request is recorded when it is done (for RESULT): recording
    // it first would put a commit on its path and buy nothing, since after
    // a crash its status cannot come anyway. One that waited in the queue
    // has a row, which must not say "queued" once it has gone.
    if (!acked && (entry.journaled || entry.fanout)) {
      // A fan-out's delivery has its row from the start, so that RESULT
      // counts every peer of it after a restart.
      this.#record(entry, "blind", link.name);
    }
    // A send the budget refuses closes the link inside send(); "sending"
    // tells onClosed that this one never left, so it goes to the next peer.
    entry.state = "sending";
    if (!withRefs) this.#blind.add(link, entry);
    if (link.send(frame)) {
      entry.state = acked ? "sent" : "blind";
      entry.sentAt = performance.now();
      this.#options.bus.emit("request.sent", {
        name: entry.name,
        ...(entry.hasId ? { id: entry.id } : {}),
        peer: link.name,
        ref: entry.ref,
      });
      return;
    }
    if (!withRefs) this.#blind.remove(link, entry);
    entry.link = undefined;
    if (acked) {
      entry.state = "sent"; // Pinned: its peer gets it when it comes back.
      return;
    }
    this.dispatch(entry);
  }

  /** Keeps the journal row in step with `state`. */
  #record(entry: Entry, state: RowState, peer: string | null): void {
    this.#options.rows.put(entry, state, peer);
  }
}
