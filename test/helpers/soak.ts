/**
 * The soak: a server and a client, through a fault-injecting TCP proxy,
 * both sending requests all the time, while links are torn, cut and stalled
 * and either daemon is killed (-9) or stopped (SIGTERM) and started again.
 * At the end every request's outcome is collected (from its connection, or
 * from `+cmd RESULT` when its connection went with a restart) and checked:
 * none lost, none answered twice, none run twice, none false.
 *
 * A status is true when it is the script's exit code (the id says which), or
 * -6 for a request whose running daemon was killed while it was out.
 *
 * @module
 */

import {
  clientConfig,
  DaemonProcess,
  freePort,
  Prefix,
  serverConfig,
} from "./daemon.ts";
import { type Answer, LocalClient } from "./local_client.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { until } from "./wait.ts";

const HEARTBEAT_MS = 500;

export interface SoakReport {
  seconds: number;
  sent: number;
  /** Answers on the connection that asked. */
  answered: number;
  /** Outcomes fetched with RESULT, their connection having gone. */
  fetched: number;
  duplicates: number;
  lost: number;
  falseStatuses: number;
  ranTwice: number;
  /** Requests written as their daemon went down, never read nor run. */
  unaccepted: number;
  /** Requests a daemon shutting down refused (-2), never run. */
  refused: number;
  faults: Record<string, number>;
  /** [seconds since start, server RSS MiB, client RSS MiB]. */
  rss: [number, number, number][];
  problems: string[];
}

type SideName = "s" | "c";

interface Sent {
  id: string;
  side: SideName;
  at: number;
  answers: Answer[];
  connection: number;
  /** Its outcome came from RESULT. */
  fetched?: boolean;
}

class Side {
  readonly name: SideName;
  readonly prefix: Prefix;
  daemon: DaemonProcess;
  local: LocalClient | undefined;
  connection = 0;
  /** SIGKILLs of this daemon, as times. */
  readonly kills: number[] = [];
  /** SIGKILLs and SIGTERMs of this daemon, as times. */
  readonly restarts: number[] = [];
  readonly all: DaemonProcess[] = [];

  constructor(name: SideName, prefix: Prefix, daemon: DaemonProcess) {
    this.name = name;
    this.prefix = prefix;
    this.daemon = daemon;
    this.all.push(daemon);
  }
}

function rssMiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(status.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}

function random(from: number, to: number): number {
  return from + Math.random() * (to - from);
}

