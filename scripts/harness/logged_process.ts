/**
 * A spawned process whose log is collected line by line, for tests to wait
 * on: the base of `DaemonProcess` (daemon.ts) and `OriginalProcess`
 * (original.ts).
 *
 * @module
 */

import { deadline } from "./wait.ts";

/** How a {@linkcode LoggedProcess} reads its child's output. */
export interface LoggedProcessOptions {
  /** What the process is, in messages: "daemon", "original". */
  name: string;
  /** What echoed lines start with under WSD_TEST_LOG (default: the prefix). */
  tag?: string;
  /** The stream whose lines are the log (`lines`). */
  log: ReadableStream<Uint8Array>;
  /** A second stream (stderr) collected into `into`, beside the log. */
  errors?: { stream: ReadableStream<Uint8Array>; into: string[] };
}

/** The process exited before a line came; its message carries the log. */
class ExitedError extends Error {
  override name = "ExitedError";
}

/** A child process whose log is collected line by line. */
export class LoggedProcess {
  readonly prefix: string;
  readonly child: Deno.ChildProcess;
  /** Every log line so far. */
  readonly lines: string[] = [];
  readonly #name: string;
  readonly #tag: string;
  readonly #errors: string[];
  #waiters: {
    pattern: RegExp;
    resolve: (line: string) => void;
  }[] = [];
  #status: Deno.CommandStatus | undefined;
  readonly #exited: Promise<Deno.CommandStatus>;
  readonly #reading: Promise<void>;

  protected constructor(
    prefix: string,
    child: Deno.ChildProcess,
    options: LoggedProcessOptions,
  ) {
    this.prefix = prefix;
    this.child = child;
    this.#name = options.name;
    this.#tag = options.tag ?? prefix;
    this.#errors = options.errors?.into ?? [];
    this.#exited = child.status.then((status) => this.#status = status);
    const { errors } = options;
    this.#reading = Promise.all([
      readLines(options.log, (line) => this.#push(line)),
      errors && readLines(errors.stream, (line) => {
        errors.into.push(line);
        this.#echo(`stderr: ${line}`);
      }),
    ]).then(() => {});
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.#status === undefined;
  }

  /** The log, then any stderr lines, for failure messages. */
  log(): string {
    return [...this.lines, ...this.#errors.map((l) => `stderr: ${l}`)].join(
      "\n",
    );
  }

  /**
   * Resolves with the first log line (from line `from` on) matching
   * `pattern`; rejects at once, with the log, if the process exits first.
   */
  waitForLog(pattern: RegExp, timeoutMs = 10_000, from = 0): Promise<string> {
    const found = this.lines.slice(from).find((line) => pattern.test(line));
    if (found !== undefined) return Promise.resolve(found);
    const { promise, resolve } = Promise.withResolvers<string>();
    const waiter = { pattern, resolve };
    this.#waiters.push(waiter);
    const exit = this.exited().then((status) => {
      throw new ExitedError(
        `the ${this.#name} exited (${
          JSON.stringify(status)
        }) while waiting for ${pattern}\n${this.#logSection()}`,
      );
    });
    return deadline(
      Promise.race([promise, exit]),
      timeoutMs,
      `${this.#name} log line ${pattern}`,
    ).finally(() => {
      exit.catch(() => {});
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
    });
  }

  /** Counts log lines matching `pattern`. */
  count(pattern: RegExp): number {
    return this.lines.filter((line) => pattern.test(line)).length;
  }

  /**
   * Sends `signal` and waits for the exit; if it takes longer than
   * `timeoutMs`, kills the process and rethrows the timeout.
   */
  async stop(
    signal: Deno.Signal = "SIGTERM",
    timeoutMs = 15_000,
  ): Promise<Deno.CommandStatus> {
    try {
      this.child.kill(signal);
    } catch {
      // Already exited.
    }
    try {
      return await deadline(this.exited(), timeoutMs, `${this.#name} exit`);
    } catch (error) {
      await this.kill();
      throw error;
    }
  }

  /** SIGKILL, as a crash would, and waits for the exit. */
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
    await this.kill();
  }

  /**
   * For a failed start: kills the process and throws `error` with the log
   * appended (unless it already carries it).
   */
  protected async abort(error: unknown): Promise<never> {
    await this.kill();
    if (error instanceof ExitedError) throw error;
    throw new Error(`${(error as Error).message}\n${this.#logSection()}`);
  }

  #logSection(): string {
    return `--- ${this.#name} log ---\n${this.log()}`;
  }

  #push(line: string): void {
    this.lines.push(line);
    this.#echo(line);
    for (const waiter of this.#waiters) {
      if (waiter.pattern.test(line)) waiter.resolve(line);
    }
  }

  #echo(line: string): void {
    if (Deno.env.get("WSD_TEST_LOG")) console.error(`[${this.#tag}] ${line}`);
  }
}

/** Calls `push` with each line of `stream`, the last one even without "\n". */
async function readLines(
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
