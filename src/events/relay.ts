/**
 * Subscriptions through a link, from both ends.
 *
 * On the asker's side, a local `&cmd SUBSCRIBE` is sent to the peer like any
 * command; once the peer has answered it 0, its `&cmd EVENT` frames, each
 * naming the subscription by the command's ref, are written to the local
 * connection that asked, as `{"event", "time", "data", "from": <peer>}`.
 * When that connection closes, the peer is told to stop; when the link
 * closes, the connection gets a `subscription.ended` line.
 *
 * On the peer's side (`PeerStreams`), each subscription sends its events
 * as EVENT frames, dropping them (and counting) while the link's backlog is
 * high, so that events never crowd out requests or make the link be cut.
 *
 * @module
 */

import { CommandCode, encodeCommand, REMOTE_COMMAND } from "../protocol.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import type { LocalConnection } from "../local/connection.ts";
import type { EventFilter } from "../commands/table.ts";
import {
  DroppingSink,
  type EventLine,
  Subscriptions,
} from "./subscriptions.ts";

interface Relayed {
  connection: LocalConnection;
  /** The peer's name, and the link the subscription lives on. */
  peer: string;
  link: PeerLink;
  sink: DroppingSink;
}

/** The local connection's sink: its event lines, bounded. */
export function connectionSink(connection: LocalConnection): DroppingSink {
  const sink = new DroppingSink({
    write: (line) => connection.writeEvent(line),
  });
  return sink;
}

export class EventRelay {
  readonly #relayed = new Map<string, Relayed>();
  /** Each local connection's sink, shared by its subscriptions. */
  readonly #sinks = new WeakMap<LocalConnection, DroppingSink>();
  readonly #local: Subscriptions;

  /** @param local the local subscriptions, sharing each connection's sink. */
  constructor(local: Subscriptions) {
    this.#local = local;
  }

  /** The one sink of `connection`, for its local and relayed events. */
  sinkOf(connection: LocalConnection): DroppingSink {
    let sink = this.#sinks.get(connection);
    if (sink === undefined) {
      sink = connectionSink(connection);
      this.#sinks.set(connection, sink);
      connection.onDrained = () => sink!.catchUp();
      connection.finished.then(() => this.#closed(connection));
    }
    return sink;
  }

  /** A local `&cmd SUBSCRIBE` sent to `link` as `ref`. */
  expect(ref: string, connection: LocalConnection, link: PeerLink): void {
    this.#relayed.set(ref, {
      connection,
      peer: link.name,
      link,
      sink: this.sinkOf(connection),
    });
    connection.streaming = true;
  }

  /** The peer answered the SUBSCRIBE sent as `ref`. */
  answered(ref: string, status: number): void {
    const relayed = this.#relayed.get(ref);
    if (relayed === undefined || status === 0) return;
    this.#relayed.delete(ref);
    this.settle(relayed.connection);
  }

  /** An EVENT frame from `link`. */
  deliver(link: PeerLink, data: unknown): void {
    if (typeof data !== "object" || data === null) return;
    const { sub, event, time } = data as Record<string, unknown>;
    if (typeof sub !== "string" || typeof event !== "string") return;
    const relayed = this.#relayed.get(sub);
    if (relayed?.link !== link) return;
    relayed.sink.push({
      event,
      time: typeof time === "string" ? time : new Date().toISOString(),
      data: (data as Record<string, unknown>).data ?? null,
      from: link.name,
    });
  }

  /**
   * A local `&cmd UNSUBSCRIBE`: every subscription of `connection` through a
   * link stops `events`, or ends. Returns how many it had.
   */
  unsubscribe(connection: LocalConnection, filter: EventFilter): number {
    let count = 0;
    for (const [ref, relayed] of this.#relayed) {
      if (relayed.connection !== connection) continue;
      count++;
      relayed.link.send(
        encodeCommand(REMOTE_COMMAND, CommandCode.UNSUBSCRIBE, {
          sub: ref,
          ...(filter.events ? { events: filter.events } : {}),
        }),
      );
      if (!filter.events) this.#relayed.delete(ref);
    }
    this.settle(connection);
    return count;
  }

  /** The link closed: its subscriptions end, and their connections hear so. */
  linkClosed(link: PeerLink, reason: string): void {
    for (const [ref, relayed] of this.#relayed) {
      if (relayed.link !== link) continue;
      this.#relayed.delete(ref);
      relayed.sink.push({
        event: "subscription.ended",
        time: new Date().toISOString(),
        data: { peer: relayed.peer, reason },
        from: relayed.peer,
      });
      this.settle(relayed.connection);
    }
  }

  /**
   * Keeps `connection` open for events while it has a subscription, local
   * or through a link; lets it close once it has none (after UNSUBSCRIBE).
   */
  settle(connection: LocalConnection): void {
    const streams = this.#local.sinkOf(connection) !== undefined ||
      [...this.#relayed.values()].some((r) => r.connection === connection);
    if (!streams) connection.streaming = false;
  }

  /** A local connection went: the peers stop sending it events. */
  #closed(connection: LocalConnection): void {
    this.#local.remove(connection);
    for (const [ref, relayed] of this.#relayed) {
      if (relayed.connection !== connection) continue;
      this.#relayed.delete(ref);
      relayed.link.send(
        encodeCommand(REMOTE_COMMAND, CommandCode.UNSUBSCRIBE, { sub: ref }),
      );
    }
  }
}

/** The peer's side: the subscriptions links hold here. */
export class PeerStreams {
  readonly #subscriptions: Subscriptions;

  constructor(subscriptions: Subscriptions) {
    this.#subscriptions = subscriptions;
  }

  /**
   * A peer's SUBSCRIBE as `ref`. `ownOnly`: it sees only the events about
   * itself (a client watching a server sees nothing of the other clients).
   */
  subscribe(
    link: PeerLink,
    ref: string,
    filter: EventFilter,
    ownOnly: boolean,
  ): void {
    this.#subscriptions.add(keyOf(link, ref), filter, () => ({
      sink: new DroppingSink({
        write: (line: EventLine) => {
          if (!link.isOpen) return true;
          if (link.bufferedAmount > link.eventBudget) return false;
          link.send(
            encodeCommand(REMOTE_COMMAND, CommandCode.EVENT, {
              sub: ref,
              ...line,
            }),
          );
          return true;
        },
      }),
      scope: ownOnly
        ? (event) => (event.data as { peer?: unknown }).peer === link.name
        : undefined,
    }));
  }

  unsubscribe(link: PeerLink, filter: EventFilter): boolean {
    if (filter.sub === undefined) {
      let any = false;
      this.#subscriptions.removeWhere((key) => {
        const mine = typeof key === "string" && key.startsWith(prefixOf(link));
        any ||= mine;
        return mine;
      });
      return any;
    }
    return this.#subscriptions.remove(keyOf(link, filter.sub), filter.events);
  }

  /** The link closed: its subscriptions go with it. */
  linkClosed(link: PeerLink): void {
    this.unsubscribe(link, {});
  }
}

function prefixOf(link: PeerLink): string {
  return `${link.label}\0${link.since.getTime()}\0`;
}

function keyOf(link: PeerLink, ref: string): string {
  return prefixOf(link) + ref;
}
