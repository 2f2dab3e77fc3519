/**
 * The outbox: every request this daemon has accepted from a local process
 * and not yet seen the end of, owned by the daemon rather than by a link, so
 * that a link that drops loses nothing.
 *
 * A request goes `queued` (no peer yet) → `sent` (to a named peer, not yet
 * acknowledged) → `acked` (the peer recorded it) → done, its status known.
 * To a peer with the `ack` feature, the journal records where a request goes
 * before it goes; a request the link dropped is sent again when its peer
 * comes back, and the peer runs it at most once. To a peer without it (an
 * original) a request is `blind`: sent, and if the link drops before its
 * status, its outcome is unknown (-6), never "not delivered".
 *
 * Every status an asker gets is true: when one comes of a deadline, see
 * deadlines.ts.
 *
 * @module
 */

import {
  type Message,
  relayedReport,
  Status,
  type StatusData,
  type StatusReport,
  withId,
  withoutTo,
  withRef,
} from "../protocol.ts";
import { exceeds, frameLimit, type PeerLink } from "../remote/peer_link.ts";
import type { Remote } from "../remote/remote.ts";
import type { Logger } from "../log.ts";
import type { OutboxRows, RowState } from "./outbox_rows.ts";
import {
  type Entry,
  type EntryOptions,
  newEntry,
  type Owner,
} from "./entry.ts";
import { FanOut } from "./fanout.ts";
import { resultOf, type ResultState } from "./results.ts";
import type { EventBus } from "../events/bus.ts";
import { readJournal, unknownAfterRestart } from "./replay.ts";
import { BlindIndex } from "./blind.ts";
import {
  neverSent,
  noStatusInTime,
  notDelivered,
  peerStayedAway,
  wakeAt,
} from "./deadlines.ts";

export type { Owner, ResultState };

export type OfflinePolicy = "queue" | "reject";

export interface OutboxOptions {
  remote: Remote;
  rows: OutboxRows;
  log: Logger;
  bus: EventBus;
  /** This daemon's frame limit: what a peer that does not say accepts. */
  maxMessageBytes: number;
  offline: OfflinePolicy;
  /** How long a request may wait for a peer, when its deadline is longer. */
  queueTtlMs: number;
  /** How long a status stays fetchable with RESULT. */
  resultRetentionMs: number;
  /** Called when the journal is full, to drop old results before refusing. */
  onFull?: () => void;
  /** Called as each request ends, so that results are kept within bounds. */
  onFinished?: () => void;
}

export class Outbox {
  readonly #options: OutboxOptions;
  readonly #entries = new Map<string, Entry>();
  /** Requests waiting for their row's commit before they go out. */
  #committing = 0;
  /** Requests sent without a ref (to an original), by link and id. */
  readonly #blind = new BlindIndex();
  /** Fan-outs not yet answered by every peer, by ref. */
  readonly #fanouts = new Map<string, FanOut>();

  constructor(options: OutboxOptions) {
    this.#options = options;
  }

  /** New policy and limits (SIGHUP), for requests from now on. */
  configure(
    limits: Pick<OutboxOptions, "offline" | "queueTtlMs" | "resultRetentionMs">,
  ): void {
    this.#options.offline = limits.offline;
    this.#options.queueTtlMs = limits.queueTtlMs;
    this.#options.resultRetentionMs = limits.resultRetentionMs;
  }

  /**
   * Requests whose asker still waits on a local connection for a status a
   * connected peer owes (shutdown waits for those; one queued, or waiting
   * for a peer that is away, stays in the journal instead).
   */
  get owedByPeers(): number {
    let count = 0;
    for (const entry of this.#entries.values()) {
      if (entry.owner && entry.link?.isOpen && entry.state !== "committing") {
        count++;
      }
    }
    return count;
  }

