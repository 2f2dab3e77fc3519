/**
 * `make bench`: what a round trip through a daemon pair costs against the
 * floor, Deno starting the same no-op script itself.
 *
 * Measures, in one run, sequential latency (p50/p90/p99) and throughput at
 * 1, 8 and 64 in flight, for requests from the server's socket (the client
 * runs the script) and for the floor, direct `Deno.Command(...).output()`
 * spawns of the same script. Daemon and floor alternate (sample by sample for
 * latency, in rounds for throughput) so both see the same machine load.
 * Then, to show where the difference goes: the round trip without a spawn
 * (an unknown script, -1), CPU time per request in each process, and each of
 * the daemon's launchers (src/launch/) starting the script in this process.
 * Prints a table and whether the issue's targets are met; exits 0 either
 * way, since it is a benchmark, not a test.
 *
 * `--log-level LEVEL` (default warn) sets the daemons' level, to see what
 * logging costs; `--requests N` sets the requests per throughput level
 * (default 1000; latency takes N/2 samples).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { peakRssKiB, startScriptPair } from "./_pair.ts";
import { LocalClient } from "../src/client/local_client.ts";
import { type Launcher, openLauncher } from "../src/launch/mod.ts";
import { Logger } from "../src/log.ts";
import {
  daemonThroughput,
  type Latency,
  percentiles,
  spawnDirect,
  spawnThroughput,
  viaDaemon,
} from "./_measure.ts";

const NOOP = "#!/bin/sh\nexit 0\n";
const CONCURRENCY = [1, 8, 64] as const;
const WARMUP = 20;
/** Throughput alternates daemon and floor in this many rounds per level. */
const ROUNDS = 4;
/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s. */
const TICK_MS = 10;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "log-level": { type: "string", default: "warn" },
    requests: { type: "string", default: "1000" },
  },
});
const logLevel = values["log-level"] as "debug" | "info" | "warn" | "error";
const THROUGHPUT_N = Number(values.requests);
const LATENCY_N = Math.max(1, Math.round(THROUGHPUT_N / 2));

/** CPU time (user + system) a process has used so far, in ms. */
function cpuMs(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the ")" that ends the command name; utime and stime are
    // the 14th and 15th of the whole line.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return NaN;
  }
}

/** The ways the daemon can start a script, each measured in this process. */
const LAUNCHERS = ["posix_spawn", "setsid", "detached"] as const;

/** One script started as ScriptRunner.run does, by `launcher`, to its end. */
async function viaLauncher(
  launcher: Launcher,
  prefix: string,
  path: string,
): Promise<void> {
  await Deno.stat(path);
  const { end } = await launcher.start({
    path,
    arg: "null",
    env: {
      WSDAEMON_PREFIX: prefix,
      WSDAEMON_ID: "bench",
      WSDAEMON_PEER: "bench",
    },
    tag: "bench",
  });
  const result = await end;
  if (result.kind !== "exited" || result.code !== 0) {
    throw new Error(`${path} ended ${JSON.stringify(result)}`);
  }
}

/**
 * Latency of `a` and `b` sampled alternately (and in alternating order), so
 * that both see the same moments of machine load.
 */
async function sequentialPair(
  a: () => Promise<void>,
  b: () => Promise<void>,
  n: number,
): Promise<[Latency, Latency]> {
  for (let i = 0; i < WARMUP; i++) {
    await a();
    await b();
  }
  const samples: [number[], number[]] = [[], []];
  const timed = async (run: () => Promise<void>, into: number[]) => {
    const start = performance.now();
    await run();
    into.push(performance.now() - start);
  };
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      await timed(a, samples[0]);
      await timed(b, samples[1]);
    } else {
      await timed(b, samples[1]);
      await timed(a, samples[0]);
    }
  }
  return [percentiles(samples[0]), percentiles(samples[1])];
}

