/**
 * The clients connected to a server-mode daemon, in connection order, and the
 * round-robin over them.
 *
 * @module
 */

import type { PeerLink } from "./peer_link.ts";

export class PeerSet {
  readonly #links: PeerLink[] = [];
  #next = 0;

  get size(): number {
    return this.#links.length;
  }

  add(link: PeerLink): void {
    this.#links.push(link);
  }

  delete(link: PeerLink): void {
    const index = this.#links.indexOf(link);
    if (index === -1) return;
    this.#links.splice(index, 1);
    // Keep the turn with the client that was next, so none is skipped.
    if (index < this.#next) this.#next--;
    if (this.#next >= this.#links.length) this.#next = 0;
  }

  /** The next ready client in turn, or undefined when none is ready. */
  next(): PeerLink | undefined {
    for (let tries = 0; tries < this.#links.length; tries++) {
      const link = this.#links[this.#next];
      this.#next = (this.#next + 1) % this.#links.length;
      if (link.isReady) return link;
    }
    return undefined;
  }

  /** The ready link named `name`, other than `except`. */
  named(name: string, except?: PeerLink): PeerLink | undefined {
    return this.#links.find((link) =>
      link !== except && link.state === "ready" && link.name === name
    );
  }

  all(): PeerLink[] {
    return [...this.#links];
  }
}
