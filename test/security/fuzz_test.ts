/**
 * A seeded fuzz test: hostile inputs, random and mutated, against a real
 * server and client daemon (both with a `secret`), on every door they have:
 *
 * - (a) the local socket of each daemon: many short connections (writes, a
 *   half-close, answers read with a deadline) and a few long ones (batches,
 *   each followed by a `+cmd STATUS` sentinel the daemon must echo);
 * - (b) the WebSocket endpoint, as peers without (or with wrong) credentials
 *   and as authenticated peers (npm:ws, for the Authorization header): text
 *   frames of the same hostile kinds, binary frames, invalid UTF-8, pings;
 * - (c) raw TCP to the WebSocket port: garbage, malformed HTTP and upgrade
 *   requests, and malformed frames after a successful upgrade.
 *
 * Afterwards both daemons must still run, answer
 * `{"name":"exit-with","id":"after","params":3}` with status 3 both ways, have
 * grown by at most RSS_GROWTH_LIMIT_MIB of RSS since they started, and have
 * logged no "Uncaught", "RangeError" or "Maximum call stack".
 *
 * Along the way the test also records, without waiting long for it: a local
 * connection the daemon does not close after the half-close (it still thinks
 * it owes an answer), fewer answers than well-formed requests on a
 * connection, an answer line that is not a JSON object with an integer
 * `status`, a long connection whose sentinel is not echoed, and an
 * authenticated peer whose probe request is not answered.
 *
 * The prefixes hold only the `noop` and `exit-with` fixtures, so nothing slow
 * or harmful can run.
 *
 * Replay: `WSDAEMON_FUZZ_SEED=<seed> WSDAEMON_FUZZ_COUNT=<count>` (printed at
 * the end, pass or fail). Longer run:
 * `WSDAEMON_FUZZ_COUNT=200000 deno test --frozen --sanitize-ops
 * --sanitize-resources --allow-all test/security/fuzz_test.ts`.
 *
 * @module
 */

import WebSocket from "ws";
import { assert } from "../helpers/assert.ts";
import { type DaemonProcess, startPair } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { deadline } from "../helpers/wait.ts";
import {
  describeBytes,
  type FuzzContext,
  type LocalInput,
  localInput,
  mixSeed,
  type PeerFrame,
  peerFrame,
  Rng,
  type TcpInput,
  tcpInput,
} from "./_fuzz_inputs.ts";

const SEED = envInteger("WSDAEMON_FUZZ_SEED", 0x5eed2026);
const COUNT = envInteger("WSDAEMON_FUZZ_COUNT", 10_000);
const SECRET = "fuzz-test-secret-0123456789abcdef";
const MAX_MESSAGE_BYTES = 1024 * 1024; // the daemons' default maxMessageBytes

/**
 * How much each daemon's RSS (VmRSS) may grow between right after its start
 * and the end of the run: at most +200 MiB. The inputs hold ~100 lines and
 * frames of about 1 MiB and ~600 values nested 10,000 to 500,000 deep (all
 * within maxMessageBytes); a daemon that keeps any of them, or leaks per
 * connection over the ~1,500 connections of a default run, goes past it. RSS
 * is read right after the final requests: V8 gives memory back to the system
 * only some 25 s after a burst, so this bounds the heap a burst leaves too.
 * Measured with npm:ws serving the WebSocket side: the server grew by about
 * +160 MiB after the default run but by only +97 MiB after 30,000 inputs, so
 * what is left is heap not yet given back, not a leak.
 */
const RSS_GROWTH_LIMIT_MIB = 200;

/** Shares of COUNT per category. */
const SHARES = {
  localServer: 0.35,
  localClient: 0.35,
  wsAuth: 0.11,
  wsUnauth: 0.07,
  tcp: 0.12,
};
/** Part of each daemon's local share that goes through the long connections. */
const LONG_SHARE = 0.1;
const LONG_CONNECTIONS_PER_DAEMON = 2;
const SHORT_WORKERS_PER_DAEMON = 4;
const WS_WORKERS = 4;
const TCP_WORKERS = 8;

/** Seed streams: each connection's inputs come from mixSeed(SEED, stream, i). */
const STREAM = {
  shortServer: 1,
  shortClient: 2,
  longServer: 3,
  longClient: 4,
  wsAuth: 5,
  wsUnauth: 6,
  tcp: 7,
} as const;