async function sequential(
  run: () => Promise<void>,
  n: number,
): Promise<Latency> {
  for (let i = 0; i < WARMUP; i++) await run();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await run();
    samples.push(performance.now() - start);
  }
  return percentiles(samples);
}

/** Runs `work` and returns its result with the CPU ms each pid spent on it. */
async function withCpu<T>(
  pids: number[],
  work: () => Promise<T>,
): Promise<{ result: T; cpu: number[] }> {
  const before = pids.map(cpuMs);
  const result = await work();
  return { result, cpu: pids.map((pid, i) => cpuMs(pid) - before[i]) };
}

const ms = (x: number) => `${x.toFixed(2)} ms`;
const rate = (x: number) => `${x.toFixed(0)}/s`;
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
const mib = (kib: number | undefined) =>
  kib === undefined ? "n/a" : `${(kib / 1024).toFixed(1)} MiB`;
const latencyLine = (label: string, l: Latency) =>
  `  ${label.padEnd(30)} p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}`;

console.log(
  `ws-daemon bench: no-op script, daemons at log level ${logLevel}, ` +
    `${navigator.hardwareConcurrency} CPU(s), Deno ${Deno.version.deno}`,
);
console.log(
  "Other programs running on this machine skew these numbers; compare " +
    "within one run.\n",
);
const began = performance.now();
await using pair = await startScriptPair({
  scripts: { noop: NOOP },
  logLevel,
  probeScript: "noop",
});
const noopPath = pair.clientPrefix.file("scripts", "noop");
const floor = () => spawnDirect(pair.clientPrefix.path, noopPath);
await using local = await LocalClient.connect(pair.server.socket);
const pids = [pair.server.child.pid, pair.client.child.pid, Deno.pid];

console.log(
  `latency: ${LATENCY_N} sequential requests (after ${WARMUP} warm-up)`,
);
const [daemonLatency, floorLatency] = await sequentialPair(
  () => viaDaemon(local, "noop", 0),
  floor,
  LATENCY_N,
);
console.log(latencyLine("daemon round trip", daemonLatency));
console.log(latencyLine("floor (Command.output)", floorLatency));

console.log(`\nthroughput: ${THROUGHPUT_N} requests per level`);
const daemonRate = new Map<number, number>();
const floorRate = new Map<number, number>();
let daemonCpu64: number[] = [];
let floorCpu64 = NaN;
for (const c of CONCURRENCY) {
  // Alternating rounds, so that both see the same moments of machine load.
  const daemon = { seconds: 0, cpu: pids.map(() => 0) };
  const direct = { seconds: 0, cpu: [0] };
  const perRound = Math.ceil(THROUGHPUT_N / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    const d = await withCpu(pids, () => daemonThroughput(local, c, perRound));
    const f = await withCpu(
      [Deno.pid],
      () => spawnThroughput(floor, c, perRound),
    );
    daemon.seconds += perRound / d.result;
    direct.seconds += perRound / f.result;
    d.cpu.forEach((ms, i) => daemon.cpu[i] += ms);
    direct.cpu[0] += f.cpu[0];
  }
  const total = perRound * ROUNDS;
  const result = {
    daemon: total / daemon.seconds,
    direct: total / direct.seconds,
  };
  daemonRate.set(c, result.daemon);
  floorRate.set(c, result.direct);
  if (c === 64) {
    daemonCpu64 = daemon.cpu.map((t) => t / total);
    floorCpu64 = direct.cpu[0] / total;
  }
  console.log(
    `  ${String(c).padStart(2)} in flight  daemon ${
      rate(result.daemon)
    }  floor ${rate(result.direct)}`,
  );
}

