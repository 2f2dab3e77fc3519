/**
 * The environment scripts start with: the daemon's own, less every variable
 * that may hold a secret. A script is code the peer chooses to run, and its
 * output goes to logs: it must never see the daemon's secret.
 *
 * @module
 */

import { matchesAny } from "./auth.ts";

/** Always removed, whatever `scrubEnv` says. */
const ALWAYS = ["WSDAEMON_SECRET"];

/** `env` without the names matching `patterns` (globs, any case). */
export function scrubEnv(
  env: Record<string, string>,
  patterns: readonly string[],
): Record<string, string> {
  const upper = [...ALWAYS, ...patterns].map((p) => p.toUpperCase());
  return Object.fromEntries(
    Object.entries(env).filter(([name]) =>
      !matchesAny(name.toUpperCase(), upper)
    ),
  );
}