  /** Requests not yet done. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Accepts a request: answers at once when it cannot go anywhere, else
   * sends it now or when a peer comes. Returns its ref.
   */
  submit(
    owner: Owner,
    message: Message,
    text: string,
    options: EntryOptions & { link?: PeerLink },
  ): string {
    const { rows } = this.#options;
    const entry = newEntry(owner, message, text, options, Date.now());
    owner.owe();
    if (!rows.journal.hasRoom()) this.#options.onFull?.();
    if (!rows.journal.hasRoom()) {
      this.#finish(entry, {
        status: Status.REFUSED,
        error:
          "busy: the journal is full (journalMaxRows or journalMaxBytes); try again later",
      });
      return entry.ref;
    }
    this.#entries.set(entry.ref, entry);
    this.#arm(entry);
    const link = options.link ?? this.#pick(entry);
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
        this.#dispatch(entry, link.isReady ? link : undefined);
      };
      rows.journal.written().then(go, go);
      return entry.ref;
    }
    this.#dispatch(entry, link);
    return entry.ref;
  }

  /**
   * Sends one request to each of `peers` (ready links, or names of peers
   * that are not connected, which get -2), each delivery its own entry; the
   * owner gets a line per peer, then the summary.
   */
  submitFanOut(
    owner: Owner,
    message: Message,
    text: string,
    options: EntryOptions,
    peers: (PeerLink | string)[],
    answered: ReadonlyMap<string, StatusReport> = new Map(),
  ): void {
    const names = peers.map((peer) =>
      typeof peer === "string" ? peer : peer.name
    );
    const fanout = new FanOut(
      owner,
      message,
      [...names, ...answered.keys()],
      () => {
        this.#fanouts.delete(fanout.ref);
      },
    );
    this.#fanouts.set(fanout.ref, fanout);
    for (const [name, report] of answered) {
      fanout.delivery(name).settle(report);
    }
    for (const [index, peer] of peers.entries()) {
      this.submit(fanout.delivery(names[index]), message, text, {
        ...options,
        target: names[index],
        fanout: fanout.ref,
        link: typeof peer === "string" ? undefined : peer,
      });
    }
  }

  /** The link a request goes to: its target's, or the next in turn. */
  #pick(entry: Entry): PeerLink | undefined {
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

  /** Requests in flight on `link` (PEERS). */
  inFlight(link: PeerLink): number {
    let count = 0;
    for (const entry of this.#entries.values()) {
      if (entry.link === link) count++;
    }
    return count;
  }

  /**
   * Takes up what the journal holds from before a restart: requests to send
   * or to wait for, owned by nobody now (their results go to `RESULT`).
   * Blind ones may have run and cannot be asked about again: -6.
   */
  replay(): void {
    const { waiting, blind } = readJournal(
      this.#options.rows,
      this.#options.log,
    );
    for (const entry of blind) this.#finish(entry, unknownAfterRestart(entry));
    for (const entry of waiting) {
      this.#entries.set(entry.ref, entry);
      this.#arm(entry);
      if (entry.state !== "queued") this.#awaitPeer(entry);
    }
  }

  /** What `RESULT` says of the newest request with this id. */
  result(id: unknown): ResultState {
    return resultOf(
      id,
      { entries: this.#entries.values(), fanouts: this.#fanouts.values() },
      this.#options.rows,
      this.#options.resultRetentionMs,
    );
  }

  /** Sends a queued request to `link`, or to the next ready one. */
  #dispatch(entry: Entry, link = this.#pick(entry)): void {
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
      this.#arm(entry);
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
        if (entry.link?.isReady) this.#transmit(entry, entry.link);
        else this.#dispatch(entry);
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
    this.#transmit(entry, link);
  }

  /** Hands the frame to the link's socket. */
  #transmit(entry: Entry, link: PeerLink): void {
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
    this.#dispatch(entry);
  }

  /** A ready link: requests owed to its peer go again, then queued ones. */
  onReady(link: PeerLink): void {
    if (link.has("ack")) {
      for (const entry of this.#entries.values()) {
        if (entry.peer !== link.name) continue;
        if (entry.state !== "sent" && entry.state !== "acked") continue;
        clearTimeout(entry.awayTimer);
        entry.awayTimer = undefined;
        // Past its deadline the asker was told -3: it is not sent again,
        // though one that did arrive may still send its status.
        if (entry.state === "sent" && !entry.expired) {
          this.#transmit(entry, link);
        }
      }
    }
    for (const entry of [...this.#entries.values()]) {
      if (entry.state === "queued") this.#dispatch(entry);
    }
  }

  /**
   * A closed link: requests sent to a peer with acknowledgements wait for it;
   * one sent blind may have run, so its outcome is unknown.
   */
  onClosed(link: PeerLink, reason: string): number {
    this.#blind.drop(link);
    let unknown = 0;
    for (const entry of [...this.#entries.values()]) {
      if (entry.link !== link) continue;
      entry.link = undefined;
      if (entry.state === "sent" || entry.state === "acked") {
        this.#awaitPeer(entry);
        // A fan-out's summary does not wait for a peer that went: its line
        // says the outcome is unknown, and a status that comes later is
        // kept for RESULT.
        if (entry.fanout) {
          this.#giveUp(entry, {
            status: Status.OUTCOME_UNKNOWN,
            error:
              `peer ${link.name} disconnected before answering: ${reason}; the request was sent, so it may have run`,
            peer: link.name,
          });
        }
        continue;
      }
      if (entry.state !== "blind") continue;
      unknown++;
      this.#finish(entry, {
        status: Status.OUTCOME_UNKNOWN,
        error:
          `peer ${link.name} disconnected before answering: ${reason}; the request was sent, so it may have run`,
        peer: link.name,
      });
    }
    return unknown;
  }

  /**
   * A request delivered (or maybe delivered) to a peer that has gone waits
   * for it to come back, up to queueTtlMs: then the asker is told -3, since
   * the request may have run, and it is not sent again.
   */
  #awaitPeer(entry: Entry): void {
    clearTimeout(entry.awayTimer);
    const ttl = this.#options.queueTtlMs;
    entry.awayTimer = setTimeout(() => {
      if (entry.state === "done" || entry.link) return;
      this.#finish(entry, peerStayedAway(entry, ttl));
    }, ttl);
  }

  /** The peer recorded these requests: they are not sent again. */
  onAck(link: PeerLink, refs: string[]): void {
    for (const ref of refs) {
      const entry = this.#entries.get(ref);
      if (entry?.state !== "sent" || entry.peer !== link.name) continue;
      entry.state = "acked";
      this.#record(entry, "acked", link.name);
    }
  }

  /**
   * The request a peer's status answers, by its ref, or for a request sent
   * without one, by its id, oldest first; it must have gone to that peer.
   */
  take(link: PeerLink, data: StatusData): boolean {
    let entry: Entry | undefined;
    if (typeof data.ref === "string") {
      entry = this.#entries.get(data.ref);
      if (entry && (!entry.withRef || entry.peer !== link.name)) {
        entry = undefined;
      }
    } else {
      entry = this.#blind.first(link, Object.hasOwn(data, "id"), data.id);
    }
    if (!entry || neverSent(entry)) {
      return false;
    }
    // Key order as Part 1 has it: status, id, then what this daemon adds.
    const report = withId(relayedReport(data), entry);
    report.peer = link.name;
    link.done++;
    if (entry.command && entry.sentAt !== undefined) {
      if (entry.name === "PING") {
        link.pinged();
        link.rttMs = Math.round((performance.now() - entry.sentAt) * 100) /
          100;
        report.rttMs = link.rttMs;
        report.data = { peer: link.name, rttMs: link.rttMs };
      } else if (data.data !== undefined) {
        // What INFO, PEERS or SCRIPTS answered: JSON the peer sent, whose
        // depth and size were bounded as the frame was read.
        report.data = data.data;
      }
    }
    this.#finish(entry, report);
    return true;
  }

  /** The single exit: records the status and tells the asker, if it waits. */
  #finish(entry: Entry, report: StatusReport): void {
    clearTimeout(entry.timer);
    clearTimeout(entry.awayTimer);
    this.#entries.delete(entry.ref);
    if (entry.link && !entry.withRef) {
      this.#blind.remove(entry.link, entry);
    }
    const shown = withId(report, entry);
    if (entry.state !== "done") this.#options.rows.finish(entry, shown);
    entry.state = "done";
    this.#options.bus.emit("status.returned", {
      name: entry.name,
      ...(entry.hasId ? { id: entry.id } : {}),
      ...(shown.peer === undefined ? {} : { peer: shown.peer as string }),
      status: shown.status,
      durationMs: Date.now() - entry.acceptedAt,
      ...(shown.error === undefined ? {} : { error: shown.error }),
    });
    const owner = entry.owner;
    entry.owner = undefined;
    owner?.settle(shown);
    this.#options.onFinished?.();
  }

  /** Keeps the journal row in step with `state`. */
  #record(entry: Entry, state: RowState, peer: string | null): void {
    this.#options.rows.put(entry, state, peer);
  }

  /** The deadline, or for a request still queued, its queueTtlMs. */
  #arm(entry: Entry): void {
    clearTimeout(entry.timer);
    const at = wakeAt(entry);
    if (at === Infinity) return;
    entry.timer = setTimeout(
      () => this.#expire(entry),
      Math.max(0, at - Date.now()),
    );
  }

  #expire(entry: Entry): void {
    if (entry.state === "done") return;
    if (neverSent(entry)) {
      return this.#finish(entry, notDelivered(entry, this.#options.queueTtlMs));
    }
    // It may be running: the asker is told the truth, that no status came in
    // time; the status, when it comes, is kept for RESULT.
    this.#giveUp(entry, noStatusInTime(entry));
  }

  /**
   * Tells the asker `report` and stops sending the request, but keeps it:
   * its status, should it come, is recorded for RESULT.
   */
  #giveUp(entry: Entry, report: StatusReport): void {
    entry.expired = true;
    const owner = entry.owner;
    entry.owner = undefined;
    owner?.settle(withId(report, entry));
  }
}