// Deadlines. Each is for one wait; none is a sleep.
const CONNECT_MS = 5_000;
const WRITE_MS = 15_000;
/** How long after a half-close the daemon has to close a local connection. */
const CLOSE_AFTER_HALF_CLOSE_MS = 6_000;
/** Past this many findings the run stops: enough to report, and it ends. */
const MAX_FINDINGS = 50;
/** Once this many connections were stuck, later ones get a shorter wait. */
const STUCK_BEFORE_SHORTER = 5;
const STUCK_SHORT_MS = 1_000;
const SENTINEL_MS = 10_000;
const WS_OPEN_MS = 5_000;
const WS_PROBE_MS = 5_000;
const WS_CLOSE_MS = 3_000;
const TCP_HEAD_MS = 1_000;
const TCP_LINGER_MS = 300;
const FINAL_MS = 20_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function envInteger(name: string, fallback: number): number {
  const text = Deno.env.get(name);
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${name} must be a non-negative integer: found ${text}`);
  }
  return value;
}

// ---- bookkeeping --------------------------------------------------------------

/** What went wrong, with the inputs that led there. */
class Findings {
  readonly list: string[] = [];
  stuck = 0;

  add(where: string, symptom: string, inputs: string[] = []): void {
    const shown = inputs.slice(-8).join("\n      ");
    this.list.push(
      `${where}: ${symptom}${shown ? `\n    inputs:\n      ${shown}` : ""}`,
    );
  }
}

/** Counts for the summary line. */
class Stats {
  readonly inputs: Record<string, number> = {};
  readonly kinds: Record<string, number> = {};
  readonly notes: Record<string, number> = {};

  input(category: string, kind: string, n = 1): void {
    this.inputs[category] = (this.inputs[category] ?? 0) + n;
    this.kinds[kind] = (this.kinds[kind] ?? 0) + n;
  }

  note(what: string, n = 1): void {
    this.notes[what] = (this.notes[what] ?? 0) + n;
  }

  get total(): number {
    return Object.values(this.inputs).reduce((a, b) => a + b, 0);
  }
}

/** Shared by every task: stop early when a daemon is gone. */
interface Run {
  server: DaemonProcess;
  client: DaemonProcess;
  findings: Findings;
  stats: Stats;
  /** The last inputs sent to each daemon, for a crash report. */
  recent: Map<DaemonProcess, string[]>;
  /** Daemons whose exit has been reported. */
  exited: Set<DaemonProcess>;
  /** Set when a daemon is gone or unreachable: no new connections start. */
  stopped: boolean;
}

function remember(run: Run, daemon: DaemonProcess, lines: string[]): void {
  const recent = run.recent.get(daemon) ?? [];
  recent.push(...lines);
  run.recent.set(daemon, recent.slice(-12));
}

/**
 * Whether the run goes on: stops it, with a report, once a daemon has exited
 * (or once there are MAX_FINDINGS findings).
 */
function checkAlive(run: Run): boolean {
  if (run.findings.list.length >= MAX_FINDINGS) run.stopped = true;
  for (const daemon of [run.server, run.client]) {
    if (daemon.running || run.exited.has(daemon)) continue;
    run.exited.add(daemon);
    run.stopped = true;
    const which = daemon === run.server ? "server" : "client";
    run.findings.add(
      `${which} daemon`,
      `exited during the fuzz run; last log lines:\n      ${
        tail(daemon.lines, 15).join("\n      ")
      }`,
      run.recent.get(daemon) ?? [],
    );
  }
  return !run.stopped;
}

/**
 * Before reporting an anomaly: a daemon that crashed is reaped within moments,
 * and then the crash is the report, not its side effects on a connection.
 */
async function stillUp(run: Run, daemon: DaemonProcess): Promise<boolean> {
  if (daemon.running) {
    await deadline(daemon.exited(), 500, "the daemon to exit").catch(() => {});
  }
  return checkAlive(run);
}

/**
 * A connection to a daemon failed: if the daemon has crashed (it is reaped
 * within moments), that is the report; otherwise the failure itself is, and
 * the run stops, since every later connection would fail the same way.
 */
async function connectFailed(
  run: Run,
  daemon: DaemonProcess,
  where: string,
  error: unknown,
): Promise<void> {
  await deadline(daemon.exited(), 2_000, "the daemon to exit").catch(() => {});
  if (!checkAlive(run)) return;
  run.stopped = true;
  run.findings.add(
    where,
    `cannot connect to a running daemon (run stopped): ${
      (error as Error).message
    }`,
    run.recent.get(daemon) ?? [],
  );
}

function tail(lines: string[], n: number): string[] {
  return lines.slice(-n).map((l) => l.length > 600 ? l.slice(0, 600) + "…" : l);
}

function summary(input: { kind: string; bytes: Uint8Array }): string {
  return `${input.kind}: ${describeBytes(input.bytes)}`;
}

/** Runs `task(i)` for i = 0, 1, … on `workers` workers until it returns false. */
async function pool(
  workers: number,
  task: (i: number) => Promise<boolean>,
): Promise<void> {
  let next = 0;
  let done = false;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (!done) {
        const more = await task(next++);
        if (!more) done = true;
      }
    }),
  );
}

function shares(count: number) {
  const n = (share: number) => Math.round(count * share);
  const localServer = n(SHARES.localServer);
  const localClient = n(SHARES.localClient);
  const longServer = Math.round(localServer * LONG_SHARE);
  const longClient = Math.round(localClient * LONG_SHARE);
  const wsAuth = n(SHARES.wsAuth);
  const wsUnauth = n(SHARES.wsUnauth);
  // Whatever rounding left over goes to raw TCP, so the total is COUNT.
  const tcp = count - localServer - localClient - wsAuth - wsUnauth;
  return {
    shortServer: localServer - longServer,
    longServer,
    shortClient: localClient - longClient,
    longClient,
    wsAuth,
    wsUnauth,
    tcp,
  };
}

// ---- RSS ------------------------------------------------------------------------

/** VmRSS and VmHWM (peak) of a process, in KiB, from /proc/<pid>/status. */
async function memory(pid: number): Promise<{ rss: number; peak: number }> {
  const text = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) => {
    const match = text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
    if (!match) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(match[1]);
  };
  return { rss: field("VmRSS"), peak: field("VmHWM") };
}

const mib = (kib: number) => (kib / 1024).toFixed(1);

// ---- local sockets ----------------------------------------------------------------

/**
 * Reads answer lines from a local connection until end of input: counts them,
 * checks each is a JSON object with an integer `status`, and notes the ids of
 * sentinels.
 */
class AnswerReader {
  answers = 0;
  readonly bad: string[] = [];
  readonly #sentinels = new Set<string>();
  #waiter: (() => void) | undefined;
  #eof = false;
  readonly ended: Promise<void>;

  constructor(conn: Deno.Conn) {
    this.ended = this.#read(conn);
  }

  get eof(): boolean {
    return this.#eof;
  }

  async #read(conn: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let carry: Uint8Array[] = [];
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        let chunk = buffer.subarray(0, n);
        let newline = chunk.indexOf(0x0a);
        while (newline !== -1) {
          carry.push(chunk.subarray(0, newline));
          this.#line(joinBytes(carry));
          carry = [];
          chunk = chunk.subarray(newline + 1);
          newline = chunk.indexOf(0x0a);
        }
        if (chunk.length) carry.push(chunk.slice());
      }
      if (carry.length) this.#line(joinBytes(carry));
      this.#eof = true;
    } catch {
      // Closed by this side after a deadline, or reset by the daemon.
    } finally {
      this.#waiter?.();
    }
  }

  #line(bytes: Uint8Array): void {
    const text = decoder.decode(bytes);
    if (text.trim() === "") return;
    this.answers++;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.bad.push(`not JSON: ${describeBytes(text)}`);
      return;
    }
    if (
      typeof value !== "object" || value === null || Array.isArray(value) ||
      !Number.isInteger((value as { status?: unknown }).status)
    ) {
      this.bad.push(`not a status object: ${describeBytes(text)}`);
      return;
    }
    const id = (value as { id?: unknown }).id;
    if (typeof id === "string" && id.startsWith("sentinel:")) {
      this.#sentinels.add(id);
      this.#waiter?.();
    }
  }

  /** Whether a sentinel with `id` was echoed within `ms`. */
  async sentinel(id: string, ms: number): Promise<boolean> {
    const wait = async () => {
      while (!this.#sentinels.has(id)) {
        if (this.#eof) return false;
        await new Promise<void>((resolve) => this.#waiter = resolve);
      }
      return true;
    };
    try {
      return await deadline(wait(), ms, `sentinel ${id}`);
    } catch {
      return false;
    }
  }

  /** Whether the daemon closed the connection within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    try {
      await deadline(this.ended, ms, "the daemon to close the connection");
    } catch {
      return false;
    }
    return this.#eof;
  }
}

function joinBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

/**
 * Writes `chunks` with one deadline; on expiry the caller closes the
 * connection, which ends the pending write (awaited through `settled`).
 */
function writeChunks(
  conn: Deno.Conn,
  chunks: Uint8Array[],
): { done: Promise<void>; settled: Promise<unknown> } {
  const done = (async () => {
    for (const chunk of chunks) await writeAll(conn, chunk);
  })();
  return { done, settled: done.catch(() => {}) };
}

/** Splits some inputs into pieces, as a sender's writes might arrive. */
function pieces(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  if (bytes.length < 2 || !rng.chance(0.1)) return [bytes];
  const cuts = [
    0,
    ...Array.from(
      { length: rng.range(1, 3) },
      () => rng.range(1, bytes.length - 1),
    ).sort((a, b) => a - b),
    bytes.length,
  ];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    if (cuts[i + 1] > cuts[i]) out.push(bytes.subarray(cuts[i], cuts[i + 1]));
  }
  return out;
}

interface LocalPlan {
  daemon: DaemonProcess;
  label: string;
  category: string;
  inputs: LocalInput[];
  /** Pieces to write, in order. */
  chunks: Uint8Array[];
}

/**
 * One short local connection: write everything, half-close, read answers
 * until the daemon closes the connection (or a deadline passes).
 */
async function shortLocal(run: Run, plan: LocalPlan): Promise<void> {
  const { daemon, label, inputs } = plan;
  const where = `${label} (seed ${SEED})`;
  const shown = inputs.map(summary);
  remember(run, daemon, shown.map((s) => `${label} ${s}`));
  let conn: Deno.UnixConn;
  try {
    conn = await deadline(
      Deno.connect({ transport: "unix", path: daemon.socket }),
      CONNECT_MS,
      `a connection to ${daemon.socket}`,
    );
  } catch (error) {
    await connectFailed(run, daemon, where, error);
    return;
  }
  const reader = new AnswerReader(conn);
  const writing = writeChunks(conn, plan.chunks);
  try {
    try {
      await deadline(writing.done, WRITE_MS, "the writes");
      await conn.closeWrite();
    } catch (error) {
      if (await stillUp(run, daemon)) {
        run.findings.add(
          where,
          `writing the requests failed: ${(error as Error).message}`,
          shown,
        );
      }
      return;
    }
    const wait = run.findings.stuck >= STUCK_BEFORE_SHORTER
      ? STUCK_SHORT_MS
      : CLOSE_AFTER_HALF_CLOSE_MS;
    const owed = inputs.filter((i) => i.owed).length;
    if (!(await reader.closedWithin(wait))) {
      if (!(await stillUp(run, daemon))) return;
      run.findings.stuck++;
      run.findings.add(
        where,
        `not closed by the daemon ${wait} ms after the half-close (it still owes an answer?); ${reader.answers} answer(s) for ${owed} well-formed request(s)`,
        shown,
      );
    } else if (reader.answers < owed && await stillUp(run, daemon)) {
      run.findings.add(
        where,
        `${reader.answers} answer(s) for ${owed} well-formed request(s)`,
        shown,
      );
    }
    for (const bad of reader.bad.slice(0, 3)) {
      run.findings.add(where, `bad answer line: ${bad}`, shown);
    }
    run.stats.note("local answers", reader.answers);
    run.stats.note("local well-formed requests", owed);
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    await writing.settled;
    await reader.ended;
    checkAlive(run);
  }
}

/** Builds short local connection plans for one daemon, from its seed stream. */
function shortPlans(
  daemon: DaemonProcess,
  name: "server" | "client",
  quota: number,
) {
  let left = quota;
  const ctx: FuzzContext = {
    maxMessageBytes: MAX_MESSAGE_BYTES,
    secret: SECRET,
  };
  const stream = name === "server" ? STREAM.shortServer : STREAM.shortClient;
  return (i: number): LocalPlan | undefined => {
    if (left <= 0) return undefined;
    const rng = new Rng(mixSeed(SEED, stream, i));
    const n = Math.min(left, rng.range(1, 12));
    left -= n;
    const inputs = Array.from({ length: n }, () => localInput(rng, ctx));
    const chunks = inputs.flatMap((input) => pieces(rng, input.bytes));
    return {
      daemon,
      label: `local ${name} short #${i}`,
      category: `local ${name}`,
      inputs,
      chunks,
    };
  };
}

