/**
 * The wire contract (PROTOCOL.md): message and status shapes, status codes,
 * command codes, and the parse/encode functions every other module uses, so
 * that the byte layout of a frame or a status line is decided in one place.
 *
 * @module
 */

import { nestingDepth, topLevelKeys } from "./shallow_json.ts";

/** Status codes below zero; 0…255 are a script's exit code. */
export const Status = {
  /** The script could not be run: unknown, invalid or non-executable name. */
  CANNOT_RUN: -1,
  /** Not delivered, and never will be: no peer within the deadline. */
  NO_PEER: -2,
  /** Timed out. */
  TIMEOUT: -3,
  /** The message was invalid. */
  REJECTED: -4,
  /** Not allowed. */
  REFUSED: -5,
  /**
   * Outcome unknown: delivered, but its status can no longer come: the
   * daemon running it died while it ran, or the link to an original dropped.
   */
  OUTCOME_UNKNOWN: -6,
} as const;

/** Runs a command on the daemon that reads it from its local socket. */
export const LOCAL_COMMAND = "+cmd";
/** Written locally, forwarded to the peer, which runs it. */
export const REMOTE_COMMAND = "&cmd";

export const CommandCode = {
  PAUSE: "PAUSE",
  STATUS: "STATUS",
  HELLO: "HELLO",
  PING: "PING",
  PONG: "PONG",
  ACK: "ACK",
  RESULT: "RESULT",
  INFO: "INFO",
  PEERS: "PEERS",
  SCRIPTS: "SCRIPTS",
  SUBSCRIBE: "SUBSCRIBE",
  UNSUBSCRIBE: "UNSUBSCRIBE",
  /** One event of a peer's subscription, from the peer that has it. */
  EVENT: "EVENT",
} as const;

/**
 * Features this daemon announces in HELLO. A feature is used on a connection
 * only when the peer announces it too.
 *
 * - `request-ref`: requests carry a daemon-chosen `ref` that the status echoes,
 *   so statuses match their request even when ids are absent or repeated.
 * - `heartbeat`: `&cmd PING` is answered with `&cmd PONG`, which lets a client
 *   notice a dead server (the Deno WebSocket client has no idle timeout).
 * - `ack`: a request is acknowledged (`&cmd ACK`) once the peer has recorded
 *   it, and a status once the asker has; what is not acknowledged is sent
 *   again after a reconnect, and runs at most once (`outbox/`, `inbox/`).
 * - `events`: `&cmd SUBSCRIBE` is answered with a stream of `&cmd EVENT`
 *   frames on the link (`events/`).
 */
export const FEATURES = ["request-ref", "heartbeat", "ack", "events"] as const;
export type Feature = typeof FEATURES[number];

/** A status as a local connection sees it. Readers ignore unknown fields. */
export interface StatusReport {
  status: number;
  id?: unknown;
  error?: string;
  peer?: string;
  signal?: string;
  [field: string]: unknown;
}

/** A message read from a local socket or a peer. */
export interface Message {
  name: string;
  /** Present only when the message had an `id` key. */
  id?: unknown;
  hasId: boolean;
  params: unknown;
  /** The whole decoded object, for fields this layer does not know. */
  fields: Record<string, unknown>;
}

export interface Command {
  code: string;
  data: unknown;
}

/**
 * A message that cannot be accepted. Carries the status it maps to and the
 * request's id when the id could be read, so the answer can name it.
 */
export class ProtocolError extends Error {
  readonly status: number;
  readonly id: unknown;
  readonly hasId: boolean;
  /** The sending daemon's ref, when the message had one. */
  readonly ref: string | undefined;
  constructor(
    message: string,
    { status = Status.REJECTED, id, hasId = false, ref }: {
      status?: number;
      id?: unknown;
      hasId?: boolean;
      ref?: string;
    } = {},
  ) {
    super(message);
    this.name = "ProtocolError";
    this.status = status;
    this.id = id;
    this.hasId = hasId;
    this.ref = ref;
  }

  /** The status line a local connection gets for this error. */
  toReport(): StatusReport {
    return withId({ status: this.status, error: this.message }, this);
  }
}

/** A value as an error message names what it found. */
export function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") {
    return `the string ${JSON.stringify(value.slice(0, 40))}`;
  }
  return typeof value === "object" ? "an object" : `${typeof value} ${value}`;
}

/** A name as messages show it: quoted, cut short (a peer may send 1 MiB). */
export function shown(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}

/** Copies `id` from a request onto a report, leaving it absent when absent. */
export function withId(
  report: StatusReport,
  from: { id?: unknown; hasId: boolean },
): StatusReport {
  if (from.hasId) report.id = from.id;
  return report;
}

/**
 * How deep a message may nest. JSON.parse takes any depth, but a megabyte of
 * `[` decodes to half a million arrays, some 100 MB of heap, and every later
 * encode of it recurses as deep; no request needs more than a few levels.
 */
export const MAX_DEPTH = 256;
export { nestingDepth };

/**
 * Decodes one message (a local line or a peer frame).
 *
 * @throws {ProtocolError} not JSON, not an object, or no string `name`.
 */
