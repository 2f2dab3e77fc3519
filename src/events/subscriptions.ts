/**
 * Subscriptions: event streams for local connections (`+cmd SUBSCRIBE`) and
 * for peers (`&cmd SUBSCRIBE` through a link), fed by the event bus.
 *
 * A subscriber that does not read never slows the daemon: each sink has a
 * bounded backlog, events past it are dropped and counted, and once the
 * backlog has room again the subscriber gets one `dropped` line with the
 * count before the next event.
 *
 * @module
 */

import { matchesAny } from "../trust/auth.ts";
import type { EventFilter } from "../commands/table.ts";
import {
  type DaemonEvent,
  EVENT_TYPES,
  type EventBus,
  type EventType,
} from "./bus.ts";

/** One event line: `{"event", "time", "data"}` and any extra fields. */
export type EventLine = Record<string, unknown> & {
  event: string;
  time: string;
  data: unknown;
};

/** Where a subscriber's lines go. */
export interface LineWriter {
  /** Writes a line; false when the backlog is full and it was not written. */
  write(line: EventLine): boolean;
}

/**
 * A writer that counts what it had to drop and says so, in one `dropped`
 * line, as soon as it has room again.
 */
export class DroppingSink {
  readonly #writer: LineWriter;
  #dropped = 0;

  constructor(writer: LineWriter) {
    this.#writer = writer;
  }

  get dropped(): number {
    return this.#dropped;
  }

  push(line: EventLine): void {
    if (this.#dropped > 0 && !this.catchUp()) {
      this.#dropped++;
      return;
    }
    if (!this.#writer.write(line)) this.#dropped++;
  }

  /** Writes the `dropped` line if events were dropped; false if no room yet. */
  catchUp(): boolean {
    if (this.#dropped === 0) return true;
    const line: EventLine = {
      event: "dropped",
      time: new Date().toISOString(),
      data: { count: this.#dropped },
    };
    if (!this.#writer.write(line)) return false;
    this.#dropped = 0;
    return true;
  }
}

/** The event as a line. */
export function eventLine(event: DaemonEvent): EventLine {
  return {
    event: event.type,
    time: new Date(event.at).toISOString(),
    data: event.data,
  };
}

interface Subscriber {
  sink: DroppingSink;
  /** Each SUBSCRIBE's filter; an event matching any is written once. */
  filters: EventFilter[];
  /** Which events this subscriber may see at all (a peer: its own). */
  scope?: (event: DaemonEvent) => boolean;
  /** Extra fields on every line (a peer's subscription ref). */
  wrap?: (line: EventLine) => EventLine;
}

function matches(filter: EventFilter, event: DaemonEvent): boolean {
  if (filter.events && !filter.events.includes(event.type)) return false;
  if (filter.peers) {
    const peer = (event.data as { peer?: unknown }).peer;
    if (typeof peer !== "string" || !matchesAny(peer, filter.peers)) {
      return false;
    }
  }
  return true;
}

export class Subscriptions {
  readonly #subscribers = new Map<unknown, Subscriber>();
  #off: (() => void) | undefined;
  readonly #bus: EventBus;

  constructor(bus: EventBus) {
    this.#bus = bus;
  }

  get size(): number {
    return this.#subscribers.size;
  }

  /**
   * Adds a filter to the subscriber known by `key` (a connection, or a
   * link and ref), making it if it is new.
   */
  add(
    key: unknown,
    filter: EventFilter,
    make: () => Omit<Subscriber, "filters">,
  ): void {
    let subscriber = this.#subscribers.get(key);
    if (subscriber === undefined) {
      subscriber = { ...make(), filters: [] };
      this.#subscribers.set(key, subscriber);
    }
    subscriber.filters.push({ events: filter.events, peers: filter.peers });
    this.#off ??= this.#bus.on((event) => this.#deliver(event));
  }

  /**
   * Stops `events` for the subscriber `key`, or all of them; returns whether
   * it was subscribed to anything.
   */
  remove(key: unknown, events?: EventType[]): boolean {
    const subscriber = this.#subscribers.get(key);
    if (subscriber === undefined) return false;
    if (events !== undefined) {
      subscriber.filters = subscriber.filters.map((filter) => ({
        ...filter,
        events: (filter.events ?? EVENT_TYPES).filter((type) =>
          !events.includes(type)
        ),
      })).filter((filter) => filter.events.length > 0);
    }
    if (events === undefined || subscriber.filters.length === 0) {
      this.#subscribers.delete(key);
    }
    if (this.#subscribers.size === 0) {
      this.#off?.();
      this.#off = undefined;
    }
    return true;
  }

  /** Every subscriber whose key passes `test` goes. */
  removeWhere(test: (key: unknown) => boolean): void {
    for (const key of [...this.#subscribers.keys()]) {
      if (test(key)) this.remove(key);
    }
  }

  /** The sink of `key`, to write its `dropped` line once it has drained. */
  sinkOf(key: unknown): DroppingSink | undefined {
    return this.#subscribers.get(key)?.sink;
  }

  #deliver(event: DaemonEvent): void {
    let line: EventLine | undefined;
    for (const subscriber of this.#subscribers.values()) {
      if (subscriber.scope && !subscriber.scope(event)) continue;
      if (!subscriber.filters.some((filter) => matches(filter, event))) {
        continue;
      }
      line ??= eventLine(event);
      subscriber.sink.push(subscriber.wrap ? subscriber.wrap(line) : line);
    }
  }
}
