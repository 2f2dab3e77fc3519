/**
 * Requests sent to one peer and not yet answered.
 *
 * A status names its request by `id` (Part 1), which the sender chooses: it may
 * be absent or repeated. Each entry therefore also gets a daemon-chosen `ref`;
 * a peer with the `request-ref` feature echoes it, and the match is exact. From
 * a peer without it, statuses match by `id`, the oldest request first.
 *
 * @module
 */

import type { StatusData } from "../protocol.ts";

export interface PendingRequest<Owner> {
  readonly ref: string;
  readonly id: unknown;
  readonly hasId: boolean;
  readonly owner: Owner;
}

function idKey(hasId: boolean, id: unknown): string {
  return hasId ? `=${JSON.stringify(id)}` : "-";
}

let nextRef = 0;

export class PendingTable<Owner> {
  readonly #byRef = new Map<string, PendingRequest<Owner>>();
  readonly #byId = new Map<string, PendingRequest<Owner>[]>();

  get size(): number {
    return this.#byRef.size;
  }

  add(
    owner: Owner,
    request: { id?: unknown; hasId: boolean },
  ): PendingRequest<Owner> {
    const entry = {
      ref: (nextRef++).toString(36),
      id: request.id,
      hasId: request.hasId,
      owner,
    };
    this.#byRef.set(entry.ref, entry);
    const key = idKey(entry.hasId, entry.id);
    const queue = this.#byId.get(key);
    if (queue) queue.push(entry);
    else this.#byId.set(key, [entry]);
    return entry;
  }

  /** Finds and removes the request a status answers. */
  take(data: StatusData): PendingRequest<Owner> | undefined {
    const entry = typeof data.ref === "string"
      ? this.#byRef.get(data.ref)
      : this.#byId.get(idKey(Object.hasOwn(data, "id"), data.id))?.[0];
    if (entry) this.remove(entry);
    return entry;
  }

  /** Removes `entry`; false if it was no longer there (answered already). */
  remove(entry: PendingRequest<Owner>): boolean {
    if (!this.#byRef.delete(entry.ref)) return false;
    const key = idKey(entry.hasId, entry.id);
    const queue = this.#byId.get(key);
    const index = queue?.indexOf(entry) ?? -1;
    if (index !== -1) queue!.splice(index, 1);
    if (queue?.length === 0) this.#byId.delete(key);
    return true;
  }

  /** Removes and returns every entry, e.g. when the peer has gone. */
  drain(): PendingRequest<Owner>[] {
    const entries = [...this.#byRef.values()];
    this.#byRef.clear();
    this.#byId.clear();
    return entries;
  }
}
