/**
 * The command codes (`+cmd` / `&cmd`) as a table: one entry per code says
 * where it may be sent from, which daemon runs it, how its `data` is checked
 * and what answers it. `checkCommand` is the one validation path for a local
 * `+cmd`, a local `&cmd` and a peer's command frame, so an unknown code can
 * never be taken for another one.
 *
 * The handlers live with the daemon's parts (`router.ts` for local commands,
 * `peer_frames.ts` for a peer's, `introspect.ts` for what INFO, PEERS and
 * SCRIPTS say); each is found by the entry's code.
 *
 * @module
 */

import {
  CommandCode,
  type Feature,
  parseStatusData,
  shown,
  type StatusData,
} from "../protocol.ts";
import { EVENT_TYPES, type EventType } from "../events/bus.ts";

export type Mode = "server" | "client";

/** Where a command comes from: the local socket as `+cmd` or `&cmd`, or a peer. */
export type Origin = "+cmd" | "&cmd" | "peer";

/** An event filter, as SUBSCRIBE and UNSUBSCRIBE carry it. */
export interface EventFilter {
  /** Event types; unset: all of them. */
  events?: EventType[];
  /** Peer names or globs the events concern; unset: any. */
  peers?: string[];
  /** A peer's own subscription ref (UNSUBSCRIBE through a link). */
  sub?: string;
}

/** Each code's checked data. */
export interface CommandData {
  PAUSE: number;
  STATUS: StatusData;
  RESULT: { id: string | number };
  INFO: null;
  PEERS: null;
  SCRIPTS: { peer?: string };
  PING: null;
  SUBSCRIBE: EventFilter;
  UNSUBSCRIBE: EventFilter;
}

export type CommandName = keyof CommandData;

/** A command ready to run. */
export type CheckedCommand = {
  [C in CommandName]: { code: C; data: CommandData[C] };
}[CommandName];

interface Entry {
  /** Which daemons run it. */
  runsOn: readonly Mode[];
  /** Whether a local process may send it as `+cmd`, to run here. */
  local: boolean;
  /** Whether a local process may send it as `&cmd`, to run on the peer. */
  remote: boolean;
  /** Whether an original peer knows it (Part 1): it may go to one, blind. */
  original?: boolean;
  /** The feature the peer must announce to be sent it. */
  feature?: Feature;
  check(data: unknown): unknown;
}

const BOTH: readonly Mode[] = ["server", "client"];

/** Thrown by a check: the text after "Cannot run <CODE> as ". */
class BadData extends Error {}

const noData = () => null;

/** The table itself. Codes not in it are unknown. */
const TABLE: Record<CommandName, Entry> = {
  PAUSE: {
    runsOn: ["client"],
    local: true,
    remote: true,
    original: true,
    check: (data) => {
      const ms = pauseMs(data);
      if (typeof ms === "string") throw new BadData(ms);
      return ms;
    },
  },
  STATUS: {
    runsOn: BOTH,
    local: true,
    remote: true,
    original: true,
    check: (data) => {
      const status = parseStatusData(data);
      if (typeof status === "string") throw new BadData(status);
      return status;
    },
  },
  RESULT: {
    runsOn: BOTH,
    local: true,
    remote: false,
    check: (data) => {
      const id = isObject(data) ? data.id : undefined;
      if (
        typeof id !== "string" &&
        !(typeof id === "number" && Number.isFinite(id))
      ) {
        throw new BadData(
          `RESULT data must be {"id": <the request's id>}: found ${
            JSON.stringify(data) ?? "nothing"
          }`,
        );
      }
      return { id };
    },
  },
  INFO: { runsOn: BOTH, local: true, remote: true, check: noData },
  PEERS: { runsOn: BOTH, local: true, remote: true, check: noData },
  SCRIPTS: {
    runsOn: BOTH,
    local: true,
    remote: true,
    check: (data) => {
      if (data === undefined || data === null) return {};
      const peer = isObject(data) ? data.peer : undefined;
      if (!isObject(data) || (peer !== undefined && typeof peer !== "string")) {
        throw new BadData(
          `SCRIPTS data must be nothing or {"peer": <a peer's name>}: found ${
            JSON.stringify(data)
          }`,
        );
      }
      return peer === undefined ? {} : { peer };
    },
  },
  PING: { runsOn: BOTH, local: true, remote: true, check: noData },
  SUBSCRIBE: {
    runsOn: BOTH,
    local: true,
    remote: true,
    feature: "events",
    check: (data) => eventFilter("SUBSCRIBE", data),
  },
  UNSUBSCRIBE: {
    runsOn: BOTH,
    local: true,
    remote: true,
    feature: "events",
    check: (data) => eventFilter("UNSUBSCRIBE", data),
  },
};