/**
 * One long local connection: batches of inputs, each followed by a newline
 * and a `+cmd STATUS` sentinel (answered by this daemon itself, so it cannot
 * be forged from the other side), until `quota` inputs are sent.
 */
async function longLocal(
  run: Run,
  daemon: DaemonProcess,
  name: "server" | "client",
  index: number,
  quota: number,
): Promise<void> {
  const label = `local ${name} long #${index}`;
  const where = `${label} (seed ${SEED})`;
  const stream = name === "server" ? STREAM.longServer : STREAM.longClient;
  const rng = new Rng(mixSeed(SEED, stream, index));
  const ctx: FuzzContext = {
    maxMessageBytes: MAX_MESSAGE_BYTES,
    secret: SECRET,
  };
  let conn: Deno.UnixConn;
  try {
    conn = await deadline(
      Deno.connect({ transport: "unix", path: daemon.socket }),
      CONNECT_MS,
      `a connection to ${daemon.socket}`,
    );
  } catch (error) {
    await connectFailed(run, daemon, where, error);
    return;
  }
  const reader = new AnswerReader(conn);
  let owed = 0;
  let sent = 0;
  let batchNo = 0;
  /** The last inputs sent here, for a report. */
  let history: string[] = [];
  const pending: Promise<unknown>[] = [];
  try {
    while (sent < quota && checkAlive(run)) {
      const n = Math.min(quota - sent, rng.range(5, 30));
      const inputs = Array.from({ length: n }, () => localInput(rng, ctx));
      const shown = inputs.map(summary);
      remember(run, daemon, shown.map((s) => `${label} ${s}`));
      history = [...history, ...shown].slice(-12);
      const id = `sentinel:${name}:${index}:${batchNo++}`;
      const sentinel = encoder.encode(
        `\n{"name":"+cmd","id":${
          JSON.stringify(id)
        },"params":{"code":"STATUS","data":{"status":0,"id":${
          JSON.stringify(id)
        }}}}\n`,
      );
      const writing = writeChunks(conn, [
        ...inputs.flatMap((input) => pieces(rng, input.bytes)),
        sentinel,
      ]);
      pending.push(writing.settled);
      try {
        await deadline(writing.done, WRITE_MS, "the writes");
      } catch (error) {
        if (await stillUp(run, daemon)) {
          run.findings.add(
            where,
            `writing batch ${batchNo} failed: ${(error as Error).message}`,
            shown,
          );
        }
        return;
      }
      sent += n;
      owed += inputs.filter((i) => i.owed).length + 1;
      for (const input of inputs) run.stats.input(`local ${name}`, input.kind);
      if (!(await reader.sentinel(id, SENTINEL_MS))) {
        if (await stillUp(run, daemon)) {
          run.findings.add(
            where,
            `the +cmd STATUS sentinel after batch ${batchNo} was not echoed within ${SENTINEL_MS} ms`,
            shown,
          );
        }
        return;
      }
    }
    await conn.closeWrite();
    if (!(await reader.closedWithin(CLOSE_AFTER_HALF_CLOSE_MS))) {
      if (await stillUp(run, daemon)) {
        run.findings.add(
          where,
          `not closed by the daemon ${CLOSE_AFTER_HALF_CLOSE_MS} ms after the half-close; ${reader.answers} answer(s) for ${owed} well-formed request(s) and sentinels`,
          history,
        );
      }
    } else if (reader.answers < owed && await stillUp(run, daemon)) {
      run.findings.add(
        where,
        `${reader.answers} answer(s) for ${owed} well-formed request(s) and sentinels`,
        history,
      );
    }
    for (const bad of reader.bad.slice(0, 3)) {
      run.findings.add(where, `bad answer line: ${bad}`);
    }
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    await Promise.all(pending);
    await reader.ended;
  }
}

