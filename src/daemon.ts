/**
 * Wiring: builds the parts from a config, starts them, and stops them in the
 * order that loses nothing.
 *
 * @module
 */

import { type Config, parseHostPort } from "./config.ts";
import { LocalServer } from "./local/server.ts";
import { RemoteClient } from "./remote/client.ts";
import { RemoteServer } from "./remote/server.ts";
import type { Remote } from "./remote/remote.ts";
import { Router } from "./router.ts";
import { PeerFrames } from "./peer_frames.ts";
import { openLauncher } from "./launch/mod.ts";
import { ScriptRunner } from "./scripts.ts";
import { scrubEnv } from "./trust/scrub_env.ts";
import { VERSION } from "./version.ts";
import { FEATURES } from "./protocol.ts";
import { join } from "node:path";
import { Journal } from "./journal/journal.ts";
import { JournalUpkeep } from "./journal/upkeep.ts";
import { Outbox } from "./outbox/outbox.ts";
import { OutboxRows } from "./outbox/outbox_rows.ts";
import { AckBatcher } from "./outbox/acks.ts";
import { Inbox } from "./inbox/inbox.ts";
import { RunRows } from "./inbox/run_rows.ts";
import type { Logger, LogLevel } from "./log.ts";
import { EventBus } from "./events/bus.ts";
import { Subscriptions } from "./events/subscriptions.ts";
import { EventRelay, PeerStreams } from "./events/relay.ts";
import { logEvents } from "./events/log_events.ts";
import { LocalCommands } from "./commands/local.ts";
import { PeerCommands } from "./commands/peer.ts";
import type { DaemonFacts } from "./commands/introspect.ts";
import type { MetricsServer } from "./metrics/http.ts";
import { health, openMetrics, sharesPort } from "./metrics/endpoints.ts";

export interface DaemonOptions {
  prefix: string;
  config: Config;
  log: Logger;
  /** The daemon's environment; scripts get it less `scrubEnv`. */
  env: Record<string, string>;
}

/** How often shutdown looks whether the peer has answered everything. */
const SHUTDOWN_POLL_MS = 20;

/** The offline policy a config asks for, or its mode's default. */
function offlinePolicy(config: Config): "queue" | "reject" {
  return config.offline ?? (config.mode === "client" ? "queue" : "reject");
}

export class Daemon {
  readonly #options: DaemonOptions;
  readonly #runner: ScriptRunner;
  readonly #local: LocalServer;
  readonly #remote: Remote;
  readonly #router: Router;
  readonly #frames: PeerFrames;
  readonly #journal: Journal;
  readonly #outboxRows: OutboxRows;
  readonly #runRows: RunRows;
  readonly #outbox: Outbox;
  readonly #inbox: Inbox;
  readonly #bus: EventBus;
  /** Where it listens, once started, for INFO. */
  #listening: string[] = [];
  #metrics: MetricsServer | undefined;
  #started = false;
  readonly #upkeep: JournalUpkeep;

