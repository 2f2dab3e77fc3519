/**
 * Starting scripts with `Deno.Command`: the launcher used where posix_spawn
 * through FFI is not available.
 *
 * Deno's `detached` gets a process group with a full fork() of the daemon (it
 * cannot vfork once the child must call setsid), which costs milliseconds per
 * run and grows with the daemon's memory. exec'ing setsid(1), which calls
 * setsid() and then exec's the script with the same pid, keeps the vfork path
 * at the price of one more exec; `detached` is the last resort.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import {
  type Launcher,
  LaunchError,
  type LaunchRequest,
  logLines,
  type ScriptEnd,
  signaled,
  type StartedScript,
} from "./launcher.ts";

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

export class CommandLauncher implements Launcher {
  readonly #log: Logger;
  readonly #setsid: string | undefined;

  /** `setsid`: the path of setsid(1), or undefined to use `detached`. */
  readonly #env: Record<string, string>;

  /** @param env the environment every script starts with, before its own. */
  constructor(
    log: Logger,
    setsid: string | undefined,
    env: Record<string, string>,
  ) {
    this.#log = log;
    this.#setsid = setsid;
    this.#env = env;
  }

  get description(): string {
    return this.#setsid === undefined
      ? "Deno.Command, detached (a full fork per script)"
      : `Deno.Command through ${this.#setsid}`;
  }

  // deno-lint-ignore require-await -- async so that a failed spawn rejects.
  async start(
    { path, arg, env, tag, stdin, onOutput, onLine }: LaunchRequest,
  ): Promise<StartedScript> {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#setsid ?? path, {
        args: this.#setsid === undefined ? [arg] : ["--", path, arg],
        env: { ...this.#env, ...env },
        clearEnv: true,
        stdin: stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
        detached: this.#setsid === undefined,
      }).spawn();
    } catch (error) {
      throw new LaunchError((error as Error).message);
    }
    // Output is logged as it comes, but the end does not wait for the pipes:
    // a background child of the script may hold them open for long.
    if (stdin !== undefined) {
      // Written off the hot path; a script that exits without reading it
      // ends the write with a broken pipe, which is nobody's error.
      const writer = child.stdin.getWriter();
      writer.write(stdin).then(() => writer.close()).catch(() => {
        writer.abort().catch(() => {});
      });
    }
    const stdout = logLines(
      child.stdout,
      this.#log,
      `${tag} stdout`,
      onOutput && ((chunk) => onOutput("stdout", chunk)),
      onLine && ((line) => onLine("stdout", line)),
    );
    const stderr = logLines(
      child.stderr,
      this.#log,
      `${tag} stderr`,
      onOutput && ((chunk) => onOutput("stderr", chunk)),
      onLine && ((line) => onLine("stderr", line)),
    );
    return {
      pid: child.pid,
      end: this.#end(child, stderr),
      outputEnded: Promise.all([stdout, stderr]).then(() => {}),
    };
  }

  async #end(
    child: Deno.ChildProcess,
    stderr: Promise<string | undefined>,
  ): Promise<ScriptEnd> {
    const { code, signal } = await child.status;
    if (this.#setsid !== undefined && (code === 126 || code === 127)) {
      // setsid(1) could not exec the script (bad interpreter, say): that is
      // "could not be started", as a failed spawn would be.
      const failure = await execFailure(stderr);
      if (failure !== undefined) {
        return { kind: "not-started", reason: failure };
      }
    }
    return signal === null ? { kind: "exited", code } : signaled(signal);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
