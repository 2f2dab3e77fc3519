/**
 * Certificate pins: `sha256:` and the 64 hex digits of the SHA-256 of a
 * certificate's DER. Its own module, so that the client's dial path does not
 * load the X.509 library that only certificate generation needs.
 *
 * @module
 */

/**
 * Normalises a pin as people paste it (`sha256:AB:CD:…`, `sha256:abcd…`) to
 * `sha256:<64 lowercase hex>`; undefined when it is not a SHA-256 pin.
 */
export function parsePin(text: string): string | undefined {
  const match = /^sha256:([0-9a-f:]+)$/i.exec(text.trim());
  if (!match) return undefined;
  const body = match[1];
  // Colons are either absent or between every pair, as openssl prints them.
  const hex = body.includes(":")
    ? /^[0-9a-f]{2}(:[0-9a-f]{2}){31}$/i.test(body)
      ? body.replace(/:/g, "")
      : ""
    : body;
  return /^[0-9a-f]{64}$/i.test(hex)
    ? `sha256:${hex.toLowerCase()}`
    : undefined;
}
