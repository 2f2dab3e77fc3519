/**
 * Launchers: how a script process is started in a process group of its own,
 * and how its end is learned.
 *
 * Two ways exist because Deno has no cheap one. `Deno.Command`'s `detached`
 * (setsid in the child) makes Deno give up vfork for a full fork() of the
 * daemon: milliseconds per run. posix_spawn(3) with POSIX_SPAWN_SETSID keeps
 * the vfork path but needs FFI (`posix_spawn.ts`). Where FFI or glibc is
 * missing, `command_launcher.ts` starts scripts with `Deno.Command`, through
 * setsid(1) where it exists.
 *
 * @module
 */

import { constants } from "node:os";
import type { Logger } from "../log.ts";

/** The config's `scriptLauncher` values. */
export const LAUNCHER_KINDS = [
  "auto",
  "posix_spawn",
  "setsid",
  "detached",
] as const;
export type LauncherKind = typeof LAUNCHER_KINDS[number];

export type OutputStream = "stdout" | "stderr";

/** What to start: an absolute path, its one argument, extra environment. */
export interface LaunchRequest {
  path: string;
  arg: string;
  /** Added to the daemon's own environment. */
  env: Record<string, string>;
  /** Prefix of the log lines the script's output becomes. */
  tag: string;
  /**
   * Written to the script's stdin, which is then closed; unset: stdin is
   * /dev/null. A script that does not read it is not held up by it.
   */
  stdin?: Uint8Array;
  /** Told of each chunk of output, as it comes. */
  onOutput?: (stream: OutputStream, chunk: Uint8Array) => void;
  /** Told of each line of output, as the log gets it. */
  onLine?: (stream: OutputStream, line: string) => void;
}

/** How a started script ended. */
export type ScriptEnd =
  | { kind: "exited"; code: number }
  | { kind: "signaled"; signal: string; number: number }
  /** The program could not be executed (a missing `#!` interpreter, …). */
  | { kind: "not-started"; reason: string }
  /** It ran, but how it ended cannot be known (another waiter reaped it). */
  | { kind: "lost"; reason: string };

export interface StartedScript {
  /** Also the id of its process group. */
  pid: number;
  end: Promise<ScriptEnd>;
  /**
   * Settles when both output streams have ended: at the script's exit,
   * unless a child of it still holds them.
   */
  outputEnded: Promise<void>;
}

export interface Launcher {
  /** Which way scripts start, for the startup log. */
  readonly description: string;
  /** Starts a script; rejects with `LaunchError` if it cannot start at all. */
  start(request: LaunchRequest): Promise<StartedScript>;
  /** Frees what the launcher holds; call when no script runs. */
  close(): Promise<void>;
}

/** A script could not be started; the message says why. */
export class LaunchError extends Error {
  override name = "LaunchError";
}

const signalNumbers = constants.signals as Record<string, number>;
const signalNames = new Map(
  Object.entries(signalNumbers).map(([name, number]) => [number, name]),
);

/** A script's end when a signal killed it, from the signal's name or number. */
export function signaled(signal: string | number): ScriptEnd {
  const number = typeof signal === "number"
    ? signal
    : signalNumbers[signal] ?? 0;
  const name = typeof signal === "string"
    ? signal
    : signalNames.get(signal) ?? `SIG${signal}`;
  return { kind: "signaled", signal: name, number };
}

/** The longest output line logged whole; longer ones are logged in parts. */
export const MAX_LINE_CHARS = 64 * 1024;

/**
 * A script's output stream as log lines, one per line, each prefixed with
 * the stream's tag; a last line without "\n" is logged at the end, and a
 * line longer than MAX_LINE_CHARS in parts of that size, so memory stays
 * bounded whatever a script writes.
 */
export class OutputLines {
  readonly #log: Logger;
  readonly #tag: string;
  readonly #onLine: ((line: string) => void) | undefined;
  readonly #decoder = new TextDecoder();
  /** The unfinished line; it never holds a "\n". */
  #carry = "";
  /** The first line seen, for setsid(1)'s error message. */
  first: string | undefined;

  constructor(log: Logger, tag: string, onLine?: (line: string) => void) {
    this.#log = log;
    this.#tag = tag;
    this.#onLine = onLine;
  }

  push(bytes: Uint8Array): void {
    const text = this.#decoder.decode(bytes, { stream: true });
    let start = 0;
    for (
      let end = text.indexOf("\n");
      end !== -1;
      end = text.indexOf("\n", start)
    ) {
      this.#carry += text.slice(start, end);
      this.#cutLongLine();
      this.#line(this.#carry);
      this.#carry = "";
      start = end + 1;
    }
    this.#carry += text.slice(start);
    this.#cutLongLine();
  }

  end(): void {
    this.#carry += this.#decoder.decode();
    this.#cutLongLine();
    if (this.#carry !== "") this.#line(this.#carry);
    this.#carry = "";
  }

  /**
   * Logs whole parts of an unfinished line while more than MAX_LINE_CHARS
   * of it are held, never cutting a UTF-16 surrogate pair in two.
   */
  #cutLongLine(): void {
    while (this.#carry.length > MAX_LINE_CHARS) {
      let cut = MAX_LINE_CHARS;
      const last = this.#carry.charCodeAt(cut - 1);
      if (last >= 0xd800 && last <= 0xdbff) cut--;
      this.#line(this.#carry.slice(0, cut));
      this.#carry = this.#carry.slice(cut);
    }
  }

  #line(line: string): void {
    this.first ??= line;
    this.#log.info(`${this.#tag}: ${line}`);
    this.#onLine?.(line);
  }
}

/**
 * Logs each line of `stream` as it comes; resolves with the first line once
 * the stream ends (or fails).
 */
export async function logLines(
  stream: ReadableStream<Uint8Array>,
  log: Logger,
  tag: string,
  onChunk?: (chunk: Uint8Array) => void,
  onLine?: (line: string) => void,
): Promise<string | undefined> {
  const lines = new OutputLines(log, tag, onLine);
  try {
    for await (const chunk of stream) {
      onChunk?.(chunk);
      lines.push(chunk);
    }
  } catch (error) {
    log.debug(`${tag}: ${(error as Error).message}`);
  }
  lines.end();
  return lines.first;
}
