/**
 * Scripts: which names may run, and running them.
 *
 * A name is checked twice: by its text (a plain file name, so nothing outside
 * `scripts/` can be reached) and by the file it names (an executable regular
 * file, looked up per message so a new script needs no restart). A script runs
 * without a shell, with the params as argv[1], in its own process group so a
 * shutdown can kill everything it started.
 *
 * @module
 */

import { join } from "node:path";
import { shown, Status, type StatusData } from "./protocol.ts";
import type { Logger } from "./log.ts";
import type { Launcher } from "./launch/mod.ts";
import { GroupEnder, signalGroup } from "./launch/group.ts";
import { RunSlots } from "./run_slots.ts";
import { checkRunnable, type Runnable } from "./script_file.ts";
import { OutputCapture } from "./launch/capture.ts";
import type { ScriptEnd } from "./launch/launcher.ts";
import type { EventBus } from "./events/bus.ts";

/**
 * How long a run with `"output": true` waits, after the script's exit, for
 * the rest of its output: a background child may hold the pipes for long.
 */
const OUTPUT_SETTLE_MS = 500;

/** Waits for `promise`, at most `ms`. */
async function settled(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise,
    new Promise((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}

export { checkScriptName, MAX_ARG_BYTES } from "./script_file.ts";

/**
 * A value as an environment variable: strings as they are, anything else as
 * JSON; NUL bytes, which the environment cannot hold, are dropped.
 */
function envValue(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  return text.replaceAll("\0", "");
}

export interface ScriptRequest {
  name: string;
  /** The request's id, given to the script as WSDAEMON_ID. */
  id?: unknown;
  hasId: boolean;
  params: unknown;
  /** Who asked, given to the script as WSDAEMON_PEER. */
  peer: string;
  /** The request's own time limit, if it set one (capped by maxTimeoutMs). */
  timeoutMs?: number;
  /**
   * Whether the asker has gone (its link closed) while the request waited
   * for a run slot: then it does not start, since nobody can be told how it
   * ended, and an asker told -2 may already have asked again.
   */
  abandoned?: () => boolean;
  /**
   * Awaited once the run has its slot, right before the launch: the journal
   * records "started" first, so that after a crash it is never run again.
   * A reason returned instead means it must not start: -5 with that reason.
   */
  beforeStart?: () => Promise<string | undefined>;
  /** Told the script's pid once it has started. */
  onStarted?: (pid: number) => void;
  /** Its stdout and stderr go into the status (`"output": true`). */
  output?: boolean;
  /** Its params go to stdin even when they fit in argv[1]. */
  stdin?: boolean;
}

/** What a request asks of its run: its output back, its params on stdin. */
export function runFlags(
  message: { fields: Record<string, unknown> },
): Pick<ScriptRequest, "output" | "stdin"> {
  return {
    output: message.fields.output === true,
    stdin: message.fields.stdin === true,
  };
}

/**
 * Marks a status for a run that never started because the daemon is
 * shutting down: a journaled request then stays to be run after a restart.
 */
export const NOT_STARTED: unique symbol = Symbol("not started");

/** Whether `status` is of a run that shutdown kept from starting. */
export function notStarted(status: StatusData): boolean {
  return (status as { [NOT_STARTED]?: boolean })[NOT_STARTED] === true;
}

export interface ScriptRunnerOptions {
  prefix: string;
  log: Logger;
  /** How scripts are started (`openLauncher()`); closed by `close()`. */
  launcher: Launcher;
  /** Scripts running at once; more wait in a queue. */
  maxRunning: number;
  /** Requests that may wait for a run slot; more are refused -5 "busy". */
  maxQueued: number;
  /** A script's time limit when its request sets none; unset: none. */
  scriptTimeoutMs?: number;
  /** The most a request may ask for; unset: no cap. */
  maxTimeoutMs?: number;
  /** From SIGTERM to SIGKILL, on a timeout and at shutdown. */
  killGraceMs: number;
  /** Bytes of each output stream a status may carry. */
  maxOutputBytes: number;
  /** Where runs are told: started, output lines, finished. */
  bus: EventBus;
}

/** The time limits of runs, which SIGHUP may change. */
export type RunLimits = Pick<
  ScriptRunnerOptions,
  "scriptTimeoutMs" | "maxTimeoutMs" | "killGraceMs" | "maxOutputBytes"
>;

/** How long drain() waits for killed scripts to be reported. */
const KILL_WAIT_MS = 5_000;

/** A run from its launch on: `pid` once the script has started. */
interface RunningScript {
  pid?: number;
  /** Settles when the run is over, however it ended. */
  done: Promise<unknown>;
}

export class ScriptRunner {
  readonly #prefix: string;
  readonly #scriptsDir: string;
  readonly #log: Logger;
  readonly #launcher: Launcher;
  /** Runs from their launch on. */
  readonly #running = new Set<RunningScript>();
  /** Set by drain(): a run that has not been launched must not start. */
  #closed = false;
  /** Set by drain() past the grace period: a script that starts is killed. */
  #killing = false;
  readonly #slots: RunSlots;
  /** Groups given SIGTERM, waiting for their SIGKILL. */
  readonly #ender = new GroupEnder();
  #limits: RunLimits;
  readonly #bus: EventBus;

  constructor(
    {
      prefix,
      log,
      launcher,
      maxRunning,
      maxQueued,
      scriptTimeoutMs,
      maxTimeoutMs,
      killGraceMs,
      maxOutputBytes,
      bus,
    }: ScriptRunnerOptions,
  ) {
    this.#limits = {
      scriptTimeoutMs,
      maxTimeoutMs,
      killGraceMs,
      maxOutputBytes,
    };
    this.#bus = bus;
    this.#prefix = prefix;
    this.#scriptsDir = join(prefix, "scripts");
    this.#log = log;
    this.#launcher = launcher;
    this.#slots = new RunSlots(maxRunning, maxQueued);
  }

  /**
   * New limits (SIGHUP), for runs from now on; a lower maxRunning lets the
   * runs over it finish.
   */
  configure(limits: RunLimits & { maxRunning: number; maxQueued: number }) {
    const { maxRunning, maxQueued, ...times } = limits;
    this.#limits = times;
    this.#slots.resize(maxRunning, maxQueued);
  }

  /** Runs launching or running now. */
  get active(): number {
    return this.#slots.active;
  }

  /** Runs one script to its end; never throws, every failure is a status. */
  async run(request: ScriptRequest): Promise<StatusData> {
    const status = (data: StatusData): StatusData => {
      if (request.hasId) data.id = request.id;
      return data;
    };
    const shuttingDown = () =>
      Object.assign(
        status({ status: Status.NO_PEER, error: "daemon is shutting down" }),
        { [NOT_STARTED]: true },
      );
    const cannotRun = (error: string) => {
      this.#log.warn(`script ${shown(request.name)}: ${error}`);
      return status({ status: Status.CANNOT_RUN, error });
    };

    const runnable = checkRunnable(
      this.#scriptsDir,
      request.name,
      request.params,
      request.stdin === true,
    );
    if (typeof runnable === "string") return cannotRun(runnable);

    if (this.#closed) return shuttingDown();
    if (!await this.#slots.acquire()) {
      const error =
        `busy: ${this.#slots.maxRunning} scripts running and ${this.#slots.maxQueued} waiting (maxRunning, maxQueued)`;
      this.#log.warn(
        `script ${shown(request.name)} refused: ${error}`,
      );
      return status({ status: Status.REFUSED, error });
    }
    try {
      // drain() may have begun while this request waited for its slot.
      if (this.#closed) return shuttingDown();
      if (request.abandoned?.()) {
        this.#log.info(
          `script ${request.name}: not started, its asker ${request.peer} went away while it waited`,
        );
        return status({
          status: Status.NO_PEER,
          error: "not started: the asker went away while it waited for a slot",
        });
      }
      if (request.beforeStart) {
        const refusal = await request.beforeStart();
        if (refusal !== undefined) {
          return status({ status: Status.REFUSED, error: refusal });
        }
        if (this.#closed) return shuttingDown();
      }
      return await this.#runInSlot(request, runnable, status, cannotRun);
    } finally {
      this.#slots.release();
    }
  }

  async #runInSlot(
    request: ScriptRequest,
    runnable: Runnable,
    status: (data: StatusData) => StatusData,
    cannotRun: (error: string) => StatusData,
  ): Promise<StatusData> {
    const tag = `script ${request.name}${
      request.hasId ? ` id=${JSON.stringify(request.id)}` : ""
    }`;
    // Listed before the launch, which takes time: drain() must wait for it.
    const entry: RunningScript = { done: Promise.resolve() };
    const outcome = this.#launchAndWait(request, runnable, tag, entry);
    entry.done = outcome;
    this.#running.add(entry);
    try {
      const ended = await outcome;
      return typeof ended === "string" ? cannotRun(ended) : status(ended);
    } finally {
      this.#running.delete(entry);
    }
  }

  /** Starts the script and waits for its end: a status, or why it cannot run. */
  async #launchAndWait(
    request: ScriptRequest,
    { path, arg, stdin }: Runnable,
    tag: string,
    entry: RunningScript,
  ): Promise<StatusData | string> {
    const bus = this.#bus;
    const about = {
      name: request.name,
      ...(request.hasId ? { id: request.id } : {}),
      peer: request.peer,
    };
    const capture = request.output
      ? {
        stdout: new OutputCapture(this.#limits.maxOutputBytes),
        stderr: new OutputCapture(this.#limits.maxOutputBytes),
      }
      : undefined;
    const env: Record<string, string> = {
      WSDAEMON_PREFIX: this.#prefix,
      WSDAEMON_ID: envValue(request.hasId ? request.id : ""),
      WSDAEMON_PEER: envValue(request.peer),
    };
    if (stdin !== undefined) env.WSDAEMON_PARAMS = "stdin";
    let started;
    const startedAt = performance.now();
    try {
      started = await this.#launcher.start({
        path,
        arg,
        env,
        tag,
        stdin,
        onOutput: capture && ((stream, chunk) => capture[stream].push(chunk)),
        onLine: (stream, line) =>
          bus.emit("script.output", { ...about, stream, line }),
      });
    } catch (error) {
      return `script ${request.name} could not start: ${
        (error as Error).message
      }`;
    }
    const { pid, end } = started;
    entry.pid = pid;
    request.onStarted?.(pid);
    bus.emit("script.started", { ...about, pid });
    this.#log.debug(`${tag}: started, pid ${pid}`);
    const ended = await this.#wait(request, pid, end, tag);
    const durationMs = Math.round((performance.now() - startedAt) * 100) / 100;
    if (typeof ended === "string") return ended;
    bus.emit("script.finished", {
      ...about,
      status: ended.status,
      exitCode: ended.status >= 0 && ended.signal === undefined
        ? ended.status
        : null,
      signal: typeof ended.signal === "string" ? ended.signal : null,
      durationMs,
    });
    if (capture === undefined) return ended;
    // What the script wrote just before its exit may still be in the pipe.
    await settled(started.outputEnded, OUTPUT_SETTLE_MS);
    return {
      ...ended,
      stdout: capture.stdout.text(),
      stderr: capture.stderr.text(),
      stdoutTruncated: capture.stdout.truncated,
      stderrTruncated: capture.stderr.truncated,
      durationMs,
    };
  }

  /** Waits for the script's end within its time limit. */
  async #wait(
    request: ScriptRequest,
    pid: number,
    end: Promise<ScriptEnd>,
    tag: string,
  ): Promise<StatusData | string> {
    if (this.#killing) signalGroup(pid, "SIGKILL");
    const limit = this.#timeLimit(request);
    let timedOut = false;
    const timer = limit === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      this.#log.warn(`${tag}: timed out after ${limit} ms; ending its group`);
      this.#ender.end(pid, this.#limits.killGraceMs);
    }, limit);
    const result = await end;
    clearTimeout(timer);
    if (timedOut) {
      return {
        status: Status.TIMEOUT,
        error: `timed out after ${limit} ms: its process group got ${
          this.#limits.killGraceMs > 0
            ? `SIGTERM, then SIGKILL after ${this.#limits.killGraceMs} ms`
            : "SIGKILL"
        }`,
        ...(result.kind === "signaled" ? { signal: result.signal } : {}),
      };
    }
    switch (result.kind) {
      case "exited":
        this.#log.debug(`${tag}: exited with ${result.code}`);
        return { status: result.code };
      case "signaled":
        this.#log.info(`${tag}: killed by ${result.signal}`);
        return { status: 128 + result.number, signal: result.signal };
      case "not-started":
        return `script ${request.name} could not start: ${result.reason}`;
      case "lost":
        return `script ${request.name}: ${result.reason}`;
    }
  }

  /** How long a request's script may run: its own limit, else the default. */
  #timeLimit(request: ScriptRequest): number | undefined {
    const { scriptTimeoutMs, maxTimeoutMs } = this.#limits;
    const asked = request.timeoutMs ?? scriptTimeoutMs;
    if (asked === undefined) return maxTimeoutMs;
    return maxTimeoutMs === undefined ? asked : Math.min(asked, maxTimeoutMs);
  }

  /** SIGKILL to every running script's group: a second signal, exiting now. */
  killAll(): void {
    this.#killing = true;
    for (const { pid } of this.#running) {
      if (pid !== undefined) signalGroup(pid, "SIGKILL");
    }
    this.#ender.killNow();
  }

  /**
   * Waits up to `graceMs` for running scripts to end, then ends the process
   * groups of those still running (SIGTERM, SIGKILL after killGraceMs) and
   * waits for them to exit.
   */
  async drain(graceMs: number): Promise<void> {
    this.#closed = true;
    if (this.#running.size === 0) {
      // Timed-out scripts' groups may still be waiting for their SIGKILL.
      await this.#ender.settled();
      return;
    }
    this.#log.info(
      `waiting up to ${graceMs} ms for ${this.#running.size} running script(s)`,
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), graceMs);
    });
    const allDone = Promise.allSettled([...this.#running].map((r) => r.done));
    const outcome = await Promise.race([allDone, graceOver]);
    clearTimeout(timer);
    if (outcome !== "timeout") {
      await this.#ender.settled();
      return;
    }
    this.#killing = true;
    const { killGraceMs } = this.#limits;
    for (const { pid } of this.#running) {
      if (pid === undefined) continue; // Killed as it starts.
      this.#log.warn(
        `ending script process group ${pid} after the grace period (SIGTERM, SIGKILL after ${killGraceMs} ms)`,
      );
      this.#ender.end(pid, killGraceMs);
    }
    // Leaders that die at SIGTERM may leave children that do not: the
    // SIGKILL step is waited for, not cut short by the exit.
    await this.#ender.settled();
    // SIGKILL ends a process at once; a run that still has not ended after
    // it is stuck in its launch, and must not hold the daemon's stop forever.
    let waitOver: ReturnType<typeof setTimeout> | undefined;
    const stuck = await Promise.race([
      Promise.allSettled([...this.#running].map((r) => r.done)),
      new Promise<"stuck">((resolve) => {
        waitOver = setTimeout(
          () => resolve("stuck"),
          killGraceMs + KILL_WAIT_MS,
        );
      }),
    ]);
    clearTimeout(waitOver);
    if (stuck === "stuck") {
      this.#log.error(
        `${this.#running.size} script run(s) did not end ${KILL_WAIT_MS} ms after SIGKILL; stopping without their statuses`,
      );
    }
  }

  /** Frees the launcher; call after drain(). */
  close(): Promise<void> {
    return this.#launcher.close();
  }
}
