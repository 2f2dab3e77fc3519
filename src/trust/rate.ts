/**
 * A token bucket: `burst` requests at once, refilled at `perSecond`. Used per
 * peer and per local connection, so one sender cannot take the daemon's
 * whole capacity; a request over the rate is refused (-5), never queued.
 *
 * @module
 */

import type { Rate } from "../config.ts";

export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #at = performance.now();

  constructor({ perSecond, burst }: Rate) {
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
  }

  /** Takes one token; false when the bucket is empty (over the rate). */
  take(now = performance.now()): boolean {
    this.#tokens = Math.min(
      this.#burst,
      this.#tokens + (now - this.#at) * this.#perMs,
    );
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
