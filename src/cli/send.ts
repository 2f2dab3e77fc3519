/**
 * `ws-daemon send NAME [PARAMS]`: runs one script through the running
 * daemon, waits for its status, prints it, and exits with the script's exit
 * code (a negative status maps to a code of its own, see `_connect.ts`).
 *
 * @module
 */

import { readAll } from "./_stdin.ts";
import { CliError, EXIT, parseOptions, reportError } from "./_files.ts";
import {
  connect,
  durationMs,
  EXIT_UNAVAILABLE,
  exitCodeOf,
  prefixOf,
} from "./_connect.ts";
import type { Answer } from "../client/local_client.ts";
import { DEFAULT_PREFIX } from "../config.ts";

const COMMAND = "ws-daemon send";

const USAGE = `Usage: ws-daemon send NAME [PARAMS | -] [options]

Runs the script NAME on a peer through the daemon running on the prefix,
waits for its status, prints it and exits with the script's exit code.
PARAMS is JSON (quote a string: '"text"'); - reads the JSON from stdin.

  --to PEER         the peer that runs it; '*' or a glob ('web-*') runs it on
                    every matching peer: one line each, then the summary
  --output          print the script's stdout and stderr on ours, not the status
  --json            print the daemon's status line(s) as they come
  --timeout DUR     give up waiting after DUR (30s, 500ms, 2m): exit 124
  --deadline DUR    the request's deadlineMs: the daemon answers -3 (or -2 if
                    it never went) when no status came by then
  --id ID           the request's id (default: a random one)
  --key KEY         run at most once per KEY (retries get the first status)
  --prefix DIR      the daemon's prefix (default: $WSDAEMON_PREFIX, else
                    ${DEFAULT_PREFIX})
  --help            print this help

Exit codes: the script's exit code (0-255); 127 it could not run (-1), 69 not
delivered or no daemon running (-2), 124 timed out (-3), 65 rejected (-4),
77 refused (-5), 75 outcome unknown (-6); 2 bad arguments.
`;

const OPTIONS = {
  to: { type: "string" },
  output: { type: "boolean" },
  json: { type: "boolean" },
  timeout: { type: "string" },
  deadline: { type: "string" },
  id: { type: "string" },
  key: { type: "string" },
  prefix: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function parseParams(text: string, from: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(
      `${from} must be JSON (quote a string: '"text"'): found ${
        JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text)
      }`,
      EXIT.USAGE,
    );
  }
}

/** One status as a readable line. */
function readable(name: string, answer: Answer): string {
  const where = typeof answer.peer === "string" ? ` on ${answer.peer}` : "";
  if (answer.done === true) {
    const peers = Object.entries(answer.peers as Record<string, number>)
      .map(([peer, status]) => `${peer}=${status}`).join(" ");
    return `${name}: status ${answer.status} (${peers})`;
  }
  const error = typeof answer.error === "string" ? `: ${answer.error}` : "";
  const took = typeof answer.durationMs === "number"
    ? ` in ${answer.durationMs} ms`
    : "";
  return `${name}${where}: status ${answer.status}${error}${took}`;
}

/** Writes a script's captured output, each stream to ours. */
async function writeOutput(answer: Answer, label: string): Promise<void> {
  const encoder = new TextEncoder();
  for (
    const [stream, out] of [["stdout", Deno.stdout], [
      "stderr",
      Deno.stderr,
    ]] as const
  ) {
    let text = typeof answer[stream] === "string"
      ? answer[stream] as string
      : "";
    if (label !== "" && text !== "") {
      // Every line, empty ones too; none after the last newline.
      const lines = text.split("\n");
      const last = lines.pop()!;
      text = lines.map((line) => `[${label}] ${line}\n`).join("") +
        (last === "" ? "" : `[${label}] ${last}`);
    }
    let bytes = encoder.encode(text);
    while (bytes.length > 0) bytes = bytes.subarray(await out.write(bytes));
  }
  for (const stream of ["stdout", "stderr"]) {
    if (answer[`${stream}Truncated`] === true) {
      console.error(
        `${COMMAND}: ${
          label ? `${label}: ` : ""
        }${stream} truncated at the peer's maxOutputBytes`,
      );
    }
  }
  if (answer.status < 0 && typeof answer.error === "string") {
    console.error(
      `${COMMAND}: ${
        label ? `${label}: ` : ""
      }status ${answer.status}: ${answer.error}`,
    );
  }
}

