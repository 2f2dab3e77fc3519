/**
 * The logger: one line per event on stderr, timestamped, filtered by level.
 *
 * Writes are synchronous so that a line logged just before exit is not lost
 * and lines from concurrent tasks never interleave mid-line.
 *
 * @module
 */

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

const encoder = new TextEncoder();

export class Logger {
  #threshold: number;

  constructor(level: LogLevel = "info") {
    this.#threshold = LOG_LEVELS.indexOf(level);
  }

  /** Changes the level from now on (SIGHUP). */
  set level(level: LogLevel) {
    this.#threshold = LOG_LEVELS.indexOf(level);
  }

  /** Whether `level` is logged; lets hot paths skip building a message. */
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.#threshold;
  }

  debug(message: string): void {
    this.#write("debug", message);
  }

  info(message: string): void {
    this.#write("info", message);
  }

  warn(message: string): void {
    this.#write("warn", message);
  }

  error(message: string): void {
    this.#write("error", message);
  }

  #write(level: LogLevel, message: string): void {
    if (!this.enabled(level)) return;
    const line = `${new Date().toISOString()} ${level.toUpperCase()} ${
      message.replaceAll("\n", "\\n")
    }\n`;
    try {
      let bytes = encoder.encode(line);
      while (bytes.length > 0) {
        bytes = bytes.subarray(Deno.stderr.writeSync(bytes));
      }
    } catch {
      // stderr closed: logging must never take the daemon down.
    }
  }
}
