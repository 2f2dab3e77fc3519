/**
 * Config errors in words an operator reads: one line naming the file, the
 * field, what was expected and what was found, and never a secret's value.
 *
 * @module
 */

import type { z } from "zod";

/** Peer names, as in HELLO and in `peers`. */
export const PEER_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

/** A configuration that cannot be used; the daemon exits before opening anything. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Fields whose values never appear in a message. */
const SECRET_FIELD = /^(secret|token)$/;

export function describe(value: unknown, path: PropertyKey[] = []): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string" && SECRET_FIELD.test(String(path.at(-1)))) {
    return `a string of ${new TextEncoder().encode(value).length} bytes`;
  }
  const text = JSON.stringify(value);
  return text.length > 60 ? text.slice(0, 57) + "..." : text;
}

function fieldValue(input: unknown, path: PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** What a zod issue expected, in words an operator reads. */
function expected(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.expected === "int" ? "an integer" : `a ${issue.expected}`;
    case "invalid_value":
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "invalid_union":
      return issue.path.length === 0
        ? `"mode" to be "server" or "client"`
        : issue.path.at(-1) === "rate"
        ? 'a positive number, or {"perSecond": N, "burst": N}'
        : "one of the shapes this field takes (see the README)";
    case "too_small": {
      const bound = issue.inclusive === false
        ? `greater than ${issue.minimum}`
        : `at least ${issue.minimum}`;
      return issue.origin === "string"
        ? `a string of at least ${issue.minimum} characters`
        : `a number ${bound}`;
    }
    case "too_big":
      return issue.origin === "string"
        ? `a string of at most ${issue.maximum} characters`
        : `a number of at most ${issue.maximum}`;
    case "invalid_key":
      return "peer names of 1 to 64 characters of A-Z a-z 0-9 . _ - (not starting with . or -)";
    default:
      return issue.message;
  }
}

/** The one-line message of a zod issue about `input`, read from `file`. */
export function issueMessage(
  issue: z.core.$ZodIssue,
  input: unknown,
  file: string,
): string {
  const field = issue.path.join(".");
  if (issue.code === "invalid_key") {
    // The path ends with the key itself.
    return `${file}: field "${issue.path.slice(0, -1).join(".")}": expected ${
      expected(issue)
    }, found the name ${
      JSON.stringify(String(issue.path.at(-1)).slice(0, 60))
    }`;
  }
  return `${file}: field "${field}": expected ${expected(issue)}, found ${
    describe(fieldValue(input, issue.path), issue.path)
  }`;
}
