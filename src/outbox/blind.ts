/**
 * Requests sent without a ref (to an original peer), by link and id: Part 1
 * matches a status to the oldest request with its id, on the link it came
 * from.
 *
 * @module
 */

import type { PeerLink } from "../remote/peer_link.ts";
import type { Entry } from "./entry.ts";

function idKey(hasId: boolean, id: unknown): string {
  if (!hasId) return "-";
  return typeof id === "string" || typeof id === "number"
    ? `${typeof id}=${id}`
    : "?";
}

export class BlindIndex {
  readonly #byLink = new Map<PeerLink, Map<string, Entry[]>>();

  add(link: PeerLink, entry: Entry): void {
    let byId = this.#byLink.get(link);
    if (!byId) {
      byId = new Map();
      this.#byLink.set(link, byId);
    }
    const key = idKey(entry.hasId, entry.id);
    const queue = byId.get(key);
    if (queue) queue.push(entry);
    else byId.set(key, [entry]);
  }

  remove(link: PeerLink, entry: Entry): void {
    const byId = this.#byLink.get(link);
    const key = idKey(entry.hasId, entry.id);
    const queue = byId?.get(key);
    if (!queue) return;
    const index = queue.indexOf(entry);
    if (index !== -1) queue.splice(index, 1);
    if (queue.length === 0) byId!.delete(key);
  }

  /** The oldest request on `link` that a status with this id answers. */
  first(link: PeerLink, hasId: boolean, id: unknown): Entry | undefined {
    return this.#byLink.get(link)?.get(idKey(hasId, id))?.[0];
  }

  /** Forgets a link that has closed. */
  drop(link: PeerLink): void {
    this.#byLink.delete(link);
  }
}
