/**
 * glibc through FFI, as posix_spawn.ts uses it: the symbols it binds, the
 * constants of Linux on x86_64 and aarch64 it passes them, and the C data
 * (argv, envp, a wait status) it builds or reads.
 *
 * @module
 */

import { type ScriptEnd, signaled } from "./launcher.ts";

export const O_RDONLY = 0;
export const O_CLOEXEC = 0o2000000;
export const WNOHANG = 1;
export const ENOEXEC = 8;
export const ECHILD = 10;
export const POSIX_SPAWN_SETSIGDEF = 0x04;
export const POSIX_SPAWN_SETSIGMASK = 0x08;
export const POSIX_SPAWN_SETSID = 0x80;
/** Upper bounds of glibc's opaque types, which are 336, 80 and 128 bytes. */
export const SPAWNATTR_BYTES = 1024;
export const FILE_ACTIONS_BYTES = 512;
export const SIGSET_BYTES = 256;

export const SYMBOLS = {
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
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
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The functions of SYMBOLS, once bound. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/**
 * argv or envp: a NULL-ended array of pointers to NUL-terminated copies of
 * `strings`, all in one ArrayBuffer, whose memory V8 never moves. The caller
 * keeps the returned view alive until the call that uses it has returned.
 */
export function cStringArray(strings: Uint8Array[]): BigUint64Array {
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
export function firstString(array: BigUint64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteLength);
}

/** Marks values as used after an await, so they stay alive through it. */
export function keepAlive(..._values: unknown[]): void {}

/** What waitpid's status word says. */
export function decodeWaitStatus(status: number): ScriptEnd {
  const signal = status & 0x7f;
  return signal === 0
    ? { kind: "exited", code: (status >> 8) & 0xff }
    : signaled(signal);
}