// ---- WebSocket peers ----------------------------------------------------------------

/** The part of npm:ws this test uses (ws ships no types). */
interface WsSocket {
  readyState: number;
  on(event: "open", listener: () => void): void;
  on(
    event: "close",
    listener: (code: number, reason: Uint8Array) => void,
  ): void;
  on(event: "error", listener: (error: Error) => void): void;
  on(
    event: "message",
    listener: (data: Uint8Array, isBinary: boolean) => void,
  ): void;
  send(
    data: string | Uint8Array,
    options: { binary: boolean },
    callback: (error?: Error) => void,
  ): void;
  ping(
    data: Uint8Array,
    mask: undefined,
    callback: (error?: Error) => void,
  ): void;
  close(code?: number): void;
  terminate(): void;
}

const WS_OPEN = 1;

/** Headers of peers that should be refused once authentication is on. */
function unauthHeaders(rng: Rng): Record<string, string> {
  return rng.pick<Record<string, string>>([
    {},
    {},
    { Authorization: `Bearer ${SECRET}x` },
    { Authorization: `Bearer ${SECRET.slice(1)}` },
    { Authorization: "Bearer " },
    { Authorization: "Basic Zm9vOmJhcg==" },
    { Authorization: SECRET },
    { Authorization: `Bearer ${"s".repeat(4096)}` },
    { "X-Authorization": `Bearer ${SECRET}` },
  ]);
}