/** Runs the soak for `seconds`, printing progress with `say`. */
export async function soak(
  seconds: number,
  say: (line: string) => void = () => {},
): Promise<SoakReport> {
  const port = freePort();
  const timing = { heartbeatMs: HEARTBEAT_MS, shutdownGraceMs: 2_000 };
  await using serverPrefix = await Prefix.create(
    serverConfig({ port, ...timing, offline: "queue", maxRunning: 16 }),
    { scripts: ["soak-run"] },
  );
  await using proxy = TcpProxy.start(port);
  await using clientPrefix = await Prefix.create(
    clientConfig(proxy.port, { ...timing, reconnectMaxMs: 200 }),
    { scripts: ["soak-run"] },
  );
  const sides = {
    s: new Side("s", serverPrefix, await DaemonProcess.start(serverPrefix)),
    c: new Side("c", clientPrefix, await DaemonProcess.start(clientPrefix)),
  };
  const report: SoakReport = {
    seconds,
    sent: 0,
    answered: 0,
    fetched: 0,
    duplicates: 0,
    lost: 0,
    falseStatuses: 0,
    ranTwice: 0,
    unaccepted: 0,
    refused: 0,
    faults: {},
    rss: [],
    problems: [],
  };
  const sent = new Map<string, Sent>();
  const began = Date.now();
  const end = began + seconds * 1000;
  const problem = (text: string) => {
    if (report.problems.length < 40) report.problems.push(text);
  };

  const readers: Promise<void>[] = [];
  const connect = async (side: Side) => {
    side.local = await LocalClient.connect(side.daemon.socket);
    side.connection++;
    const local = side.local;
    const connection = side.connection;
    readers.push((async () => {
      while (true) {
        let answer: Answer;
        try {
          answer = await local.next(3_600_000);
        } catch {
          return; // The connection went with its daemon.
        }
        const request = sent.get(String(answer.id));
        if (!request || request.connection !== connection) {
          problem(`an answer nobody asked for: ${JSON.stringify(answer)}`);
          continue;
        }
        request.answers.push(answer);
      }
    })());
  };
  await connect(sides.s);
  await connect(sides.c);

  const restart = async (side: Side, how: "kill" | "term") => {
    const old = side.daemon;
    if (how === "kill") {
      side.kills.push(Date.now());
      await old.kill();
    } else {
      await old.stop("SIGTERM", 30_000);
    }
    // Once it has exited: what was written before may never have been read.
    side.restarts.push(Date.now());
    await side.local?.close();
    side.local = undefined;
    side.daemon = await DaemonProcess.start(side.prefix);
    side.all.push(side.daemon);
    await connect(side);
  };

  let counter = 0;
  const load = async (side: Side) => {
    while (Date.now() < end) {
      const local = side.local;
      if (local) {
        const id = `${side.name}-${counter++}`;
        const request: Sent = {
          id,
          side: side.name,
          at: Date.now(),
          answers: [],
          connection: side.connection,
        };
        try {
          sent.set(id, request);
          await local.send({
            name: "soak-run",
            id,
            params: Number(random(0.005, 0.05).toFixed(3)),
          });
        } catch {
          sent.delete(id); // The daemon was restarting: never written.
        }
      }
      await new Promise((resolve) => setTimeout(resolve, random(5, 25)));
    }
  };

  const fault = async () => {
    const kinds = [
      "tear",
      "cut",
      "stall",
      "kill server",
      "kill client",
      "stop server",
      "stop client",
    ] as const;
    const kind = kinds[Math.floor(Math.random() * kinds.length)];
    report.faults[kind] = (report.faults[kind] ?? 0) + 1;
    switch (kind) {
      case "tear":
        return await proxy.tear(2_000);
      case "cut":
        return proxy.cut();
      case "stall":
        proxy.stall();
        await new Promise((resolve) => setTimeout(resolve, 3 * HEARTBEAT_MS));
        return await proxy.resume();
      case "kill server":
        return await restart(sides.s, "kill");
      case "kill client":
        return await restart(sides.c, "kill");
      case "stop server":
        return await restart(sides.s, "term");
      case "stop client":
        return await restart(sides.c, "term");
    }
  };

  const sampler = setInterval(() => {
    const at = Math.round((Date.now() - began) / 1000);
    const sample: [number, number, number] = [
      at,
      rssMiB(sides.s.daemon.child.pid),
      rssMiB(sides.c.daemon.child.pid),
    ];
    report.rss.push(sample);
    say(
      `${at} s: sent ${sent.size}, server ${sample[1].toFixed(0)} MiB, client ${
        sample[2].toFixed(0)
      } MiB`,
    );
  }, Math.max(2_000, seconds * 50));

  try {
    const loads = Promise.all([load(sides.s), load(sides.c)]);
    while (Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, random(300, 1_200)));
      if (Date.now() < end) await fault();
    }
    await loads;
    clearInterval(sampler);

    // Everything in flight on a live connection is answered...
    const open = () =>
      [...sent.values()].filter((r) =>
        r.answers.length === 0 && r.connection === sides[r.side].connection
      );
    await until(() => open().length === 0, 60_000, "the last answers")
      .catch(() => problem(`${open().length} request(s) never answered`));
    // ...and what went with a restarted daemon is asked for with RESULT, on
    // connections of their own (the load's are read by their readers).
    const askers = {
      s: await LocalClient.connect(sides.s.daemon.socket),
      c: await LocalClient.connect(sides.c.daemon.socket),
    };
    for (const request of sent.values()) {
      if (request.answers.length > 0) continue;
      const got = await until(
        async () => {
          const answer = await askers[request.side].request({
            name: "+cmd",
            id: `result ${request.id}`,
            params: { code: "RESULT", data: { id: request.id } },
          });
          const data = answer.data as { state: string; result?: Answer };
          return data.state === "pending" ? undefined : data;
        },
        60_000,
        `RESULT of ${request.id}`,
      ).catch(() => undefined);
      if (got?.state === "done" && got.result) {
        report.fetched++;
        request.fetched = true;
        request.answers.push(got.result);
      }
    }
    await askers.s.close();
    await askers.c.close();
  } finally {
    clearInterval(sampler);
    for (const side of Object.values(sides)) {
      await side.local?.close();
      for (const daemon of side.all) await daemon.kill();
    }
    await Promise.all(readers);
  }

  // Judge every request.
  const starts = new Map<string, number>();
  for (const prefix of [serverPrefix, clientPrefix]) {
    const text = await Deno.readTextFile(prefix.file("runs.log"))
      .catch(() => "");
    for (const line of text.split("\n")) {
      const [event, id] = line.split(" ");
      if (event === "start") starts.set(id, (starts.get(id) ?? 0) + 1);
    }
  }
  for (const request of sent.values()) {
    report.sent++;
    const runs = starts.get(request.id) ?? 0;
    if (runs > 1) {
      report.ranTwice++;
      problem(`${request.id} ran ${runs} times`);
    }
    if (request.answers.length > 1) {
      report.duplicates++;
      problem(
        `${request.id} answered twice: ${JSON.stringify(request.answers)}`,
      );
    }
    const answer = request.answers[0];
    if (!answer) {
      const asker = sides[request.side];
      // Written as its daemon went down: never read, never journaled.
      const wentDown = asker.restarts.some((t) => t >= request.at);
      if (runs === 0 && wentDown) report.unaccepted++;
      else {
        report.lost++;
        problem(`${request.id}: no status (ran ${runs} times)`);
      }
      continue;
    }
    if (!request.fetched) report.answered++;
    const expected = Number(request.id.split("-")[1]) % 4;
    const runner = sides[request.side === "s" ? "c" : "s"];
    const runnerKilled = runner.kills.some((t) => t >= request.at);
    // A daemon shutting down refuses new requests at the door: -2, true.
    const refused = answer.status === -2 &&
      /shutting down/.test(String(answer.error)) && runs === 0;
    if (refused) report.refused++;
    const honest = answer.status === expected || refused ||
      (answer.status === -6 && runnerKilled);
    if (!honest) {
      report.falseStatuses++;
      problem(
        `${request.id}: status ${JSON.stringify(answer)}, true ${expected}`,
      );
    }
  }
  return report;
}
