/**
 * Starting scripts with glibc's posix_spawn(3) through FFI: a process group
 * of their own (POSIX_SPAWN_SETSID) at the cost of Deno's cheapest spawn,
 * one vfork-style clone and one exec.
 *
 * The daemon then owns what Deno would otherwise do: it reaps its children
 * with waitpid(WNOHANG) on each SIGCHLD, and it reads their output from a
 * Unix socket connection (`OutputListener`) handed to the child as stdout
 * and stderr. Only Linux on x86_64 and aarch64 with glibc: the constants
 * below are theirs.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import {
  type Launcher,
  LaunchError,
  type LaunchRequest,
  type ScriptEnd,
  signaled,
  type StartedScript,
} from "./launcher.ts";
import { OutputListener, TOKEN_BYTES } from "./output_listener.ts";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;
const O_RDONLY = 0;
const WNOHANG = 1;
const ENOEXEC = 8;
const ECHILD = 10;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
/** sizeof(sun_path) in struct sockaddr_un. */
const SUN_PATH_BYTES = 108;
/** Upper bounds of glibc's opaque types, which are 336, 80 and 128 bytes. */
const SPAWNATTR_BYTES = 1024;
const FILE_ACTIONS_BYTES = 512;
const SIGSET_BYTES = 256;

const SYMBOLS = {
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigmask: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_setsigdefault: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_adddup2: {
    parameters: ["buffer", "i32", "i32"],
    result: "i32",
  },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // fcntl is variadic; with int arguments only, the fixed-argument call is
  // the same on both ABIs this runs on.
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const encoder = new TextEncoder();

/**
 * argv or envp: a NULL-ended array of pointers to NUL-terminated copies of
 * `strings`, all in one ArrayBuffer. An ArrayBuffer's memory never moves, and
 * passing the returned view to the call keeps the strings alive through it.
 */
function cStringArray(strings: Uint8Array[]): BigUint64Array {
  const tableBytes = (strings.length + 1) * 8;
  let size = tableBytes;
  for (const s of strings) size += s.length + 1;
  const buffer = new ArrayBuffer(size);
  const bytes = new Uint8Array(buffer);
  const pointers = new BigUint64Array(buffer, 0, strings.length + 1);
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
  let offset = tableBytes;
  strings.forEach((s, i) => {
    bytes.set(s, offset);
    pointers[i] = base + BigInt(offset);
    offset += s.length + 1;
  });
  return pointers;
}

/** The first string of a `cStringArray`, as a C string of its own. */
function firstString(array: BigUint64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteLength);
}

const cString = (text: string) => encoder.encode(`${text}\0`);
const BIN_SH = encoder.encode("/bin/sh");

/** What waitpid's status word says. */
function decodeWaitStatus(status: number): ScriptEnd {
  const signal = status & 0x7f;
  return signal === 0
    ? { kind: "exited", code: (status >> 8) & 0xff }
    : signaled(signal);
}

export class PosixSpawnLauncher implements Launcher {
  readonly description = "posix_spawn with POSIX_SPAWN_SETSID (FFI)";
  readonly #library: Deno.DynamicLibrary<typeof SYMBOLS>;
  readonly #libc: Libc;
  readonly #attributes = new Uint8Array(SPAWNATTR_BYTES);
  readonly #devNull = cString("/dev/null");
  readonly #socketAddress: Uint8Array;
  /** The daemon's environment, each entry encoded once. */
  readonly #baseEnv: [key: string, entry: Uint8Array][];
  readonly #output: OutputListener;
  readonly #fallback: Launcher;
  readonly #log: Logger;
  /** Children not yet reaped, and how to report their end. */
  readonly #children = new Map<number, (end: ScriptEnd) => void>();
  readonly #waitStatus = new Int32Array(1);
  #reaping = false;

