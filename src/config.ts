/**
 * The configuration: `<prefix>/config.json`, validated with zod. Every default
 * lives in the schema, and every error is one line naming the file, the field,
 * what was expected and what was found.
 *
 * @module
 */

import { z } from "zod";
import { LAUNCHER_KINDS } from "./launch/launcher.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogLevel } from "./log.ts";
import { parsePin } from "./tls/pin.ts";
import {
  ConfigError,
  describe,
  issueMessage,
  PEER_NAME,
} from "./config_messages.ts";
import { clientUrl } from "./config_url.ts";
import {
  count,
  DEFAULT_SCRUB_ENV,
  filePath,
  MAX_TIMER_MS,
  MIN_SECRET_BYTES,
  ms,
  nameGlobs,
  port,
  positiveMs,
  type Rate,
  rate,
  secret,
  SECRET_CHARS,
  SECRET_RULE,
} from "./config_fields.ts";

/** A `host:port` listen address. */
export const HOST_PORT = /^.+:\d{1,5}$/;
const hostPort = z.string().regex(HOST_PORT, '"host:port"').refine(
  (text) => Number(text.slice(text.lastIndexOf(":") + 1)) <= 65535,
  '"host:port" with a port from 0 to 65535',
);

/** The prefix used when neither `--prefix` nor `WSDAEMON_PREFIX` is given. */
export const DEFAULT_PREFIX = "/root/ws-daemon";

export { ConfigError };

export { PEER_NAME };
export {
  DEFAULT_SCRUB_ENV,
  MIN_SECRET_BYTES,
  type Rate,
  SECRET_CHARS,
  SECRET_RULE,
};

