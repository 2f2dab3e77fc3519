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

import { constants } from "node:os";
import { join } from "node:path";
import { Status, type StatusData } from "./protocol.ts";
import type { Logger } from "./log.ts";

/** Linux caps one argv string at 32 pages minus the terminating NUL. */
export const MAX_ARG_BYTES = 131_071;
const MAX_NAME_BYTES = 255;

const encoder = new TextEncoder();

/**
 * A value as an environment variable: strings as they are, anything else as
 * JSON; NUL bytes, which the environment cannot hold, are dropped.
 */
function envValue(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  return text.replaceAll("\0", "");
}

/** Why `name` is not a plain script file name, or `undefined` if it is. */
export function checkScriptName(name: string): string | undefined {
  if (name === "") return "the name is empty";
  if (name.includes("\0")) return "the name contains a NUL byte";
  if (name.includes("/")) return "the name contains '/'";
  if (name === "." || name === "..") return `the name is '${name}'`;
  if (name.startsWith(".")) return "the name starts with '.'";
  if (name.startsWith("-")) return "the name starts with '-'";
  if (encoder.encode(name).length > MAX_NAME_BYTES) {
    return `the name is longer than ${MAX_NAME_BYTES} bytes`;
  }
  return undefined;
}

export interface ScriptRequest {
  name: string;
  /** The request's id, given to the script as WSDAEMON_ID. */
  id?: unknown;
  hasId: boolean;
  params: unknown;
  /** Who asked, given to the script as WSDAEMON_PEER. */
  peer: string;
}

export interface ScriptRunnerOptions {
  prefix: string;
  log: Logger;
  /**
   * Path of the setsid(1) program, if the system has one (`findSetsid()`).
   * @default undefined (use Deno's `detached`)
   */
  setsid?: string;
}

/** Where setsid(1) lives, if it does. */
export function findSetsid(): string | undefined {
  for (const path of ["/usr/bin/setsid", "/bin/setsid"]) {
    try {
      const info = Deno.statSync(path);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return path;
    } catch {
      // Not there; try the next.
    }
  }
  return undefined;
}

/** How long to wait for setsid(1)'s error line after it exits 126/127. */
const EXEC_FAILURE_WAIT_MS = 200;

/** setsid(1)'s reason when it could not exec the script, if that happened. */
async function execFailure(
  stderr: Promise<string | undefined>,
): Promise<string | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), EXEC_FAILURE_WAIT_MS);
  });
  const first = await Promise.race([stderr, timeout]);
  clearTimeout(timer);
  const match = first?.match(/^setsid: failed to execute [^:]*: (.*)$/);
  return match?.[1];
}

/** Linux signal numbers by name, for the 128+n status of a killed script. */
const signalNumbers = constants.signals as Record<string, number>;

export class ScriptRunner {
  readonly #prefix: string;
  readonly #scriptsDir: string;
  readonly #log: Logger;
  readonly #setsid: string | undefined;
  readonly #running = new Map<number, Promise<unknown>>();
  /** Set by drain(): a run that has not spawned yet must not start. */
  #closed = false;

  constructor({ prefix, log, setsid }: ScriptRunnerOptions) {
    this.#prefix = prefix;
    this.#scriptsDir = join(prefix, "scripts");
    this.#log = log;
    this.#setsid = setsid;
  }

  /**
   * How a script is started in a process group of its own, so that a kill
   * reaches whatever it started. Deno's `detached` does it with a full fork()
   * of the daemon (it cannot vfork once it must call setsid), which costs
   * milliseconds per run and grows with the daemon's memory; exec'ing
   * setsid(1), which calls setsid() and then exec's the script with the same
   * pid, keeps the cheap vfork path. `detached` remains the fallback.
   */
  #launch(path: string, arg: string): { command: string; args: string[] } {
    return this.#setsid === undefined
      ? { command: path, args: [arg] }
      : { command: this.#setsid, args: ["--", path, arg] };
  }

  /** How many scripts are running now. */
  get running(): number {
    return this.#running.size;
  }

