/**
 * Runs the `ws-daemon` command line (the same entry and permission flags as
 * the binary) as a separate process, with optional stdin.
 *
 * @module
 */

import { join } from "node:path";
import { PERMISSIONS } from "./daemon.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = join(ROOT, "src/main.ts");

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(
  args: string[],
  options: {
    env?: Record<string, string>;
    stdin?: string;
    timeoutMs?: number;
  } = {},
): Promise<CliRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--frozen", "--quiet", ...PERMISSIONS, MAIN, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...options.env },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const timer = setTimeout(
    () => child.kill("SIGKILL"),
    options.timeoutMs ?? 30_000,
  );
  const output = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
