/**
 * Bytes of WebSocket frames through every link of this daemon, for the
 * metrics: counted as text length in UTF-16 units, a cheap stand-in for
 * bytes that is exact for ASCII frames.
 *
 * @module
 */

export const traffic = { in: 0, out: 0 };
