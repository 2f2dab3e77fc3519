/**
 * The daemon's health and metrics endpoints from its config: what
 * `/healthz` says, and the server that answers both paths (on a listener of
 * its own, or on a server's WebSocket port with `metrics.shared`).
 *
 * @module
 */

import { type Config, parseHostPort } from "../config.ts";
import type { Logger } from "../log.ts";
import { type Health, MetricsServer } from "./http.ts";
import { Metrics, type MetricsSources } from "./metrics.ts";

/** Whether /healthz and /metrics are on the server's WebSocket port. */
export function sharesPort(config: Config): boolean {
  return config.mode === "server" && config.metrics?.shared === true;
}

/** What GET /healthz says: ready, or why not. */
export function health(
  state: { started: boolean; stopping: boolean; readyPeers: number },
  mode: Config["mode"],
): Health {
  const reason = !state.started
    ? "starting"
    : state.stopping
    ? "shutting down"
    : mode === "client" && state.readyPeers === 0
    ? "not connected to the server"
    : undefined;
  return {
    ready: reason === undefined,
    status: reason === undefined ? "ok" : "unavailable",
    ...(reason === undefined ? {} : { reason }),
    mode,
    peers: state.readyPeers,
  };
}

/** The endpoints `config.metrics` asks for, if it asks for any. */
export function openMetrics(
  config: Config,
  sources: MetricsSources,
  healthNow: () => Health,
  log: Logger,
): MetricsServer | undefined {
  if (config.metrics === undefined) return undefined;
  if (config.metrics.shared && config.mode === "client") {
    log.warn(
      `config: metrics.shared is for a server (a client has no WebSocket port); serving them on ${config.metrics.listen}`,
    );
  }
  return new MetricsServer({
    ...parseHostPort(config.metrics.listen),
    token: config.metrics.token,
    metrics: new Metrics(sources),
    health: healthNow,
    log,
  });
}
