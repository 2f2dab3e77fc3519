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
import type { EventBus } from "./events/bus.ts";
import {
  launchAndWait,
  type RunContext,
  type RunLimits,
  type ScriptRequest,
} from "./script_run.ts";

export { checkScriptName, MAX_ARG_BYTES } from "./script_file.ts";
export type { RunLimits, ScriptRequest };

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

export interface ScriptRunnerOptions extends RunLimits {
  prefix: string;
  log: Logger;
  /** How scripts are started (`openLauncher()`); closed by `close()`. */
  launcher: Launcher;
  /** Scripts running at once; more wait in a queue. */
  maxRunning: number;
  /** Requests that may wait for a run slot; more are refused -5 "busy". */
  maxQueued: number;
  /** Where runs are told: started, output lines, finished. */
  bus: EventBus;
}

/** How long drain() waits for killed scripts to be reported. */
const KILL_WAIT_MS = 5_000;

/** A run from its launch on: `pid` once the script has started. */
interface RunningScript {
  pid?: number;
  /** Settles when the run is over, however it ended. */
  done: Promise<unknown>;
}

export class ScriptRunner {
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
  /** What each run reads of this runner as it goes. */
  readonly #context: RunContext;

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
    this.#scriptsDir = join(prefix, "scripts");
    this.#log = log;
    this.#launcher = launcher;
    this.#slots = new RunSlots(maxRunning, maxQueued);
    this.#context = {
      prefix,
      log,
      launcher,
      bus,
      ender: this.#ender,
      limits: () => this.#limits,
      killing: () => this.#killing,
    };
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
      this.#context.bus.emit("refused", {
        reason: error,
        status: Status.REFUSED,
        name: request.name,
        ...(request.hasId ? { id: request.id } : {}),
        peer: request.peer,
      });
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
    const outcome = launchAndWait(this.#context, request, runnable, tag, entry);
    entry.done = outcome;
    this.#running.add(entry);
    try {
      const ended = await outcome;
      return typeof ended === "string" ? cannotRun(ended) : status(ended);
    } finally {
      this.#running.delete(entry);
    }
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
