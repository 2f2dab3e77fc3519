/**
 * The few assertions the tests use (JSR's @std/assert is not reachable here).
 *
 * @module
 */

import { isDeepStrictEqual } from "node:util";

export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

export function assert(
  condition: unknown,
  message = "assertion failed",
): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new AssertionError(
      `${message ? message + ": " : ""}expected ${
        JSON.stringify(expected)
      }, got ${JSON.stringify(actual)}`,
    );
  }
}

export function assertMatch(
  actual: string,
  pattern: RegExp,
  message?: string,
): void {
  if (!pattern.test(actual)) {
    throw new AssertionError(
      `${message ? message + ": " : ""}expected ${
        JSON.stringify(actual)
      } to match ${pattern}`,
    );
  }
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  pattern?: RegExp,
): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    if (pattern && !pattern.test((error as Error).message)) {
      throw new AssertionError(
        `expected error matching ${pattern}, got: ${(error as Error).message}`,
      );
    }
    return error as Error;
  }
  throw new AssertionError("expected a rejection, but it resolved");
}

export function assertThrows(fn: () => unknown, pattern?: RegExp): Error {
  try {
    fn();
  } catch (error) {
    if (pattern && !pattern.test((error as Error).message)) {
      throw new AssertionError(
        `expected error matching ${pattern}, got: ${(error as Error).message}`,
      );
    }
    return error as Error;
  }
  throw new AssertionError("expected a throw, but it returned");
}
