/**
 * `ws-daemon watch`: the running daemon's events as they happen, one
 * readable line each (or the raw lines with `--json`), until interrupted.
 *
 * @module
 */

import { CliError, EXIT, parseOptions, reportError } from "./_files.ts";
import { connect, EXIT_UNAVAILABLE, prefixOf } from "./_connect.ts";
import { DEFAULT_PREFIX } from "../config.ts";
import { EVENT_TYPES } from "../events/bus.ts";
import type { Answer } from "../client/local_client.ts";

const COMMAND = "ws-daemon watch";

const USAGE =
  `Usage: ws-daemon watch [--events LIST] [--peer NAME]... [--json] [--prefix DIR]

Prints the running daemon's events as they happen, one line each, until
interrupted (Ctrl-C) or the daemon stops.

  --events LIST   only these events, comma-separated:
                  ${EVENT_TYPES.join(", ")}
  --peer NAME     only events about this peer (a glob such as 'web-*' too);
                  may be given more than once
  --json          the daemon's event lines as they come
  --prefix DIR    the daemon's prefix (default: $WSDAEMON_PREFIX, else
                  ${DEFAULT_PREFIX})
  --help          print this help

Exit codes: 0 interrupted, 69 no daemon answers (or it stopped), 2 bad arguments.
`;

const OPTIONS = {
  events: { type: "string" },
  peer: { type: "string", multiple: true },
  json: { type: "boolean" },
  prefix: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** An event line as one readable line. */
export function readableEvent(line: Answer): string {
  const data = (line.data ?? {}) as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof data.name === "string") parts.push(data.name);
  if (Object.hasOwn(data, "id")) parts.push(`id=${JSON.stringify(data.id)}`);
  if (typeof data.peer === "string") parts.push(`peer=${data.peer}`);
  for (const [key, value] of Object.entries(data)) {
    if (["name", "id", "peer", "ref"].includes(key)) continue;
    if (value === null || value === undefined) continue;
    parts.push(
      `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`,
    );
  }
  const from = typeof line.from === "string" ? ` [${line.from}]` : "";
  return `${line.time} ${String(line.event).padEnd(16)}${from} ${
    parts.join(" ")
  }`;
}

/** Runs `ws-daemon watch` with `args` (after the subcommand's name). */
export async function runWatch(args: string[]): Promise<number> {
  try {
    const { values } = parseOptions(args, OPTIONS);
    if (values.help) {
      console.log(USAGE);
      return EXIT.OK;
    }
    const data: Record<string, unknown> = {};
    if (values.events !== undefined) {
      const events = values.events.split(",").map((e) => e.trim()).filter(
        (e) => e !== "",
      );
      const unknown = events.find((e) =>
        !(EVENT_TYPES as readonly string[]).includes(e)
      );
      if (unknown !== undefined || events.length === 0) {
        throw new CliError(
          `--events names ${
            unknown === undefined
              ? "no event"
              : `unknown event ${JSON.stringify(unknown)}`
          }: expected some of ${EVENT_TYPES.join(", ")}`,
          EXIT.USAGE,
        );
      }
      data.events = events;
    }
    if (values.peer !== undefined) data.peers = values.peer;
    await using local = await connect(prefixOf(values.prefix));
    const answer = await local.request({
      name: "+cmd",
      id: "watch",
      params: { code: "SUBSCRIBE", data },
    });
    if (answer.status !== 0) {
      throw new CliError(String(answer.error ?? answer.status), EXIT.USAGE);
    }
    const interrupted = Promise.withResolvers<void>();
    const stop = () => interrupted.resolve();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    try {
      for (;;) {
        const next = local.next(2_147_483_647).then((line) => ({ line }));
        next.catch(() => {}); // Handled below, or moot once interrupted.
        const got = await Promise.race([next, interrupted.promise]);
        if (got === undefined) return EXIT.OK;
        console.log(
          values.json ? JSON.stringify(got.line) : readableEvent(got.line),
        );
      }
    } catch {
      throw new CliError("the daemon closed the connection", EXIT_UNAVAILABLE);
    } finally {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
    }
  } catch (error) {
    return reportError(COMMAND, error);
  }
}
