/**
 * Waiting with a deadline: the one helper for "this promise, or give up
 * after so long", so that no module hand-writes the race.
 *
 * @module
 */

/** A promise that did not settle in time. */
export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/**
 * `promise`, or a `TimeoutError` ("timed out after <ms> ms waiting for
 * <what>") once `ms` have passed.
 */
export function deadline<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new TimeoutError(`timed out after ${ms} ms waiting for ${what}`),
        ),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits for `promise` to settle, at most `ms`; never rejects. */
export async function settled(
  promise: Promise<unknown>,
  ms: number,
): Promise<void> {
  await deadline(promise, ms, "").catch(() => {});
}
