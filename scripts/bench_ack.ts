/**
 * `make bench`, second part: what acknowledged delivery and the journal
 * cost. Three daemon pairs run side by side, with `ack` and
 * `durability: "fsync"` (the default), with `ack` and `"relaxed"`, and with
 * `"ack": false`; each is measured in alternating rounds with the floor
 * (Deno spawning the same no-op script itself), for the sequential round
 * trip (p50) and for 64 requests in flight.
 *
 * Target (issue 13): with "fsync", 64 in flight at least 85% of acks off.
 * Exits 0 either way: a benchmark, not a test.
 *
 * `--requests N` sets the requests per measure (default 1000).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type ScriptPair, startScriptPair } from "./_pair.ts";
import { LocalClient } from "../src/client/local_client.ts";
import {
  daemonThroughput,
  percentiles,
  spawnDirect,
  spawnThroughput,
  viaDaemon,
} from "./_measure.ts";

const NOOP = "#!/bin/sh\nexit 0\n";
const ROUNDS = 4;
const WINDOW = 64;

const { values } = parseArgs({
  args: Deno.args,
  options: { requests: { type: "string", default: "1000" } },
});
const N = Number(values.requests);

const VARIANTS = [
  { label: 'ack, durability "fsync"', config: { durability: "fsync" } },
  { label: 'ack, durability "relaxed"', config: { durability: "relaxed" } },
  { label: "acks off", config: { ack: false } },
] as const;

const ms = (value: number) => `${value.toFixed(2)} ms`;
const rate = (value: number) => `${Math.round(value)}/s`;
const pct = (value: number) => `${(value * 100).toFixed(0)}%`;

console.log(
  `ws-daemon bench (reliability): no-op script, ${N} requests per measure, ` +
    `${navigator.hardwareConcurrency} CPU(s), Deno ${Deno.version.deno}\n`,
);

interface Measured {
  label: string;
  pair: ScriptPair;
  local: LocalClient;
  latency: number[];
  seconds: number;
}

const pairs: Measured[] = [];
for (const variant of VARIANTS) {
  const pair = await startScriptPair({
    scripts: { noop: NOOP },
    logLevel: "warn",
    probeScript: "noop",
    config: variant.config,
  });
  const local = await LocalClient.connect(pair.server.socket);
  pairs.push({ ...variant, pair, local, latency: [] as number[], seconds: 0 });
}
const floor = { latency: [] as number[], seconds: 0 };
const noopPath = pairs[0].pair.clientPrefix.file("scripts", "noop");
const direct = () => spawnDirect(pairs[0].pair.clientPrefix.path, noopPath);

try {
  const timed = async (run: () => Promise<void>, into: number[]) => {
    const start = performance.now();
    await run();
    into.push(performance.now() - start);
  };
  for (const { local } of pairs) {
    for (let i = 0; i < 20; i++) await viaDaemon(local, "noop", 0);
  }
  // Sample by sample, each variant next to the floor, in turn.
  for (let i = 0; i < N / 2; i++) {
    for (const variant of pairs) {
      await timed(() => viaDaemon(variant.local, "noop", 0), variant.latency);
    }
    await timed(direct, floor.latency);
  }
  const perRound = Math.ceil(N / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of pairs) {
      variant.seconds += perRound /
        await daemonThroughput(variant.local, WINDOW, perRound);
    }
    floor.seconds += perRound /
      await spawnThroughput(direct, WINDOW, perRound);
  }
} finally {
  for (const { pair, local } of pairs) {
    await local[Symbol.asyncDispose]();
    await pair.stop();
    await pair[Symbol.asyncDispose]();
  }
}

const total = Math.ceil(N / ROUNDS) * ROUNDS;
const floorP50 = percentiles(floor.latency).p50;
const floorRate = total / floor.seconds;
const ackOff = pairs.find((variant) => variant.label === "acks off")!;
const offRate = total / ackOff.seconds;
console.log(
  "| pair | p50 | vs floor | 64 in flight | vs floor | vs acks off |",
);
console.log("|---|---:|---:|---:|---:|---:|");
for (const variant of pairs) {
  const p50 = percentiles(variant.latency).p50;
  const r = total / variant.seconds;
  console.log(
    `| ${variant.label} | ${ms(p50)} | +${ms(p50 - floorP50)} | ${rate(r)} | ${
      pct(r / floorRate)
    } | ${pct(r / offRate)} |`,
  );
}
console.log(
  `| floor (Deno.Command) | ${ms(floorP50)} | | ${rate(floorRate)} | | |`,
);
const fsyncShare = (total / pairs[0].seconds) / offRate;
console.log(
  `\ntarget: with "fsync", 64 in flight ≥ 85% of acks off: ${
    fsyncShare >= 0.85 ? "MET" : "MISSED"
  } (${pct(fsyncShare)})`,
);
