/**
 * Starts real daemons as separate processes, with the same entry point and
 * permission flags as the compiled binary, in temporary prefixes.
 *
 * @module
 */

import { join } from "node:path";
import { LoggedProcess } from "./logged_process.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = join(ROOT, "src/main.ts");
const FIXTURES = join(ROOT, "test/fixtures/scripts");

/** The permission flags of `make run` and `make build`, from their one list. */
export const PERMISSIONS: string[] = Deno.readTextFileSync(
  join(ROOT, "scripts/permissions.txt"),
).split("\n").map((line) => line.trim()).filter((line) => line !== "");

/** The original Node daemon's launcher, when the environment names it. */
export const ORIGINAL: string | undefined = Deno.env.get("WSDAEMON_ORIGINAL") ||
  undefined;

export interface PrefixOptions {
  /** Fixture script names to copy into scripts/ (default: all of them). */
  scripts?: string[];
}

/**
 * A temp prefix with `config.json` and the fixture scripts. Removed by
 * `Symbol.asyncDispose`.
 */
export class Prefix {
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  static async create(
    config: unknown,
    options: PrefixOptions = {},
  ): Promise<Prefix> {
    const path = await Deno.makeTempDir({ prefix: "wsd-test-" });
    const prefix = new Prefix(path);
    await prefix.writeConfig(config);
    await Deno.mkdir(join(path, "scripts"));
    const names = options.scripts ??
      [...Deno.readDirSync(FIXTURES)].map((entry) => entry.name);
    for (const name of names) {
      await Deno.copyFile(join(FIXTURES, name), join(path, "scripts", name));
      const mode = (await Deno.stat(join(FIXTURES, name))).mode! & 0o777;
      await Deno.chmod(join(path, "scripts", name), mode);
    }
    return prefix;
  }

  async writeConfig(config: unknown): Promise<void> {
    const text = typeof config === "string" ? config : JSON.stringify(config);
    await Deno.writeTextFile(join(this.path, "config.json"), text);
  }

  /** Writes an executable script into scripts/. */
  async addScript(name: string, body: string, mode = 0o755): Promise<void> {
    const file = join(this.path, "scripts", name);
    await Deno.writeTextFile(file, body);
    await Deno.chmod(file, mode);
  }

  file(...parts: string[]): string {
    return join(this.path, ...parts);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}

export interface StartOptions {
  /** Extra command-line arguments. */
  args?: string[];
  env?: Record<string, string>;
  /** Wait for the "ready" line (default true). */
  waitReady?: boolean;
  /** How long start may take. */
  timeoutMs?: number;
  /** Permission flags instead of scripts/permissions.txt. */
  permissions?: string[];
}

const READY =
  /ready: ws-daemon \S+, (server|client) mode, (?:listening on (wss?:\/\/\S+)|server \S+), local socket (\S+)/;

/** One daemon process; its log (stderr) is collected line by line. */
export class DaemonProcess extends LoggedProcess {
  /** Path of the local socket (or tcp://host:port), from the ready line. */
  socket = "";
  /** ws://host:port the server listens on (server mode). */
  url = "";

  private constructor(prefix: string, child: Deno.ChildProcess) {
    super(prefix, child, { name: "daemon", log: child.stderr });
  }

  /** Runs `deno run <permissions> src/main.ts` with WSDAEMON_PREFIX=prefix. */
  static async start(
    prefix: string | Prefix,
    options: StartOptions = {},
  ): Promise<DaemonProcess> {
    const path = typeof prefix === "string" ? prefix : prefix.path;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        ...(options.permissions ?? PERMISSIONS),
        MAIN,
        ...(options.args ?? []),
      ],
      env: {
        WSDAEMON_PREFIX: path,
        RUST_BACKTRACE: "0",
        NO_COLOR: "1",
        ...options.env,
      },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const daemon = new DaemonProcess(path, child);
    if (options.waitReady ?? true) {
      try {
        const line = await daemon.waitForLog(
          READY,
          options.timeoutMs ?? 15_000,
        );
        const match = line.match(READY)!;
        daemon.url = match[2] ?? "";
        daemon.socket = match[3];
      } catch (error) {
        await daemon.abort(error);
      }
    }
    return daemon;
  }

  /** The port of a server-mode daemon. */
  get port(): number {
    return Number(new URL(this.url).port);
  }
}

/** A server and a client daemon connected to each other on loopback. */
export interface Pair {
  serverPrefix: Prefix;
  clientPrefix: Prefix;
  server: DaemonProcess;
  client: DaemonProcess;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface PairOptions {
  server?: Record<string, unknown>;
  client?: Record<string, unknown>;
  /** Command-line arguments for both daemons, e.g. a log level. */
  args?: string[];
  /** Fixture scripts for both prefixes (default: all). */
  scripts?: string[];
}

/** A server config on loopback for tests; port 0 picks a free port. */
export function serverConfig(
  fields: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    mode: "server",
    port: 0,
    host: "127.0.0.1",
    name: "server",
    ...fields,
  };
}

/** A client config for tests, pointed at `port` on loopback, quick to reconnect. */
export function clientConfig(
  port: number,
  fields: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    mode: "client",
    proxy: "127.0.0.1",
    port,
    name: "client",
    reconnectMinMs: 50,
    reconnectMaxMs: 500,
    ...fields,
  };
}

/** Starts a server, then a client, and waits until they have said hello. */
export async function startPair(options: PairOptions = {}): Promise<Pair> {
  const serverPrefix = await Prefix.create(
    serverConfig(options.server),
    { scripts: options.scripts },
  );
  const server = await DaemonProcess.start(serverPrefix, {
    args: options.args,
  });
  const clientPrefix = await Prefix.create(
    clientConfig(server.port, options.client),
    { scripts: options.scripts },
  );
  const client = await DaemonProcess.start(clientPrefix, {
    args: options.args,
  });
  await Promise.all([
    server.waitForLog(/peer client .* says hello/),
    client.waitForLog(/peer server .* says hello/),
  ]);
  return {
    serverPrefix,
    clientPrefix,
    server,
    client,
    async [Symbol.asyncDispose]() {
      await Promise.all([client.kill(), server.kill()]);
      await Promise.all([
        clientPrefix[Symbol.asyncDispose](),
        serverPrefix[Symbol.asyncDispose](),
      ]);
    },
  };
}

/** A free TCP port on 127.0.0.1 (for daemons that cannot take port 0). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
