/**
 * Refs: the name a daemon gives each request it sends to a peer of this
 * project. A status settles a request only by its ref, which nobody else can
 * guess, and a redelivery carries the same ref, which is how the peer knows it
 * for the same request.
 *
 * @module
 */

/** A fresh ref: 128 random bits as 32 hex digits. */
export function newRef(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** Whether `text` has the shape newRef gives. */
export const REF_PATTERN = /^[0-9a-f]{32}$/;
