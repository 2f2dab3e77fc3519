/**
 * Small helpers shared by the trust tests in this folder (limits, forgery,
 * environment, interop): holding scripts with the `wait-release` fixture,
 * retrying a request until a limit lets it through, reading files a script
 * wrote.
 *
 * @module
 */

import { join } from "node:path";
import { assert } from "../helpers/assert.ts";
import type { Prefix } from "../helpers/daemon.ts";
import type { Answer, LocalClient } from "../helpers/local_client.ts";
import { until } from "../helpers/wait.ts";

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Waits until the `wait-release` run with this id has started in `prefix`. */
export async function waitStarted(
  prefix: Prefix,
  id: string,
  timeoutMs = 10_000,
): Promise<void> {
  await until(
    () => exists(prefix.file("started", id)),
    timeoutMs,
    `wait-release id=${id} to start in ${prefix.path}`,
  );
}

/** Whether the `wait-release` run with this id has started in `prefix`. */
export function hasStarted(prefix: Prefix, id: string): Promise<boolean> {
  return exists(prefix.file("started", id));
}

/** Lets the `wait-release` run with this id (or "all") exit. */
export async function release(prefix: Prefix, id: string): Promise<void> {
  await Deno.mkdir(prefix.file("release"), { recursive: true });
  await Deno.writeTextFile(prefix.file("release", id), "");
}

/**
 * Lets every `wait-release` run in these prefixes exit, and waits (briefly)
 * until none of them is still running, so no script outlives its test.
 */
export async function releaseAll(...prefixes: Prefix[]): Promise<void> {
  for (const prefix of prefixes) {
    await release(prefix, "all").catch(() => {});
  }
  await until(
    async () => !(await anyWaitReleaseRunning(prefixes)),
    10_000,
    "every wait-release script to exit",
  ).catch(() => {});
}

/** Whether a `wait-release` process of one of these prefixes still runs. */
async function anyWaitReleaseRunning(prefixes: Prefix[]): Promise<boolean> {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let cmdline: string;
    try {
      cmdline = await Deno.readTextFile(join("/proc", entry.name, "cmdline"));
    } catch {
      continue;
    }
    if (
      prefixes.some((p) =>
        cmdline.includes(join(p.path, "scripts", "wait-release"))
      )
    ) return true;
  }
  return false;
}

/**
 * Sends `message` on `local` until its answer is not a refusal (-5), with a
 * deadline: for a limit that lifts by itself (a rate bucket that refills, a
 * slot the daemon frees asynchronously). Returns the first other answer.
 */
export async function retryUntilAdmitted(
  local: LocalClient,
  message: Record<string, unknown>,
  timeoutMs: number,
  what: string,
): Promise<Answer> {
  let last: Answer | undefined;
  return await until(
    async () => {
      last = await local.request(message, timeoutMs);
      return last.status === -5 ? undefined : last;
    },
    timeoutMs,
    `${what} (last answer: ${JSON.stringify(last)})`,
    50,
  );
}

/** Asserts the answer has no `id` field at all. */
export function assertNoId(answer: Answer, what: string): void {
  assert(
    !Object.hasOwn(answer, "id"),
    `${what}: the answer must carry no id: ${JSON.stringify(answer)}`,
  );
}

/** A line of the daemon's log that contains `text`, for failure messages. */
export function linesWith(lines: string[], text: string | RegExp): string[] {
  return lines.filter((line) =>
    typeof text === "string" ? line.includes(text) : text.test(line)
  );
}