  /**
   * Throws if FFI, glibc or the output socket is not available; the caller
   * then uses another launcher. `fallback` starts a script whose output
   * connection cannot be made (the listener's backlog is full).
   */
  constructor(log: Logger, fallback: Launcher) {
    if (
      Deno.build.os !== "linux" ||
      !["x86_64", "aarch64"].includes(Deno.build.arch)
    ) {
      throw new Error(`not built for ${Deno.build.os}/${Deno.build.arch}`);
    }
    this.#log = log;
    this.#fallback = fallback;
    this.#library = Deno.dlopen("libc.so.6", SYMBOLS);
    this.#libc = this.#library.symbols;
    try {
      this.#check(this.#libc.posix_spawnattr_init(this.#attributes), "init");
      const empty = new Uint8Array(SIGSET_BYTES);
      const all = new Uint8Array(SIGSET_BYTES);
      this.#libc.sigemptyset(empty);
      this.#libc.sigfillset(all);
      // The child starts with no signal blocked and every signal at its
      // default: Deno ignores SIGPIPE, which a script must not inherit.
      this.#check(
        this.#libc.posix_spawnattr_setsigmask(this.#attributes, empty),
        "setsigmask",
      );
      this.#check(
        this.#libc.posix_spawnattr_setsigdefault(this.#attributes, all),
        "setsigdefault",
      );
      // glibc before 2.26 refuses POSIX_SPAWN_SETSID here.
      this.#check(
        this.#libc.posix_spawnattr_setflags(
          this.#attributes,
          POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF,
        ),
        "setflags(POSIX_SPAWN_SETSID)",
      );
      this.#output = new OutputListener(log);
    } catch (error) {
      this.#library.close();
      throw error;
    }
    const path = encoder.encode(this.#output.path);
    if (path.length >= SUN_PATH_BYTES) {
      this.#output.close();
      this.#library.close();
      throw new Error(`output socket path is too long: ${this.#output.path}`);
    }
    this.#socketAddress = new Uint8Array(2 + SUN_PATH_BYTES);
    new DataView(this.#socketAddress.buffer).setUint16(0, AF_UNIX, true);
    this.#socketAddress.set(path, 2);
    this.#baseEnv = Object.entries(Deno.env.toObject()).map((
      [key, value],
    ) => [key, encoder.encode(`${key}=${value}`)]);
    Deno.addSignalListener("SIGCHLD", this.#reap);
  }

  #check(result: number, what: string): void {
    if (result !== 0) {
      throw new Error(`posix_spawnattr_${what}: ${this.#strerror(result)}`);
    }
  }

  #strerror(errno: number): string {
    const text = this.#libc.strerror(errno);
    return text === null
      ? `error ${errno}`
      : Deno.UnsafePointerView.getCString(text);
  }

  #errno(): number {
    const location = this.#libc.__errno_location();
    return location === null
      ? 0
      : new Deno.UnsafePointerView(location).getInt32();
  }

  start(request: LaunchRequest): StartedScript {
    const stdout = this.#connectOutput(`${request.tag} stdout`);
    let stderr = -1;
    try {
      if (stdout >= 0) stderr = this.#connectOutput(`${request.tag} stderr`);
    } catch (error) {
      this.#libc.close(stdout);
      throw error;
    }
    if (stderr < 0) {
      if (stdout >= 0) this.#libc.close(stdout);
      this.#log.warn(
        `${request.tag}: output socket busy, starting with ${this.#fallback.description}`,
      );
      return this.#fallback.start(request);
    }
    const actions = new Uint8Array(FILE_ACTIONS_BYTES);
    const libc = this.#libc;
    libc.posix_spawn_file_actions_init(actions);
    let error: number;
    const pidOut = new Int32Array(1);
    try {
      libc.posix_spawn_file_actions_addopen(
        actions,
        0,
        this.#devNull,
        O_RDONLY,
        0,
      );
      libc.posix_spawn_file_actions_adddup2(actions, stdout, 1);
      libc.posix_spawn_file_actions_adddup2(actions, stderr, 2);
      const envp = cStringArray([
        ...Object.entries(request.env).map(([key, value]) =>
          encoder.encode(`${key}=${value}`)
        ),
        ...this.#baseEnv.filter(([key]) => !(key in request.env)).map((
          [, entry],
        ) => entry),
      ]);
      const path = encoder.encode(request.path);
      const arg = encoder.encode(request.arg);
      error = this.#spawn(pidOut, actions, [path, arg], envp);
      if (error === ENOEXEC) {
        // No "#!" line: /bin/sh runs it, as execvp(3) does for Deno.Command
        // and for the original daemon.
        error = this.#spawn(pidOut, actions, [BIN_SH, path, arg], envp);
      }
    } finally {
      libc.posix_spawn_file_actions_destroy(actions);
      libc.close(stdout);
      libc.close(stderr);
    }
    if (error !== 0) {
      // The daemon's ends are closed: the listener sees two empty streams.
      throw new LaunchError(this.#strerror(error));
    }
    const pid = pidOut[0];
    const end = new Promise<ScriptEnd>((resolve) => {
      this.#children.set(pid, resolve);
    });
    // It may have ended already, its SIGCHLD come before it was listed.
    this.#reap();
    return { pid, end };
  }

  /** posix_spawn(argv[0], argv, envp) in a new session; 0 or an errno. */
  #spawn(
    pidOut: Int32Array,
    actions: Uint8Array,
    args: Uint8Array[],
    envp: BigUint64Array,
  ): number {
    const argv = cStringArray(args);
    return this.#libc.posix_spawn(
      pidOut,
      firstString(argv),
      actions,
      this.#attributes,
      argv,
      envp,
    );
  }

  /**
   * A blocking socket connected to the output listener, announced as the
   * stream whose lines get `tag`; -1 if the listener's backlog is full. The
   * connect is non-blocking so that it can never stall the event loop that
   * accepts.
   */
  #connectOutput(tag: string): number {
    const libc = this.#libc;
    const fd = libc.socket(
      AF_UNIX,
      SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
      0,
    );
    if (fd < 0) {
      throw new LaunchError(`socket: ${this.#strerror(this.#errno())}`);
    }
    const address = this.#socketAddress;
    if (libc.connect(fd, address, address.length) !== 0) {
      const errno = this.#errno();
      libc.close(fd);
      this.#log.debug(`output socket connect: ${this.#strerror(errno)}`);
      return -1;
    }
    // The script writes to this socket and must block, not fail, when the
    // daemon reads slower than it writes.
    libc.fcntl(fd, F_SETFL, libc.fcntl(fd, F_GETFL, 0) & ~O_NONBLOCK);
    libc.write(fd, this.#output.announce(tag), BigInt(TOKEN_BYTES));
    return fd;
  }

  /** Collects every child of ours that has ended. */
  #reap = (): void => {
    if (this.#reaping) return;
    this.#reaping = true;
    try {
      for (const [pid, resolve] of this.#children) {
        const result = this.#libc.waitpid(pid, this.#waitStatus, WNOHANG);
        if (result === pid) {
          this.#children.delete(pid);
          resolve(decodeWaitStatus(this.#waitStatus[0]));
        } else if (result < 0 && this.#errno() === ECHILD) {
          this.#children.delete(pid);
          resolve({ kind: "lost", reason: "its exit status was lost" });
        }
      }
    } finally {
      this.#reaping = false;
    }
  };

  close(): Promise<void> {
    Deno.removeSignalListener("SIGCHLD", this.#reap);
    this.#output.close();
    this.#library.close();
    return this.#fallback.close();
  }
}
