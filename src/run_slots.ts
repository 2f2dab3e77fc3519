/**
 * Run slots: at most `maxRunning` scripts at once, with a bounded queue of
 * `maxQueued` requests behind them. A slot given back goes straight to the
 * oldest waiter, so the order of arrival is the order of start.
 *
 * @module
 */

export class RunSlots {
  #maxRunning: number;
  #maxQueued: number;
  /** Slots held (launching or running). */
  #active = 0;
  /** Requests waiting for a slot, oldest first. */
  readonly #waiting: (() => void)[] = [];

  constructor(maxRunning: number, maxQueued: number) {
    this.#maxRunning = maxRunning;
    this.#maxQueued = maxQueued;
  }

  get maxRunning(): number {
    return this.#maxRunning;
  }

  get maxQueued(): number {
    return this.#maxQueued;
  }

  /** Slots held now. */
  get active(): number {
    return this.#active;
  }

  /**
   * New limits, from now on: slots a higher `maxRunning` opens go to the
   * waiters at once; over a lower one, the runs under way finish.
   */
  resize(maxRunning: number, maxQueued: number): void {
    this.#maxRunning = maxRunning;
    this.#maxQueued = maxQueued;
    while (this.#active < this.#maxRunning && this.#waiting.length > 0) {
      this.#active++;
      this.#waiting.shift()!();
    }
  }

  /**
   * Waits for a slot; false (at once) when the queue is full. A slot taken
   * must be given back with release().
   */
  async acquire(): Promise<boolean> {
    if (this.#active < this.#maxRunning) {
      this.#active++;
      return true;
    }
    if (this.#waiting.length >= this.#maxQueued) return false;
    // release() hands its slot straight to the oldest waiter.
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
    return true;
  }

  release(): void {
    // Over a lowered limit, the slot is not handed on.
    const next = this.#active <= this.#maxRunning
      ? this.#waiting.shift()
      : undefined;
    if (next) next();
    else this.#active--;
  }
}
