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
import { deadline, until } from "./wait.ts";

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

/** One original daemon process; stdout and stderr are collected line by line. */
export class OriginalProcess {
  readonly prefix: string;
  readonly child: Deno.ChildProcess;
  /** Every stdout line so far (the original's event log). */
  readonly lines: string[] = [];
  /** Every stderr line so far (parse errors, exceptions, crashes). */
  readonly errors: string[] = [];
  /** Path of its local socket, from "Listening at …". */
  socket = "";
  /** Server mode: the port from "Listening on port …". */
  port = 0;
  #waiters: {
    pattern: RegExp;
    resolve: (line: string) => void;
  }[] = [];
  #status: Deno.CommandStatus | undefined;
  readonly #exited: Promise<Deno.CommandStatus>;
  readonly #reading: Promise<void>;

  private constructor(prefix: string, child: Deno.ChildProcess) {
    this.prefix = prefix;
    this.child = child;
    this.#exited = child.status.then((status) => this.#status = status);
    this.#reading = Promise.all([
      this.#read(child.stdout, (line) => this.#push(line)),
      this.#read(child.stderr, (line) => {
        this.errors.push(line);
        if (Deno.env.get("WSD_TEST_LOG")) {
          console.error(`[original ${this.prefix}] stderr: ${line}`);
        }
      }),
    ]).then(() => {});
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
      await original.kill();
      throw new Error(
        `${(error as Error).message}\n--- original log ---\n${original.log()}`,
      );
    }
    return original;
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.#status === undefined;
  }

  /** stdout, then stderr, for failure messages. */
  log(): string {
    return [...this.lines, ...this.errors.map((l) => `stderr: ${l}`)].join(
      "\n",
    );
  }

  /**
   * Resolves with the first stdout line (from line `from` on) matching
   * `pattern`; rejects at once if the process exits first.
   */
  waitForLog(pattern: RegExp, timeoutMs = 10_000, from = 0): Promise<string> {
    const found = this.lines.slice(from).find((line) => pattern.test(line));
    if (found !== undefined) return Promise.resolve(found);
    const { promise, resolve } = Promise.withResolvers<string>();
    const waiter = { pattern, resolve };
    this.#waiters.push(waiter);
    const exit = this.#reading.then(() => {
      throw new Error(
        `the original daemon exited (${
          JSON.stringify(this.#status)
        }) while waiting for ${pattern}\n--- original log ---\n${this.log()}`,
      );
    });
    return deadline(
      Promise.race([promise, exit]),
      timeoutMs,
      `original log line ${pattern}`,
    ).finally(() => {
      exit.catch(() => {});
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
    });
  }

  /** Counts stdout lines matching `pattern`. */
  count(pattern: RegExp): number {
    return this.lines.filter((line) => pattern.test(line)).length;
  }

  async #read(
    stream: ReadableStream<Uint8Array>,
    push: (line: string) => void,
  ): Promise<void> {
    let carry = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (carry + text).split("\n");
      carry = parts.pop()!;
      for (const line of parts) push(line);
    }
    if (carry) push(carry);
  }

  #push(line: string): void {
    this.lines.push(line);
    if (Deno.env.get("WSD_TEST_LOG")) {
      console.error(`[original ${this.prefix}] ${line}`);
    }
    for (const waiter of this.#waiters) {
      if (waiter.pattern.test(line)) waiter.resolve(line);
    }
  }

  /**
   * SIGINT (the original's clean stop) and waits for the exit; SIGKILL if it
   * takes longer than `timeoutMs`.
   */
  async stop(timeoutMs = 10_000): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGINT");
    } catch {
      // Already exited.
    }
    try {
      return await deadline(this.exited(), timeoutMs, "original daemon exit");
    } catch {
      return await this.kill();
    }
  }

  /** SIGKILL, and waits for the exit. */
  async kill(): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    return await this.exited();
  }

  /** Waits for the process to exit and its output to be read to the end. */
  async exited(): Promise<Deno.CommandStatus> {
    const status = await this.#exited;
    await this.#reading;
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
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