  constructor(options: DaemonOptions) {
    this.#options = options;
    const { prefix, config, log } = options;
    const bus = new EventBus((error) =>
      log.error(`event listener: ${(error as Error).stack ?? error}`)
    );
    this.#bus = bus;
    logEvents(bus, log);
    const launcher = openLauncher(
      config.scriptLauncher,
      log,
      scrubEnv(options.env, config.scrubEnv),
    );
    log.debug(`scripts start with ${launcher.description}`);
    this.#runner = new ScriptRunner({
      prefix,
      log,
      launcher,
      maxRunning: config.maxRunning,
      maxQueued: config.maxQueued,
      scriptTimeoutMs: config.scriptTimeoutMs,
      maxTimeoutMs: config.maxTimeoutMs,
      killGraceMs: config.killGraceMs,
      maxOutputBytes: config.maxOutputBytes,
      bus,
    });
    // `"ack": false` keeps requests off the journal's path between daemons:
    // a dropped link then answers -6 for what it had sent, as with originals.
    const features = FEATURES.filter((feature) =>
      feature !== "ack" || config.ack
    );
    const limits = {
      features,
      maxMessageBytes: config.maxMessageBytes,
      maxBufferedBytes: config.maxBufferedBytes,
      rate: config.rate,
      log,
    };
    this.#local = new LocalServer({
      prefix,
      tcp: config.localTcp ? parseHostPort(config.localTcp) : undefined,
      socketMode: parseInt(config.socketMode, 8),
      maxLocalConnections: config.maxLocalConnections,
      ...limits,
    });
    this.#remote = config.mode === "server"
      ? new RemoteServer({
        hostname: config.host,
        port: config.port,
        heartbeatMs: config.heartbeatMs,
        trust: config.trust,
        maxPeers: config.maxPeers,
        handshakeTimeoutMs: config.handshakeTimeoutMs,
        allowedOrigins: config.allowedOrigins,
        http: config.metrics?.shared
          ? {
            paths: ["/healthz", "/metrics"],
            respond: (method, path, authorization) =>
              this.#metrics!.respond(method, path, authorization),
          }
          : undefined,
        ...limits,
      })
      : new RemoteClient({
        url: config.url,
        heartbeatMs: config.heartbeatMs,
        reconnectMinMs: config.reconnectMinMs,
        reconnectMaxMs: config.reconnectMaxMs,
        handshakeTimeoutMs: config.handshakeTimeoutMs,
        trust: config.trust,
        pin: config.pin,
        peerScripts: config.peerScripts,
        ...limits,
      });
    this.#journal = Journal.open({
      dir: join(prefix, "state"),
      durability: config.durability,
      maxRows: config.journalMaxRows,
      maxBytes: config.journalMaxBytes,
      log,
    });
    this.#outboxRows = new OutboxRows(this.#journal);
    this.#runRows = new RunRows(this.#journal);
    this.#upkeep = new JournalUpkeep(
      this.#journal,
      { outbox: this.#outboxRows, runs: this.#runRows },
      () => this.#options.config,
      log,
    );
    const acks = new AckBatcher(this.#journal);
    this.#outbox = new Outbox({
      remote: this.#remote,
      rows: this.#outboxRows,
      log,
      bus,
      maxMessageBytes: config.maxMessageBytes,
      offline: offlinePolicy(config),
      queueTtlMs: config.queueTtlMs,
      resultRetentionMs: config.resultRetentionMs,
      onFinished: () => this.#upkeep.onFinished(),
      onFull: () => this.#upkeep.onFull(),
    });
    this.#inbox = new Inbox({
      rows: this.#runRows,
      runner: this.#runner,
      remote: this.#remote,
      acks,
      log,
      answer: (link, status, ref) => this.#frames.answer(link, status, ref),
    });
    const subscriptions = new Subscriptions(bus);
    const relay = new EventRelay(subscriptions);
    const streams = new PeerStreams(subscriptions);
    const name = config.name ?? defaultName();
    const facts: DaemonFacts = {
      name,
      version: VERSION,
      mode: config.mode,
      startedAt: new Date(),
      listening: () => this.#listening,
      features,
      scriptsDir: join(prefix, "scripts"),
      running: () => this.#runner.active,
    };
    const commands = new LocalCommands({
      remote: this.#remote,
      outbox: this.#outbox,
      facts,
      subscriptions,
      relay,
      forward: (connection, message, command) =>
        this.#router.forward(connection, message, command),
    });
    this.#metrics = openMetrics(config, {
      bus,
      links: () => this.#remote.links(),
      running: () => this.#runner.active,
      outboxDepth: () => this.#outbox.size,
      journalRows: () => this.#journal.rows,
    }, () =>
      health({
        started: this.#started,
        stopping: this.#router.stopping,
        readyPeers: this.#remote.links().filter((l) => l.isReady).length,
      }, this.#options.config.mode), log);
    this.#router = new Router({
      remote: this.#remote,
      outbox: this.#outbox,
      commands,
      relay,
      bus,
      log,
      maxMessageBytes: config.maxMessageBytes,
      maxInFlight: config.maxInFlight,
      deadlineMs: config.deadlineMs,
    });
    this.#frames = new PeerFrames({
      name,
      version: VERSION,
      features,
      maxMessageBytes: config.maxMessageBytes,
      remote: this.#remote,
      runner: this.#runner,
      outbox: this.#outbox,
      inbox: this.#inbox,
      acks,
      commands: new PeerCommands({
        remote: this.#remote,
        outbox: this.#outbox,
        facts,
        streams,
      }),
      bus,
      relay,
      streams,
      log,
      stopping: () => this.#router.stopping,
    });
  }

  /** A second signal: every script's group gets SIGKILL before the exit. */
  killScripts(): void {
    this.#runner.killAll();
  }

  /**
   * Takes what can change without dropping a link from a config read again
   * (SIGHUP): credentials (a server's secret and peers, a client's secret
   * and peerScripts), the run limits and timeouts, maxInFlight, deadlineMs
   * and the log level. Everything else needs a restart.
   */
  reload(config: Config, logLevel: LogLevel): void {
    const { log } = this.#options;
    if (config.mode !== this.#options.config.mode) {
      log.error(
        "SIGHUP: the config's mode changed; restart the daemon for that",
      );
      return;
    }
    log.level = logLevel;
    log.format = config.logFormat;
    this.#runner.configure({
      maxRunning: config.maxRunning,
      maxQueued: config.maxQueued,
      scriptTimeoutMs: config.scriptTimeoutMs,
      maxTimeoutMs: config.maxTimeoutMs,
      killGraceMs: config.killGraceMs,
      maxOutputBytes: config.maxOutputBytes,
    });
    this.#router.configure({
      maxInFlight: config.maxInFlight,
      deadlineMs: config.deadlineMs,
    });
    this.#outbox.configure({
      offline: offlinePolicy(config),
      queueTtlMs: config.queueTtlMs,
      resultRetentionMs: config.resultRetentionMs,
    });
    this.#remote.reloadTrust(
      config.trust,
      config.mode === "client" ? config.peerScripts : undefined,
    );
    // Result bounds and retention are read from it as they are used.
    this.#options.config = config;
    log.info("SIGHUP: configuration reloaded");
    this.#bus.emit("config.reloaded", { ok: true });
  }

  /** A SIGHUP whose config could not be read: subscribers hear so. */
  reloadFailed(error: string): void {
    this.#bus.emit("config.reloaded", { ok: false, error });
  }

  /** Opens the local listener and the WebSocket side; logs one "ready" line. */
  async start(): Promise<void> {
    const { config, log } = this.#options;
    log.debug(`journal: ${this.#journal.where}`);
    this.#upkeep.start();
    this.#outbox.replay();
    this.#inbox.replay();
    // The WebSocket side first: a taken port leaves no socket file behind.
    const started = await this.#remote.start(this.#frames);
    const remote = config.mode === "server"
      ? `listening on ${started}`
      : started;
    const local = await this.#local.listen();
    this.#listening = [started, local];
    const metrics = sharesPort(config)
      ? `${started.replace(/^ws/, "http")} (the WebSocket port)`
      : await this.#metrics?.start();
    if (metrics !== undefined) this.#listening.push(metrics);
    this.#local.serve(this.#router);
    this.#started = true;
    log.info(
      `ready: ws-daemon ${VERSION}, ${config.mode} mode, ${remote}, local socket ${local}`,
    );
    if (metrics !== undefined) log.info(`metrics and health on ${metrics}`);
  }

  /**
   * Graceful stop: refuse new work and new local clients, let running scripts
   * and answers owed by the peer finish within the grace period (then kill the
   * scripts' process groups), close WebSockets with 1001, answer what is left
   * with -2, and close local clients once their answers are written.
   */
  async stop(): Promise<void> {
    const { config, log } = this.#options;
    log.info(`shutting down (grace ${config.shutdownGraceMs} ms)`);
    const deadline = Date.now() + config.shutdownGraceMs;
    this.#router.stopAccepting();
    await this.#local.stopAccepting();
    await this.#runner.drain(config.shutdownGraceMs);
    // The statuses of the runs that just ended, before the links close.
    await this.#inbox.sent();
    while (this.#owedByPeers() > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, SHUTDOWN_POLL_MS));
    }
    await this.#remote.close();
    await this.#local.closeAll(Math.max(1000, deadline - Date.now()));
    await this.#runner.close();
    if (!sharesPort(config)) await this.#metrics?.close();
    this.#upkeep.stop();
    const left = this.#outbox.size;
    this.#journal.close();
    if (left > 0) {
      log.info(
        `${left} request(s) not finished are kept in the journal for the next start`,
      );
    }
    log.info("stopped");
  }

  #owedByPeers(): number {
    return this.#outbox.owedByPeers;
  }
}

function defaultName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "ws-daemon";
  }
}
