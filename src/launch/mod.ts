/**
 * Choosing how scripts start (see `launcher.ts` for why there is a choice).
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { CommandLauncher, findSetsid } from "./command_launcher.ts";
import type { Launcher, LauncherKind } from "./launcher.ts";
import { PosixSpawnLauncher } from "./posix_spawn.ts";

export {
  type Launcher,
  LAUNCHER_KINDS,
  type LauncherKind,
  LaunchError,
  type LaunchRequest,
  type ScriptEnd,
  type StartedScript,
} from "./launcher.ts";

/**
 * The launcher of `kind`. "auto" takes the fastest that works here:
 * posix_spawn, else setsid(1), else `detached`. An explicit kind that cannot
 * work here throws an Error saying why. Scripts start with `env` (the
 * daemon's environment without what they must not see) plus their own.
 */
export function openLauncher(
  kind: LauncherKind,
  log: Logger,
  env: Record<string, string>,
): Launcher {
  const setsid = findSetsid();
  if (kind === "detached") return new CommandLauncher(log, undefined, env);
  if (kind === "setsid") {
    if (setsid === undefined) {
      throw new Error(
        'scriptLauncher is "setsid" but no setsid program is in /usr/bin or /bin',
      );
    }
    return new CommandLauncher(log, setsid, env);
  }
  const fallback = new CommandLauncher(log, setsid, env);
  try {
    // Asked first, so that a missing --allow-ffi never becomes a prompt.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      throw new Error("FFI is not allowed (run with --allow-ffi)");
    }
    return new PosixSpawnLauncher(log, env);
  } catch (error) {
    const reason = `posix_spawn cannot be used: ${(error as Error).message}`;
    if (kind === "posix_spawn") throw new Error(`scriptLauncher: ${reason}`);
    log.info(`${reason}; scripts start with ${fallback.description}`);
    return fallback;
  }
}
