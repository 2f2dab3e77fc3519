/**
 * The value types of config.json's fields: ports, durations, secrets, rates,
 * lists of names, each with the rule its one-line error states.
 *
 * @module
 */

import { z } from "zod";

export const port = z.number().int().min(0).max(65535);
/** The longest a timer can wait (2^31 - 1 ms, about 24.8 days). */
export const MAX_TIMER_MS = 2_147_483_647;
export const positiveMs = z.number().int().positive().max(MAX_TIMER_MS);
export const ms = z.number().int().min(0).max(MAX_TIMER_MS);
export const count = z.number().int().min(1);
/**
 * A secret travels as `Authorization: Bearer <secret>`: one token of
 * printable ASCII, no spaces (anything else could never match).
 */
export const SECRET_CHARS = /^[\x21-\x7e]+$/;
export const SECRET_RULE =
  "a secret of printable ASCII without spaces (it goes in an HTTP header)";

/** Secrets this short can be guessed; the config refuses them. */
export const MIN_SECRET_BYTES = 16;
export const secret = z.string().refine(
  (text) => new TextEncoder().encode(text).length >= MIN_SECRET_BYTES,
  `a secret of at least ${MIN_SECRET_BYTES} bytes`,
).refine(
  (text) => SECRET_CHARS.test(text),
  SECRET_RULE,
);
/** A path to a file, relative to the prefix or absolute. */
export const filePath = z.string().min(1);
/** Script names or globs with `*`. */
export const nameGlobs = z.array(z.string().min(1).max(255));

/**
 * Requests per second with a burst (a token bucket). A bare number means that
 * rate with a burst of twice as many.
 */
export const rate = z.union([
  z.number().positive(),
  z.object({
    perSecond: z.number().positive(),
    burst: z.number().int().min(1).optional(),
  }).strict(),
]).transform((value) =>
  typeof value === "number"
    ? { perSecond: value, burst: Math.max(1, Math.ceil(value * 2)) }
    : {
      perSecond: value.perSecond,
      burst: value.burst ?? Math.max(1, Math.ceil(value.perSecond * 2)),
    }
);
export type Rate = { perSecond: number; burst: number };

/** Environment names matched by default by `scrubEnv`. */
export const DEFAULT_SCRUB_ENV = ["*SECRET*", "*TOKEN*", "*PASSWORD*", "*KEY*"];