/** Codes that are the link's own protocol: never a user's command. */
const PROTOCOL_CODES = new Set<string>([
  CommandCode.HELLO,
  CommandCode.ACK,
  CommandCode.PONG,
  CommandCode.EVENT,
]);

const KNOWN = Object.keys(TABLE).map((code) => JSON.stringify(code)).join(
  ", ",
);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The entry of `code`, if it is a command. */
function entryOf(code: string): Entry | undefined {
  return Object.hasOwn(TABLE, code) ? TABLE[code as CommandName] : undefined;
}

/** What a command needs of the peer it goes to, for a local `&cmd`. */
export function needs(
  code: CommandName,
): { original: boolean; feature?: Feature } {
  const entry = TABLE[code];
  return { original: entry.original === true, feature: entry.feature };
}

/**
 * Checks a command from `origin` on the daemon in `mode`: a `+cmd` and a
 * peer's command run here, a local `&cmd` runs on the peer (the other mode).
 */
export function checkCommand(
  command: { code: string; data: unknown },
  mode: Mode,
  origin: Origin,
): CheckedCommand | { error: string } {
  const { code, data } = command;
  const entry = entryOf(code);
  if (entry === undefined) {
    return {
      error: PROTOCOL_CODES.has(code) || code === CommandCode.PING
        ? `${
          shown(code)
        } is part of the link protocol between daemons, not a command: expected one of ${KNOWN}`
        : `unknown command code ${shown(code)}: expected one of ${KNOWN}`,
    };
  }
  if (origin === "+cmd" && !entry.local) {
    return { error: `${code} runs on a peer only: send it as &cmd` };
  }
  if (origin !== "+cmd" && !entry.remote) {
    return {
      error:
        `${code} is answered by the daemon that holds the request: send it as +cmd`,
    };
  }
  const runsIn = origin === "&cmd" ? peerMode(mode) : mode;
  if (!entry.runsOn.includes(runsIn)) {
    return {
      error: `${code} runs only on a ${
        entry.runsOn.join(" or ")
      }-mode daemon; this one would run it on a ${runsIn}`,
    };
  }
  try {
    return { code, data: entry.check(data) } as CheckedCommand;
  } catch (error) {
    if (error instanceof BadData) return { error: error.message };
    throw error;
  }
}

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

/** Names and globs a filter may hold, at most. */
const MAX_FILTER_ITEMS = 64;

/** SUBSCRIBE / UNSUBSCRIBE data: `{"events": [...], "peers": [...]}`. */
function eventFilter(code: string, data: unknown): EventFilter {
  if (data === undefined || data === null) return {};
  if (!isObject(data)) {
    throw new BadData(
      `${code} data must be nothing or {"events": [...], "peers": [...]}: found ${
        JSON.stringify(data)
      }`,
    );
  }
  const filter: EventFilter = {};
  const list = (field: string): string[] | undefined => {
    const value = data[field];
    if (value === undefined) return undefined;
    if (
      !Array.isArray(value) || value.length > MAX_FILTER_ITEMS ||
      !value.every((item) =>
        typeof item === "string" && item.length > 0 && item.length <= 256
      )
    ) {
      throw new BadData(
        `${code} data.${field} must be a list of at most ${MAX_FILTER_ITEMS} non-empty strings: found ${
          JSON.stringify(value)?.slice(0, 80)
        }`,
      );
    }
    return value as string[];
  };
  const events = list("events");
  if (events !== undefined) {
    const unknown = events.filter((event) =>
      !EVENT_TYPES.includes(event as EventType)
    );
    if (unknown.length > 0) {
      throw new BadData(
        `${code} data.events names unknown event ${
          shown(unknown[0])
        }: expected some of ${EVENT_TYPES.join(", ")}`,
      );
    }
    filter.events = events as EventType[];
  }
  const peers = list("peers");
  if (peers !== undefined) filter.peers = peers;
  if (typeof data.sub === "string") filter.sub = data.sub;
  return filter;
}

/** The mode of the peer of a daemon in `mode`. */
export function peerMode(mode: Mode): Mode {
  return mode === "server" ? "client" : "server";
}
