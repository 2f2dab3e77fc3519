/**
 * A fan-out: one local request sent to many peers (`to` a list, a glob or
 * `"*"`), each delivery its own outbox entry with its own ref, ack and row.
 * The asker gets one status line per peer as each finishes, then one summary
 * line: `{"id", "done": true, "status": S, "peers": {name: status}}`, where
 * S is 0 when every peer answered 0, else the first non-zero status in name
 * order.
 *
 * @module
 */

import type { StatusReport } from "../protocol.ts";
import type { Owner } from "./entry.ts";
import { newRef } from "./ref.ts";

/** The summary of per-peer statuses, in name order. */
export function summarize(
  statuses: ReadonlyMap<string, number>,
): { status: number; peers: Record<string, number> } {
  const names = [...statuses.keys()].sort();
  const peers: Record<string, number> = {};
  let status = 0;
  for (const name of names) {
    const one = statuses.get(name)!;
    peers[name] = one;
    if (status === 0 && one !== 0) status = one;
  }
  return { status, peers };
}

export class FanOut {
  /** Groups the deliveries' rows in the journal. */
  readonly ref = newRef();
  readonly id?: unknown;
  readonly hasId: boolean;
  readonly acceptedAt = Date.now();
  /** The peers it goes to. */
  readonly peers: readonly string[];
  readonly #statuses = new Map<string, number>();
  #owner: Owner | undefined;
  readonly #onDone: () => void;

  constructor(
    owner: Owner,
    request: { id?: unknown; hasId: boolean },
    peers: readonly string[],
    onDone: () => void,
  ) {
    this.#owner = owner;
    this.#onDone = onDone;
    this.id = request.id;
    this.hasId = request.hasId;
    this.peers = peers;
    owner.owe();
  }

  get done(): boolean {
    return this.#statuses.size === this.peers.length;
  }

  /** The statuses so far, by peer. */
  get statuses(): ReadonlyMap<string, number> {
    return this.#statuses;
  }

  /** Who waits for the delivery to `peer`: this fan-out. */
  delivery(peer: string): Owner {
    return {
      owe: () => {},
      reply: () => {},
      settle: (report) => this.#settle(peer, report),
    };
  }

  #settle(peer: string, report: StatusReport): void {
    if (this.#statuses.has(peer)) return;
    this.#statuses.set(peer, report.status);
    if (this.done) this.#onDone();
    const owner = this.#owner;
    if (owner === undefined) return;
    // Status and id first, as every status line has them.
    const line: StatusReport = Object.assign(
      this.hasId ? { status: report.status, id: this.id } : { status: 0 },
      report,
    );
    line.peer ??= peer;
    if (!this.done) {
      owner.reply(line);
      return;
    }
    this.#owner = undefined;
    owner.reply(line);
    owner.settle(this.summary());
  }

  /** The summary line, once every peer has answered. */
  summary(): StatusReport {
    const { status, peers } = summarize(this.#statuses);
    return {
      ...(this.hasId ? { id: this.id } : {}),
      done: true,
      status,
      peers,
    };
  }
}
