/**
 * `ws-daemon status`: what the running daemon says of itself (INFO) and of
 * its links (PEERS), as a readable table, or as JSON with `--json`.
 *
 * @module
 */

import { CliError, EXIT, parseOptions, reportError } from "./_files.ts";
import { connect, EXIT_UNAVAILABLE, prefixOf } from "./_connect.ts";
import { DEFAULT_PREFIX } from "../config.ts";
import type { LocalClient } from "../client/local_client.ts";

const COMMAND = "ws-daemon status";

const USAGE = `Usage: ws-daemon status [--json] [--prefix DIR]

Shows the running daemon (name, mode, version, uptime, where it listens, its
scripts and runs) and each of its links (peer, state, address, since when,
version, requests in flight and done, last round trip).

  --json          {"info": …, "peers": […]} as the daemon answers INFO and PEERS
  --prefix DIR    the daemon's prefix (default: $WSDAEMON_PREFIX, else
                  ${DEFAULT_PREFIX})
  --help          print this help

Exit codes: 0, 69 no daemon answers on the prefix, 2 bad arguments.
`;

const OPTIONS = {
  json: { type: "boolean" },
  prefix: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const ANSWER_TIMEOUT_MS = 10_000;

async function ask(local: LocalClient, code: string): Promise<unknown> {
  const answer = await local.request(
    { name: "+cmd", id: code, params: { code } },
    ANSWER_TIMEOUT_MS,
  ).catch((error) => {
    throw new CliError(
      `the daemon did not answer ${code}: ${(error as Error).message}`,
      EXIT_UNAVAILABLE,
    );
  });
  if (answer.status !== 0) {
    throw new CliError(
      `${code} answered ${answer.status}: ${answer.error ?? ""}`,
      1,
    );
  }
  return answer.data;
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const parts = [
    [Math.floor(s / 86400), "d"],
    [Math.floor(s / 3600) % 24, "h"],
    [Math.floor(s / 60) % 60, "m"],
    [s % 60, "s"],
  ] as const;
  const shown = parts.filter(([n], i) => n > 0 || i === parts.length - 1)
    .map(([n, unit]) => `${n}${unit}`);
  return shown.join(" ");
}

function bytes(n: unknown): string {
  return typeof n === "number" ? `${(n / 1024 ** 3).toFixed(1)} GiB` : "?";
}

/** Rows as columns padded to their widest cell. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((row) => row[i].length))
  );
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]))
      .join("  ")
  ).join("\n");
}

/** Runs `ws-daemon status` with `args` (after the subcommand's name). */
export async function runStatus(args: string[]): Promise<number> {
  try {
    const { values } = parseOptions(args, OPTIONS);
    if (values.help) {
      console.log(USAGE);
      return EXIT.OK;
    }
    await using local = await connect(prefixOf(values.prefix));
    const info = await ask(local, "INFO") as Record<string, unknown>;
    const peers = await ask(local, "PEERS") as Record<string, unknown>[];
    if (values.json) {
      console.log(JSON.stringify({ info, peers }));
      return EXIT.OK;
    }
    const load = Array.isArray(info.loadAverage)
      ? info.loadAverage.join(" ")
      : "?";
    console.log(
      `${info.name}: ${info.mode} mode, ws-daemon ${info.version}, pid ${info.pid}, up ${
        duration(Number(info.uptimeMs))
      }`,
    );
    console.log(`listening: ${(info.listening as string[]).join(", ")}`);
    console.log(`features:  ${(info.features as string[]).join(", ")}`);
    console.log(
      `scripts:   ${info.scripts}, running ${info.running}; load ${load}; free memory ${
        bytes(info.freeMemoryBytes)
      }`,
    );
    console.log("");
    if (peers.length === 0) {
      console.log("no peer connected");
      return EXIT.OK;
    }
    console.log(table([
      [
        "PEER",
        "STATE",
        "ADDRESS",
        "SINCE",
        "VERSION",
        "IN FLIGHT",
        "DONE",
        "RTT",
      ],
      ...peers.map((peer) => [
        String(peer.name),
        String(peer.state),
        String(peer.address),
        String(peer.since),
        String(peer.version),
        String(peer.inFlight),
        String(peer.done),
        typeof peer.rttMs === "number" ? `${peer.rttMs} ms` : "-",
      ]),
    ]));
    return EXIT.OK;
  } catch (error) {
    return reportError(COMMAND, error);
  }
}
