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
import { Router, type RouterOptions } from "./router.ts";
import { openLauncher } from "./launch/mod.ts";
import { ScriptRunner } from "./scripts.ts";
import { VERSION } from "./version.ts";
import type { Logger } from "./log.ts";

export interface DaemonOptions {
  prefix: string;
  config: Config;
  log: Logger;
}

/** How often shutdown looks whether the peer has answered everything. */
const SHUTDOWN_POLL_MS = 20;

export class Daemon {
  readonly #options: DaemonOptions;
  readonly #runner: ScriptRunner;
  readonly #local: LocalServer;
  readonly #server: RemoteServer | undefined;
  readonly #client: RemoteClient | undefined;
  readonly #router: Router;

  constructor(options: DaemonOptions) {
    this.#options = options;
    const { prefix, config, log } = options;
    const launcher = openLauncher(config.scriptLauncher, log);
    log.debug(`scripts start with ${launcher.description}`);
    this.#runner = new ScriptRunner({ prefix, log, launcher });
    this.#local = new LocalServer({
      prefix,
      tcp: config.localTcp ? parseHostPort(config.localTcp) : undefined,
      socketMode: parseInt(config.socketMode, 8),
      maxMessageBytes: config.maxMessageBytes,
      maxBufferedBytes: config.maxBufferedBytes,
      log,
    });
    const peerOptions = {
      heartbeatMs: config.heartbeatMs,
      maxMessageBytes: config.maxMessageBytes,
      maxBufferedBytes: config.maxBufferedBytes,
      log,
    };
    if (config.mode === "server") {
      const server = new RemoteServer({
        hostname: config.host,
        port: config.port,
        ...peerOptions,
      });
      this.#server = server;
      this.#router = this.#makeRouter(() => server.peers.next());
    } else {
      const client = new RemoteClient({
        url: config.url,
        reconnectMinMs: config.reconnectMinMs,
        reconnectMaxMs: config.reconnectMaxMs,
        ...peerOptions,
      });
      this.#client = client;
      this.#router = this.#makeRouter(
        () => client.link,
        (ms) => client.pause(ms),
      );
    }
  }

  #makeRouter(
    pickPeer: RouterOptions["pickPeer"],
    pause?: (ms: number) => void,
  ): Router {
    const { config, log } = this.#options;
    return new Router({
      mode: config.mode,
      name: config.name ?? defaultName(),
      version: VERSION,
      runner: this.#runner,
      log,
      pickPeer,
      pause,
    });
  }

  /** Opens the local listener and the WebSocket side; logs one "ready" line. */
  async start(): Promise<void> {
    const { config, log } = this.#options;
    // The WebSocket port first: if it is taken, no socket file is left behind.
    const remote = this.#server
      ? `listening on ${await this.#server.listen(this.#router)}`
      : `server ${config.mode === "client" ? config.url : ""}`;
    const local = await this.#local.listen();
    this.#client?.start(this.#router);
    this.#local.serve(this.#router);
    log.info(
      `ready: ws-daemon ${VERSION}, ${config.mode} mode, ${remote}, local socket ${local}`,
    );
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
    while (this.#owedByPeers() > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, SHUTDOWN_POLL_MS));
    }
    await this.#client?.close();
    await this.#server?.close();
    await this.#local.closeAll(Math.max(1000, deadline - Date.now()));
    await this.#runner.close();
    log.info("stopped");
  }

  #owedByPeers(): number {
    const links = this.#server
      ? this.#server.peers.all()
      : [this.#client?.link];
    return links.reduce((sum, link) => sum + (link?.pending.size ?? 0), 0);
  }
}

function defaultName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "ws-daemon";
  }
}
