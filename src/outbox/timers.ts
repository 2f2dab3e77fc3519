/**
 * The timers of requests in the outbox: a request's deadline (or, while it
 * is queued, its queueTtlMs), and the wait for a peer that went away with it.
 * What the asker is told when one fires is deadlines.ts's to say; these only
 * keep the time.
 *
 * @module
 */

import { type StatusReport, withId } from "../protocol.ts";
import type { Entry } from "./entry.ts";
import {
  neverSent,
  noStatusInTime,
  notDelivered,
  peerStayedAway,
  wakeAt,
} from "./deadlines.ts";

/**
 * Tells the asker `report` and stops sending the request, but keeps it:
 * its status, should it come, is recorded for RESULT.
 */
export function giveUp(entry: Entry, report: StatusReport): void {
  entry.expired = true;
  const owner = entry.owner;
  entry.owner = undefined;
  owner?.settle(withId(report, entry));
}

export class RequestTimers {
  /** The outbox's options, read as each timer is set or fires (SIGHUP). */
  readonly #limits: { readonly queueTtlMs: number };
  /** The outbox's single exit for a request. */
  readonly #finish: (entry: Entry, report: StatusReport) => void;

  constructor(
    limits: { readonly queueTtlMs: number },
    finish: (entry: Entry, report: StatusReport) => void,
  ) {
    this.#limits = limits;
    this.#finish = finish;
  }

  /** The deadline, or for a request still queued, its queueTtlMs. */
  arm(entry: Entry): void {
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
      return this.#finish(entry, notDelivered(entry, this.#limits.queueTtlMs));
    }
    // It may be running: the asker is told the truth, that no status came in
    // time; the status, when it comes, is kept for RESULT.
    giveUp(entry, noStatusInTime(entry));
  }

  /**
   * A request delivered (or maybe delivered) to a peer that has gone waits
   * for it to come back, up to queueTtlMs: then the asker is told -3, since
   * the request may have run, and it is not sent again.
   */
  awaitPeer(entry: Entry): void {
    clearTimeout(entry.awayTimer);
    const ttl = this.#limits.queueTtlMs;
    entry.awayTimer = setTimeout(() => {
      if (entry.state === "done" || entry.link) return;
      this.#finish(entry, peerStayedAway(entry, ttl));
    }, ttl);
  }
}
