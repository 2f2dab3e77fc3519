/**
 * One request in the outbox, and who waits for it.
 *
 * @module
 */

import type { Message, StatusReport } from "../protocol.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import type { OutboxRow, RowState } from "./outbox_rows.ts";
import { newRef } from "./ref.ts";

/** Whoever waits for a request's status: a local connection. */
export interface Owner {
  owe(): void;
  settle(report: StatusReport): void;
}

/**
 * Where a request is. Beyond the journal's states: `committing` (its row
 * is being written, it goes out after) and `sending` (inside the send call).
 */
export type EntryState = RowState | "committing" | "sending";

export interface Entry {
  readonly ref: string;
  readonly id?: unknown;
  readonly hasId: boolean;
  /** The request's text as the local process wrote it. */
  readonly text: string;
  /** Commands are never sent again: only scripts are de-duplicated. */
  readonly command: boolean;
  owner: Owner | undefined;
  state: EntryState;
  /** The peer it went to, by name: a redelivery goes to the same one. */
  peer?: string;
  /** The link it went out on, while that link is open. */
  link?: PeerLink;
  /** Whether it went out with its ref, so only the ref matches a status. */
  withRef: boolean;
  readonly acceptedAt: number;
  deadlineAt?: number;
  deadlineMs?: number;
  expiresAt?: number;
  journaled?: boolean;
  timer?: ReturnType<typeof setTimeout>;
  /** Past its deadline: the asker was told -3, and it is not sent again. */
  expired?: boolean;
  /** While its peer is away: when it stops waiting for it. */
  awayTimer?: ReturnType<typeof setTimeout>;
}

/** What `RESULT` tells of a request. */
export type ResultState =
  | { state: "done"; result: StatusReport }
  | { state: "pending" }
  | { state: "unknown" };

/** A request just accepted from `owner`, not yet anywhere. */
export function newEntry(
  owner: Owner,
  message: Message,
  text: string,
  options: { deadlineMs?: number; command?: boolean },
  now: number,
): Entry {
  return {
    ref: newRef(),
    id: message.id,
    hasId: message.hasId,
    text,
    command: options.command ?? false,
    owner,
    state: "queued",
    withRef: false,
    acceptedAt: now,
    deadlineMs: options.deadlineMs,
    deadlineAt: options.deadlineMs === undefined
      ? undefined
      : now + options.deadlineMs,
  };
}

/** A request from before a restart, as its row has it; nobody waits for it. */
export function entryFromRow(row: OutboxRow, message: Message): Entry {
  return {
    ref: row.ref,
    id: message.id,
    hasId: message.hasId,
    text: row.frame,
    command: false,
    owner: undefined,
    state: row.state,
    peer: row.peer ?? undefined,
    withRef: true,
    acceptedAt: row.accepted_at,
    journaled: true,
    deadlineAt: row.deadline_at ?? undefined,
    deadlineMs: row.deadline_at === null
      ? undefined
      : row.deadline_at - row.accepted_at,
    expiresAt: row.expires_at ?? undefined,
  };
}
