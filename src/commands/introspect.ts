/**
 * What INFO, PEERS and SCRIPTS answer: this daemon, its links, and the
 * scripts it would run for an asker.
 *
 * @module
 */

import { join } from "node:path";
import { allows } from "../trust/auth.ts";
import { checkScriptName } from "../script_file.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import type { Mode } from "./table.ts";

export interface DaemonFacts {
  name: string;
  version: string;
  mode: Mode;
  startedAt: Date;
  /** Where it listens: the WebSocket URL (server) or server URL (client), the local socket. */
  listening: () => string[];
  features: readonly string[];
  scriptsDir: string;
  /** Scripts running (or launching) now. */
  running: () => number;
}

/** INFO's data. */
export function info(facts: DaemonFacts): Record<string, unknown> {
  const now = Date.now();
  return {
    name: facts.name,
    version: facts.version,
    deno: Deno.version.deno,
    mode: facts.mode,
    pid: Deno.pid,
    startedAt: facts.startedAt.toISOString(),
    uptimeMs: now - facts.startedAt.getTime(),
    listening: facts.listening(),
    features: [...facts.features],
    scripts: listScripts(facts.scriptsDir).length,
    running: facts.running(),
    loadAverage: loadAverage(),
    freeMemoryBytes: freeMemory(),
  };
}

function loadAverage(): number[] | null {
  try {
    return Deno.loadavg().map((load) => Math.round(load * 100) / 100);
  } catch {
    return null;
  }
}

function freeMemory(): number | null {
  try {
    const memory = Deno.systemMemoryInfo();
    return memory.available || memory.free;
  } catch {
    return null;
  }
}

/** PEERS' data: one object per link, in any state. */
export function peers(
  links: PeerLink[],
  inFlight: (link: PeerLink) => number,
): Record<string, unknown>[] {
  return links.map((link) => ({
    name: link.name,
    address: link.label,
    state: link.state,
    since: link.since.toISOString(),
    version: link.hello?.version ?? (link.hello ? "unknown" : "original"),
    features: link.hello?.features ?? [],
    inFlight: inFlight(link),
    done: link.done,
    rttMs: link.rttMs ?? null,
  }));
}

/** One script of SCRIPTS' answer. */
export interface ScriptFacts {
  name: string;
  size: number;
  modified: string | null;
}

/**
 * The scripts this daemon would run for an asker whose `scripts` list is
 * `allowed` (unset: any): executable regular files with a valid name, in
 * name order.
 */
export function listScripts(
  scriptsDir: string,
  allowed?: readonly string[],
): ScriptFacts[] {
  const found: ScriptFacts[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(scriptsDir)];
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (checkScriptName(entry.name) !== undefined) continue;
    if (!allows(allowed, entry.name)) continue;
    try {
      const stat = Deno.statSync(join(scriptsDir, entry.name));
      if (!stat.isFile || ((stat.mode ?? 0) & 0o111) === 0) continue;
      found.push({
        name: entry.name,
        size: stat.size,
        modified: stat.mtime?.toISOString() ?? null,
      });
    } catch {
      // Gone, or a dangling link: not runnable.
    }
  }
  return found.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}
