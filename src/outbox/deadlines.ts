/**
 * When a request in the outbox stops waiting, and what its asker is told
 * then: pure rules, so that the outbox only keeps the timers.
 *
 * - Never sent (queued, or its row still being written): at its deadline or
 *   queueTtlMs, whichever comes first, -2: it never left, and never will.
 * - Sent: at its deadline, -3 (it may be running; a late status is kept for
 *   RESULT). Its peer gone for queueTtlMs: -3 as well, and it is done.
 *
 * @module
 */

import { Status, type StatusReport, withId } from "../protocol.ts";
import type { Entry } from "./entry.ts";

/** Whether the request has not left this daemon. */
export function neverSent(entry: Entry): boolean {
  return entry.state === "queued" || entry.state === "committing";
}

/** When the request's timer fires next (Infinity: never). */
export function wakeAt(entry: Entry): number {
  return Math.min(
    entry.deadlineAt ?? Infinity,
    neverSent(entry) ? entry.expiresAt ?? Infinity : Infinity,
  );
}

/** The -2 for a request that never left by its deadline or queueTtlMs. */
export function notDelivered(entry: Entry, queueTtlMs: number): StatusReport {
  const byDeadline = entry.deadlineAt !== undefined &&
    entry.deadlineAt <= (entry.expiresAt ?? Infinity);
  return {
    status: Status.NO_PEER,
    error: byDeadline
      ? `not delivered: no peer within deadlineMs (${entry.deadlineMs} ms)`
      : `not delivered: no peer within queueTtlMs (${queueTtlMs} ms)`,
  };
}

/** The -3 for a request sent that had no status by its deadline. */
export function noStatusInTime(entry: Entry): StatusReport {
  return withId({
    status: Status.TIMEOUT,
    error:
      `no status from ${entry.peer} within deadlineMs (${entry.deadlineMs} ms)`,
    peer: entry.peer,
  }, entry);
}

/** The -3 for a request whose peer did not come back within queueTtlMs. */
export function peerStayedAway(entry: Entry, queueTtlMs: number): StatusReport {
  return {
    status: Status.TIMEOUT,
    error:
      `no status: peer ${entry.peer} did not come back within queueTtlMs (${queueTtlMs} ms); the request ${
        entry.state === "acked" ? "was delivered" : "may have been delivered"
      }, so it may have run`,
    peer: entry.peer,
  };
}
