/**
 * Acknowledgements (feature `ack`), batched: the refs of requests recorded
 * and of statuses received are gathered per link and go out in one
 * `&cmd ACK` frame once the journal has committed them, since an ack is a
 * promise that what it names survives a crash.
 *
 * `{"name": "&cmd", "params": {"code": "ACK", "data": {"requests": [ref…],
 * "statuses": [ref…]}}}`: either list may be absent.
 *
 * @module
 */

import { CommandCode, encodeCommand, REMOTE_COMMAND } from "../protocol.ts";
import type { Journal } from "../journal/journal.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import { REF_PATTERN } from "./ref.ts";

export interface AckData {
  requests: string[];
  statuses: string[];
}

/** Reads an ACK's data leniently: lists of refs, anything else dropped. */
export function parseAck(data: unknown): AckData {
  const fields = typeof data === "object" && data !== null
    ? data as Record<string, unknown>
    : {};
  const refs = (value: unknown) =>
    Array.isArray(value)
      ? value.filter((ref): ref is string =>
        typeof ref === "string" && REF_PATTERN.test(ref)
      )
      : [];
  return { requests: refs(fields.requests), statuses: refs(fields.statuses) };
}

export class AckBatcher {
  readonly #journal: Journal;
  /** The refs waiting for each commit: a ref is sent after its own commit. */
  readonly #groups = new Map<Promise<void>, Map<PeerLink, AckData>>();

  constructor(journal: Journal) {
    this.#journal = journal;
  }

  /** Acknowledges a request of `link`'s peer once it is recorded. */
  request(link: PeerLink, ref: string): void {
    this.#batch(link).requests.push(ref);
  }

  /** Acknowledges a status from `link`'s peer once it is recorded. */
  status(link: PeerLink, ref: string): void {
    this.#batch(link).statuses.push(ref);
  }

  #batch(link: PeerLink): AckData {
    // Nobody waits for an ack: it goes with the next commit, which then
    // does not hold the event loop between a status and the next request.
    const commit = this.#journal.committedLater();
    let group = this.#groups.get(commit);
    if (!group) {
      group = new Map();
      this.#groups.set(commit, group);
      // Not committed: nothing is acknowledged; the peer sends it again.
      commit.then(
        () => this.#send(commit),
        () => this.#groups.delete(commit),
      );
    }
    let batch = group.get(link);
    if (!batch) {
      batch = { requests: [], statuses: [] };
      group.set(link, batch);
    }
    return batch;
  }

  #send(commit: Promise<void>): void {
    const group = this.#groups.get(commit);
    this.#groups.delete(commit);
    for (const [link, { requests, statuses }] of group ?? []) {
      const data: Partial<AckData> = {};
      if (requests.length) data.requests = requests;
      if (statuses.length) data.statuses = statuses;
      // A link that closed meanwhile: the peer sends again, and is acked then.
      link.send(encodeCommand(REMOTE_COMMAND, CommandCode.ACK, data));
    }
  }
}
