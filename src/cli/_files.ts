/**
 * What the pairing subcommands (`init`, `join`) share: exit codes and the
 * error that carries one, option parsing with our own one-line messages, and
 * creating a prefix's files with exact modes, undone if a later step fails.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** The subcommands' exit codes (sysexits.h where one fits). */
export const EXIT = {
  OK: 0,
  /** Bad arguments: nothing was touched. */
  USAGE: 2,
  /** A file could not be created, or exists and is not overwritten. */
  CANNOT_CREATE: 73,
  /** An existing config.json cannot be used. */
  CONFIG: 78,
} as const;

/** A failure with its one-line message (no command name) and exit code. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = "CliError";
  }
}

/**
 * Prints `error` as one line on stderr, `<command>: <message>`, and returns
 * its exit code; anything but a {@linkcode CliError} is a bug and exits 1.
 */
export function reportError(command: string, error: unknown): number {
  if (error instanceof CliError) {
    console.error(`${command}: ${oneLine(error.message)}`);
    return error.exitCode;
  }
  console.error(`${command}: unexpected error: ${oneLine(String(error))}`);
  return 1;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

/**
 * `parseArgs` with `strict: true`. Its errors become our own one-line
 * messages (its text spans lines and names no fix); which argument was wrong
 * is found by a lenient second parse, not by reading its message. An option
 * that is not `multiple` may be given only once.
 *
 * @throws {CliError} with {@linkcode EXIT.USAGE}.
 */
export function parseOptions<const O extends ParseArgsOptionsConfig>(
  args: string[],
  options: O,
  allowPositionals = false,
) {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options,
      allowPositionals,
      strict: true,
      tokens: true,
    });
  } catch (error) {
    throw new CliError(
      usageMessage(args, options, (error as { code?: string }).code),
      EXIT.USAGE,
    );
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== "option" || options[token.name].multiple) continue;
    if (seen.has(token.name)) {
      throw new CliError(
        `option --${token.name} is given more than once`,
        EXIT.USAGE,
      );
    }
    seen.add(token.name);
  }
  return parsed;
}

function usageMessage(
  args: string[],
  options: ParseArgsOptionsConfig,
  code: string | undefined,
): string {
  const { tokens } = parseArgs({
    args,
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind === "positional") {
      if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
        return `unexpected argument ${
          JSON.stringify(token.value)
        } (see --help)`;
      }
      continue;
    }
    if (token.kind !== "option") continue;
    const option = Object.hasOwn(options, token.name)
      ? options[token.name]
      : undefined;
    if (option === undefined) {
      if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
        return `unknown option ${token.rawName} (see --help)`;
      }
      continue;
    }
    if (code !== "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") continue;
    if (option.type === "boolean" && token.value !== undefined) {
      return `option ${token.rawName} takes no value`;
    }
    if (option.type === "string") {
      if (token.value === undefined) {
        return `option ${token.rawName} needs a value`;
      }
      if (!token.inlineValue && token.value.startsWith("-")) {
        return `option ${token.rawName} needs a value (for one that starts with '-', write ${token.rawName}=VALUE)`;
      }
    }
  }
  return "cannot read the options (see --help)";
}

/** Why a file system call failed, in a few words. */
export function fsReason(error: unknown): string {
  if (error instanceof Deno.errors.AlreadyExists) return "it already exists";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotFound) return "no such file or folder";
  if (error instanceof Deno.errors.NotADirectory) {
    return "a part of the path is not a folder";
  }
  return oneLine((error as Error).message ?? String(error));
}

/** Whether anything (a dangling symlink too) has this name. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new CliError(
      `cannot look for ${path}: ${fsReason(error)}`,
      EXIT.CANNOT_CREATE,
    );
  }
}

/**
 * Creates folders and files with exact modes (set after creation, so the
 * umask cannot loosen or tighten them), never overwriting a file, and
 * remembers what it made so that a failure halfway leaves nothing behind.
 * Folders that already exist are used as they are.
 */
export class NewFiles {
  readonly #created: string[] = [];

