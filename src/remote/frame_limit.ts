/**
 * How long a frame to or from a peer may be: its daemon's maxMessageBytes
 * (as its HELLO says, else this daemon's own), plus room for the `ref` the
 * sending daemon adds.
 *
 * @module
 */

import type { Hello } from "../protocol.ts";

/** Frames may exceed maxMessageBytes by this much: the sender's `ref` field. */
export const FRAME_SLACK_BYTES = 256;

const encoder = new TextEncoder();

/** The frame limit the peer on `link` takes (this daemon's if it says none). */
export function frameLimit(
  link: { readonly hello: Hello | undefined },
  ownLimit: number,
): number {
  return (link.hello?.maxMessageBytes ?? ownLimit) + FRAME_SLACK_BYTES;
}

/** Whether `frame` is longer than `limit` bytes; cheap for short frames. */
export function exceeds(frame: string, limit: number): boolean {
  return frame.length * 3 > limit && encoder.encode(frame).length > limit;
}
