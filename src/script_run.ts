/**
 * One run of a script, from its launch to its status: its environment, its
 * output captured for the status or told as events, and its time limit.
 *
 * @module
 */

import { settled } from "./timers.ts";
import { Status, type StatusData } from "./protocol.ts";
import type { Logger } from "./log.ts";
import type { Launcher } from "./launch/mod.ts";
import { type GroupEnder, signalGroup } from "./launch/group.ts";
import type { Runnable } from "./script_file.ts";
import { OutputCapture } from "./launch/capture.ts";
import type { ScriptEnd } from "./launch/launcher.ts";
import type { EventBus } from "./events/bus.ts";

/**
 * How long a run with `"output": true` waits, after the script's exit, for
 * the rest of its output: a background child may hold the pipes for long.
 */
const OUTPUT_SETTLE_MS = 500;

/**
 * A value as an environment variable: strings as they are, anything else as
 * JSON; NUL bytes, which the environment cannot hold, are dropped.
 */
function envValue(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  return text.replaceAll("\0", "");
}

/** A request to run one script, and what its asker is to be told. */
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

/** The time limits of runs, which SIGHUP may change. */
export interface RunLimits {
  /** A script's time limit when its request sets none; unset: none. */
  scriptTimeoutMs?: number;
  /** The most a request may ask for; unset: no cap. */
  maxTimeoutMs?: number;
  /** From SIGTERM to SIGKILL, on a timeout and at shutdown. */
  killGraceMs: number;
  /** Bytes of each output stream a status may carry. */
  maxOutputBytes: number;
}

/**
 * What a run needs of its runner. The limits and `killing` are asked for
 * as the run goes: SIGHUP or a shutdown may change them while it runs.
 */
export interface RunContext {
  prefix: string;
  log: Logger;
  launcher: Launcher;
  /** Where runs are told: started, output lines, finished. */
  bus: EventBus;
  /** Ends the group of a script that timed out. */
  ender: GroupEnder;
  limits(): RunLimits;
  /** Whether a script that starts now is to be killed at once. */
  killing(): boolean;
}

/**
 * Starts the script and waits for its end: a status, or why it cannot run.
 * `running.pid` is set once it has started.
 */
export async function launchAndWait(
  context: RunContext,
  request: ScriptRequest,
  { path, arg, stdin }: Runnable,
  tag: string,
  running: { pid?: number },
): Promise<StatusData | string> {
  const bus = context.bus;
  const about = {
    name: request.name,
    ...(request.hasId ? { id: request.id } : {}),
    peer: request.peer,
  };
  const capture = request.output
    ? {
      stdout: new OutputCapture(context.limits().maxOutputBytes),
      stderr: new OutputCapture(context.limits().maxOutputBytes),
    }
    : undefined;
  const env: Record<string, string> = {
    WSDAEMON_PREFIX: context.prefix,
    WSDAEMON_ID: envValue(request.hasId ? request.id : ""),
    WSDAEMON_PEER: envValue(request.peer),
  };
  if (stdin !== undefined) env.WSDAEMON_PARAMS = "stdin";
  let started;
  const startedAt = performance.now();
  try {
    started = await context.launcher.start({
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
  running.pid = pid;
  request.onStarted?.(pid);
  bus.emit("script.started", { ...about, pid });
  context.log.debug(`${tag}: started, pid ${pid}`);
  const ended = await waitForEnd(context, request, pid, end, tag);
  const durationMs = Math.round((performance.now() - startedAt) * 100) / 100;
  if (typeof ended === "string") return ended;
  // Its output lines come first: what it wrote before it exited may still
  // be in the pipe. The status does not wait for that, unless it carries
  // the output (a background child may hold the pipes for long).
  const finished = () =>
    bus.emit("script.finished", {
      ...about,
      status: ended.status,
      exitCode: ended.status >= 0 && ended.signal === undefined
        ? ended.status
        : null,
      signal: typeof ended.signal === "string" ? ended.signal : null,
      durationMs,
    });
  const outputDone = settled(started.outputEnded, OUTPUT_SETTLE_MS);
  if (capture === undefined) {
    outputDone.then(finished);
    return ended;
  }
  await outputDone;
  finished();
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
async function waitForEnd(
  context: RunContext,
  request: ScriptRequest,
  pid: number,
  end: Promise<ScriptEnd>,
  tag: string,
): Promise<StatusData | string> {
  if (context.killing()) signalGroup(pid, "SIGKILL");
  const limit = timeLimit(context.limits(), request);
  let timedOut = false;
  const timer = limit === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    context.log.warn(`${tag}: timed out after ${limit} ms; ending its group`);
    context.ender.end(pid, context.limits().killGraceMs);
  }, limit);
  const result = await end;
  clearTimeout(timer);
  if (timedOut) {
    return {
      status: Status.TIMEOUT,
      error: `timed out after ${limit} ms: its process group got ${
        context.limits().killGraceMs > 0
          ? `SIGTERM, then SIGKILL after ${context.limits().killGraceMs} ms`
          : "SIGKILL"
      }`,
      ...(result.kind === "signaled" ? { signal: result.signal } : {}),
    };
  }
  switch (result.kind) {
    case "exited":
      context.log.debug(`${tag}: exited with ${result.code}`);
      return { status: result.code };
    case "signaled":
      context.log.info(`${tag}: killed by ${result.signal}`);
      return { status: 128 + result.number, signal: result.signal };
    case "not-started":
      return `script ${request.name} could not start: ${result.reason}`;
    case "lost":
      return `script ${request.name}: ${result.reason}`;
  }
}

/** How long a request's script may run: its own limit, else the default. */
function timeLimit(
  limits: RunLimits,
  request: ScriptRequest,
): number | undefined {
  const { scriptTimeoutMs, maxTimeoutMs } = limits;
  const asked = request.timeoutMs ?? scriptTimeoutMs;
  if (asked === undefined) return maxTimeoutMs;
  return maxTimeoutMs === undefined ? asked : Math.min(asked, maxTimeoutMs);
}
