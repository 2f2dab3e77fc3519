/**
 * A server with named clients, each a real daemon, for fan-out and
 * targeting tests.
 *
 * @module
 */

import { clientConfig, DaemonProcess, Prefix, serverConfig } from "./daemon.ts";

export interface Fleet {
  serverPrefix: Prefix;
  server: DaemonProcess;
  clients: Map<string, { prefix: Prefix; daemon: DaemonProcess }>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startFleet(
  names: string[],
  options: {
    server?: Record<string, unknown>;
    client?: Record<string, unknown>;
    scripts?: string[];
  } = {},
): Promise<Fleet> {
  const stack = new AsyncDisposableStack();
  try {
    const serverPrefix = stack.use(
      await Prefix.create(serverConfig(options.server), {
        scripts: options.scripts,
      }),
    );
    const server = stack.use(await DaemonProcess.start(serverPrefix));
    const clients = new Map<
      string,
      { prefix: Prefix; daemon: DaemonProcess }
    >();
    await Promise.all(names.map(async (name) => {
      const prefix = stack.use(
        await Prefix.create(
          clientConfig(server.port, { name, ...options.client }),
          { scripts: options.scripts },
        ),
      );
      const daemon = stack.use(await DaemonProcess.start(prefix));
      clients.set(name, { prefix, daemon });
      await Promise.all([
        server.waitForLog(new RegExp(`peer ${name} .* says hello`)),
        daemon.waitForLog(/peer server .* says hello/),
      ]);
    }));
    const moved = stack.move();
    return {
      serverPrefix,
      server,
      clients,
      [Symbol.asyncDispose]: () => moved.disposeAsync(),
    };
  } catch (error) {
    await stack.disposeAsync();
    throw error;
  }
}
