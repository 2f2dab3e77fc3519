/**
 * Waiting on events with a deadline: tests never sleep to synchronise.
 *
 * @module
 */

export { deadline } from "../../src/timers.ts";

/**
 * Polls `check` until it returns a value other than undefined/false, for
 * conditions no event announces (a file appearing, a process gone).
 */
export async function until<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms: number,
  what: string,
  everyMs = 20,
): Promise<T> {
  const end = Date.now() + ms;
  while (true) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
