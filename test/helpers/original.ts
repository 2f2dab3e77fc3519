/**
 * Starts the original Node ws-daemon (PROTOCOL.md Part 1) as a real peer, a
 * separate process, through the launcher named by `WSDAEMON_ORIGINAL`.
 *
 * The original logs every event to stdout ("Listening at …", "Connected to
 * server.", "Endpoint 0 connected from …", "Handling message received from
 * WebSockets: …"), which is what tests wait on. Its WebSocket server cannot
 * take port 0: give it a `freePort()`. See `shared/peers/README.md` for the
 * quirks a test must allow for (one message per write, statuses only to the
 * newest local connection, no status for an unknown script, crashes on a
 * non-executable script).
 *
 * @module
 */

import { ORIGINAL, type Prefix } from "./daemon.ts";
import { LoggedProcess } from "./logged_process.ts";
import { until } from "./wait.ts";

const LISTENING_AT = /LocalServer: Listening at (\S+)/;
const LISTENING_ON_PORT = /WsServer: Listening on port (\d+)/;

let installing: Promise<void> | undefined;

/** Runs `$WSDAEMON_ORIGINAL --install` once per test process (idempotent). */
export function installOriginal(): Promise<void> {
  installing ??= (async () => {
    if (!ORIGINAL) {
      throw new Error(
        "the original daemon is not available: WSDAEMON_ORIGINAL is unset",
      );
    }
    const { success, code, stderr } = await new Deno.Command(ORIGINAL, {
      args: ["--install"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!success) {
      throw new Error(
        `${ORIGINAL} --install failed with exit code ${code}:\n${
          new TextDecoder().decode(stderr)
        }`,
      );
    }
  })();
  return installing;
}

/**
 * One original daemon process; its event log (stdout) and its errors (stderr)
 * are collected line by line.
 */
/** The original logs every frame it receives; this one is our HELLO. */
export const HELLO_RECEIVED =
  /Handling message received from WebSockets: \{"name":"&cmd","params":\{"code":"HELLO"/;

export class OriginalProcess extends LoggedProcess {
  /** Every stderr line so far (parse errors, exceptions, crashes). */
  readonly errors: string[];
  /** Path of its local socket, from "Listening at …". */
  socket = "";
  /** Server mode: the port from "Listening on port …". */
  port = 0;

  private constructor(prefix: string, child: Deno.ChildProcess) {
    const errors: string[] = [];
    super(prefix, child, {
      name: "original",
      tag: `original ${prefix}`,
      log: child.stdout,
      errors: { stream: child.stderr, into: errors },
    });
    this.errors = errors;
  }

  /**
   * Runs the launcher with WSDAEMON_PREFIX=prefix and waits until its local
   * socket exists (its WebSocket side is bound in the same tick, before it).
   */
  static async start(
    prefix: string | Prefix,
    timeoutMs = 15_000,
  ): Promise<OriginalProcess> {
    await installOriginal();
    const path = typeof prefix === "string" ? prefix : prefix.path;
    const child = new Deno.Command(ORIGINAL!, {
      env: { WSDAEMON_PREFIX: path },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const original = new OriginalProcess(path, child);
    try {
      const line = await original.waitForLog(LISTENING_AT, timeoutMs);
      original.socket = line.match(LISTENING_AT)![1];
      const port = original.lines.find((l) => LISTENING_ON_PORT.test(l));
      if (port) original.port = Number(port.match(LISTENING_ON_PORT)![1]);
      await until(
        async () => {
          if (!original.running) {
            throw new Error("the original daemon exited while starting");
          }
          try {
            return (await Deno.lstat(original.socket)).isSocket === true;
          } catch {
            return false;
          }
        },
        timeoutMs,
        `the original's socket ${original.socket}`,
      );
    } catch (error) {
      await original.abort(error);
    }
    return original;
  }

  /**
   * SIGINT (the original's clean stop) and waits for the exit; SIGKILL if it
   * takes longer than `timeoutMs`, returning the kill's status.
   */
  override async stop(
    signal: Deno.Signal = "SIGINT",
    timeoutMs = 10_000,
  ): Promise<Deno.CommandStatus> {
    try {
      return await super.stop(signal, timeoutMs);
    } catch {
      return await this.exited();
    }
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Starts the original daemon in `prefix` (see {@linkcode OriginalProcess.start}). */
export function startOriginal(
  prefix: string | Prefix,
  timeoutMs?: number,
): Promise<OriginalProcess> {
  return OriginalProcess.start(prefix, timeoutMs);
}
