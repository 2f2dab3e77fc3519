/**
 * The daemon's metrics in the Prometheus text format, fed by the event bus
 * (never by the log) and by a look at the daemon's parts at each scrape.
 * Labels by peer are bounded: past MAX_PEER_LABELS distinct names, further
 * peers count as "other", so a churning fleet cannot grow the registry; a
 * name no peer has connected under counts as "none".
 *
 * @module
 */

import client from "prom-client";
import type { EventBus } from "../events/bus.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import { traffic } from "../remote/traffic.ts";

/** Distinct peer names a label takes before the rest are "other". */
export const MAX_PEER_LABELS = 64;

/** What a scrape looks at. */
export interface MetricsSources {
  bus: EventBus;
  links(): PeerLink[];
  running(): number;
  outboxDepth(): number;
  journalRows(): number;
}

/** A status as an outcome label. */
export function outcomeOf(status: number): string {
  if (status === 0) return "ok";
  if (status > 0) return "exit_nonzero";
  return {
    [-1]: "cannot_run",
    [-2]: "not_delivered",
    [-3]: "timeout",
    [-4]: "rejected",
    [-5]: "refused",
    [-6]: "unknown",
  }[status] ?? "other";
}

/** A refusal's reason, in one of a few words (the text is free). */
export function reasonOf(text: string): string {
  if (/\(rate\)|over its rate|faster than its rate/.test(text)) return "rate";
  if (/maxInFlight/.test(text)) return "in_flight";
  if (/journal/.test(text)) return "journal";
  if (/^busy|busy:/.test(text)) return "busy";
  if (/may not/.test(text)) return "policy";
  if (/STATUS/.test(text)) return "forged_status";
  return "other";
}

export class Metrics {
  readonly registry = new client.Registry();
  readonly #peers = new Set<string>();
  readonly #seen = new Set<string>();
  readonly #off: () => void;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    const peer = (name: unknown) => this.#peerLabel(name);
    new client.Gauge({
      name: "wsdaemon_connections",
      help: "Links to peers, by state",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        for (const state of ["authenticated", "introduced", "ready"]) {
          this.set({ state }, 0);
        }
        for (const link of sources.links()) this.inc({ state: link.state });
      },
    });
    const sent = new client.Counter({
      name: "wsdaemon_requests_sent_total",
      help:
        "Requests of local processes answered, by the peer that answered and the outcome",
      labelNames: ["peer", "outcome"],
      registers,
    });
    const received = new client.Counter({
      name: "wsdaemon_requests_received_total",
      help: "Requests received from peers, to run here",
      labelNames: ["peer"],
      registers,
    });
    const runs = new client.Counter({
      name: "wsdaemon_runs_total",
      help: "Scripts run here for peers' requests, by asker and outcome",
      labelNames: ["peer", "outcome"],
      registers,
    });
    new client.Gauge({
      name: "wsdaemon_scripts_running",
      help: "Scripts running (or starting) now",
      registers,
      collect() {
        this.set(sources.running());
      },
    });
    const duration = new client.Histogram({
      name: "wsdaemon_script_duration_seconds",
      help: "How long scripts ran, by outcome",
      labelNames: ["outcome"],
      buckets: [
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
      ],
      registers,
    });
    new client.Gauge({
      name: "wsdaemon_outbox_depth",
      help: "Requests accepted here and not yet answered",
      registers,
      collect() {
        this.set(sources.outboxDepth());
      },
    });
    new client.Gauge({
      name: "wsdaemon_journal_rows",
      help: "Rows in the journal",
      registers,
      collect() {
        this.set(sources.journalRows());
      },
    });
    const refusals = new client.Counter({
      name: "wsdaemon_refusals_total",
      help: "Requests and commands refused (-5), by reason",
      labelNames: ["reason"],
      registers,
    });
    new client.Counter({
      name: "wsdaemon_bytes_total",
      help: "Bytes of WebSocket frames, by direction",
      labelNames: ["direction"],
      registers,
      collect() {
        this.reset();
        this.inc({ direction: "in" }, traffic.in);
        this.inc({ direction: "out" }, traffic.out);
      },
    });
    const reconnects = new client.Counter({
      name: "wsdaemon_reconnects_total",
      help: "Links that came up again for a peer seen before",
      registers,
    });
    const ups = new client.Counter({
      name: "wsdaemon_peer_ups_total",
      help: "Links that became ready",
      registers,
    });
    this.#off = sources.bus.on((event) => {
      const data = event.data as Record<string, unknown>;
      switch (event.type) {
        case "status.returned":
          sent.inc({
            peer: peer(data.peer),
            outcome: outcomeOf(data.status as number),
          });
          return;
        case "request.received":
          received.inc({ peer: peer(data.peer) });
          return;
        case "script.finished":
          runs.inc({
            peer: peer(data.peer),
            outcome: outcomeOf(data.status as number),
          });
          duration.observe(
            { outcome: outcomeOf(data.status as number) },
            (data.durationMs as number) / 1000,
          );
          return;
        case "refused":
          refusals.inc({ reason: reasonOf(String(data.reason)) });
          return;
        case "peer.up": {
          ups.inc();
          const name = String(data.peer);
          if (this.#seen.has(name)) reconnects.inc();
          else if (this.#seen.size < 4 * MAX_PEER_LABELS) this.#seen.add(name);
          return;
        }
      }
    });
  }

  /**
   * A peer's name as a label: only names of peers that have been connected
   * (a local process may name any peer in `to`, which must not take a
   * label's place), at most MAX_PEER_LABELS of them.
   */
  #peerLabel(name: unknown): string {
    if (typeof name !== "string") return "none";
    if (!this.#seen.has(name)) return "none";
    if (this.#peers.has(name)) return name;
    if (this.#peers.size >= MAX_PEER_LABELS) return "other";
    this.#peers.add(name);
    return name;
  }

  /** The text a scrape gets. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    this.#off();
  }
}
