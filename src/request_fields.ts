/**
 * The optional fields of a request that this daemon reads itself (its `key`,
 * `timeoutMs` and `deadlineMs`), checked the same way wherever a request
 * arrives: a bad one is -4, named in the error.
 *
 * @module
 */

import { describe, type Message, ProtocolError } from "./protocol.ts";

/** The longest `timeoutMs` a request may carry: what a timer can wait. */
const MAX_TIMER_MS = 2_147_483_647;

/** The longest `key` a request may name itself by. */
export const MAX_KEY_CHARS = 256;

/**
 * A request's own `key` (feature `ack`: it runs at most once per key):
 * undefined when it has none.
 *
 * @throws {ProtocolError} (-4) when it is not a string of 1 to 256 characters.
 */
export function requestKey(message: Message): string | undefined {
  const value = message.fields.key;
  if (value === undefined) return undefined;
  if (
    typeof value !== "string" || value.length < 1 ||
    value.length > MAX_KEY_CHARS
  ) {
    throw new ProtocolError(
      `Cannot run the request as 'key' must be a string of 1 to ${MAX_KEY_CHARS} characters: found ${
        describe(
          typeof value === "string" && value.length > 40
            ? `${value.slice(0, 40)}…`
            : value,
        )
      }`,
      message,
    );
  }
  return value;
}

/**
 * A request's `timeoutMs` or `deadlineMs`: undefined when it has none.
 *
 * @throws {ProtocolError} (-4) when it is not a whole number of ms above 0.
 */
export function requestMs(
  message: Message,
  field: "timeoutMs" | "deadlineMs",
): number | undefined {
  const value = message.fields[field];
  if (value === undefined) return undefined;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
    value > MAX_TIMER_MS
  ) {
    throw new ProtocolError(
      `Cannot run the request as '${field}' must be an integer from 1 to ${MAX_TIMER_MS}: found ${
        describe(value)
      }`,
      message,
    );
  }
  return value;
}
