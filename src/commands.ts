/**
 * The command codes (`+cmd` / `&cmd`): which ones each mode runs, and the
 * checks on their `data`. A local process gets -4 for a command that cannot
 * run; a peer's unknown command is only logged, as the original does.
 *
 * @module
 */

import {
  type Command,
  CommandCode,
  parseStatusData,
  shown,
  type StatusData,
} from "./protocol.ts";

export type Mode = "server" | "client";

/** A command ready to run, or why it cannot be. */
export type CheckedCommand =
  | { code: "PAUSE"; ms: number }
  | { code: "STATUS"; data: StatusData }
  | { code: "RESULT"; id: string | number }
  | { error: string };

/** PAUSE data: whole milliseconds, at most a day. */
export function pauseMs(data: unknown): number | string {
  if (
    !Number.isInteger(data) || (data as number) < 0 ||
    (data as number) > 86_400_000
  ) {
    return `PAUSE data must be an integer number of milliseconds from 0 to 86400000: found ${
      typeof data === "number"
        ? String(data)
        : JSON.stringify(data) ?? "nothing"
    }`;
  }
  return data as number;
}

/**
 * Checks a command for the daemon in `mode` to run: `+cmd` runs here, `&cmd`
 * runs on the peer, whose mode is the other one.
 */
export function checkCommand(command: Command, runsIn: Mode): CheckedCommand {
  switch (command.code) {
    case CommandCode.PAUSE: {
      if (runsIn !== "client") {
        return {
          error:
            "PAUSE runs only on a client-mode daemon; this one would run it on a server",
        };
      }
      const ms = pauseMs(command.data);
      return typeof ms === "string" ? { error: ms } : { code: "PAUSE", ms };
    }
    case CommandCode.STATUS: {
      const data = parseStatusData(command.data);
      return typeof data === "string"
        ? { error: data }
        : { code: "STATUS", data };
    }
    case CommandCode.RESULT: {
      const data = command.data as Record<string, unknown> | null;
      const id = typeof data === "object" && data !== null
        ? data.id
        : undefined;
      if (
        typeof id !== "string" &&
        !(typeof id === "number" && Number.isFinite(id))
      ) {
        return {
          error: `RESULT data must be {"id": <the request's id>}: found ${
            JSON.stringify(command.data) ?? "nothing"
          }`,
        };
      }
      return { code: "RESULT", id };
    }
    default:
      return {
        error: `unknown command code ${
          shown(command.code)
        }: expected "PAUSE", "STATUS" or "RESULT"`,
      };
  }
}

/** The mode of the peer of a daemon in `mode`. */
export function peerMode(mode: Mode): Mode {
  return mode === "server" ? "client" : "server";
}
