/**
 * Which names may run, and whether a request can: the name's text (a plain
 * file name, so nothing outside `scripts/` can be reached), the file it names
 * (an executable regular file, looked up per message so a new script needs no
 * restart), and its params as argv[1].
 *
 * @module
 */

import { join } from "node:path";

/** Linux caps one argv string at 32 pages minus the terminating NUL. */
export const MAX_ARG_BYTES = 131_071;
const MAX_NAME_BYTES = 255;

const encoder = new TextEncoder();

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

/** What argv[1] is when the params come on stdin. */
export const STDIN_ARG = "-";

/** How a script gets its params: as argv[1], or on stdin (argv[1] "-"). */
export interface Runnable {
  path: string;
  arg: string;
  /** The params' JSON, for stdin, when they go there. */
  stdin?: Uint8Array;
}

/**
 * The script's path and argv[1] for a request, or why it cannot run (-1).
 * Params too long for one argument, or all params when `viaStdin`, go to
 * the script's stdin.
 */
export function checkRunnable(
  scriptsDir: string,
  name: string,
  params: unknown,
  viaStdin = false,
): Runnable | string {
  const badName = checkScriptName(name);
  if (badName !== undefined) {
    return (`invalid script name: ${badName}`);
  }
  const path = join(scriptsDir, name);
  try {
    // stat follows links: a symlink the operator placed in scripts/ counts
    // as the file it points to. Synchronous on purpose: scripts/ is a local
    // folder, and an async stat cost a thread-pool round trip, 0.3 ms p50
    // of every request in the bench.
    const info = Deno.statSync(path);
    if (!info.isFile) {
      return (`script ${name} is not a regular file`);
    }
    if (((info.mode ?? 0) & 0o111) === 0) {
      return (`script ${name} is not executable`);
    }
  } catch (error) {
    return (error instanceof Deno.errors.NotFound
      ? `no script named ${name} in scripts/`
      : `script ${name} cannot be read: ${(error as Error).name}`);
  }
  // Absent params are passed as JSON null, so argv[1] is always JSON.
  let arg: string;
  try {
    arg = JSON.stringify(params ?? null);
  } catch (error) {
    // Nesting deep enough to overflow the stack.
    return (`params cannot be encoded: ${(error as Error).message}`);
  }
  // Most params are short: only those that may be long are encoded.
  if (viaStdin || arg.length * 3 > MAX_ARG_BYTES) {
    const bytes = encoder.encode(arg);
    if (viaStdin || bytes.length > MAX_ARG_BYTES) {
      return { path, arg: STDIN_ARG, stdin: bytes };
    }
  }
  return { path, arg };
}
