/**
 * Choosing the local socket's file: `ws-daemon.sock`, else `ws-daemon0.sock`,
 * `ws-daemon1.sock`, … as the original does, with two differences. A name held
 * by a live daemon is skipped, but a stale socket file (left by a crashed
 * daemon: nobody answers on it) is reclaimed; and a file that is not a socket
 * is never deleted, only skipped.
 *
 * @module
 */

import { join } from "node:path";
import type { Logger } from "../log.ts";

/** How many fallback names are tried before giving up. */
const MAX_FALLBACKS = 100;

/** The candidate socket names, in the order the original tries them. */
export function socketNames(): string[] {
  const names = ["ws-daemon.sock"];
  for (let i = 0; i < MAX_FALLBACKS; i++) names.push(`ws-daemon${i}.sock`);
  return names;
}

type Claim = "free" | "stale" | "live" | "not-a-socket";

async function inspect(path: string): Promise<Claim> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "free";
    throw error;
  }
  if (!info.isSocket) return "not-a-socket";
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return "live";
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return "stale";
    // Anything else (permissions, say) means we cannot tell: leave it be.
    return "live";
  }
}

/**
 * Listens on the first free socket name in `prefix`, reclaiming stale ones.
 *
 * @throws {Error} when every name is taken.
 */
export async function listenOnFreeSocket(
  prefix: string,
  log: Logger,
): Promise<Deno.UnixListener> {
  for (const name of socketNames()) {
    const path = join(prefix, name);
    const claim = await inspect(path);
    if (claim === "live") {
      log.info(`${name} belongs to a running daemon, trying the next name`);
      continue;
    }
    if (claim === "not-a-socket") {
      log.warn(
        `${path} exists and is not a socket; leaving it, trying the next name`,
      );
      continue;
    }
    if (claim === "stale") {
      log.info(`${name} is a stale socket nobody answers on; reclaiming it`);
      await Deno.remove(path).catch(() => {});
    }
    try {
      return Deno.listen({ transport: "unix", path });
    } catch (error) {
      // Another daemon took the name between our look and our listen.
      if (error instanceof Deno.errors.AddrInUse) continue;
      throw error;
    }
  }
  throw new Error(
    `Cannot open a local socket as all ${
      MAX_FALLBACKS + 1
    } names in ${prefix} are taken`,
  );
}
