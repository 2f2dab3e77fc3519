/**
 * One request in the outbox, and who waits for it.
 *
 * @module
 */

import type { Message, StatusReport } from "../protocol.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import type { OutboxRow, RowState } from "./outbox_rows.ts";
import { newRef } from "./ref.ts";

/** Whoever waits for a request's status: a local connection, a fan-out. */
export interface Owner {
  /** One more request waits for its status. */
  owe(): void;
  /** A line that is not the request's final status (a fan-out's). */
  reply(report: StatusReport): void;
  /** The request's final status. */
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
  /** The script's name, or the command's code, for events and the log. */
  readonly name: string;
  /** The one peer it may go to (`to`), by name. */
  readonly target?: string;
  /** The fan-out it is one delivery of, by the fan-out's ref. */
  readonly fanout?: string;
  /** Whether the text has a `to`, which an original must not see. */
  readonly hasTo: boolean;
  /** When it was last handed to a link, for a PING's round trip. */
  sentAt?: number;
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

/** How a request is to go. */
export interface EntryOptions {
  deadlineMs?: number;
  /** A `&cmd` (or a `+cmd` PING) with this code: never sent again. */
  command?: boolean;
  code?: string;
  /** The one peer it may go to. */
  target?: string;
  /** The fan-out it belongs to. */
  fanout?: string;
  /** Its ref, when the caller must know it first. */
  ref?: string;
}

/** A request just accepted from `owner`, not yet anywhere. */
export function newEntry(
  owner: Owner,
  message: Message,
  text: string,
  options: EntryOptions,
  now: number,
): Entry {
  return {
    ref: options.ref ?? newRef(),
    id: message.id,
    hasId: message.hasId,
    text,
    command: options.command ?? false,
    name: options.code ?? message.name,
    target: options.target,
    fanout: options.fanout,
    hasTo: message.fields.to !== undefined,
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
    name: message.name,
    target: row.peer ?? undefined,
    fanout: row.fanout ?? undefined,
    hasTo: message.fields.to !== undefined,
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
