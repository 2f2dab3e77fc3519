/**
 * Starting scripts with glibc's posix_spawn(3) through FFI: a session and
 * process group of their own (POSIX_SPAWN_SETSID) at the cost of Deno's
 * cheapest spawn, one vfork-style clone and one exec.
 *
 * The daemon then owns what Deno would otherwise do:
 * - Output: a pipe per stream, made with pipe2(2). The daemon reads its end
 *   through a `node:net` Socket on the fd, which polls it like any socket;
 *   Deno's own file reads would hold one of its 32 blocking threads per
 *   pipe, so 16 scripts whose children keep their output open would stall
 *   every later start. A pipe, not a socket: a script may open /dev/stdout
 *   or /dev/stderr, which Linux refuses for a socket.
 * - Exit: waitpid(WNOHANG) for each child of ours on SIGCHLD.
 *
 * posix_spawn itself runs on a worker thread (a `nonblocking` symbol): the
 * event loop goes on while the child execs, and the main thread never
 * vforks, which V8 does not expect (its sampling profiler crashed the daemon
 * when it did).
 *
 * Only Linux on x86_64 and aarch64 with glibc: the constants (`libc.ts`) are
 * theirs.
 *
 * @module
 */

import { Socket } from "node:net";
import type { Logger } from "../log.ts";
import {
  type Launcher,
  LaunchError,
  type LaunchRequest,
  OutputLines,
  type OutputStream,
  type ScriptEnd,
  type StartedScript,
} from "./launcher.ts";
import {
  cStringArray,
  decodeWaitStatus,
  ECHILD,
  ENOEXEC,
  FILE_ACTIONS_BYTES,
  firstString,
  keepAlive,
  type Libc,
  O_CLOEXEC,
  O_RDONLY,
  POSIX_SPAWN_SETSID,
  POSIX_SPAWN_SETSIGDEF,
  POSIX_SPAWN_SETSIGMASK,
  SIGSET_BYTES,
  SPAWNATTR_BYTES,
  SYMBOLS,
  WNOHANG,
} from "./libc.ts";

const encoder = new TextEncoder();

const BIN_SH = encoder.encode("/bin/sh");
const DEV_NULL = new Uint8Array(new ArrayBuffer(16));
DEV_NULL.set(encoder.encode("/dev/null"));

/** One output pipe: the daemon's end and the script's end. */
interface OutputPipe {
  readFd: number;
  writeFd: number;
}

export class PosixSpawnLauncher implements Launcher {
  readonly description = "posix_spawn with POSIX_SPAWN_SETSID (FFI)";
  readonly #library: Deno.DynamicLibrary<typeof SYMBOLS>;
  readonly #libc: Libc;
  readonly #attributes = new Uint8Array(new ArrayBuffer(SPAWNATTR_BYTES));
  /** The daemon's environment, each entry encoded once. */
  readonly #baseEnv: [key: string, entry: Uint8Array][];
  readonly #log: Logger;
  /** Children not yet reaped, and how to report their end. */
  readonly #children = new Map<number, (end: ScriptEnd) => void>();
  readonly #waitStatus = new Int32Array(new ArrayBuffer(8));
  /** Output and input streams still open, closed by close(). */
  readonly #readers = new Set<Socket>();