export function parseMessage(text: string): Message {
  if (nestingDepth(text, MAX_DEPTH) > MAX_DEPTH) {
    // Not decoded; its id and ref are read off the top level, for the answer.
    const { id, hasId, ref } = topLevelKeys(text);
    throw new ProtocolError(
      `Cannot read message as it nests arrays or objects more than ${MAX_DEPTH} deep`,
      { id, hasId, ref },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ProtocolError(
      `Cannot read message as it is not valid JSON: ${
        (error as Error).message
      }`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(
      `Cannot read message as it must be a JSON object: found ${
        describe(value)
      }`,
    );
  }
  const fields = value as Record<string, unknown>;
  const hasId = Object.hasOwn(fields, "id");
  const id = fields.id;
  const ref = typeof fields.ref === "string" ? fields.ref : undefined;
  // Any other id could not be echoed safely (a deeply nested one overflows
  // the stack of JSON.stringify), so it is not echoed at all.
  if (
    hasId && typeof id !== "string" &&
    !(typeof id === "number" && Number.isFinite(id))
  ) {
    throw new ProtocolError(
      `Cannot read message as 'id' must be a string or a number: found ${
        describe(id)
      }`,
      { ref },
    );
  }
  if (typeof fields.name !== "string") {
    throw new ProtocolError(
      `Cannot read message as 'name' must be a string: found ${
        "name" in fields ? describe(fields.name) : "no 'name'"
      }`,
      { id, hasId, ref },
    );
  }
  return { name: fields.name, id, hasId, params: fields.params, fields };
}

/**
 * Reads `params` of a `+cmd`/`&cmd` message as `{code, data}`.
 *
 * @throws {ProtocolError} when `params.code` is not a string.
 */
export function parseCommand(message: Message): Command {
  const params = message.params;
  if (
    typeof params !== "object" || params === null || Array.isArray(params) ||
    typeof (params as Record<string, unknown>).code !== "string"
  ) {
    throw new ProtocolError(
      `Cannot run command as 'params.code' must be a string: found ${
        typeof params === "object" && params !== null && !Array.isArray(params)
          ? describe((params as Record<string, unknown>).code)
          : `params ${describe(params)}`
      }`,
      message,
    );
  }
  const fields = params as Record<string, unknown>;
  return { code: fields.code as string, data: fields.data };
}

/** A STATUS command's `data`, as PROTOCOL.md Part 1 defines it. */
export interface StatusData {
  status: number;
  id?: unknown;
  [field: string]: unknown;
}

/** Checks a STATUS command's data: an object with an integer `status`. */
export function parseStatusData(data: unknown): StatusData | string {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return `STATUS data must be an object {"status": int, "id": string}: found ${
      describe(data)
    }`;
  }
  const fields = data as Record<string, unknown>;
  if (!Number.isInteger(fields.status)) {
    return `STATUS data.status must be an integer: found ${
      "status" in fields ? describe(fields.status) : "no 'status'"
    }`;
  }
  return fields as StatusData;
}

/**
 * The text of a message with `ref` added, without decoding and re-encoding
 * it: re-encoding can make a message longer than it came (`1e20` becomes 21
 * digits) and costs time. The ref goes last, so it wins over any `ref` the
 * sender put in (JSON.parse keeps the last of repeated keys).
 */
export function withRef(text: string, ref: string): string {
  const end = text.lastIndexOf("}");
  return `${text.slice(0, end)},"ref":${JSON.stringify(ref)}}`;
}

/**
 * The text of a request without its `to`, for an original peer, which is
 * sent a request exactly as Part 1 has it.
 */
export function withoutTo(text: string): string {
  const fields = JSON.parse(text) as Record<string, unknown>;
  delete fields.to;
  return JSON.stringify(fields);
}

/** Status fields a peer may set that are relayed to the asker as they are. */
const RELAYED_TYPES = new Set(["string", "number", "boolean"]);

/** Fields of a peer's status that the asker's daemon sets itself. */
const OWN_FIELDS = new Set(["ref", "status", "id", "peer"]);

/**
 * A status from a peer as the asker gets it: its fields of plain types only,
 * so that no peer can make an answer that cannot be encoded, or a huge one;
 * `id` and `peer` are the asker daemon's to set (its request's id, the link's
 * name), never the peer's.
 */
export function relayedReport(data: StatusData): StatusReport {
  const report: StatusReport = { status: data.status };
  for (const [key, value] of Object.entries(data)) {
    if (OWN_FIELDS.has(key)) continue;
    if (value === null || RELAYED_TYPES.has(typeof value)) report[key] = value;
  }
  return report;
}

/** One status line for a local connection: JSON and `\n`. */
export function encodeStatusLine(report: StatusReport): string {
  return JSON.stringify(report) + "\n";
}

/** A command frame, in the exact key order of PROTOCOL.md. */
export function encodeCommand(
  marker: typeof LOCAL_COMMAND | typeof REMOTE_COMMAND,
  code: string,
  data: unknown,
): string {
  return JSON.stringify({ name: marker, params: { code, data } });
}

/** The frame a daemon sends its peer when a script it ran has ended. */
export function encodeStatusFrame(data: StatusData): string {
  return encodeCommand(REMOTE_COMMAND, CommandCode.STATUS, data);
}

/** What a HELLO carries. */
export interface Hello {
  version: string;
  name: string;
  features: string[];
  /** The longest frame the peer accepts, when it says. */
  maxMessageBytes?: number;
}

/** Reads a peer's HELLO data leniently: a later version may add fields. */
export function parseHello(data: unknown): Hello | undefined {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return undefined;
  }
  const fields = data as Record<string, unknown>;
  return {
    version: typeof fields.version === "string" ? fields.version : "unknown",
    // The name goes into logs and WSDAEMON_PEER: printable and short.
    name: typeof fields.name === "string"
      // deno-lint-ignore no-control-regex
      ? fields.name.replace(/[\x00-\x1f\x7f]/g, "").slice(0, 128)
      : "",
    features: Array.isArray(fields.features)
      ? fields.features.filter((f): f is string => typeof f === "string")
      : [],
    ...(Number.isInteger(fields.maxMessageBytes) &&
        (fields.maxMessageBytes as number) > 0
      ? { maxMessageBytes: fields.maxMessageBytes as number }
      : {}),
  };
}
