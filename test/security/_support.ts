/**
 * What the security tests share: daemons started in their own prefixes (a
 * server's ready line may say wss://, which `DaemonProcess.start` does not
 * read), random secrets, a check that no log line holds a secret, a raw HTTP
 * and WebSocket connection written by hand (for upgrade requests the browser
 * API cannot send), and a TLS listener that counts what a client sends after
 * the handshake.
 *
 * Every process, socket and listener is closed by `Symbol.asyncDispose`, so
 * the op and resource sanitizers pass.
 *
 * @module
 */

import { clientFrame, indexOfHeadEnd, Opcode } from "../helpers/stalled_ws.ts";
import { join } from "node:path";
import {
  clientConfig,
  DaemonProcess,
  PERMISSIONS,
  Prefix,
  serverConfig,
  type StartOptions,
} from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { assert, assertEquals } from "../helpers/assert.ts";
import { deadline, until } from "../helpers/wait.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = join(ROOT, "src/main.ts");

/** Both ready lines: `listening on ws://…` or `wss://…`, or `server …`. */
const READY =
  /ready: ws-daemon \S+, (server|client) mode, (?:listening on (wss?:\/\/\S+)|server \S+), local socket (\S+)/;

/** A random secret of 40 characters, different every call. */
export function newSecret(label = "s"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${label}-${hex}`.slice(0, 40);
}

/**
 * Starts a daemon on `prefix` and waits for its ready line, ws:// or wss://;
 * fills in `socket` and `url` as `DaemonProcess.start` does.
 */
export async function startDaemon(
  prefix: string | Prefix,
  options: StartOptions = {},
): Promise<DaemonProcess> {
  const daemon = await DaemonProcess.start(prefix, {
    ...options,
    waitReady: false,
  });
  try {
    const line = await daemon.waitForLog(READY, options.timeoutMs ?? 15_000);
    const match = line.match(READY)!;
    daemon.url = match[2] ?? "";
    daemon.socket = match[3];
  } catch (error) {
    await daemon.kill();
    const message = (error as Error).message;
    throw new Error(
      message.includes("--- daemon log ---")
        ? message
        : `${message}\n--- daemon log ---\n${daemon.log()}`,
    );
  }
  return daemon;
}

export interface RunOptions extends StartOptions {
  /** Fixture scripts to copy in (default: all). */
  scripts?: string[];
  /** Called with the prefix before the daemon starts (files, modes). */
  setup?: (prefix: Prefix) => Promise<void>;
}

/** A daemon in a temp prefix of its own; both go with `asyncDispose`. */
export class Running implements AsyncDisposable {
  constructor(readonly prefix: Prefix, readonly daemon: DaemonProcess) {}

  get socket(): string {
    return this.daemon.socket;
  }

  get port(): number {
    return this.daemon.port;
  }

  /** One request on a fresh local connection, and its answer. */
  async request(
    message: Record<string, unknown>,
    timeoutMs = 10_000,
  ): Promise<Record<string, unknown> & { status: number }> {
    await using local = await LocalClient.connect(this.socket);
    return await local.request(message, timeoutMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.daemon.kill();
    await this.prefix[Symbol.asyncDispose]();
  }
}

/** Starts a daemon with `config` (written as it is) in a new prefix. */
export async function run(
  config: unknown,
  options: RunOptions = {},
): Promise<Running> {
  const prefix = await Prefix.create(config, { scripts: options.scripts });
  try {
    await options.setup?.(prefix);
    return new Running(prefix, await startDaemon(prefix, options));
  } catch (error) {
    await prefix[Symbol.asyncDispose]();
    throw error;
  }
}

/** A server on loopback (port 0) with `fields`. */
export function runServer(
  fields: Record<string, unknown> = {},
  options: RunOptions = {},
): Promise<Running> {
  return run(serverConfig(fields), options);
}

/** A client of `port` on loopback with `fields` (`proxy` may be a URL). */
export function runClient(
  port: number,
  fields: Record<string, unknown> = {},
  options: RunOptions = {},
): Promise<Running> {
  return run(clientConfig(port, fields), options);
}

/** Waits for the `n`th log line (1-based) matching `pattern`. */
export async function waitForNth(
  daemon: DaemonProcess,
  pattern: RegExp,
  n: number,
  timeoutMs = 10_000,
): Promise<string> {
  const end = Date.now() + timeoutMs;
  let from = 0;
  let line = "";
  for (let i = 0; i < n; i++) {
    line = await daemon.waitForLog(
      pattern,
      Math.max(1, end - Date.now()),
      from,
    );
    from = daemon.lines.indexOf(line, from) + 1;
  }
  return line;
}

/** Asserts that no log line of `daemons` holds any of `secrets`. */
export function assertNoSecretInLogs(
  daemons: DaemonProcess[],
  secrets: string[],
): void {
  for (const daemon of daemons) {
    assert(daemon.lines.length > 0, `${daemon.prefix}: the log is empty`);
    for (const line of daemon.lines) {
      for (const secret of secrets) {
        assert(
          !line.includes(secret),
          `a log line of ${daemon.prefix} holds a secret: ${line}`,
        );
      }
    }
  }
}

/** Whether a file exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** `deno run <permissions> src/main.ts <args>`, as the binary would run. */
export async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--frozen", "--quiet", ...PERMISSIONS, MAIN, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...env },
    stdin: "null",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

// --- Raw HTTP and WebSocket ------------------------------------------------

/** A WebSocket key: 16 random bytes in base64. */
export function newKey(): string {
  return btoa(
    String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))),
  );
}

export interface UpgradeRequest {
  port: number;
  method?: string;
  path?: string;
  /** Headers to add or, with `null`, to leave out of the usual upgrade set. */
  headers?: Record<string, string | null>;
}

/** The head of an upgrade request: the usual headers, changed by `headers`. */
export function upgradeHead(request: UpgradeRequest): string {
  const headers: Record<string, string | null> = {
    Host: `127.0.0.1:${request.port}`,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": newKey(),
    "Sec-WebSocket-Version": "13",
  };
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    const existing = Object.keys(headers).find((key) =>
      key.toLowerCase() === name.toLowerCase()
    );
    if (existing !== undefined) delete headers[existing];
    headers[name] = value;
  }
  const lines = Object.entries(headers)
    .filter(([, value]) => value !== null)
    .map(([name, value]) => `${name}: ${value}\r\n`);
  return `${request.method ?? "GET"} ${request.path ?? "/"} HTTP/1.1\r\n${
    lines.join("")
  }\r\n`;
}

export { clientFrame, Opcode };

/** A masked text frame. */
export function textFrame(text: string): Uint8Array {
  return clientFrame(Opcode.TEXT, encoder.encode(text));
}

export interface ResponseHead {
  /** e.g. `HTTP/1.1 401 Unauthorized`. */
  statusLine: string;
  status: number;
  headers: Headers;
}

export interface ServerFrame {
  opcode: number;
  payload: Uint8Array;
  /** For a close frame: its code, if it has one. */
  code?: number;
  /** Text frames and close reasons, decoded. */
  text: string;
}

/**
 * A TCP connection that writes exactly what a test gives it and reads an
 * HTTP response head, then (after a 101) server frames, only when asked.
 */
export class RawHttp implements AsyncDisposable {
  readonly conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #ended = false;
  #closed = false;
  #reading: Promise<void> | undefined;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async connect(port: number): Promise<RawHttp> {
    return new RawHttp(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Connects, sends `data` and reads the response head. */
  static async exchange(
    port: number,
    data: string | Uint8Array,
    timeoutMs = 5_000,
  ): Promise<ResponseHead> {
    await using raw = await RawHttp.connect(port);
    await raw.write(data);
    return await raw.readHead(timeoutMs);
  }

  async write(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    while (bytes.length > 0) {
      bytes = bytes.subarray(await this.conn.write(bytes));
    }
  }

  /** Reads up to the blank line that ends a response head. */
  readHead(timeoutMs = 5_000): Promise<ResponseHead> {
    const read = async () => {
      while (true) {
        const end = indexOfHeadEnd(this.#buffer);
        if (end !== -1) {
          const text = decoder.decode(this.#take(end + 4));
          const [statusLine, ...rest] = text.slice(0, -4).split("\r\n");
          const headers = new Headers();
          for (const line of rest) {
            const colon = line.indexOf(":");
            headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
          }
          const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
          return { statusLine, status, headers };
        }
        if (!await this.#fill()) {
          throw new Error(
            `the server closed the connection before a response head (got ${
              JSON.stringify(decoder.decode(this.#buffer))
            })`,
          );
        }
      }
    };
    return deadline(read(), timeoutMs, "a response head");
  }

  /** Reads the next server frame (unmasked), skipping the server's pings. */
  async readFrame(timeoutMs = 5_000): Promise<ServerFrame> {
    const end = Date.now() + timeoutMs;
    while (true) {
      const frame = await this.#readAnyFrame(Math.max(1, end - Date.now()));
      if (frame.opcode !== Opcode.PING) return frame;
    }
  }

  /** Reads the next server frame (unmasked), whatever it is. */
  #readAnyFrame(timeoutMs: number): Promise<ServerFrame> {
    const need = async (n: number) => {
      while (this.#buffer.length < n) {
        if (!await this.#fill()) {
          throw new Error("the server closed the connection mid-frame");
        }
      }
    };
    const read = async (): Promise<ServerFrame> => {
      await need(2);
      const opcode = this.#buffer[0] & 0x0f;
      assertEquals(this.#buffer[1] & 0x80, 0, "a server frame is not masked");
      let length = this.#buffer[1] & 0x7f;
      let header = 2;
      if (length === 126) {
        await need(4);
        length = (this.#buffer[2] << 8) | this.#buffer[3];
        header = 4;
      } else if (length === 127) {
        await need(10);
        const view = new DataView(
          this.#buffer.buffer,
          this.#buffer.byteOffset,
          10,
        );
        length = Number(view.getBigUint64(2));
        header = 10;
      }
      await need(header + length);
      this.#take(header);
      const payload = this.#take(length).slice();
      if (opcode === Opcode.CLOSE) {
        return {
          opcode,
          payload,
          code: payload.length >= 2
            ? (payload[0] << 8) | payload[1]
            : undefined,
          text: decoder.decode(payload.subarray(2)),
        };
      }
      return { opcode, payload, text: decoder.decode(payload) };
    };
    return deadline(read(), timeoutMs, "a frame from the server");
  }

  /** Frames up to and including the close frame, pings skipped. */
  async readUntilClose(timeoutMs = 5_000): Promise<ServerFrame[]> {
    const end = Date.now() + timeoutMs;
    const frames: ServerFrame[] = [];
    while (true) {
      const frame = await this.readFrame(Math.max(1, end - Date.now()));
      frames.push(frame);
      if (frame.opcode === Opcode.CLOSE) return frames;
    }
  }

  /** Resolves when the server has ended the connection. */
  ended(timeoutMs = 5_000): Promise<void> {
    const read = async () => {
      while (await this.#fill()) this.#buffer = new Uint8Array(0);
    };
    return deadline(read(), timeoutMs, "the server to end the connection");
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#reading?.catch(() => {});
  }

  #take(n: number): Uint8Array {
    const bytes = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return bytes;
  }

  /** Reads once more into the buffer; false at the end of the input. */
  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    const chunk = new Uint8Array(64 * 1024);
    // A reset, or close() under a pending read, is the end of the input too.
    const reading = this.conn.read(chunk).catch(() => null);
    this.#reading = reading.then(() => {});
    const read = await reading;
    if (read === null) {
      this.#ended = true;
      return false;
    }
    const joined = new Uint8Array(this.#buffer.length + read);
    joined.set(this.#buffer);
    joined.set(chunk.subarray(0, read), this.#buffer.length);
    this.#buffer = joined;
    return true;
  }
}

// --- A TLS listener that counts --------------------------------------------

/** One connection a {@linkcode TlsCounter} accepted. */
export interface CountedConnection {
  /** Whether the TLS handshake completed. */
  handshaken: boolean;
  /** Application bytes received after the handshake. */
  bytes: number;
  /** Those bytes, decoded. */
  text: string;
  /** Whether the client has gone (end of input, reset, or close()). */
  done: boolean;
}

/**
 * A TLS listener on 127.0.0.1 with `cert`/`key` that completes handshakes,
 * never answers, and records what each client sends.
 */
export class TlsCounter implements AsyncDisposable {
  readonly connections: CountedConnection[] = [];
  readonly #listener: Deno.TlsListener;
  readonly #open = new Set<Deno.TlsConn>();
  readonly #handlers: Promise<void>[] = [];
  readonly #accepting: Promise<void>;

  constructor(tls: { certPem: string; keyPem: string }) {
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: tls.certPem,
      key: tls.keyPem,
    });
    this.#listener = listener;
    this.#accepting = (async () => {
      try {
        for await (const conn of listener) {
          this.#handlers.push(this.#handle(conn));
        }
      } catch {
        // The listener was closed.
      }
    })();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  /** Connections whose client has gone, after a completed handshake. */
  get finished(): CountedConnection[] {
    return this.connections.filter((c) => c.handshaken && c.done);
  }

  /** Waits until `check` holds (polled: no event announces a byte count). */
  async waitFor(
    check: () => boolean,
    what: string,
    timeoutMs = 10_000,
  ): Promise<void> {
    await until(() => check(), timeoutMs, what);
  }

  async #handle(conn: Deno.TlsConn): Promise<void> {
    this.#open.add(conn);
    const record: CountedConnection = {
      handshaken: false,
      bytes: 0,
      text: "",
      done: false,
    };
    this.connections.push(record);
    try {
      await conn.handshake();
      record.handshaken = true;
      const buffer = new Uint8Array(16 * 1024);
      for (
        let n = await conn.read(buffer);
        n !== null;
        n = await conn.read(buffer)
      ) {
        record.bytes += n;
        record.text += decoder.decode(buffer.subarray(0, n));
      }
    } catch {
      // A reset, or a client that hung up without close_notify: the end.
    } finally {
      record.done = true;
      this.#open.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const conn of this.#open) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await Promise.all(this.#handlers);
  }
}