  /**
   * Throws if FFI or glibc (2.26 or later) is not available; the caller
   * then uses another launcher.
   */
  /** @param env the environment every script starts with, before its own. */
  constructor(log: Logger, env: Record<string, string>) {
    if (
      Deno.build.os !== "linux" ||
      !["x86_64", "aarch64"].includes(Deno.build.arch)
    ) {
      throw new Error(`not built for ${Deno.build.os}/${Deno.build.arch}`);
    }
    this.#log = log;
    this.#library = Deno.dlopen("libc.so.6", SYMBOLS);
    this.#libc = this.#library.symbols;
    try {
      const libc = this.#libc;
      const attributes = this.#attributes;
      this.#check(
        libc.posix_spawnattr_init(attributes),
        "posix_spawnattr_init",
      );
      const none = new Uint8Array(new ArrayBuffer(SIGSET_BYTES));
      const all = new Uint8Array(new ArrayBuffer(SIGSET_BYTES));
      libc.sigemptyset(none);
      libc.sigfillset(all);
      // The child starts with no signal blocked and every signal at its
      // default: Deno ignores SIGPIPE, which a script must not inherit.
      this.#check(
        libc.posix_spawnattr_setsigmask(attributes, none),
        "posix_spawnattr_setsigmask",
      );
      this.#check(
        libc.posix_spawnattr_setsigdefault(attributes, all),
        "posix_spawnattr_setsigdefault",
      );
      // glibc before 2.26 refuses POSIX_SPAWN_SETSID here.
      this.#check(
        libc.posix_spawnattr_setflags(
          attributes,
          POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF,
        ),
        "posix_spawnattr_setflags(POSIX_SPAWN_SETSID)",
      );
    } catch (error) {
      this.#library.close();
      throw error;
    }
    this.#baseEnv = Object.entries(env).map((
      [key, value],
    ) => [key, encoder.encode(`${key}=${value}`)]);
    Deno.addSignalListener("SIGCHLD", this.#reap);
  }

  #check(result: number, what: string): void {
    if (result !== 0) {
      throw new LaunchError(`${what}: ${this.#strerror(result)}`);
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

  /** A pipe, both ends close-on-exec. */
  #openPipe(): OutputPipe {
    const fds = new Int32Array(new ArrayBuffer(8));
    if (this.#libc.pipe2(fds, O_CLOEXEC) !== 0) {
      throw new LaunchError(`pipe2: ${this.#strerror(this.#errno())}`);
    }
    return { readFd: fds[0], writeFd: fds[1] };
  }

  async start(request: LaunchRequest): Promise<StartedScript> {
    const libc = this.#libc;
    const pipes: OutputPipe[] = [];
    const actions = new Uint8Array(new ArrayBuffer(FILE_ACTIONS_BYTES));
    let actionsReady = false;
    let pid: number;
    let input: OutputPipe | undefined;
    try {
      // One at a time: if the second fails, the first is closed below.
      pipes.push(this.#openPipe());
      pipes.push(this.#openPipe());
      const [stdout, stderr] = pipes;
      if (request.stdin !== undefined) {
        input = this.#openPipe();
        // The script reads one end; the daemon writes the other.
        pipes.push({ readFd: input.writeFd, writeFd: input.readFd });
      }
      this.#check(
        libc.posix_spawn_file_actions_init(actions),
        "posix_spawn_file_actions_init",
      );
      actionsReady = true;
      this.#check(
        input === undefined
          ? libc.posix_spawn_file_actions_addopen(
            actions,
            0,
            DEV_NULL,
            O_RDONLY,
            0,
          )
          : libc.posix_spawn_file_actions_adddup2(actions, input.readFd, 0),
        "posix_spawn_file_actions_addopen",
      );
      this.#check(
        libc.posix_spawn_file_actions_adddup2(actions, stdout.writeFd, 1),
        "posix_spawn_file_actions_adddup2",
      );
      this.#check(
        libc.posix_spawn_file_actions_adddup2(actions, stderr.writeFd, 2),
        "posix_spawn_file_actions_adddup2",
      );
      const envp = cStringArray([
        ...Object.entries(request.env).map(([key, value]) =>
          encoder.encode(`${key}=${value}`)
        ),
        ...this.#baseEnv.filter(([key]) => !Object.hasOwn(request.env, key))
          .map(([, entry]) => entry),
      ]);
      const path = encoder.encode(request.path);
      const arg = encoder.encode(request.arg);
      let result = await this.#spawn(actions, [path, arg], envp);
      if (result.error === ENOEXEC) {
        // No "#!" line: /bin/sh runs it, as execvp(3) does for Deno.Command
        // and for the original daemon.
        result = await this.#spawn(actions, [BIN_SH, path, arg], envp);
      }
      if (result.error !== 0) {
        throw new LaunchError(this.#strerror(result.error));
      }
      pid = result.pid;
    } catch (error) {
      for (const pipe of pipes) libc.close(pipe.readFd);
      throw error;
    } finally {
      if (actionsReady) libc.posix_spawn_file_actions_destroy(actions);
      // The script holds its own copies; the daemon's go, so that the
      // reader sees the end of the stream when the script's copies close.
      for (const pipe of pipes) libc.close(pipe.writeFd);
    }
    const outputEnded = Promise.all([
      this.#readOutput(
        pipes[0].readFd,
        `${request.tag} stdout`,
        "stdout",
        request,
      ),
      this.#readOutput(
        pipes[1].readFd,
        `${request.tag} stderr`,
        "stderr",
        request,
      ),
    ]).then(() => {});
    if (input !== undefined) this.#writeInput(input.writeFd, request.stdin!);
    const end = new Promise<ScriptEnd>((resolve) => {
      this.#children.set(pid, resolve);
    });
    // It may have ended before it was listed, its SIGCHLD already handled.
    this.#reapOne(pid);
    return { pid, end, outputEnded };
  }

  /** posix_spawn(argv[0], argv, envp) in a new session, off the main thread. */
  async #spawn(
    actions: Uint8Array,
    args: Uint8Array[],
    envp: BigUint64Array,
  ): Promise<{ error: number; pid: number }> {
    const argv = cStringArray(args);
    const path = firstString(argv);
    const pid = new Int32Array(new ArrayBuffer(8));
    const error = await this.#libc.posix_spawn(
      pid,
      path,
      actions,
      this.#attributes,
      argv,
      envp,
    );
    keepAlive(argv, path, envp, actions, pid);
    return { error, pid: pid[0] };
  }

  /**
   * Logs a script's output stream line by line until it ends; resolves
   * then.
   */
  #readOutput(
    fd: number,
    tag: string,
    stream: OutputStream,
    { onOutput, onLine }: LaunchRequest,
  ): Promise<void> {
    const lines = new OutputLines(
      this.#log,
      tag,
      onLine && ((line) => onLine(stream, line)),
    );
    // The socket owns the fd from here, and closes it at the end.
    const reader = new Socket({ fd, readable: true, writable: false });
    this.#readers.add(reader);
    const ended = Promise.withResolvers<void>();
    reader.on("data", (chunk: Uint8Array) => {
      onOutput?.(stream, chunk);
      lines.push(chunk);
    });
    reader.on("error", (error: Error) => {
      this.#log.debug(`${tag}: ${error.message}`);
    });
    reader.on("close", () => {
      this.#readers.delete(reader);
      lines.end();
      ended.resolve();
    });
    return ended.promise;
  }

  /**
   * Writes `bytes` to the script's stdin and closes it. A script that exits
   * without reading all of it ends the write with EPIPE (Deno ignores
   * SIGPIPE), which is nobody's error.
   */
  #writeInput(fd: number, bytes: Uint8Array): void {
    const writer = new Socket({ fd, readable: false, writable: true });
    this.#readers.add(writer);
    writer.on("error", () => writer.destroy());
    writer.on("close", () => this.#readers.delete(writer));
    writer.end(bytes);
  }

  /** Reports the end of `pid` if it has ended. */
  #reapOne(pid: number): void {
    const resolve = this.#children.get(pid);
    if (resolve === undefined) return;
    const result = this.#libc.waitpid(pid, this.#waitStatus, WNOHANG);
    if (result === pid) {
      this.#children.delete(pid);
      resolve(decodeWaitStatus(this.#waitStatus[0]));
    } else if (result < 0 && this.#errno() === ECHILD) {
      this.#children.delete(pid);
      resolve({ kind: "lost", reason: "its exit status was lost" });
    }
  }

  /** On SIGCHLD (several may arrive as one): collects every ended child. */
  #reap = (): void => {
    for (const pid of [...this.#children.keys()]) this.#reapOne(pid);
  };

  /**
   * Stops reading output and listening for SIGCHLD. Call it after
   * ScriptRunner.drain, when no script runs: a child still running is never
   * reported.
   */
  close(): Promise<void> {
    Deno.removeSignalListener("SIGCHLD", this.#reap);
    for (const reader of this.#readers) reader.destroy();
    this.#library.close();
    return Promise.resolve();
  }
}
