/**
 * What `+cmd RESULT` says of a request, by its id: the newest request with
 * that id, whether it is still in the outbox or only in the journal. For a
 * fan-out, the per-peer statuses so far, and its summary once every peer has
 * answered.
 *
 * @module
 */

import type { StatusReport } from "../protocol.ts";
import type { Entry } from "./entry.ts";
import { type FanOut, summarize } from "./fanout.ts";
import { idColumn, type OutboxRow, type OutboxRows } from "./outbox_rows.ts";

/** What `RESULT` tells of a request. */
export type ResultState =
  | { state: "done"; result: StatusReport; peers?: Record<string, number> }
  | { state: "pending"; peers?: Record<string, number> }
  | { state: "unknown" };

/** The newest live request or fan-out with this id, if any. */
function newestLive(
  id: unknown,
  entries: Iterable<Entry>,
  fanouts: Iterable<FanOut>,
): { acceptedAt: number; fanout?: FanOut } | undefined {
  let found: { acceptedAt: number; fanout?: FanOut } | undefined;
  for (const entry of entries) {
    if (entry.fanout || !entry.hasId || entry.id !== id) continue;
    if (!found || entry.acceptedAt >= found.acceptedAt) {
      found = { acceptedAt: entry.acceptedAt };
    }
  }
  for (const fanout of fanouts) {
    if (!fanout.hasId || fanout.id !== id) continue;
    if (!found || fanout.acceptedAt >= found.acceptedAt) {
      found = { acceptedAt: fanout.acceptedAt, fanout };
    }
  }
  return found;
}

function fromFanOut(fanout: FanOut): ResultState {
  const { peers } = summarize(fanout.statuses);
  return fanout.done
    ? { state: "done", result: fanout.summary(), peers }
    : { state: "pending", peers };
}

function parsed(status: string | null): StatusReport | undefined {
  try {
    return status === null ? undefined : JSON.parse(status);
  } catch {
    return undefined;
  }
}

/** A fan-out from its rows: done when every delivery is. */
function fromRows(rows: OutboxRow[], hasId: boolean, id: unknown): ResultState {
  const statuses = new Map<string, number>();
  let pending = false;
  for (const row of rows) {
    const report = row.state === "done" ? parsed(row.status) : undefined;
    if (report === undefined || row.peer === null) {
      pending = true;
      continue;
    }
    statuses.set(row.peer, report.status);
  }
  const { status, peers } = summarize(statuses);
  if (pending) return { state: "pending", peers };
  const result: StatusReport = {
    ...(hasId ? { id } : {}),
    done: true,
    status,
    peers,
  };
  return { state: "done", result, peers };
}

export function resultOf(
  id: unknown,
  live: { entries: Iterable<Entry>; fanouts: Iterable<FanOut> },
  rows: OutboxRows,
  retentionMs: number,
): ResultState {
  const key = idColumn(true, id);
  const row = key === null ? undefined : rows.byId(key);
  const inMemory = newestLive(id, live.entries, live.fanouts);
  if (inMemory && (!row || inMemory.acceptedAt >= row.accepted_at)) {
    return inMemory.fanout ? fromFanOut(inMemory.fanout) : { state: "pending" };
  }
  if (!row) return { state: "unknown" };
  if (row.fanout !== null) {
    const group = rows.ofFanOut(row.fanout);
    const state = fromRows(group, true, id);
    const newestDone = Math.max(...group.map((r) => r.done_at ?? 0));
    if (state.state === "done" && newestDone < Date.now() - retentionMs) {
      return { state: "unknown" };
    }
    return state;
  }
  if (row.state !== "done" || row.status === null) {
    return { state: "pending" };
  }
  if ((row.done_at ?? 0) < Date.now() - retentionMs) {
    return { state: "unknown" };
  }
  const result = parsed(row.status);
  return result === undefined
    ? { state: "unknown" }
    : { state: "done", result };
}