  /** Creates folder `path` (its missing parents with default modes). */
  async dir(path: string, mode = 0o700): Promise<void> {
    try {
      const info = await Deno.stat(path);
      if (info.isDirectory) return;
      throw new CliError(
        `cannot create folder ${path}: a file of that name exists`,
        EXIT.CANNOT_CREATE,
      );
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw this.#error(error);
    }
    try {
      await Deno.mkdir(dirname(path), { recursive: true });
      await Deno.mkdir(path, { mode });
      this.#created.push(path);
      await Deno.chmod(path, mode);
    } catch (error) {
      throw new CliError(
        `cannot create folder ${path}: ${fsReason(error)}`,
        EXIT.CANNOT_CREATE,
      );
    }
  }

  /**
   * Creates file `path`; one that exists is refused, or, with `keep`, left
   * as it is. Returns whether the file was written.
   */
  async file(
    path: string,
    data: string,
    mode: number,
    { keep = false } = {},
  ): Promise<boolean> {
    try {
      await Deno.writeTextFile(path, data, { createNew: true, mode });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        if (keep) return false;
        throw new CliError(
          `${path} exists; refusing to overwrite it`,
          EXIT.CANNOT_CREATE,
        );
      }
      throw new CliError(
        `cannot create ${path}: ${fsReason(error)}`,
        EXIT.CANNOT_CREATE,
      );
    }
    this.#created.push(path);
    try {
      await Deno.chmod(path, mode);
    } catch (error) {
      throw this.#error(error, path);
    }
    return true;
  }

  /** Removes what this made, newest first; folders only if left empty. */
  async undo(): Promise<void> {
    for (const path of this.#created.reverse()) {
      await Deno.remove(path).catch(() => {});
    }
    this.#created.length = 0;
  }

  #error(error: unknown, path?: string): CliError {
    if (error instanceof CliError) return error;
    return new CliError(
      `cannot create ${path ?? "files"}: ${fsReason(error)}`,
      EXIT.CANNOT_CREATE,
    );
  }
}

/**
 * Replaces `path` with `data` atomically: a reader sees the old file or the
 * new one, never half of either. The temporary file is written with `mode`
 * in the same folder (rename does not cross file systems), synced, renamed.
 */
export async function replaceFile(
  path: string,
  data: string,
  mode: number,
): Promise<void> {
  const temp = join(
    dirname(path),
    `.${basename(path)}.${crypto.randomUUID()}.tmp`,
  );
  try {
    await Deno.writeTextFile(temp, data, { createNew: true, mode });
    await Deno.chmod(temp, mode);
    using file = await Deno.open(temp, { read: true });
    await file.sync();
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw new CliError(
      `cannot rewrite ${path}: ${fsReason(error)}`,
      EXIT.CANNOT_CREATE,
    );
  }
}

/**
 * Words no POSIX shell changes: no quotes, spaces, globs or expansions, and
 * `#`, `~`, `=` only after the first character (zsh with EXTENDED_GLOB, which
 * is off by default, would still read `#` and `~` as glob operators).
 */
const SHELL_SAFE = /^[A-Za-z0-9._\/:@%+,-][A-Za-z0-9._\/:@%+,=#~-]*$/;

/** `text` as one shell word: unchanged when safe, else in single quotes. */
export function shellQuote(text: string): string {
  return SHELL_SAFE.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The example script both commands put in `scripts/`, so that a fresh pair
 * can be tried at once.
 */
const HELLO_SCRIPT = `#!/bin/sh
# An example script. A peer runs it with a request like
#   {"name": "hello", "params": "world"}
# and it gets the params as JSON ("world", quotes included) as its argument.
printf 'hello %s\\n' "$1"
exit 0
`;

/**
 * Creates `<prefix>/scripts/` (0700) with the example `hello` (0755); a
 * `hello` already there is kept. Returns whether it was written.
 */
export async function addExampleScript(
  files: NewFiles,
  prefix: string,
): Promise<boolean> {
  await files.dir(join(prefix, "scripts"));
  return await files.file(
    join(prefix, "scripts", "hello"),
    HELLO_SCRIPT,
    0o755,
    {
      keep: true,
    },
  );
}

/** A value as config.json holds it: two-space indent, final newline. */
export function jsonFile(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}
