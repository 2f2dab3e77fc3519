/**
 * The logger: one line per event on stderr, timestamped, filtered by level;
 * as text (`<time> <LEVEL> <message>`) or, with `logFormat: "json"`, one
 * JSON object per line: `time`, `level`, `msg`, and the event's fields
 * (`peer`, `script`, `id`, `status`, `durationMs`, …) where it has them.
 *
 * Writes are synchronous so that a line logged just before exit is not lost
 * and lines from concurrent tasks never interleave mid-line.
 *
 * @module
 */

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = typeof LOG_FORMATS[number];

/** What a line may carry beside its message, for JSON logs. */
export type LogFields = Record<string, unknown>;

const encoder = new TextEncoder();

export class Logger {
  #threshold: number;
  #format: LogFormat;

  constructor(level: LogLevel = "info", format: LogFormat = "text") {
    this.#threshold = LOG_LEVELS.indexOf(level);
    this.#format = format;
  }

  /** Changes the level from now on (SIGHUP). */
  set level(level: LogLevel) {
    this.#threshold = LOG_LEVELS.indexOf(level);
  }

  /** Changes the format from now on (SIGHUP). */
  set format(format: LogFormat) {
    this.#format = format;
  }

  /** Whether `level` is logged; lets hot paths skip building a message. */
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.#threshold;
  }

  debug(message: string, fields?: LogFields): void {
    this.#write("debug", message, fields);
  }

  info(message: string, fields?: LogFields): void {
    this.#write("info", message, fields);
  }

  warn(message: string, fields?: LogFields): void {
    this.#write("warn", message, fields);
  }

  error(message: string, fields?: LogFields): void {
    this.#write("error", message, fields);
  }

  #write(level: LogLevel, message: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const time = new Date().toISOString();
    let line: string;
    if (this.#format === "json") {
      try {
        line = JSON.stringify({ time, level, msg: message, ...fields }) + "\n";
      } catch {
        line = JSON.stringify({ time, level, msg: message }) + "\n";
      }
    } else {
      line = `${time} ${level.toUpperCase()} ${
        message.replaceAll("\n", "\\n")
      }\n`;
    }
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