console.log("\nwhere the time goes:");
const noSpawnLatency = await sequential(
  () => viaDaemon(local, "no-such-script", -1),
  LATENCY_N,
);
console.log(latencyLine("round trip, no spawn (-1)", noSpawnLatency));
console.log(
  `  CPU per request at 64 in flight: server ${ms(daemonCpu64[0])}, ` +
    `client ${ms(daemonCpu64[1])}, bench ${ms(daemonCpu64[2])}`,
);
const variantN = Math.max(1, Math.round(THROUGHPUT_N / 2));
console.log(
  `  each launcher in this process: sequential p50, and ${variantN} ` +
    `starts 64 at a time (rate; CPU per start in this process):`,
);
const variantLine = (
  label: string,
  p50: number,
  perSecond: number,
  cpu: number,
) =>
  `    ${label.padEnd(38)} ${ms(p50)}  ${rate(perSecond).padStart(7)}  ${
    ms(cpu)
  }`;
console.log(
  variantLine(
    "Command.output() (the floor)",
    floorLatency.p50,
    floorRate.get(64)!,
    floorCpu64,
  ),
);
const quiet = new Logger("error");
for (const kind of LAUNCHERS) {
  let launcher: Launcher;
  try {
    launcher = openLauncher(kind, quiet, Deno.env.toObject());
  } catch (error) {
    console.log(`    ${kind.padEnd(38)} n/a: ${(error as Error).message}`);
    continue;
  }
  const start = () => viaLauncher(launcher, pair.clientPrefix.path, noopPath);
  const latency = await sequential(start, LATENCY_N);
  const { result, cpu } = await withCpu(
    [Deno.pid],
    () => spawnThroughput(start, 64, variantN),
  );
  console.log(
    variantLine(launcher.description, latency.p50, result, cpu[0] / variantN),
  );
  await launcher.close();
}

const rss = {
  server: peakRssKiB(pair.server.child.pid),
  client: peakRssKiB(pair.client.child.pid),
};
const stopped = await pair.stop();
const seconds = ((performance.now() - began) / 1000).toFixed(1);

const p50Limit = floorLatency.p50 + 1;
const p50Met = daemonLatency.p50 <= p50Limit;
const share64 = daemonRate.get(64)! / floorRate.get(64)!;
const share64Met = share64 >= 0.8;
const verdict = (met: boolean) => met ? "**met**" : "**missed**";
const plus = (a: number, b: number) => `${a >= b ? "+" : ""}${ms(a - b)}`;

console.log(`
| measure | daemon | floor (Deno.Command) | daemon vs floor | target |
|---|---:|---:|---:|---|
| latency p50 | ${ms(daemonLatency.p50)} | ${ms(floorLatency.p50)} | ${
  plus(daemonLatency.p50, floorLatency.p50)
} | ≤ floor + 1 ms (${ms(p50Limit)}): ${verdict(p50Met)} |
| latency p90 | ${ms(daemonLatency.p90)} | ${ms(floorLatency.p90)} | ${
  plus(daemonLatency.p90, floorLatency.p90)
} | |
| latency p99 | ${ms(daemonLatency.p99)} | ${ms(floorLatency.p99)} | ${
  plus(daemonLatency.p99, floorLatency.p99)
} | |
${
  CONCURRENCY.map((c) =>
    `| ${c} in flight | ${rate(daemonRate.get(c)!)} | ${
      rate(floorRate.get(c)!)
    } | ${pct(daemonRate.get(c)! / floorRate.get(c)!)} | ${
      c === 64 ? `≥ 80% of floor: ${verdict(share64Met)}` : ""
    } |`
  ).join("\n")
}
`);
console.log(
  `peak RSS (VmHWM): server ${mib(rss.server)}, client ${mib(rss.client)}`,
);
console.log(
  `daemons stopped: client exit ${stopped.client.code}, ` +
    `server exit ${stopped.server.code}; whole run ${seconds} s`,
);
console.log(
  `\ntargets: p50 within floor + 1 ms: ${p50Met ? "MET" : "MISSED"} ` +
    `(${ms(daemonLatency.p50)} vs ${ms(p50Limit)}); ` +
    `64 in flight ≥ 80% of floor: ${share64Met ? "MET" : "MISSED"} ` +
    `(${pct(share64)})`,
);