/**
 * One WebSocket peer: connects (with or without the secret), sends its frames,
 * then (authenticated, still open) a probe request that must be answered.
 */
async function wsPeer(
  run: Run,
  index: number,
  authenticated: boolean,
  frames: PeerFrame[],
  headers: Record<string, string>,
): Promise<number> {
  const category = authenticated ? "ws auth" : "ws unauth";
  const label = `${category} #${index}`;
  const where = `${label} (seed ${SEED})`;
  const shown = frames.map((f) =>
    `${f.kind}${f.ping ? " (ping)" : ""}: ${describeBytes(f.data)}`
  );
  remember(run, run.server, shown.map((s) => `${label} ${s}`));
  const probeId = `probe:${index}`;
  let probeAnswered = false;
  const ws = new WebSocket(run.server.url, {
    headers,
    handshakeTimeout: WS_OPEN_MS,
    maxPayload: 64 * 1024 * 1024,
  }) as unknown as WsSocket;
  let wake: (() => void) | undefined;
  let closeInfo: string | undefined;
  const closed = new Promise<void>((resolve) =>
    ws.on("close", (code, reason) => {
      closeInfo = `${code} ${decoder.decode(reason)}`;
      resolve();
      wake?.();
    })
  );
  ws.on(
    "error",
    (error) =>
      run.stats.note(
        `${category} error: ${
          error.message.replace(/\d{4,}/g, "N").slice(0, 60)
        }`,
      ),
  );
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    try {
      const frame = JSON.parse(decoder.decode(data));
      if (
        frame?.name === "&cmd" && frame.params?.code === "STATUS" &&
        frame.params.data?.id === probeId
      ) {
        probeAnswered = frame.params.data.status === 5;
        wake?.();
      }
    } catch {
      // Not ours to check: only the probe's answer matters here.
    }
  });
  let sent = 0;
  const opened = await deadline(
    Promise.race([
      new Promise<boolean>((resolve) => ws.on("open", () => resolve(true))),
      closed.then(() => false),
    ]),
    WS_OPEN_MS + 1_000,
    "the WebSocket to open or close",
  ).catch(() => false);
  try {
    if (!opened) {
      run.stats.note(`${category} refused`);
      run.stats.input(category, "refused upgrade");
      sent = 1;
      if (authenticated && await stillUp(run, run.server)) {
        run.findings.add(
          where,
          `the authenticated upgrade was refused (${closeInfo ?? "no close"})`,
        );
      }
      return sent;
    }
    run.stats.note(`${category} accepted`);
    for (const frame of frames) {
      if (ws.readyState !== WS_OPEN) break;
      const swallow = () => {};
      if (frame.ping) {
        ws.ping(frame.data as Uint8Array, undefined, swallow);
      } else if (typeof frame.data === "string") {
        ws.send(frame.data, { binary: false }, swallow);
      } else ws.send(frame.data, { binary: !frame.textBytes }, swallow);
      sent++;
      run.stats.input(category, frame.kind);
    }
    if (sent < frames.length) {
      run.stats.note(
        `${category} frames not sent (closed)`,
        frames.length - sent,
      );
    }
    if (!authenticated || ws.readyState !== WS_OPEN) return sent;
    ws.send(
      JSON.stringify({ name: "exit-with", id: probeId, params: 5 }),
      { binary: false },
      () => {},
    );
    const wait = async () => {
      while (!probeAnswered && ws.readyState === WS_OPEN) {
        await new Promise<void>((resolve) => wake = resolve);
      }
    };
    await deadline(wait(), WS_PROBE_MS, "the probe's STATUS").catch(() => {});
    if (probeAnswered) run.stats.note("ws auth probes answered");
    else if (ws.readyState === WS_OPEN && await stillUp(run, run.server)) {
      run.findings.add(
        where,
        `no STATUS 5 for the probe ${probeId} within ${WS_PROBE_MS} ms on an open link`,
        shown,
      );
    } else {
      run.stats.note(
        `ws auth closed by the daemon (${closeInfo}) after ${
          frames.some((f) => f.textBytes)
            ? "invalid UTF-8 text"
            : "no invalid UTF-8 text"
        }`,
      );
    }
    return sent;
  } finally {
    if (ws.readyState === WS_OPEN) ws.close(1000);
    try {
      await deadline(closed, WS_CLOSE_MS, "the WebSocket to close");
    } catch {
      ws.terminate();
      await deadline(closed, WS_CLOSE_MS, "the WebSocket to be terminated");
    }
    checkAlive(run);
  }
}

