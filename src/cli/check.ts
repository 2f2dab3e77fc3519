/**
 * `ws-daemon check`: is this prefix ready to run? Validates config.json,
 * lists the scripts (flagging files that cannot run), and looks for unsafe
 * permissions: secret files, config.json with a secret in it, the prefix
 * and scripts/ writable by others, a socket mode that lets others in.
 * Exit 0 only when nothing was found.
 *
 * @module
 */

import { join } from "node:path";
import { type Config, ConfigError } from "../config.ts";
import { loadConfig } from "../config_files.ts";
import { checkScriptName } from "../script_file.ts";
import { EXIT, parseOptions, reportError } from "./_files.ts";
import { prefixOf } from "./_connect.ts";
import { DEFAULT_PREFIX } from "../config.ts";

const COMMAND = "ws-daemon check";

const USAGE = `Usage: ws-daemon check [--prefix DIR]

Checks that the prefix can run: config.json is valid; every file in scripts/
is a script that can run; secret files, config.json, the prefix and scripts/
are not open to others; the local socket's mode lets only its owner in.
Prints what it found, one line each.

  --prefix DIR    the prefix (default: $WSDAEMON_PREFIX, else ${DEFAULT_PREFIX})
  --help          print this help

Exit codes: 0 clean, 1 problems found (listed), 78 the config is invalid,
2 bad arguments.
`;

const OPTIONS = {
  prefix: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function modeOf(path: string): number | undefined {
  try {
    return (Deno.statSync(path).mode ?? undefined) as number | undefined;
  } catch {
    return undefined;
  }
}

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, "0");

/** The interpreter a script's `#!` line names, if it is not there to run. */
function missingInterpreter(path: string): string | undefined {
  let head: string;
  try {
    using file = Deno.openSync(path);
    const bytes = new Uint8Array(256);
    const n = file.readSync(bytes) ?? 0;
    head = new TextDecoder().decode(bytes.subarray(0, n));
  } catch {
    return undefined; // Unreadable: the run will say why.
  }
  if (!head.startsWith("#!")) return undefined; // /bin/sh runs it.
  const interpreter = head.slice(2).split("\n")[0].trim().split(/\s+/)[0];
  if (interpreter === "") return "nothing";
  const mode = modeOf(interpreter);
  return mode !== undefined && (mode & 0o111) !== 0 ? undefined : interpreter;
}

/** What is wrong with the scripts in `dir`, and the list of those that run. */
function checkScripts(dir: string): { runnable: string[]; problems: string[] } {
  const runnable: string[] = [];
  const problems: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return {
      runnable,
      problems: [`${dir} cannot be read: no scripts can run`],
    };
  }
  for (const entry of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
    const path = join(dir, entry.name);
    const badName = checkScriptName(entry.name);
    if (badName !== undefined) {
      // Dot files (editor backups, .keep) are never scripts: not a problem.
      if (!entry.name.startsWith(".")) {
        problems.push(`scripts/${entry.name} can never run: ${badName}`);
      }
      continue;
    }
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(path);
    } catch {
      problems.push(`scripts/${entry.name} is a link to nothing`);
      continue;
    }
    if (!info.isFile) {
      problems.push(`scripts/${entry.name} is not a regular file`);
      continue;
    }
    const mode = info.mode ?? 0;
    if ((mode & 0o111) === 0) {
      problems.push(
        `scripts/${entry.name} is not executable (mode ${
          octal(mode)
        }); run: chmod +x ${path}`,
      );
      continue;
    }
    const interpreter = missingInterpreter(path);
    if (interpreter !== undefined) {
      problems.push(
        `scripts/${entry.name} cannot start: its #! line names ${interpreter}, which is not an executable file`,
      );
      continue;
    }
    if ((mode & 0o022) !== 0) {
      problems.push(
        `scripts/${entry.name} can be changed by group or others (mode ${
          octal(mode)
        }), who could then run anything as this daemon; run: chmod go-w ${path}`,
      );
    }
    runnable.push(entry.name);
  }
  return { runnable, problems };
}

/** Permissions that let others in. */
function checkPermissions(
  prefix: string,
  config: Config,
  configText: string,
): string[] {
  const problems: string[] = [];
  for (
    const [what, path] of [["the prefix", prefix], [
      "scripts/",
      join(prefix, "scripts"),
    ]]
  ) {
    const mode = modeOf(path);
    if (mode !== undefined && (mode & 0o022) !== 0) {
      problems.push(
        `${what} (${path}) can be written by group or others (mode ${
          octal(mode)
        }): they could add a script; run: chmod go-w ${path}`,
      );
    }
  }
  const configPath = join(prefix, "config.json");
  const configMode = modeOf(configPath);
  const inlineSecret = /"(secret|token)"\s*:/.test(configText);
  if (configMode !== undefined && (configMode & 0o022) !== 0) {
    problems.push(
      `config.json can be written by group or others (mode ${
        octal(configMode)
      }); run: chmod go-w ${configPath}`,
    );
  }
  if (inlineSecret && configMode !== undefined && (configMode & 0o077) !== 0) {
    problems.push(
      `config.json holds a secret or token and is readable by group or others (mode ${
        octal(configMode)
      }); run: chmod 600 ${configPath}, or move it to a secretFile`,
    );
  }
  const socketMode = parseInt(config.socketMode, 8);
  if ((socketMode & 0o007) !== 0) {
    problems.push(
      `socketMode "${config.socketMode}" lets any local user send requests; use "0600" (or "0660" for a group)`,
    );
  }
  return problems;
}

/** Runs `ws-daemon check` with `args` (after the subcommand's name). */
export async function runCheck(args: string[]): Promise<number> {
  try {
    const { values } = parseOptions(args, OPTIONS);
    if (values.help) {
      console.log(USAGE);
      return EXIT.OK;
    }
    const prefix = prefixOf(values.prefix);
    let loaded;
    try {
      loaded = await loadConfig(prefix, {
        WSDAEMON_SECRET: Deno.env.get("WSDAEMON_SECRET"),
        WSDAEMON_LOCAL_TCP: Deno.env.get("WSDAEMON_LOCAL_TCP"),
      });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      console.error(`ws-daemon: config error: ${error.message}`);
      return EXIT.CONFIG;
    }
    const { config, warnings } = loaded;
    console.log(`${prefix}/config.json: ok (${config.mode} mode)`);
    const configText = await Deno.readTextFile(join(prefix, "config.json"));
    const scripts = checkScripts(join(prefix, "scripts"));
    console.log(
      `scripts: ${scripts.runnable.length} can run${
        scripts.runnable.length ? `: ${scripts.runnable.join(", ")}` : ""
      }`,
    );
    const problems = [
      ...warnings,
      ...scripts.problems,
      ...checkPermissions(prefix, config, configText),
    ];
    for (const problem of problems) console.log(`problem: ${problem}`);
    console.log(
      problems.length === 0
        ? "clean: nothing to fix"
        : `${problems.length} problem(s) found`,
    );
    return problems.length === 0 ? EXIT.OK : 1;
  } catch (error) {
    return reportError(COMMAND, error);
  }
}