/** Keys both modes share. */
const common = {
  /** This daemon's name in HELLO; peers show it in logs and `peer` fields. */
  name: z.string().min(1).max(128).optional(),
  /** Mode of the local Unix socket file, as an octal string. */
  socketMode: z.string().regex(/^0?[0-7]{3}$/, 'an octal mode like "0600"')
    .default("0600"),
  /** `host:port` for a TCP local listener instead of the Unix socket. */
  localTcp: hostPort.optional(),
  /** The longest local line or peer frame accepted, in bytes. */
  maxMessageBytes: z.number().int().min(256).max(64 * 1024 * 1024).default(
    1024 * 1024,
  ),
  /** Unsent bytes a peer or local connection may pile up before it is cut. */
  maxBufferedBytes: z.number().int().min(65536).default(16 * 1024 * 1024),
  /** How long running scripts may finish after SIGINT/SIGTERM. */
  shutdownGraceMs: ms.default(10_000),
  /** Interval of liveness checks on the WebSocket. */
  heartbeatMs: z.number().int().min(250).max(Math.floor(MAX_TIMER_MS / 2))
    .default(5_000),
  logLevel: z.enum(LOG_LEVELS).default("info"),
  /** `"text"` lines, or `"json"`: one object per line with its fields. */
  logFormat: z.enum(LOG_FORMATS).default("text"),
  /**
   * How scripts start: "auto" takes posix_spawn (FFI), else setsid(1), else
   * Deno's detached spawn. Naming one makes the daemon refuse to start
   * where it cannot work.
   */
  scriptLauncher: z.enum(LAUNCHER_KINDS).default("auto"),
  /**
   * Server: how long a connection may take to finish its upgrade and say
   * HELLO. Client: how long one connection attempt may take.
   */
  handshakeTimeoutMs: positiveMs.default(10_000),
  /** Local connections open at once; one more is refused with -5. */
  maxLocalConnections: count.default(256),
  /** Scripts running at once on this daemon. */
  maxRunning: count.default(64),
  /** Requests waiting for a free run slot; one more is refused -5 "busy". */
  maxQueued: z.number().int().min(0).default(1024),
  /** Requests one local connection may have in flight; more are refused -5. */
  maxInFlight: count.default(1024),
  /** Requests per second per peer and per local connection. */
  rate: rate.default({ perSecond: 1000, burst: 2000 }),
  /** How long a request waits for its status when it sets no `deadlineMs`. */
  deadlineMs: positiveMs.optional(),
  /** A script's time limit when its request sets no `timeoutMs`. */
  scriptTimeoutMs: positiveMs.optional(),
  /** The most a request's `timeoutMs` may ask for. */
  maxTimeoutMs: positiveMs.optional(),
  /** From SIGTERM to SIGKILL of a script's group (timeout, shutdown). */
  killGraceMs: ms.default(5_000),
  /** Bytes of stdout and of stderr a status carries with `"output": true`. */
  maxOutputBytes: z.number().int().min(0).max(16 * 1024 * 1024).default(
    64 * 1024,
  ),
  /**
   * What the journal's commits wait for: "fsync" (nothing acknowledged is
   * lost on kill -9 or power loss) or "relaxed" (kill -9 only).
   */
  durability: z.enum(["fsync", "relaxed"]).default("fsync"),
  /**
   * Acknowledged delivery with peers of this project (feature "ack"); off,
   * a dropped link answers -6 for what it had sent, as with an original.
   */
  ack: z.boolean().default(true),
  /** Rows the journal may hold; past it new requests are refused -5. */
  journalMaxRows: count.default(100_000),
  /** Bytes the journal's file may take; past it new requests are refused. */
  journalMaxBytes: z.number().int().min(1024 * 1024).default(256 * 1024 * 1024),
  /**
   * With no peer to send to: "queue" (wait up to the deadline or
   * queueTtlMs) or "reject" (-2 at once). Default: queue for a client,
   * reject for a server.
   */
  offline: z.enum(["queue", "reject"]).optional(),
  /** How long a request may wait for a peer to come. */
  queueTtlMs: positiveMs.default(300_000),
  /** How long a status stays fetchable with +cmd RESULT. */
  resultRetentionMs: positiveMs.default(3_600_000),
  /** Statuses kept for RESULT at most; the oldest go first. */
  maxResults: count.default(10_000),
  /** Environment variables never passed to scripts (globs, any case). */
  scrubEnv: z.array(z.string().min(1)).default(DEFAULT_SCRUB_ENV),
  /**
   * An HTTP listener for `GET /healthz` and `GET /metrics` (Prometheus),
   * on loopback unless `listen` says otherwise; `token` guards /metrics.
   */
  metrics: z.object({
    listen: hostPort.default(
      "127.0.0.1:9108",
    ),
    token: z.string().min(16).optional(),
    /** A server: answer on its WebSocket port instead of `listen`. */
    shared: z.boolean().default(false),
  }).strict().optional(),
};

const peerEntry = z.object({
  token: secret.optional(),
  tokenFile: filePath.optional(),
  /** Scripts this peer may run here (globs); unset: every script. */
  scripts: nameGlobs.optional(),
  /** `&cmd` codes this peer may send; unset: every code. */
  commands: z.array(z.string().min(1)).optional(),
}).strict();

const serverSchema = z.object({
  mode: z.literal("server"),
  port,
  /**
   * Interface to listen on. Unset: every interface, IPv6 and IPv4 (`::`, or
   * `0.0.0.0` where IPv6 is off), as the original.
   */
  host: z.string().min(1).optional(),
  /** One secret every client presents. */
  secret: secret.optional(),
  secretFile: filePath.optional(),
  /** Named peers, each with its own token and what it may do. */
  peers: z.record(z.string().regex(PEER_NAME, "a peer name"), peerEntry)
    .optional(),
  /** PEM certificate and key: the server speaks wss://. */
  tls: z.object({ cert: filePath, key: filePath }).strict().optional(),
  /** Client connections at once; one more is answered 503. */
  maxPeers: count.default(256),
  /** Origins a browser upgrade may come from; unset: any. */
  allowedOrigins: z.array(z.string().min(1)).optional(),
  ...common,
});

