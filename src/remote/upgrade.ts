/**
 * The checks a WebSocket upgrade request must pass before
 * `Deno.upgradeWebSocket` sees it. Deno throws for a request it cannot
 * upgrade, which Deno.serve turns into a 500; a client that sent a malformed
 * request gets a 400 that says what was wrong instead (RFC 6455, 4.2.1).
 *
 * @module
 */

/** A WebSocket key is 16 random bytes in base64. */
const KEY = /^[A-Za-z0-9+/]{22}==$/;

/** Why `request` is not a valid upgrade, with its answer; undefined if it is. */
export function checkUpgrade(
  request: Request,
): { reason: string; response: Response } | undefined {
  const headers = request.headers;
  if (headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return {
      reason: "not a WebSocket upgrade",
      response: new Response("ws-daemon: WebSocket connections only\n", {
        status: 426,
        headers: { upgrade: "websocket" },
      }),
    };
  }
  const reason = request.method !== "GET"
    ? `method ${request.method.slice(0, 20)}, not GET`
    : !/(^|,)\s*upgrade\s*(,|$)/i.test(headers.get("connection") ?? "")
    ? "no 'Connection: upgrade' header"
    : !KEY.test(headers.get("sec-websocket-key")?.trim() ?? "")
    ? "no valid Sec-WebSocket-Key header"
    : headers.get("sec-websocket-version")?.trim() !== "13"
    ? "Sec-WebSocket-Version is not 13"
    : undefined;
  if (reason === undefined) return undefined;
  return {
    reason,
    response: new Response(`ws-daemon: bad upgrade request: ${reason}\n`, {
      status: 400,
      headers: { "sec-websocket-version": "13" },
    }),
  };
}
