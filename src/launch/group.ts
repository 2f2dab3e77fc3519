/**
 * Ending a script's process group (its id is the script's pid): SIGTERM
 * first, so it can clean up, then SIGKILL after a grace for whatever is
 * left, its children included. Used for a script's timeout and at shutdown.
 *
 * @module
 */

/** Sends `signal` to the whole group; a group that is gone is no error. */
export function signalGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * SIGTERM to the group now, SIGKILL after `graceMs` (0: at once). The
 * SIGKILL goes even if the script itself has ended: a child it left in its
 * group is what the grace is for.
 */
export function endGroup(pid: number, graceMs: number): void {
  if (graceMs <= 0) {
    signalGroup(pid, "SIGKILL");
    return;
  }
  signalGroup(pid, "SIGTERM");
  setTimeout(() => signalGroup(pid, "SIGKILL"), graceMs);
}
