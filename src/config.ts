/**
 * The configuration: `<prefix>/config.json`, validated with zod. Every default
 * lives in the schema, and every error is one line naming the file, the field,
 * what was expected and what was found.
 *
 * @module
 */

import { join } from "node:path";
import { z } from "zod";
import { LAUNCHER_KINDS } from "./launch/launcher.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";

/** The prefix used when neither `--prefix` nor `WSDAEMON_PREFIX` is given. */
export const DEFAULT_PREFIX = "/root/ws-daemon";

/** A configuration that cannot be used; the daemon exits before opening anything. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

const port = z.number().int().min(0).max(65535);
const positiveMs = z.number().int().positive();

/** Keys both modes share. */
const common = {
  /** This daemon's name in HELLO; peers show it in logs and `peer` fields. */
  name: z.string().min(1).max(128).optional(),
  /** Mode of the local Unix socket file, as an octal string. */
  socketMode: z.string().regex(/^0?[0-7]{3}$/, 'an octal mode like "0600"')
    .default("0600"),
  /** `host:port` for a TCP local listener instead of the Unix socket. */
  localTcp: z.string().regex(/^.+:\d{1,5}$/, '"host:port"').optional(),
  /** The longest local line or peer frame accepted, in bytes. */
  maxMessageBytes: z.number().int().min(256).max(64 * 1024 * 1024).default(
    1024 * 1024,
  ),
  /** Unsent bytes a peer or local connection may pile up before it is cut. */
  maxBufferedBytes: z.number().int().min(65536).default(16 * 1024 * 1024),
  /** How long running scripts may finish after SIGINT/SIGTERM. */
  shutdownGraceMs: z.number().int().min(0).default(10_000),
  /** Interval of liveness checks on the WebSocket. */
  heartbeatMs: z.number().int().min(100).default(15_000),
  logLevel: z.enum(LOG_LEVELS).default("info"),
  /**
   * How scripts start: "auto" takes posix_spawn (FFI), else setsid(1), else
   * Deno's detached spawn. Naming one makes the daemon refuse to start
   * where it cannot work.
   */
  scriptLauncher: z.enum(LAUNCHER_KINDS).default("auto"),
};

const serverSchema = z.object({
  mode: z.literal("server"),
  port,
  /**
   * Interface to listen on. Unset: every interface, IPv6 and IPv4 (`::`, or
   * `0.0.0.0` where IPv6 is off), as the original.
   */
  host: z.string().min(1).optional(),
  ...common,
});

const clientSchema = z.object({
  mode: z.literal("client"),
  /** A bare host (then `ws://<proxy>:<port>`) or a full ws:// or wss:// URL. */
  proxy: z.string().min(1),
  port: port.optional(),
  reconnectMinMs: positiveMs.default(250),
  reconnectMaxMs: positiveMs.default(30_000),
  ...common,
});

const schema = z.discriminatedUnion("mode", [serverSchema, clientSchema]);

export type ServerConfig = z.infer<typeof serverSchema>;
export type ClientConfig = z.infer<typeof clientSchema> & { url: string };
export type Config = ServerConfig | ClientConfig;

const KNOWN_KEYS = new Set([
  ...Object.keys(serverSchema.shape),
  ...Object.keys(clientSchema.shape),
]);

/** A parsed config with the warnings found on the way (unknown keys). */
export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
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
      return `"mode" to be "server" or "client"`;
    case "too_small":
      return issue.origin === "string"
        ? `a string of at least ${issue.minimum} characters`
        : `a number of at least ${issue.minimum}`;
    case "too_big":
      return issue.origin === "string"
        ? `a string of at most ${issue.maximum} characters`
        : `a number of at most ${issue.maximum}`;
    case "invalid_format":
      return issue.message;
    default:
      return issue.message;
  }
}

/**
 * Validates a decoded config.
 *
 * @throws {ConfigError} naming `file`, the field, the expectation and the value.
 */