// ---- raw TCP ----------------------------------------------------------------------

/** One raw TCP connection to the WebSocket port. */
async function rawTcp(run: Run, index: number, input: TcpInput): Promise<void> {
  const label = `tcp #${index}`;
  const shown = [
    `${input.kind}: ${describeBytes(input.bytes)}`,
    ...(input.frames ?? []).map((f) => `frame: ${describeBytes(f, 24)}`),
  ];
  remember(run, run.server, shown.map((s) => `${label} ${s}`));
  run.stats.input("tcp", input.kind);
  let conn: Deno.TcpConn;
  try {
    conn = await deadline(
      Deno.connect({ hostname: "127.0.0.1", port: run.server.port }),
      CONNECT_MS,
      "a TCP connection to the WebSocket port",
    );
  } catch (error) {
    await connectFailed(run, run.server, `${label} (seed ${SEED})`, error);
    return;
  }
  // Everything the daemon sends, until end of input or until closed here.
  let received: Uint8Array = new Uint8Array(0);
  let wake: (() => void) | undefined;
  let ended = false;
  const reading = (async () => {
    const buffer = new Uint8Array(16 * 1024);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        if (received.length < 64 * 1024) {
          received = joinBytes([received, buffer.slice(0, n)]);
        }
        wake?.();
      }
    } catch {
      // Reset by the daemon, or closed here.
    }
    ended = true;
    wake?.();
  })();
  const waitFor = async (done: () => boolean, ms: number) => {
    const loop = async () => {
      while (!done() && !ended) {
        await new Promise<void>((resolve) => wake = resolve);
      }
    };
    await deadline(loop(), ms, "the daemon's answer").catch(() => {});
  };
  const headEnd = () => indexOf(received, "\r\n\r\n");
  const writes: Promise<unknown>[] = [];
  const write = async (bytes: Uint8Array) => {
    const done = writeAll(conn, bytes);
    writes.push(done.catch(() => {}));
    await deadline(done, WRITE_MS, "a raw TCP write").catch(() => {});
  };
  try {
    await write(input.bytes);
    await waitFor(
      () => headEnd() !== -1,
      input.frames ? TCP_HEAD_MS : TCP_LINGER_MS,
    );
    const statusLine =
      decoder.decode(received.subarray(0, 40)).split("\r\n")[0];
    const code = statusLine.match(/^HTTP\/1\.[01] (\d{3})/)?.[1] ?? (
      received.length
        ? "non-HTTP answer"
        : ended
        ? "closed, no answer"
        : "no answer"
    );
    run.stats.note(`tcp ${code}`);
    if (input.frames && code === "101") {
      for (const frame of input.frames) await write(frame);
      await waitFor(() => false, TCP_LINGER_MS);
      run.stats.note(
        ended
          ? "tcp upgraded, then closed by the daemon"
          : "tcp upgraded, still open",
      );
    }
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    await Promise.all(writes);
    await reading;
    checkAlive(run);
  }
}

