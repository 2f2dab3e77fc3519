/**
 * `make demo`: the round trip on an embedded default. Starts a server and a
 * client daemon on loopback in temporary prefixes with two example scripts,
 * sends a success, a failure and an unknown script each way, then a
 * broadcast (`"to": "*"`, with its output) and an INFO of each daemon, prints
 * every request and status as it goes, stops both daemons with SIGTERM, and
 * exits 0 only if every status and both exit codes were as expected.
 *
 * @module
 */

import { type ScriptPair, startScriptPair } from "./_pair.ts";
import { type Answer, LocalClient } from "../src/client/local_client.ts";
import type { DaemonProcess } from "./harness/daemon.ts";

/** The example scripts, written into both prefixes. */
const SCRIPTS: Record<string, string> = {
  greet: `#!/bin/sh
# Prints what it was given (its stdout goes to the daemon's log) and succeeds.
echo "hello! params=$1, asked by $WSDAEMON_PEER, id $WSDAEMON_ID"
exit 0
`,
  fail: `#!/bin/sh
# Fails on purpose with exit code 3.
echo "giving up with exit code 3" >&2
exit 3
`,
};

interface Case {
  name: string;
  params?: unknown;
  expected: number;
  meaning: string;
}

const CASES: Case[] = [
  { name: "greet", params: { who: "world" }, expected: 0, meaning: "success" },
  { name: "fail", params: [1, 2], expected: 3, meaning: "exit code 3" },
  { name: "no-such-script", expected: -1, meaning: "unknown script" },
];

const ANSWER_TIMEOUT_MS = 10_000;

function stripTimestamp(line: string): string {
  return line.replace(/^\S+ (DEBUG|INFO|WARN|ERROR) /, "");
}

/** Sends every case at once from `from`'s socket; checks each status. */
async function roundTrip(
  from: DaemonProcess,
  runner: DaemonProcess,
  runnerName: string,
  label: string,
  differences: string[],
): Promise<void> {
  await using local = await LocalClient.connect(from.socket);
  const byId = new Map<string, Case>();
  const started = performance.now();
  for (const c of CASES) {
    const id = `${label}-${c.name}`;
    byId.set(id, c);
    const message = { name: c.name, id, params: c.params };
    console.log(`  → ${JSON.stringify(message)}`);
    await local.send(message);
  }
  for (let i = 0; i < CASES.length; i++) {
    let answer: Answer;
    try {
      answer = await local.next(ANSWER_TIMEOUT_MS);
    } catch (error) {
      const missing = CASES.length - i;
      differences.push(
        `${label}: ${missing} status(es) never came: ${
          (error as Error).message
        }`,
      );
      console.log(`  ✗ ${missing} status(es) never came`);
      return;
    }
    const ms = (performance.now() - started).toFixed(0);
    const c = byId.get(String(answer.id));
    let verdict: string;
    if (c === undefined) {
      verdict = "✗ answers no request of ours";
      differences.push(`${label}: unexpected answer ${JSON.stringify(answer)}`);
    } else if (answer.status === c.expected) {
      verdict = `✓ ${c.meaning}: ${c.expected} as expected`;
    } else {
      verdict = `✗ ${c.meaning}: expected ${c.expected}`;
      differences.push(
        `${label} ${c.name}: status ${answer.status}, expected ${c.expected} (${
          JSON.stringify(answer)
        })`,
      );
    }
    console.log(`  ← ${JSON.stringify(answer)}  ${verdict}  (+${ms} ms)`);
  }
  // The status does not wait for the script's output, so its log line may
  // come a moment later: wait for it.
  try {
    const line = await runner.waitForLog(
      new RegExp(`script greet id="${label}-greet" stdout: `),
      ANSWER_TIMEOUT_MS,
    );
    console.log(
      `  ${runnerName}'s log: ${stripTimestamp(line)}`,
    );
  } catch {
    differences.push(`${label}: greet's output never reached the peer's log`);
  }
}

/**
 * A broadcast from the server's socket, with the script's output, and an
 * INFO of this daemon (`+cmd`) and of its peer (`&cmd`).
 */
