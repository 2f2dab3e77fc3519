/**
 * The local socket's client (`src/client/local_client.ts`), and what tests
 * check with it.
 *
 * @module
 */

import { assertEquals } from "./assert.ts";
import { type Answer, LocalClient } from "../../src/client/local_client.ts";

export { type Answer, LocalClient };

/**
 * Checks that nothing more is owed on `local`: no answer is waiting, and a
 * fresh noop request's answer is the very next line.
 */
export async function assertNoStrayAnswers(
  local: LocalClient,
  marker: string,
): Promise<void> {
  assertEquals(local.buffered, 0, `answers left over before ${marker}`);
  const answer = await local.request({ name: "noop", id: marker });
  assertEquals([answer.status, answer.id], [0, marker], "the next answer");
}