function indexOf(bytes: Uint8Array, text: string): number {
  const needle = encoder.encode(text);
  outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (bytes[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

// ---- the final checks ---------------------------------------------------------------

/**
 * `{"name":"exit-with","id":"after","params":3}` on `socket` must come back
 * with status 3; -2 (the client is reconnecting: after a PAUSE, or after a
 * fuzzing peer took its name) is retried until FINAL_MS.
 */
async function finalRequest(socket: string): Promise<string | undefined> {
  const end = Date.now() + FINAL_MS;
  let last = "nothing";
  while (Date.now() < end) {
    try {
      await using local = await deadline(
        LocalClient.connect(socket),
        CONNECT_MS,
        `a connection to ${socket}`,
      );
      const answer = await local.request(
        { name: "exit-with", id: "after", params: 3 },
        Math.max(1, Math.min(5_000, end - Date.now())),
      );
      last = JSON.stringify(answer);
      if (answer.status === 3 && answer.id === "after") return undefined;
      if (answer.status !== -2) break;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return `exit-with 3 on ${socket} did not answer status 3 within ${FINAL_MS} ms: last ${last}`;
}

const CRASH_PATTERN = /Uncaught|RangeError|Maximum call stack/;

// ---- the test -----------------------------------------------------------------------

Deno.test("fuzz: hostile inputs on the local sockets, the WebSocket endpoint and raw TCP", async () => {
  const plan = shares(COUNT);
  const started = Date.now();
  const stats = new Stats();
  const findings = new Findings();
  const timings: string[] = [];
  const memoryReport: string[] = [];
  const problems: string[] = [];
  try {
    await using pair = await startPair({
      server: { secret: SECRET },
      client: { secret: SECRET },
      scripts: ["noop", "exit-with"],
    });
    const run: Run = {
      server: pair.server,
      client: pair.client,
      findings,
      stats,
      recent: new Map(),
      exited: new Set(),
      stopped: false,
    };
    const startRss = {
      server: (await memory(pair.server.child.pid)).rss,
      client: (await memory(pair.client.child.pid)).rss,
    };

    // (a) the local sockets: short connections on both daemons, and the long
    // ones alongside.
    let phase = Date.now();
    const local = (daemon: DaemonProcess, name: "server" | "client") => {
      const plans = shortPlans(
        daemon,
        name,
        name === "server" ? plan.shortServer : plan.shortClient,
      );
      const longQuota = name === "server" ? plan.longServer : plan.longClient;
      const per = Math.ceil(longQuota / LONG_CONNECTIONS_PER_DAEMON);
      return [
        pool(SHORT_WORKERS_PER_DAEMON, async (i) => {
          const next = run.stopped ? undefined : plans(i);
          if (!next) return false;
          await shortLocal(run, next);
          for (const input of next.inputs) {
            stats.input(next.category, input.kind);
          }
          return true;
        }),
        ...Array.from(
          { length: LONG_CONNECTIONS_PER_DAEMON },
          (_, k) =>
            longLocal(
              run,
              daemon,
              name,
              k,
              Math.max(0, Math.min(per, longQuota - k * per)),
            ),
        ),
      ];
    };
    await Promise.all([
      ...local(pair.server, "server"),
      ...local(pair.client, "client"),
    ]);
    timings.push(`local ${Date.now() - phase} ms`);

    // (b) the WebSocket endpoint, authenticated and not, side by side.
    phase = Date.now();
    const ctx: FuzzContext = {
      maxMessageBytes: MAX_MESSAGE_BYTES,
      secret: SECRET,
    };
    const peers = (authenticated: boolean, quota: number) => {
      let left = quota;
      const stream = authenticated ? STREAM.wsAuth : STREAM.wsUnauth;
      return pool(WS_WORKERS / 2, async (i) => {
        if (left <= 0 || run.stopped) return false;
        const rng = new Rng(mixSeed(SEED, stream, i));
        const frames = Array.from(
          { length: rng.range(1, 40) },
          () => peerFrame(rng, ctx),
        );
        // A frame that closes the link goes last, or the rest would be lost.
        frames.sort((a, b) => Number(!!a.textBytes) - Number(!!b.textBytes));
        const headers = authenticated
          ? { Authorization: `Bearer ${SECRET}` }
          : unauthHeaders(rng);
        // A refused upgrade counts as one input; else each frame sent does.
        left -= await wsPeer(run, i, authenticated, frames, headers);
        return true;
      });
    };
    await Promise.all([peers(true, plan.wsAuth), peers(false, plan.wsUnauth)]);
    timings.push(`ws ${Date.now() - phase} ms`);

    // (c) raw TCP to the WebSocket port.
    phase = Date.now();
    let tcpLeft = plan.tcp;
    await pool(TCP_WORKERS, async (i) => {
      if (tcpLeft <= 0 || run.stopped) return false;
      tcpLeft--;
      const rng = new Rng(mixSeed(SEED, STREAM.tcp, i));
      await rawTcp(run, i, tcpInput(rng, ctx));
      return true;
    });
    timings.push(`tcp ${Date.now() - phase} ms`);

    // Afterwards: both still run and still work.
    const daemons = [
      ["server", pair.server],
      ["client", pair.client],
    ] as const;
    for (const [name, daemon] of daemons) {
      if (!daemon.running) {
        problems.push(
          `the ${name} daemon is not running:\n  ${
            tail(daemon.lines, 15).join("\n  ")
          }`,
        );
      }
    }
    if (pair.server.running && pair.client.running) {
      for (const socket of [pair.server.socket, pair.client.socket]) {
        const failure = await finalRequest(socket);
        if (failure) problems.push(failure);
      }
    }
    for (const [name, daemon] of daemons) {
      if (daemon.running) {
        const now = await memory(daemon.child.pid);
        const growth = now.rss - startRss[name];
        memoryReport.push(
          `${name} RSS ${mib(startRss[name])} -> ${mib(now.rss)} MiB (peak ${
            mib(now.peak)
          })`,
        );
        if (growth > RSS_GROWTH_LIMIT_MIB * 1024) {
          problems.push(
            `the ${name} daemon's RSS grew by ${mib(growth)} MiB (${
              mib(startRss[name])
            } -> ${mib(now.rss)} MiB, peak ${
              mib(now.peak)
            } MiB), more than the ${RSS_GROWTH_LIMIT_MIB} MiB allowed`,
          );
        }
      }
      const bad = daemon.lines.filter((line) => CRASH_PATTERN.test(line));
      if (bad.length) {
        problems.push(
          `the ${name} daemon logged ${bad.length} line(s) with "Uncaught", "RangeError" or "Maximum call stack":\n  ${
            tail(bad, 5).join("\n  ")
          }`,
        );
      }
    }
    problems.push(...findings.list.slice(0, 25));
    if (findings.list.length > 25) {
      problems.push(`… and ${findings.list.length - 25} more finding(s)`);
    }
  } finally {
    console.log(
      [
        `fuzz: WSDAEMON_FUZZ_SEED=${SEED} WSDAEMON_FUZZ_COUNT=${COUNT}: ${stats.total} inputs in ${
          Date.now() - started
        } ms (${timings.join(", ")})`,
        `  per category: ${JSON.stringify(stats.inputs)}`,
        `  per kind: ${JSON.stringify(stats.kinds)}`,
        `  notes: ${JSON.stringify(stats.notes)}`,
        `  memory: ${memoryReport.join("; ") || "not measured"}`,
        `  findings: ${findings.list.length}`,
      ].join("\n"),
    );
  }
  assert(
    problems.length === 0,
    `${problems.length} problem(s) (replay with WSDAEMON_FUZZ_SEED=${SEED} WSDAEMON_FUZZ_COUNT=${COUNT}):\n${
      problems.join("\n")
    }`,
  );
  assert(
    stats.total >= COUNT,
    `only ${stats.total} of ${COUNT} inputs were sent`,
  );
});
