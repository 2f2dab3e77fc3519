/**
 * Requests sent to one peer and not yet answered.
 *
 * A status names its request by `id` (Part 1), which the sender chooses: it may
 * be absent or repeated, and anyone who can write to the peer's local socket
 * can send a STATUS with it. Each entry therefore also gets a `ref` of 128
 * random bits; a request sent with its ref (to a peer with the `request-ref`
 * feature) is settled only by a status that echoes that ref, which nobody can
 * guess. Only a request sent without one (to an original peer) matches by
 * `id`, the oldest request first, as Part 1 does.
 *
 * @module
 */

import type { StatusData } from "../protocol.ts";

export interface PendingRequest<Owner> {
  readonly ref: string;
  readonly id: unknown;
  readonly hasId: boolean;
  readonly owner: Owner;
  /** Whether the request went out with its ref, so only the ref matches it. */
  readonly sentWithRef: boolean;
  /** Its deadline's timer, cleared when it leaves the table. */
  timer?: ReturnType<typeof setTimeout>;
  /** Whether the frame was handed to the socket (else it never left). */
  sent?: boolean;
}

/**
 * Requests' ids are strings or numbers (parseMessage checks); a status may
 * carry anything, and an id of another type matches no request.
 */
function idKey(hasId: boolean, id: unknown): string {
  if (!hasId) return "-";
  return typeof id === "string" || typeof id === "number"
    ? `${typeof id}=${id}`
    : "?";
}

/** A fresh ref: 128 random bits as 32 hex digits. */
export function newRef(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

export class PendingTable<Owner> {
  readonly #byRef = new Map<string, PendingRequest<Owner>>();
  readonly #byId = new Map<string, PendingRequest<Owner>[]>();

  get size(): number {
    return this.#byRef.size;
  }

  add(
    owner: Owner,
    request: { id?: unknown; hasId: boolean },
    sentWithRef: boolean,
  ): PendingRequest<Owner> {
    const entry: PendingRequest<Owner> = {
      ref: newRef(),
      id: request.id,
      hasId: request.hasId,
      owner,
      sentWithRef,
    };
    this.#byRef.set(entry.ref, entry);
    if (sentWithRef) return entry;
    const key = idKey(entry.hasId, entry.id);
    const queue = this.#byId.get(key);
    if (queue) queue.push(entry);
    else this.#byId.set(key, [entry]);
    return entry;
  }

  /**
   * Finds and removes the request a status answers: by its ref, or, for a
   * request sent without one, by its id.
   */
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
    clearTimeout(entry.timer);
    if (entry.sentWithRef) return true;
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
    for (const entry of entries) clearTimeout(entry.timer);
    this.#byRef.clear();
    this.#byId.clear();
    return entries;
  }
}
