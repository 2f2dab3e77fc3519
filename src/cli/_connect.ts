/**
 * What the subcommands that talk to a running daemon (`send`, `status`,
 * `watch`) share: finding its socket from the prefix, and how statuses map
 * to exit codes.
 *
 * @module
 */

import { join } from "node:path";
import { DEFAULT_PREFIX } from "../config.ts";
import { findSocket, LocalClient } from "../client/local_client.ts";
import { CliError } from "./_files.ts";

/** No daemon answers on the prefix (sysexits' EX_UNAVAILABLE). */
export const EXIT_UNAVAILABLE = 69;

/** The prefix: `--prefix`, else `$WSDAEMON_PREFIX`, else the default. */
export function prefixOf(option: string | undefined): string {
  return option ?? Deno.env.get("WSDAEMON_PREFIX") ?? DEFAULT_PREFIX;
}

/** The TCP address the daemon listens on locally, if it does not use a socket. */
function localTcp(prefix: string): string | undefined {
  const fromEnv = Deno.env.get("WSDAEMON_LOCAL_TCP");
  if (fromEnv) return fromEnv;
  try {
    const config = JSON.parse(
      Deno.readTextFileSync(join(prefix, "config.json")),
    );
    return typeof config?.localTcp === "string" ? config.localTcp : undefined;
  } catch {
    return undefined; // The socket file is looked for instead.
  }
}

/**
 * A connection to the daemon running on `prefix`.
 *
 * @throws {CliError} (69) when none answers there.
 */
export async function connect(prefix: string): Promise<LocalClient> {
  try {
    return await LocalClient.connect(
      await findSocket(prefix, localTcp(prefix)),
    );
  } catch (error) {
    throw new CliError((error as Error).message, EXIT_UNAVAILABLE);
  }
}

/**
 * The exit code for a status: a script's exit code as it is; each negative
 * status its own code, from sysexits.h and timeout(1) where one fits.
 */
export const STATUS_EXIT: Record<number, number> = {
  [-1]: 127, // could not run: as a shell says for a missing command
  [-2]: 69, // not delivered: EX_UNAVAILABLE
  [-3]: 124, // timed out: as timeout(1)
  [-4]: 65, // rejected: EX_DATAERR
  [-5]: 77, // refused: EX_NOPERM
  [-6]: 75, // outcome unknown: EX_TEMPFAIL
};

export function exitCodeOf(status: number): number {
  if (status >= 0 && status <= 255) return status;
  return STATUS_EXIT[status] ?? 1;
}

/**
 * A duration: `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
 *
 * @throws {CliError} (2) naming the option, for anything else.
 */
export function durationMs(option: string, text: string): number {
  const match = text.trim().match(/^(\d+(?:\.\d+)?)(ms|s|m|h)?$/);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const ms = match
    ? Math.round(
      Number(match[1]) * unit[(match[2] ?? "s") as keyof typeof unit],
    )
    : NaN;
  if (!Number.isFinite(ms) || ms < 1 || ms > 2_147_483_647) {
    throw new CliError(
      `option --${option} must be a duration such as 30s, 500ms or 2m: found ${
        JSON.stringify(text)
      }`,
      2,
    );
  }
  return ms;
}
