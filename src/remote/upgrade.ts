/**
 * The checks a WebSocket upgrade request must pass before it is upgraded
 * (RFC 6455, 4.2.1), and the HTTP answers of refusals. A client that sent a
 * malformed request gets a 400 that says what was wrong.
 *
 * @module
 */

import { STATUS_CODES } from "node:http";

/** A WebSocket key is 16 random bytes in base64. */
const KEY = /^[A-Za-z0-9+/]{22}==$/;

/** An HTTP answer instead of an upgrade. */
export interface Refusal {
  status: number;
  /** What went wrong, for the body and the log. */
  reason: string;
  headers?: Record<string, string>;
}

/** A header's value, or undefined (node:http joins repeated ones). */
export type HeaderOf = (name: string) => string | undefined;

/** Why a request is not a valid upgrade; undefined if it is. */
export function checkUpgrade(
  method: string,
  header: HeaderOf,
): Refusal | undefined {
  if (!hasToken(header("upgrade"), "websocket")) {
    return {
      status: 426,
      reason: "WebSocket connections only",
      headers: { upgrade: "websocket" },
    };
  }
  const reason = method !== "GET"
    ? `method ${method.slice(0, 20)}, not GET`
    : !hasToken(header("connection"), "upgrade")
    ? "no 'Connection: upgrade' header"
    : !KEY.test(header("sec-websocket-key")?.trim() ?? "")
    ? "no valid Sec-WebSocket-Key header"
    : header("sec-websocket-version")?.trim() !== "13"
    ? "Sec-WebSocket-Version is not 13"
    : undefined;
  if (reason === undefined) return undefined;
  return {
    status: 400,
    reason: `bad upgrade request: ${reason}`,
    headers: { "sec-websocket-version": "13" },
  };
}

/** Whether a comma-separated header holds `token`, in any case. */
function hasToken(value: string | undefined, token: string): boolean {
  return (value ?? "").split(",").some((part) =>
    part.trim().toLowerCase() === token
  );
}

/** The whole HTTP response of a refusal, closing the connection. */
export function refusalResponse(refusal: Refusal): string {
  const body = `ws-daemon: ${refusal.reason}\n`;
  const headers = {
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(new TextEncoder().encode(body).length),
    connection: "close",
    ...refusal.headers,
  };
  return `HTTP/1.1 ${refusal.status} ${
    STATUS_CODES[refusal.status] ?? "Refused"
  }\r\n${
    Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`)
      .join("")
  }\r\n${body}`;
}
