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
 * deadlines.ts. How a request goes out is sender.ts's; its timers are
 * timers.ts's.
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
} from "../protocol.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import {
  type Entry,
  type EntryOptions,
  newEntry,
  type Owner,
} from "./entry.ts";
import { FanOut } from "./fanout.ts";
import { resultOf, type ResultState } from "./results.ts";
import { readJournal, unknownAfterRestart } from "./replay.ts";
import { BlindIndex } from "./blind.ts";
import { neverSent } from "./deadlines.ts";
import { giveUp, RequestTimers } from "./timers.ts";
import { type OfflinePolicy, Sender, type SendOptions } from "./sender.ts";

export type { OfflinePolicy, Owner, ResultState };

export interface OutboxOptions extends SendOptions {
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
  /** Requests sent without a ref (to an original), by link and id. */
  readonly #blind = new BlindIndex();
  /** Fan-outs not yet answered by every peer, by ref. */
  readonly #fanouts = new Map<string, FanOut>();
  readonly #timers: RequestTimers;
  readonly #sender: Sender;

  constructor(options: OutboxOptions) {
    this.#options = options;
    const finish = (entry: Entry, report: StatusReport) =>
      this.#finish(entry, report);
    this.#timers = new RequestTimers(options, finish);
    this.#sender = new Sender(options, this.#blind, this.#timers, finish);
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
    this.#timers.arm(entry);
    this.#sender.send(entry, options.link ?? this.#sender.pick(entry));
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
      this.#timers.arm(entry);
      if (entry.state !== "queued") this.#timers.awaitPeer(entry);
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
          this.#sender.transmit(entry, link);
        }
      }
    }
    for (const entry of [...this.#entries.values()]) {
      if (entry.state === "queued") this.#sender.dispatch(entry);
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
        this.#timers.awaitPeer(entry);
        // A fan-out's summary does not wait for a peer that went: its line
        // says the outcome is unknown, and a status that comes later is
        // kept for RESULT.
        if (entry.fanout) {
          giveUp(entry, {
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

  /** The peer recorded these requests: they are not sent again. */
  onAck(link: PeerLink, refs: string[]): void {
    for (const ref of refs) {
      const entry = this.#entries.get(ref);
      if (entry?.state !== "sent" || entry.peer !== link.name) continue;
      entry.state = "acked";
      this.#options.rows.put(entry, "acked", link.name);
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
    // Key order as Part 1 has it, status then id, whatever else the peer
    // sent (its output, say), then `peer`.
    const report = Object.assign(
      withId({ status: data.status }, entry),
      relayedReport(data),
    );
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
}