  /** Runs one script to its end; never throws, every failure is a status. */
  async run(request: ScriptRequest): Promise<StatusData> {
    const status = (data: StatusData): StatusData => {
      if (request.hasId) data.id = request.id;
      return data;
    };
    const cannotRun = (error: string) => {
      this.#log.warn(`script ${JSON.stringify(request.name)}: ${error}`);
      return status({ status: Status.CANNOT_RUN, error });
    };

    const badName = checkScriptName(request.name);
    if (badName !== undefined) {
      return cannotRun(`invalid script name: ${badName}`);
    }
    const path = join(this.#scriptsDir, request.name);
    try {
      // stat follows links: a symlink the operator placed in scripts/ counts
      // as the file it points to.
      const info = await Deno.stat(path);
      if (!info.isFile) {
        return cannotRun(`script ${request.name} is not a regular file`);
      }
      if (((info.mode ?? 0) & 0o111) === 0) {
        return cannotRun(`script ${request.name} is not executable`);
      }
    } catch (error) {
      return cannotRun(
        error instanceof Deno.errors.NotFound
          ? `no script named ${request.name} in scripts/`
          : `script ${request.name} cannot be read: ${(error as Error).name}`,
      );
    }
    // Absent params are passed as JSON null, so argv[1] is always JSON.
    const arg = JSON.stringify(request.params ?? null);
    const argBytes = encoder.encode(arg).length;
    if (argBytes > MAX_ARG_BYTES) {
      return cannotRun(
        `params are ${argBytes} bytes as JSON, more than the ${MAX_ARG_BYTES} bytes one argument may hold`,
      );
    }

    if (this.#closed) {
      return status({
        status: Status.NO_PEER,
        error: "daemon is shutting down",
      });
    }
    let child: Deno.ChildProcess;
    try {
      const { command, args } = this.#launch(path, arg);
      child = new Deno.Command(command, {
        args,
        env: {
          WSDAEMON_PREFIX: this.#prefix,
          WSDAEMON_ID: envValue(request.hasId ? request.id : ""),
          WSDAEMON_PEER: envValue(request.peer),
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        detached: this.#setsid === undefined,
      }).spawn();
    } catch (error) {
      return cannotRun(
        `script ${request.name} could not start: ${(error as Error).message}`,
      );
    }

    const tag = `script ${request.name}${
      request.hasId ? ` id=${JSON.stringify(request.id)}` : ""
    }`;
    this.#log.debug(`${tag}: started, pid ${child.pid}`);
    const done = child.status;
    this.#running.set(child.pid, done);
    // Output is logged as it comes, but the status does not wait for the
    // pipes: a background child of the script may hold them open for long.
    this.#logLines(child.stdout, `${tag} stdout`);
    const stderr = this.#logLines(child.stderr, `${tag} stderr`);
    try {
      const result = await done;
      if (
        this.#setsid !== undefined &&
        (result.code === 126 || result.code === 127)
      ) {
        // setsid(1) could not exec the script (bad interpreter, no shebang):
        // that is "could not be run", as a failed spawn would be.
        const failure = await execFailure(stderr);
        if (failure !== undefined) {
          return cannotRun(
            `script ${request.name} could not start: ${failure}`,
          );
        }
      }
      if (result.signal !== null) {
        this.#log.info(`${tag}: killed by ${result.signal}`);
        return status({
          status: 128 + (signalNumbers[result.signal] ?? 0),
          signal: result.signal,
        });
      }
      this.#log.debug(`${tag}: exited with ${result.code}`);
      return status({ status: result.code });
    } finally {
      this.#running.delete(child.pid);
    }
  }

  /**
   * Waits up to `graceMs` for running scripts to end, then kills the process
   * groups of those still running and waits for them to exit.
   */
  async drain(graceMs: number): Promise<void> {
    this.#closed = true;
    if (this.#running.size === 0) return;
    this.#log.info(
      `waiting up to ${graceMs} ms for ${this.#running.size} running script(s)`,
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), graceMs);
    });
    const allDone = Promise.allSettled([...this.#running.values()]);
    const outcome = await Promise.race([allDone, graceOver]);
    clearTimeout(timer);
    if (outcome !== "timeout") return;
    for (const pid of this.#running.keys()) {
      this.#log.warn(
        `killing script process group ${pid} after the grace period`,
      );
      try {
        Deno.kill(-pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await Promise.allSettled([...this.#running.values()]);
  }

  /** Logs each line of `stream`; resolves with the first line at its end. */
  async #logLines(
    stream: ReadableStream<Uint8Array>,
    tag: string,
  ): Promise<string | undefined> {
    let first: string | undefined;
    try {
      const lines = stream.pipeThrough(new TextDecoderStream());
      let carry = "";
      for await (const text of lines) {
        const parts = (carry + text).split("\n");
        carry = parts.pop() ?? "";
        for (const line of parts) {
          first ??= line;
          this.#log.info(`${tag}: ${line}`);
        }
      }
      if (carry !== "") this.#log.info(`${tag}: ${carry}`);
      first ??= carry;
    } catch (error) {
      this.#log.debug(`${tag}: ${(error as Error).message}`);
    }
    return first;
  }
}