/** Runs `ws-daemon send` with `args` (after the subcommand's name). */
export async function runSend(args: string[]): Promise<number> {
  try {
    return await send(args);
  } catch (error) {
    return reportError(COMMAND, error);
  }
}

/**
 * A negative number is JSON, not an option: it is kept from parseArgs,
 * which would take `-1` for one, behind a mark no option starts with.
 */
const NUMBER_MARK = "\u0000";
const NEGATIVE_NUMBER = /^-\d+(\.\d+)?([eE][+-]?\d+)?$/;

async function send(args: string[]): Promise<number> {
  const parsed = parseOptions(
    args.map((arg) => NEGATIVE_NUMBER.test(arg) ? NUMBER_MARK + arg : arg),
    OPTIONS,
    true,
  );
  const unmark = (text: string) =>
    text.startsWith(NUMBER_MARK) ? text.slice(1) : text;
  const positionals = parsed.positionals.map(unmark);
  const values = Object.fromEntries(
    Object.entries(parsed.values).map((
      [key, value],
    ) => [key, typeof value === "string" ? unmark(value) : value]),
  ) as typeof parsed.values;
  if (values.help) {
    console.log(USAGE);
    return EXIT.OK;
  }
  if (positionals.length < 1 || positionals.length > 2) {
    throw new CliError(
      positionals.length < 1
        ? "the script's NAME is missing (see --help)"
        : `unexpected argument ${JSON.stringify(positionals[2])} (see --help)`,
      EXIT.USAGE,
    );
  }
  const [name, paramsText] = positionals;
  const params = paramsText === undefined
    ? undefined
    : paramsText === "-"
    ? parseParams(await readAll(Deno.stdin.readable), "the params on stdin")
    : parseParams(paramsText, "PARAMS");
  const timeoutMs = values.timeout === undefined
    ? undefined
    : durationMs("timeout", values.timeout);
  const deadline = values.deadline === undefined
    ? undefined
    : durationMs("deadline", values.deadline);
  const id = values.id ?? `send-${crypto.randomUUID()}`;
  const request: Record<string, unknown> = { name, id };
  if (params !== undefined) request.params = params;
  if (values.to !== undefined) request.to = values.to;
  if (deadline !== undefined) request.deadlineMs = deadline;
  if (values.key !== undefined) request.key = values.key;
  if (values.output) request.output = true;

  const local = await connect(prefixOf(values.prefix));
  try {
    await local.send(request);
    await local.closeWrite();
    const fanOut = values.to !== undefined && values.to.includes("*");
    const started = Date.now();
    for (;;) {
      const left = timeoutMs === undefined
        ? 2_147_483_647
        : Math.max(1, timeoutMs - (Date.now() - started));
      let answer: Answer;
      try {
        answer = await local.next(left);
      } catch (error) {
        if (local.isEnded) {
          throw new CliError(
            "the daemon closed the connection before answering",
            EXIT_UNAVAILABLE,
          );
        }
        throw new CliError(
          `no status within ${values.timeout}: ${(error as Error).message}`,
          124,
        );
      }
      const summary = answer.done === true;
      if (values.json) console.log(JSON.stringify(answer));
      else if (!values.output) console.log(readable(name, answer));
      else if (!summary) {
        await writeOutput(answer, fanOut ? String(answer.peer ?? "") : "");
      }
      // A fan-out ends with its summary; a -2 for a glob that matched
      // nobody comes alone, without one.
      if (summary || !fanOut || answer.peer === undefined) {
        return exitCodeOf(answer.status);
      }
    }
  } finally {
    await local.close();
  }
}
