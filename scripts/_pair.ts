/**
 * A server and a client daemon on loopback, in temporary prefixes holding the
 * scripts the caller embeds: what `make demo` and `make bench` both start.
 *
 * Unlike the tests' `startPair`, this one works at any log level. At `info`
 * and below it waits on the "ready" and "says hello" lines; above, those lines
 * are never written, so it waits for the socket file and then probes the link
 * with a request until it stops answering -2 (no peer yet).
 *
 * @module
 */

import {
  clientConfig,
  DaemonProcess,
  freePort,
  Prefix,
  serverConfig,
} from "./harness/daemon.ts";
import { LocalClient } from "../src/client/local_client.ts";
import { until } from "./harness/wait.ts";

const START_TIMEOUT_MS = 15_000;

/** The bench measures the relay, not the limits that guard it. */
const UNLIMITED = { rate: 1_000_000, maxRunning: 1024, maxInFlight: 100_000 };

export interface ScriptPairOptions {
  /** Script name → file body, written executable into both prefixes. */
  scripts: Record<string, string>;
  /** The daemons' config "logLevel" (default "info"). */
  logLevel?: "debug" | "info" | "warn" | "error";
  /**
   * A script (from `scripts`) that exits 0, run to probe the link when the
   * log level hides the hello lines.
   */
  probeScript?: string;
  /** More config fields, for both daemons. */
  config?: Record<string, unknown>;
}

export interface ScriptPair {
  serverPrefix: Prefix;
  clientPrefix: Prefix;
  server: DaemonProcess;
  client: DaemonProcess;
  /** The ws:// URL the server listens on. */
  url: string;
  /** SIGTERM to the client, then the server; their exit statuses. */
  stop(): Promise<{ client: Deno.CommandStatus; server: Deno.CommandStatus }>;
  /** Kills whatever still runs and removes both prefixes. */
  [Symbol.asyncDispose](): Promise<void>;
}

async function makePrefix(
  config: Record<string, unknown>,
  scripts: Record<string, string>,
): Promise<Prefix> {
  const prefix = await Prefix.create(config, { scripts: [] });
  for (const [name, body] of Object.entries(scripts)) {
    await prefix.addScript(name, body);
  }
  return prefix;
}

/** Waits for `<prefix>/ws-daemon.sock`, failing early if the daemon exits. */
async function socketReady(daemon: DaemonProcess, prefix: Prefix) {
  const path = prefix.file("ws-daemon.sock");
  let exited = false;
  daemon.exited().then(() => exited = true);
  await until(
    async () => {
      if (exited) {
        throw new Error(`daemon exited during start:\n${daemon.log()}`);
      }
      try {
        return (await Deno.lstat(path)).isSocket;
      } catch {
        return false;
      }
    },
    START_TIMEOUT_MS,
    `${path} to appear`,
  );
  daemon.socket = path;
}

/** Sends the probe until the answer is not -2; throws if it is not 0. */
async function probe(socket: string, script: string): Promise<void> {
  await using local = await LocalClient.connect(socket);
  let n = 0;
  const answer = await until(
    async () => {
      const answer = await local.request({ name: script, id: `probe-${n++}` });
      return answer.status === -2 ? false : answer;
    },
    START_TIMEOUT_MS,
    "the peer link",
  );
  if (answer.status !== 0) {
    throw new Error(
      `probe ${script} answered ${JSON.stringify(answer)}, expected status 0`,
    );
  }
}

/** Starts a server, then a client, and waits until they are linked. */
export async function startScriptPair(
  options: ScriptPairOptions,
): Promise<ScriptPair> {
  const { scripts, logLevel = "info", probeScript } = options;
  const extra = { logLevel, ...UNLIMITED, ...options.config };
  const verbose = logLevel === "debug" || logLevel === "info";
  if (!verbose && probeScript === undefined) {
    throw new Error(`log level ${logLevel} needs a probeScript`);
  }
  const prefixes: Prefix[] = [];
  const daemons: DaemonProcess[] = [];
  const dispose = async () => {
    await Promise.all(daemons.map((daemon) => daemon.kill()));
    await Promise.all(prefixes.map((prefix) => prefix[Symbol.asyncDispose]()));
  };
  try {
    // Port 0 needs the ready line to learn the port; quiet daemons get one
    // picked here (a small race with other programs, acceptable for a script).
    const serverPrefix = await makePrefix(
      serverConfig({ port: verbose ? 0 : freePort(), ...extra }),
      scripts,
    );
    prefixes.push(serverPrefix);
    const server = await DaemonProcess.start(serverPrefix, {
      waitReady: verbose,
    });
    daemons.push(server);
    let url = server.url;
    if (!verbose) {
      await socketReady(server, serverPrefix);
      const config = JSON.parse(
        await Deno.readTextFile(serverPrefix.file("config.json")),
      );
      url = `ws://127.0.0.1:${config.port}`;
    }
    const clientPrefix = await makePrefix(
      clientConfig(Number(new URL(url).port), extra),
      scripts,
    );
    prefixes.push(clientPrefix);
    const client = await DaemonProcess.start(clientPrefix, {
      waitReady: verbose,
    });
    daemons.push(client);
    if (verbose) {
      await Promise.all([
        server.waitForLog(/peer client .* says hello/, START_TIMEOUT_MS),
        client.waitForLog(/peer server .* says hello/, START_TIMEOUT_MS),
      ]);
    } else {
      await socketReady(client, clientPrefix);
      await probe(server.socket, probeScript!);
      await probe(client.socket, probeScript!);
    }
    return {
      serverPrefix,
      clientPrefix,
      server,
      client,
      url,
      async stop() {
        const clientStatus = await client.stop("SIGTERM");
        const serverStatus = await server.stop("SIGTERM");
        return { client: clientStatus, server: serverStatus };
      },
      [Symbol.asyncDispose]: dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** Peak resident set size of a process in KiB (VmHWM), if Linux tells. */
export function peakRssKiB(pid: number): number | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = status.match(/^VmHWM:\s+(\d+)\s+kB/m);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}
