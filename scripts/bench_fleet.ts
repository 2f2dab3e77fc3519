/**
 * `make bench`, the fleet part: a server with three clients on loopback.
 *
 * - Fan-out: the time until a `"to": "*"` request's summary line, against
 *   the slowest of the same request sent to each client alone in the same
 *   round (the floor a fan-out cannot beat).
 * - One idle subscriber: the p50 round trip with a local subscriber to
 *   every event on the asking daemon, against the same without, in
 *   alternating rounds.
 *
 * @module
 */

import { startFleet } from "./harness/fleet.ts";
import { LocalClient } from "../src/client/local_client.ts";
import { percentiles } from "./_measure.ts";

const ROUNDS = 200;
const ANSWER_TIMEOUT_MS = 15_000;
const CLIENTS = ["c1", "c2", "c3"];

const fleet = await startFleet(CLIENTS, {
  scripts: ["noop"],
  server: { rate: 1_000_000 },
  client: { rate: 1_000_000 },
});
const ms = (x: number) => `${x.toFixed(2)} ms`;
try {
  await using local = await LocalClient.connect(fleet.server.socket);
  let n = 0;
  const once = async (to: string): Promise<number> => {
    const id = `f${n++}`;
    const started = performance.now();
    const answer = await local.request(
      { name: "noop", id, to },
      ANSWER_TIMEOUT_MS,
    );
    if (answer.status !== 0) throw new Error(JSON.stringify(answer));
    return performance.now() - started;
  };
  const fanOut = async (): Promise<number> => {
    const id = `f${n++}`;
    const started = performance.now();
    await local.send({ name: "noop", id, to: "*" });
    const lines = await local.take(CLIENTS.length + 1, ANSWER_TIMEOUT_MS);
    const summary = lines.at(-1)!;
    if (summary.done !== true || summary.status !== 0) {
      throw new Error(JSON.stringify(summary));
    }
    return performance.now() - started;
  };
  for (let i = 0; i < 20; i++) await fanOut(); // warm up
  const slowest: number[] = [];
  const fanned: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let worst = 0;
    for (const name of CLIENTS) worst = Math.max(worst, await once(name));
    slowest.push(worst);
    fanned.push(await fanOut());
  }
  const fan = percentiles(fanned);
  const single = percentiles(slowest);
  console.log(`fan-out to ${CLIENTS.length} clients (${ROUNDS} rounds, noop):`);
  console.log(
    `  until the summary        p50 ${ms(fan.p50)}  p90 ${ms(fan.p90)}`,
  );
  console.log(
    `  slowest single run       p50 ${ms(single.p50)}  p90 ${ms(single.p90)}`,
  );
  console.log(
    `  ratio (p50)              ${(fan.p50 / single.p50).toFixed(2)}×`,
  );

  // One subscriber to everything, reading as it comes, on the asker.
  const plain: number[] = [];
  const watched: number[] = [];
  await using watcher = await LocalClient.connect(fleet.server.socket);
  let subscribed = false;
  for (let round = 0; round < 10; round++) {
    const subscribe = round % 2 === 1;
    if (subscribe !== subscribed) {
      const code = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
      await watcher.send({ name: "+cmd", id: code, params: { code } });
      subscribed = subscribe;
    }
    for (let i = 0; i < ROUNDS / 4; i++) {
      (subscribe ? watched : plain).push(await once("c1"));
    }
  }
  const without = percentiles(plain);
  const withOne = percentiles(watched);
  console.log(`one idle subscriber (${plain.length} requests each way):`);
  console.log(`  without                  p50 ${ms(without.p50)}`);
  console.log(`  with                     p50 ${ms(withOne.p50)}`);
  console.log(
    `  cost                     ${ms(withOne.p50 - without.p50)} (${
      ((withOne.p50 / without.p50 - 1) * 100).toFixed(0)
    }%)`,
  );
} finally {
  await fleet[Symbol.asyncDispose]();
}
