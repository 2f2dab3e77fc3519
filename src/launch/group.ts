/**
 * Ending a script's process group (its id is the script's pid): SIGTERM
 * first, so it can clean up, then SIGKILL after a grace for whatever is
 * left, its children included. Used for a script's timeout and at shutdown.
 *
 * @module
 */

import process from "node:process";

/** Sends `signal` to the whole group; a group that is gone is no error. */
export function signalGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/** Whether any process of the group is left (kill with signal 0). */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** How often `settled()` looks whether the groups being ended are gone. */
const POLL_MS = 50;

/**
 * The groups being ended: each got SIGTERM and gets SIGKILL when its grace
 * is over, even if its leader has exited (a child it left in its group is
 * what the grace is for). Shutdown waits for that step instead of letting
 * the exit cancel it.
 */
export class GroupEnder {
  readonly #pending = new Map<number, ReturnType<typeof setTimeout>>();

  /** SIGTERM to the group now, SIGKILL after `graceMs` (0: at once). */
  end(pid: number, graceMs: number): void {
    if (graceMs <= 0) {
      signalGroup(pid, "SIGKILL");
      return;
    }
    if (this.#pending.has(pid)) return;
    signalGroup(pid, "SIGTERM");
    this.#pending.set(
      pid,
      setTimeout(() => {
        this.#pending.delete(pid);
        signalGroup(pid, "SIGKILL");
      }, graceMs),
    );
  }

  /** SIGKILL now to every group still being ended. */
  killNow(): void {
    for (const [pid, timer] of this.#pending) {
      clearTimeout(timer);
      signalGroup(pid, "SIGKILL");
    }
    this.#pending.clear();
  }

  /**
   * Resolves once every group being ended is gone or has had its SIGKILL;
   * groups that empty sooner are let go early.
   */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) {
      for (const [pid, timer] of this.#pending) {
        if (groupAlive(pid)) continue;
        clearTimeout(timer);
        this.#pending.delete(pid);
      }
      if (this.#pending.size === 0) return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
}
