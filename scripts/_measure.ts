/**
 * What `make bench`'s scripts measure with: percentiles, one request
 * through a daemon, the floor (Deno spawning the script itself), and
 * throughput with a window of requests in flight.
 *
 * @module
 */

import type { LocalClient } from "../src/client/local_client.ts";

const ANSWER_TIMEOUT_MS = 15_000;

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
}

export function percentiles(samples: number[]): Latency {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

let requestNumber = 0;

/** One request through the pair: writes it, waits for its status. */
export async function viaDaemon(
  local: LocalClient,
  name: string,
  expected: number,
): Promise<void> {
  const id = `b${requestNumber++}`;
  const answer = await local.request({ name, id }, ANSWER_TIMEOUT_MS);
  if (answer.status !== expected || answer.id !== id) {
    throw new Error(
      `request ${id} answered ${JSON.stringify(answer)}, expected ${expected}`,
    );
  }
}

/**
 * The floor: Deno starting the same script directly and collecting its
 * output, `Command.output()`, its cheapest way (no process group of the
 * script's own, which the daemon adds).
 */
export async function spawnDirect(prefix: string, path: string): Promise<void> {
  const { code } = await new Deno.Command(path, {
    args: ["null"],
    env: {
      WSDAEMON_PREFIX: prefix,
      WSDAEMON_ID: "bench",
      WSDAEMON_PEER: "bench",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`${path} exited ${code}`);
}

/**
 * Requests per second with `window` requests in flight on one connection:
 * each status that comes back lets the next request go.
 */
export async function daemonThroughput(
  local: LocalClient,
  window: number,
  n: number,
): Promise<number> {
  let sent = 0;
  const send = async () => {
    await local.send({ name: "noop", id: `t${window}-${sent++}` });
  };
  const start = performance.now();
  for (let i = 0; i < Math.min(window, n); i++) await send();
  for (let done = 0; done < n; done++) {
    const answer = await local.next(ANSWER_TIMEOUT_MS);
    if (answer.status !== 0) {
      throw new Error(`throughput request answered ${JSON.stringify(answer)}`);
    }
    if (sent < n) await send();
  }
  return n / ((performance.now() - start) / 1000);
}

/** Spawns per second with `concurrency` spawns running at a time. */
export async function spawnThroughput(
  spawn: () => Promise<void>,
  concurrency: number,
  n: number,
): Promise<number> {
  let started = 0;
  const worker = async () => {
    while (started < n) {
      started++;
      await spawn();
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n / ((performance.now() - start) / 1000);
}