const clientSchema = z.object({
  mode: z.literal("client"),
  /** A bare host (then `ws://<proxy>:<port>`) or a full ws:// or wss:// URL. */
  proxy: z.string().min(1),
  port: port.optional(),
  reconnectMinMs: positiveMs.default(250),
  reconnectMaxMs: positiveMs.default(30_000),
  /** Presented to the server as `Authorization: Bearer <secret>`. */
  secret: secret.optional(),
  secretFile: filePath.optional(),
  /** PEM file of a CA trusted in addition to the system's (wss://). */
  ca: filePath.optional(),
  /** The server certificate's SHA-256 fingerprint; only it is accepted. */
  pin: z.string().refine(
    (text) => parsePin(text) !== undefined,
    'a pin like "sha256:<64 hex digits>"',
  ).transform((text) => parsePin(text)!).optional(),
  /** Scripts the server may run here (globs); unset: every script. */
  peerScripts: nameGlobs.optional(),
  ...common,
});

const schema = z.discriminatedUnion("mode", [serverSchema, clientSchema]);

/** A peer of a server, with its token read (from `token` or `tokenFile`). */
export interface PeerEntry {
  name: string;
  token: string;
  scripts?: string[];
  commands?: string[];
}

/**
 * What a server trusts, resolved by `loadConfig` from the config, the files
 * it names and the environment. Neither a secret nor peers: open, as the
 * original.
 */
export interface ServerTrust {
  secret?: string;
  peers: PeerEntry[];
  /** PEM texts of the certificate and key. */
  tls?: { cert: string; key: string };
}

/** What a client presents and trusts, resolved by `loadConfig`. */
export interface ClientTrust {
  secret?: string;
  /** PEM text of the extra CA. */
  ca?: string;
}

/**
 * Every key a config.json may have, by mode: the README's configuration
 * table is checked against this (test/unit/readme_config_test.ts).
 */
export const CONFIG_KEYS = {
  server: Object.keys(serverSchema.shape),
  client: Object.keys(clientSchema.shape),
};

export type ServerConfig = z.infer<typeof serverSchema> & {
  trust: ServerTrust;
};
export type ClientConfig = z.infer<typeof clientSchema> & {
  url: string;
  trust: ClientTrust;
};
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
    throw new ConfigError(issueMessage(result.error.issues[0], input, file));
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
  if (parsed.mode === "server") {
    const peers = Object.entries(parsed.peers ?? {}).map(([name, entry]) => {
      if ((entry.token === undefined) === (entry.tokenFile === undefined)) {
        throw new ConfigError(
          `${file}: field "peers.${name}": expected exactly one of "token" and "tokenFile", found ${
            entry.token === undefined ? "neither" : "both"
          }`,
        );
      }
      return {
        name,
        token: entry.token ?? "",
        scripts: entry.scripts,
        commands: entry.commands,
      };
    });
    oneOf(file, parsed, "secret", "secretFile");
    return {
      config: {
        ...parsed,
        trust: { secret: parsed.secret, peers },
      },
      warnings,
    };
  }
  oneOf(file, parsed, "secret", "secretFile");
  if (
    (parsed.pin !== undefined || parsed.ca !== undefined) &&
    !/^wss:\/\//i.test(parsed.proxy)
  ) {
    throw new ConfigError(
      `${file}: field "${
        parsed.pin !== undefined ? "pin" : "ca"
      }": expected "proxy" to be a wss:// URL (TLS), found ${
        describe(parsed.proxy)
      }`,
    );
  }
  if (parsed.reconnectMinMs > parsed.reconnectMaxMs) {
    throw new ConfigError(
      `${file}: field "reconnectMinMs": expected at most reconnectMaxMs (${parsed.reconnectMaxMs}), found ${parsed.reconnectMinMs}`,
    );
  }
  return {
    config: {
      ...parsed,
      url: clientUrl(parsed.proxy, parsed.port, file),
      trust: { secret: parsed.secret },
    },
    warnings,
  };
}

/** Refuses a config that sets both of two alternative fields. */
function oneOf(
  file: string,
  parsed: Record<string, unknown>,
  a: string,
  b: string,
): void {
  if (parsed[a] !== undefined && parsed[b] !== undefined) {
    throw new ConfigError(
      `${file}: field "${b}": expected either "${a}" or "${b}", found both`,
    );
  }
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