export function parseConfig(input: unknown, file: string): LoadedConfig {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new ConfigError(
      `${file}: expected a JSON object, found ${describe(input)}`,
    );
  }
  const record = input as Record<string, unknown>;
  if (record.mode !== "server" && record.mode !== "client") {
    throw new ConfigError(
      `${file}: field "mode": expected "server" or "client", found ${
        describe(record.mode)
      }`,
    );
  }
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue.path.join(".");
    throw new ConfigError(
      `${file}: field "${field}": expected ${expected(issue)}, found ${
        describe(fieldValue(input, issue.path))
      }`,
    );
  }
  const modeKeys = new Set(
    Object.keys((record.mode === "server" ? serverSchema : clientSchema).shape),
  );
  const warnings = Object.keys(record)
    .filter((key) => !modeKeys.has(key))
    .map((key) =>
      KNOWN_KEYS.has(key)
        ? `${file}: field "${key}" is for ${
          record.mode === "server" ? "client" : "server"
        } mode and is ignored in ${record.mode} mode`
        : `${file}: unknown field "${key}" is ignored`
    );
  const parsed = result.data;
  if (parsed.mode === "server") return { config: parsed, warnings };
  if (parsed.reconnectMinMs > parsed.reconnectMaxMs) {
    throw new ConfigError(
      `${file}: field "reconnectMinMs": expected at most reconnectMaxMs (${parsed.reconnectMaxMs}), found ${parsed.reconnectMinMs}`,
    );
  }
  return { config: { ...parsed, url: clientUrl(parsed, file) }, warnings };
}

/** The server URL of a client config: `proxy` as a URL, or a bare host. */
function clientUrl(
  config: z.infer<typeof clientSchema>,
  file: string,
): string {
  const { proxy, port } = config;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(proxy)) {
    let url: URL;
    try {
      url = new URL(proxy);
    } catch {
      throw new ConfigError(
        `${file}: field "proxy": expected a ws:// or wss:// URL or a host name, found ${
          describe(proxy)
        }`,
      );
    }
    if (url.protocol !== "ws:" && url.protocol !== "wss:") {
      throw new ConfigError(
        `${file}: field "proxy": expected a ws:// or wss:// URL, found ${
          describe(proxy)
        }`,
      );
    }
    // The URL parser drops a scheme's default port (ws://h:80), so whether a
    // port was written is read from the text itself.
    const hasPort =
      /^[a-z][a-z0-9+.-]*:\/\/(?:[^/?#@]*@)?(?:\[[^\]]*\]|[^/?#:]*):\d+(?:[/?#]|$)/i
        .test(proxy);
    if (!hasPort && port !== undefined) url.port = String(port);
    return url.href;
  }
  if (port === undefined || port === 0) {
    throw new ConfigError(
      `${file}: field "port": expected an integer from 1 to 65535 (needed when "proxy" is a bare host), found ${
        describe(port)
      }`,
    );
  }
  if (/[\s/?#@]/.test(proxy)) {
    throw new ConfigError(
      `${file}: field "proxy": expected a host name or a ws:// or wss:// URL, found ${
        describe(proxy)
      }`,
    );
  }
  // A bare IPv6 address needs brackets in a URL.
  const host = proxy.includes(":") && !proxy.startsWith("[")
    ? `[${proxy}]`
    : proxy;
  return `ws://${host}:${port}`;
}

/** Reads and validates `<prefix>/config.json`. */
export async function loadConfig(prefix: string): Promise<LoadedConfig> {
  const file = join(prefix, "config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "file not found (set WSDAEMON_PREFIX or --prefix to the folder that holds config.json)"
      : (error as Error).message;
    throw new ConfigError(`${file}: cannot read: ${reason}`);
  }
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `${file}: expected valid JSON, found a syntax error: ${
        (error as Error).message.replace(/\s+/g, " ")
      }`,
    );
  }
  return parseConfig(input, file);
}

/** Turns a `host:port` setting into listen options. */
export function parseHostPort(
  value: string,
): { hostname: string; port: number } {
  const colon = value.lastIndexOf(":");
  const hostname = value.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  return { hostname, port: Number(value.slice(colon + 1)) };
}

export type { LogLevel };