async function broadcastAndInfo(
  server: DaemonProcess,
  differences: string[],
): Promise<void> {
  await using local = await LocalClient.connect(server.socket);
  const broadcast = {
    name: "greet",
    id: "everyone",
    params: { who: "fleet" },
    to: "*",
    output: true,
  };
  console.log(`  → ${JSON.stringify(broadcast)}`);
  await local.send(broadcast);
  // One line per peer as each finishes, then the summary.
  for (;;) {
    const answer = await local.next(ANSWER_TIMEOUT_MS);
    console.log(`  ← ${JSON.stringify(answer)}`);
    if (answer.done === true) {
      if (answer.status !== 0) {
        differences.push(`broadcast: summary ${JSON.stringify(answer)}`);
      }
      break;
    }
    if (!String(answer.stdout).startsWith("hello!")) {
      differences.push(`broadcast: no output in ${JSON.stringify(answer)}`);
    }
  }
  for (const marker of ["+cmd", "&cmd"]) {
    const info = {
      name: marker,
      id: `info${marker[0]}`,
      params: { code: "INFO" },
    };
    console.log(`  → ${JSON.stringify(info)}`);
    await local.send(info);
    const answer = await local.next(ANSWER_TIMEOUT_MS);
    console.log(`  ← ${JSON.stringify(answer)}`);
    if (answer.status !== 0) {
      differences.push(`${marker} INFO: ${JSON.stringify(answer)}`);
    }
  }
}

/** Runs the demo; returns the temp prefixes, which are removed on return. */
async function demo(differences: string[]): Promise<string[]> {
  console.log("ws-daemon demo: a server and a client daemon on 127.0.0.1\n");
  let pair: ScriptPair;
  try {
    pair = await startScriptPair({ scripts: SCRIPTS });
  } catch (error) {
    differences.push(`the pair did not start: ${(error as Error).message}`);
    return [];
  }
  await using _cleanup = pair;
  const { server, client } = pair;
  console.log(`  server  ${pair.url}, socket ${server.socket}`);
  console.log(`  client  socket ${client.socket}`);
  console.log(
    `  linked: both said hello; scripts: ${Object.keys(SCRIPTS).join(", ")}\n`,
  );

  try {
    console.log("From the server's socket (the client runs the scripts):");
    await roundTrip(server, client, "client", "s", differences);
    console.log("\nFrom the client's socket (the server runs the scripts):");
    await roundTrip(client, server, "server", "c", differences);
    console.log("\nA broadcast to every peer, and INFO here and there:");
    await broadcastAndInfo(server, differences);
  } catch (error) {
    differences.push(`round trip failed: ${(error as Error).message}`);
  }

  console.log("\nStopping with SIGTERM:");
  try {
    const statuses = await pair.stop();
    for (const [name, status] of Object.entries(statuses)) {
      const ok = status.code === 0 && status.signal === null;
      console.log(
        `  ${name} exited ${status.code}${
          status.signal ? ` (${status.signal})` : ""
        }  ${ok ? "✓" : "✗ expected 0"}`,
      );
      if (!ok) differences.push(`${name} exited ${status.code}, expected 0`);
    }
  } catch (error) {
    differences.push(`stopping failed: ${(error as Error).message}`);
  }
  if (differences.length > 0) {
    for (const daemon of [server, client]) {
      console.log(`\n--- log of ${daemon.prefix} ---\n${daemon.log()}`);
    }
  }
  return [pair.serverPrefix.path, pair.clientPrefix.path];
}

const differences: string[] = [];
let prefixes: string[] = [];
try {
  prefixes = await demo(differences);
} catch (error) {
  differences.push(`demo failed: ${(error as Error).message}`);
}
const left = prefixes.filter((path) => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
});
if (left.length > 0) {
  differences.push(`temp prefixes not removed: ${left.join(", ")}`);
} else if (prefixes.length > 0) {
  console.log("  temp prefixes removed");
}

if (differences.length === 0) {
  console.log(
    "\nPASS: every status was as expected (0, 3, -1 both ways) and both daemons exited 0.",
  );
  Deno.exit(0);
}
console.log("\nFAIL: what differed:");
for (const difference of differences) console.log(`  - ${difference}`);
Deno.exit(1);
