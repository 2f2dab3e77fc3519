/**
 * Seeded generators of hostile inputs for `fuzz_test.ts`: local socket lines,
 * WebSocket frames, raw TCP bytes and malformed HTTP upgrade requests.
 *
 * Everything comes from {@linkcode Rng} (mulberry32), so a seed replays the
 * same inputs. Each connection of the fuzz test gets its own generator,
 * seeded by {@linkcode mixSeed}(seed, stream, index), so one connection's
 * inputs can be rebuilt without replaying the others.
 *
 * The only scripts the test's prefixes hold are `noop` and `exit-with`; other
 * fixture names (`sleep-exit`, `kill-self`, …) appear only as hostile names
 * that must answer -1, so nothing slow runs. No generator's text holds the
 * words the test looks for in the daemons' logs ("Uncaught", "RangeError",
 * "Maximum call stack"), so an input echoed into a log line cannot fake a
 * crash (random bytes could, at odds of about 2^-64 per position).
 *
 * @module
 */

const encoder = new TextEncoder();

/** mulberry32: a small, fast, seeded 32-bit PRNG. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    let total = 0;
    for (const [, w] of entries) total += w;
    let x = this.next() * total;
    for (const [key, w] of entries) {
      x -= w;
      if (x < 0) return key;
    }
    return entries[entries.length - 1][0];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const word = (this.next() * 4294967296) >>> 0;
      out[i] = word;
      if (i + 1 < n) out[i + 1] = word >>> 8;
      if (i + 2 < n) out[i + 2] = word >>> 16;
      if (i + 3 < n) out[i + 3] = word >>> 24;
    }
    return out;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** `n` characters drawn from `alphabet`. */
  string(n: number, alphabet = ALNUM): string {
    let out = "";
    for (let i = 0; i < n; i++) out += alphabet[this.int(alphabet.length)];
    return out;
  }
}

const ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A 32-bit seed from several numbers (murmur3's finaliser over each). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    h = Math.imul(h ^ (part >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** What the generators need to know about the daemons under test. */
export interface FuzzContext {
  /** The daemons' `maxMessageBytes` (the default, 1 MiB). */
  maxMessageBytes: number;
  /** The shared secret, for the authenticated raw HTTP requests. */
  secret: string;
}

/** One line (or line-like chunk) for a local socket. */
export interface LocalInput {
  /** The generator that made it, for the counts and for failure reports. */
  kind: string;
  /** The bytes to write, usually ending in "\n". */
  bytes: Uint8Array;
  /**
   * Whether the daemon owes exactly one answer for it: a JSON text built as
   * such on one line (any size: an oversize line is answered -4). Garbage
   * (invalid UTF-8, raw NUL, mutations, lines cut short) owes nothing the
   * test relies on.
   */
  owed: boolean;
}

// ---- building blocks --------------------------------------------------------

/** Names that may run: the only scripts in the test prefixes. */
const RUNNABLE = ["noop", "exit-with"] as const;

/** Ids drawn from a small pool, so forged STATUS frames collide with them. */
const ID_POOL: readonly unknown[] = [
  "1",
  "a",
  "",
  "job-42",
  1,
  0,
  -1,
  null,
  true,
];

const HOSTILE_NAMES: readonly string[] = [
  "../config.json",
  "../../etc/passwd",
  "../ws-daemon.sock",
  "..",
  ".",
  "",
  " ",
  "-rf",
  "--help",
  "-",
  ".hidden",
  ".noop",
  "..noop",
  "noop/",
  "/noop",
  "scripts/noop",
  "noop/../noop",
  "/bin/sh",
  "./noop",
  "noop\u0000",
  "\u0000noop",
  "no\u0000op",
  "noop\n",
  "noop\r",
  "noop ",
  " noop",
  "NOOP",
  "noop\t",
  "config.json",
  "ws-daemon.sock",
  "sleep-exit",
  "kill-self",
  "spawn-child",
  "record",
  "not-executable",
  "$(touch pwned)",
  "`id`",
  "noop;id",
  "noop|id",
  "%s%s%s%n",
  "\u202enoop",
  "noop\u200b",
  "\ud800",
  "\udfff",
  "\ufeffnoop",
  "exit-with\u0000../x",
  "&cmd ",
  "+cmd\u0000",
  "&CMD",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "x".repeat(255),
  "x".repeat(256),
  "x".repeat(300),
  "é".repeat(128),
  "😀".repeat(64),
  "a/".repeat(150),
  "../".repeat(100),
];

const CODES: readonly string[] = [
  "PAUSE",
  "STATUS",
  "HELLO",
  "PING",
  "PONG",
  "",
  "pause",
  "status",
  "STATUS ",
  "STATUS\u0000",
  "PAUSE\n",
  "__proto__",
  "constructor",
  "toString",
  "SHUTDOWN",
  "EXEC",
  "AUTH",
  "x".repeat(300),
];

const NUMBERS_TEXT: readonly string[] = [
  "1e400",
  "-1e400",
  "-0",
  "0e0",
  "-0.0",
  "1e20",
  "1e21",
  "1e308",
  "1e-400",
  "5e-324",
  "9007199254740993",
  "-9007199254740993",
  "18446744073709551616",
  "0.1",
  "255",
  "256",
  "-1",
  "-2147483649",
  "4294967296",
  "86400000",
  "86400001",
  "1.0",
  "3.0000000000000001",
  "123456789012345678901234567890",
];

/** JSON text of a value drawn from many types. */
function scalarText(rng: Rng): string {
  switch (rng.int(9)) {
    case 0:
      return rng.pick(NUMBERS_TEXT);
    case 1:
      return JSON.stringify(rng.string(rng.range(0, 12)));
    case 2:
      return rng.pick(["null", "true", "false"]);
    case 3:
      return "[]";
    case 4:
      return "{}";
    case 5:
      return String(rng.range(-300, 300));
    case 6:
      return JSON.stringify(rng.pick(ID_POOL));
    case 7:
      return JSON.stringify(
        rng.pick(["\u0000", "\ud800", "\u2028", "\\", '"', "\n", "\ufffd"]),
      );
    default:
      return JSON.stringify({ [rng.string(3)]: rng.int(10) });
  }
}

/** JSON text of arrays and/or objects nested `depth` deep around `inner`. */
export function deepText(rng: Rng, depth: number, inner = "1"): string {
  switch (rng.int(4)) {
    case 0:
      return "[".repeat(depth) + inner + "]".repeat(depth);
    case 1:
      return '{"a":'.repeat(depth) + inner + "}".repeat(depth);
    case 2:
      return '[{"id":'.repeat(depth >> 1) + inner + "}]".repeat(depth >> 1);
    default: {
      // The empty innermost array, as in "[[[[]]]]".
      return "[".repeat(depth) + "]".repeat(depth);
    }
  }
}

/** Depths: mostly 10,000 (the brief), sometimes far more, within 1 MiB. */
function deepDepth(rng: Rng, maxBytes: number): number {
  const r = rng.next();
  if (r < 0.6) return 10_000;
  if (r < 0.75) return rng.range(1_000, 20_000);
  if (r < 0.9) return rng.range(50_000, 100_000);
  // Close to the line limit: each level takes two bytes ("[" and "]").
  return Math.floor((maxBytes - 64) / 2) - rng.int(1000);
}

function idText(rng: Rng): string {
  return rng.chance(0.7)
    ? JSON.stringify(rng.pick(ID_POOL))
    : JSON.stringify(`fz-${rng.string(6)}`);
}

/** A valid, harmless request: noop or exit-with, with an id and params. */
function validRequestText(rng: Rng): string {
  const name = rng.pick(RUNNABLE);
  const parts = [`"name":${JSON.stringify(name)}`];
  if (rng.chance(0.8)) parts.push(`"id":${idText(rng)}`);
  if (name === "exit-with") parts.push(`"params":${rng.range(0, 255)}`);
  else if (rng.chance(0.5)) parts.push(`"params":${scalarText(rng)}`);
  if (rng.chance(0.2)) rng.shuffle(parts);
  return `{${parts.join(",")}}`;
}

function line(text: string, owed = true, kind = ""): LocalInput {
  return { kind, bytes: encoder.encode(text + "\n"), owed };
}

function raw(bytes: Uint8Array | number[], kind = ""): LocalInput {
  return { kind, bytes: Uint8Array.from(bytes), owed: false };
}

function concatBytes(
  ...parts: (Uint8Array | number[] | string)[]
): Uint8Array<ArrayBuffer> {
  const arrays = parts.map((p) =>
    typeof p === "string" ? encoder.encode(p) : Uint8Array.from(p)
  );
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

function commandText(
  marker: string,
  code: string,
  dataText: string | undefined,
  id?: string,
): string {
  const params = dataText === undefined
    ? `{"code":${JSON.stringify(code)}}`
    : `{"code":${JSON.stringify(code)},"data":${dataText}}`;
  return `{"name":${JSON.stringify(marker)}${
    id === undefined ? "" : `,"id":${id}`
  },"params":${params}}`;
}

// ---- local socket lines ------------------------------------------------------

const LOCAL_WEIGHTS = {
  valid: 12,
  shape: 10,
  utf8: 8,
  nul: 6,
  number: 8,
  deep: 8,
  giant: 1.2,
  name: 10,
  command: 12,
  forgery: 8,
  mutation: 18,
} as const;

type LocalKind = keyof typeof LOCAL_WEIGHTS;

/** One hostile input for a local socket. */
export function localInput(rng: Rng, ctx: FuzzContext): LocalInput {
  const kind = rng.weighted(LOCAL_WEIGHTS);
  const input = LOCAL_GENERATORS[kind](rng, ctx);
  input.kind = kind;
  return input;
}

const LOCAL_GENERATORS: Record<
  LocalKind,
  (rng: Rng, ctx: FuzzContext) => LocalInput
> = {
  valid: (rng) => line(validRequestText(rng)),

  shape: (rng) => {
    const texts = [
      "null",
      "[]",
      "[1,2,3]",
      '"noop"',
      "42",
      "true",
      "{}",
      '{"name":5}',
      '{"name":null}',
      '{"name":{}}',
      '{"name":["noop"]}',
      '{"name":true}',
      '{"id":"x"}',
      '{"params":{"code":"STATUS"}}',
      '{"name":"noop","name":"&cmd","params":{"code":"STATUS","data":{"status":0}}}',
      '{"name":"&cmd","name":"noop"}',
      '{"__proto__":{"name":"noop"}}',
      '{"name":"noop","__proto__":{"hasId":true,"id":"x"}}',
      '{"name":"noop","hasId":true}',
      '{"name":"noop","ref":"0"}',
      '{"name":"noop","ref":{"x":1}}',
      '{"name":"noop","fields":null,"id":"x"}',
      '{"name":"constructor"}',
      '{"name":"noop","id":{"toString":1}}',
      '{"name":"noop","id":[]}',
      '{"name":"noop","id":{}}',
      '{"name":"noop","params":{"__proto__":{"x":1}}}',
      '\ufeff{"name":"noop"}',
      '{"name":"noop"}\r',
      '  {"name":"noop"}  ',
      '{"name":"noop"} {"name":"noop"}',
      '{"name":"noop"}{"name":"noop"}',
      '{"name":"noop",}',
      "{'name':'noop'}",
      '{name:"noop"}',
      '{"name":"noop"',
      '"name":"noop"}',
      "{",
      "}",
      "[",
      "\u2028",
      "\t\t",
      "\r",
      "  ",
      '{"name":"noop","params":undefined}',
      '{"name":"noop","params":NaN}',
      '{"name":"noop","params":Infinity}',
      '{"name":"noop","id":0x10}',
    ];
    const text = rng.pick(texts);
    let owed: boolean;
    try {
      JSON.parse(text);
      owed = true;
    } catch {
      owed = false;
    }
    // Blank lines owe nothing; a BOM line is not JSON.parse-able as-is.
    if (text.trim() === "") owed = false;
    return line(text, owed);
  },

  utf8: (rng) => {
    const bad: number[][] = [
      [0xff],
      [0xfe],
      [0xc0, 0x80],
      [0xc1, 0xbf],
      [0xe0, 0x80, 0x80],
      [0xed, 0xa0, 0x80],
      [0xed, 0xbf, 0xbf],
      [0xf4, 0x90, 0x80, 0x80],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
      [0xe2, 0x82],
      [0xf0, 0x9f, 0x98],
      [0x80],
      [0xbf, 0xbf],
    ];
    const seq = () => rng.pick(bad);
    const name = rng.pick(RUNNABLE);
    switch (rng.int(6)) {
      case 0: // inside the name
        return raw(concatBytes(`{"name":"${name}`, seq(), `"}\n`));
      case 1: // inside the id
        return raw(
          concatBytes(`{"name":"${name}","id":"`, seq(), `","params":1}\n`),
        );
      case 2: // outside any string
        return raw(concatBytes(`{"name":"${name}"`, seq(), `}\n`));
      case 3: // a line of nothing but bad bytes
        return raw(concatBytes(...Array.from({ length: 8 }, seq), "\n"));
      case 4: // random bytes, no newline in them
        return raw(
          concatBytes(
            rng.bytes(rng.range(1, 200)).map((b) => b === 0x0a ? 0xff : b),
            "\n",
          ),
        );
      default: // a valid multi-byte character cut by the newline
        return raw(concatBytes(`{"name":"☃`, [0xe2, 0x98], "\n", [0x83], "\n"));
    }
  },

  nul: (rng) => {
    switch (rng.int(5)) {
      case 0:
        return raw(concatBytes(`{"name":"noop`, [0], `"}\n`));
      case 1:
        return raw(concatBytes([0, 0, 0, 0], "\n"));
      case 2:
        return raw(concatBytes(`{"name":"noop"}`, [0], "\n"));
      case 3:
        return raw(concatBytes([0], `{"name":"noop","id":"nul"}\n`));
      default: {
        // Escaped NULs are valid JSON and owe an answer.
        const where = rng.int(3);
        return line(
          where === 0
            ? `{"name":"noop\\u0000"}`
            : where === 1
            ? `{"name":"noop","id":"\\u0000x\\u0000"}`
            : `{"name":"exit-with","params":"\\u0000","id":"n"}`,
        );
      }
    }
  },

  number: (rng) => {
    const n = () => rng.pick(NUMBERS_TEXT);
    switch (rng.int(8)) {
      case 0:
        return line(`{"name":"noop","id":${n()}}`);
      case 1:
        return line(`{"name":"exit-with","id":${idText(rng)},"params":${n()}}`);
      case 2:
        return line(`{"name":${n()}}`);
      case 3:
        return line(
          commandText("+cmd", "STATUS", `{"status":${n()},"id":${n()}}`),
        );
      case 4: {
        // A valid PAUSE only ever pauses briefly: the link must come back.
        const ms = n();
        return line(
          commandText(
            rng.pick(["+cmd", "&cmd"]),
            "PAUSE",
            /^\d+$/.test(ms) ? String(Math.min(Number(ms), 20)) : ms,
            idText(rng),
          ),
        );
      }
      case 5: {
        // 1e20 repeated: a long array of big numbers.
        const count = rng.range(10, 20_000);
        return line(
          `{"name":"noop","id":"rep","params":[${
            Array(count).fill("1e20").join(",")
          }]}`,
        );
      }
      case 6: {
        // A number literal with very many digits.
        const digits = rng.range(400, 100_000);
        return line(`{"name":"exit-with","params":${"9".repeat(digits)}}`);
      }
      default:
        return line(
          commandText(
            "&cmd",
            "STATUS",
            `{"status":${n()},"id":${idText(rng)}}`,
          ),
        );
    }
  },

  deep: (rng, ctx) => {
    const depth = deepDepth(rng, ctx.maxMessageBytes);
    const deep = deepText(rng, depth);
    switch (rng.int(9)) {
      case 0:
      case 1:
        return line(`{"name":"noop","id":${deep}}`);
      case 2:
        return line(`{"name":"noop","id":"d","params":${deep}}`);
      case 3:
        return line(`{"name":${deep}}`);
      case 4:
        return line(`{"name":${deep},"id":${deep.length < 50_000 ? deep : 1}}`);
      case 5:
        return line(commandText("+cmd", "STATUS", `{"status":1,"id":${deep}}`));
      case 6:
        return line(
          commandText(
            "&cmd",
            "STATUS",
            `{"status":1,"id":${deep}}`,
            idText(rng),
          ),
        );
      case 7:
        return line(commandText("+cmd", "PAUSE", deep, deep));
      default:
        return line(`{"name":"&cmd","id":${deep},"params":${deep}}`);
    }
  },

  giant: (rng, ctx) => {
    const limit = ctx.maxMessageBytes;
    const pick = rng.int(9);
    // How far from the limit the line ends: a few bytes under, at, or over.
    const delta = rng.pick([-4096, -64, -1, 0, 1, 2, 64, 65_536, limit]);
    const total = limit + delta;
    const fill = (prefix: string, suffix: string) =>
      prefix + "a".repeat(Math.max(0, total - prefix.length - suffix.length)) +
      suffix;
    switch (pick) {
      case 0:
        return line(fill(`{"name":"noop","id":"g","params":"`, `"}`));
      case 1:
        return line(fill(`{"name":"`, `"}`));
      case 2:
        return line(fill(`{"name":"noop","id":"`, `"}`));
      case 3:
        return line(fill(`{"name":"+cmd","params":{"code":"`, `"}}`));
      case 4:
        return line(
          fill(
            `{"name":"&cmd","params":{"code":"STATUS","data":{"status":0,"id":"`,
            `"}}}`,
          ),
        );
      case 5: {
        // Params at Linux's one-argument limit (131,071 bytes) and past it.
        const size = 131_071 + rng.range(-2, 2);
        return line(
          `{"name":"noop","id":"arg","params":"${"p".repeat(size - 2)}"}`,
        );
      }
      case 6: {
        // An id the environment cannot carry (WSDAEMON_ID over 128 KiB).
        const size = rng.pick([131_072, 140_000, 500_000, limit - 64]);
        return line(`{"name":"noop","id":"${"i".repeat(size)}"}`);
      }
      case 7: {
        // Garbage without a newline until the next line, longer than the limit.
        const size = limit + rng.range(1, 4096);
        const bytes = rng.bytes(size).map((b) => b === 0x0a ? 0x20 : b);
        return raw(concatBytes(bytes, "\n"));
      }
      default:
        // Many small requests in one giant write: a burst.
        return {
          kind: "",
          bytes: encoder.encode(
            Array.from({ length: 200 }, () => validRequestText(rng) + "\n")
              .join(""),
          ),
          owed: false,
        };
    }
  },

  name: (rng) => {
    const name = rng.pick(HOSTILE_NAMES);
    const parts = [`"name":${JSON.stringify(name)}`];
    if (rng.chance(0.7)) parts.push(`"id":${idText(rng)}`);
    if (rng.chance(0.5)) parts.push(`"params":${scalarText(rng)}`);
    return line(`{${parts.join(",")}}`);
  },

  command: (rng) => {
    const marker = rng.pick([
      "+cmd",
      "&cmd",
      "+cmd",
      "&cmd",
      "+CMD",
      "&cmd\u0000",
    ]);
    const code = rng.pick(CODES);
    const id = rng.chance(0.6) ? idText(rng) : undefined;
    let data: string | undefined;
    switch (rng.int(8)) {
      case 0:
        data = undefined;
        break;
      case 1:
        // A valid PAUSE only ever pauses briefly: the link must come back.
        data = String(rng.range(0, 20));
        break;
      case 2:
        data = rng.pick([
          "-1",
          "1.5",
          '"10"',
          "86400001",
          "1e400",
          "-0",
          "null",
          "[]",
          "{}",
          "true",
        ]);
        break;
      case 3:
        data = `{"status":${rng.pick(NUMBERS_TEXT)},"id":${idText(rng)}}`;
        break;
      case 4:
        data = `{"version":${scalarText(rng)},"name":${
          JSON.stringify(
            rng.string(rng.range(0, 300), ALNUM + "\u0000\n\u001b"),
          )
        },"features":[${
          rng.pick(['"request-ref"', '"heartbeat"', "1", "null", '"x"'])
        }]}`;
        break;
      case 5:
        data = `{"status":0,"id":${idText(rng)},"ref":${
          scalarText(rng)
        },"peer":${scalarText(rng)}}`;
        break;
      case 6:
        data = scalarText(rng);
        break;
      default:
        data = `{"status":"0","id":1}`;
    }
    if (code === "PAUSE" && data !== undefined && /^\d+$/.test(data)) {
      data = String(Math.min(Number(data), 20));
    }
    const shape = rng.int(10);
    if (shape === 0) {
      return line(
        `{"name":${JSON.stringify(marker)},"params":${scalarText(rng)}}`,
      );
    }
    if (shape === 1) {
      return line(
        `{"name":${JSON.stringify(marker)},"params":{"code":${
          scalarText(rng)
        },"data":${scalarText(rng)}}}`,
      );
    }
    return line(commandText(marker, code, data, id));
  },

  forgery: (rng) => {
    // STATUS frames that pretend to answer someone else's request.
    const marker = rng.chance(0.7) ? "&cmd" : "+cmd";
    const fields = [
      `"status":${
        rng.pick(["0", "3", "-1", "-2", "255", "1e20", "-0", "null"])
      }`,
    ];
    if (rng.chance(0.85)) fields.push(`"id":${idText(rng)}`);
    if (rng.chance(0.4)) {
      fields.push(`"ref":${JSON.stringify(rng.int(2000).toString(36))}`);
    }
    if (rng.chance(0.3)) {
      fields.push(
        `"peer":${JSON.stringify(rng.pick(["server", "client", "evil"]))}`,
      );
    }
    if (rng.chance(0.2)) fields.push(`"error":"forged"`);
    if (rng.chance(0.1)) fields.push(`"__proto__":{"status":7}`);
    return line(
      commandText(
        marker,
        "STATUS",
        `{${fields.join(",")}}`,
        rng.chance(0.5) ? idText(rng) : undefined,
      ),
    );
  },

  mutation: (rng, ctx) => {
    const base = rng.int(4) === 0
      ? LOCAL_GENERATORS.command(rng, ctx).bytes
      : rng.int(3) === 0
      ? LOCAL_GENERATORS.forgery(rng, ctx).bytes
      : encoder.encode(validRequestText(rng) + "\n");
    return raw(mutate(rng, base));
  },
};

/** Applies 1-4 random mutations: bit flips, cuts, duplications, insertions. */
export function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let bytes = input.slice();
  const rounds = rng.range(1, 4);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(Math.max(1, bytes.length));
    switch (rng.int(8)) {
      case 0: // bit flip
        if (bytes.length) bytes[at] ^= 1 << rng.int(8);
        break;
      case 1: // a special byte
        if (bytes.length) {
          bytes[at] = rng.pick([
            0x00,
            0x22,
            0x5c,
            0x7b,
            0x7d,
            0x5b,
            0xff,
            0x0a,
            0x0d,
            0x20,
          ]);
        }
        break;
      case 2: // truncate (the line may lose its newline)
        bytes = bytes.slice(0, at);
        break;
      case 3: { // duplicate a slice in place
        const end = Math.min(bytes.length, at + rng.range(1, 40));
        bytes = concatBytes(
          bytes.slice(0, end),
          bytes.slice(at, end),
          bytes.slice(end),
        );
        break;
      }
      case 4: // duplicate the whole input
        bytes = concatBytes(bytes, bytes);
        break;
      case 5: // insert random bytes
        bytes = concatBytes(
          bytes.slice(0, at),
          rng.bytes(rng.range(1, 8)),
          bytes.slice(at),
        );
        break;
      case 6: { // delete a run
        const end = Math.min(bytes.length, at + rng.range(1, 10));
        bytes = concatBytes(bytes.slice(0, at), bytes.slice(end));
        break;
      }
      default: { // swap two bytes
        const other = rng.int(Math.max(1, bytes.length));
        if (bytes.length) [bytes[at], bytes[other]] = [bytes[other], bytes[at]];
      }
    }
  }
  return bytes;
}

// ---- WebSocket frames --------------------------------------------------------

/** One frame for the WebSocket endpoint. */
export interface PeerFrame {
  kind: string;
  /** A string goes as a text frame; bytes as a binary frame, or as a text
   * frame holding those bytes unchecked when `textBytes` is set. */
  data: string | Uint8Array;
  /** Bytes sent in a text frame (invalid UTF-8 there closes the link). */
  textBytes?: boolean;
  /** A ping instead of a message (payload at most 125 bytes). */
  ping?: boolean;
}

const PEER_WEIGHTS = {
  local: 40,
  script: 12,
  status: 12,
  hello: 8,
  heartbeat: 5,
  binary: 8,
  badText: 2,
  ping: 3,
  giant: 1,
} as const;

const decoder = new TextDecoder();

/** One hostile frame for the WebSocket endpoint. */
export function peerFrame(rng: Rng, ctx: FuzzContext): PeerFrame {
  const kind = rng.weighted(PEER_WEIGHTS);
  switch (kind) {
    case "local": {
      // The local socket's hostile lines, as frames (minus the newline).
      const input = localInput(rng, ctx);
      let bytes = input.bytes;
      if (bytes[bytes.length - 1] === 0x0a) bytes = bytes.subarray(0, -1);
      return { kind: `local-${input.kind}`, data: decoder.decode(bytes) };
    }
    case "script": {
      const name = rng.chance(0.7)
        ? rng.pick(RUNNABLE)
        : rng.pick(HOSTILE_NAMES);
      const fields = [`"name":${JSON.stringify(name)}`];
      if (rng.chance(0.8)) fields.push(`"id":${idText(rng)}`);
      if (name === "exit-with") fields.push(`"params":${rng.range(0, 255)}`);
      else if (rng.chance(0.5)) fields.push(`"params":${scalarText(rng)}`);
      if (rng.chance(0.5)) {
        fields.push(
          `"ref":${
            rng.chance(0.6)
              ? JSON.stringify(rng.string(rng.range(0, 20)))
              : scalarText(rng)
          }`,
        );
      }
      return { kind, data: `{${fields.join(",")}}` };
    }
    case "status": {
      const fields = [
        `"status":${rng.pick([...NUMBERS_TEXT, "null", '"0"', "[]"])}`,
      ];
      if (rng.chance(0.8)) fields.push(`"id":${idText(rng)}`);
      if (rng.chance(0.5)) {
        fields.push(`"ref":${JSON.stringify(rng.int(5000).toString(36))}`);
      }
      if (rng.chance(0.3)) {
        fields.push(`"id":${deepText(rng, rng.pick([100, 10_000]))}`);
      }
      return {
        kind,
        data: commandText("&cmd", "STATUS", `{${fields.join(",")}}`),
      };
    }
    case "hello": {
      const features = rng.pick([
        '["request-ref","heartbeat"]',
        '["request-ref"]',
        "[]",
        "null",
        '"request-ref"',
        `[${Array(rng.range(1, 5000)).fill('"heartbeat"').join(",")}]`,
        `[${deepText(rng, 10_000)}]`,
      ]);
      const name = rng.pick([
        JSON.stringify("server"),
        JSON.stringify("client"),
        JSON.stringify(
          rng.string(rng.range(0, 2000), ALNUM + "\u0000\u001b[31m\n\r"),
        ),
        "null",
        "1e400",
        deepText(rng, 10_000),
      ]);
      return {
        kind,
        data: commandText(
          "&cmd",
          "HELLO",
          `{"version":${
            scalarText(rng)
          },"name":${name},"features":${features}}`,
        ),
      };
    }
    case "heartbeat":
      return {
        kind,
        data: commandText(
          rng.pick(["&cmd", "+cmd"]),
          rng.pick(["PING", "PONG", "PAUSE"]),
          rng.chance(0.5) ? "null" : scalarText(rng),
        ),
      };
    case "binary": {
      const which = rng.int(3);
      const data = which === 0
        ? rng.bytes(rng.range(0, 300))
        : which === 1
        ? encoder.encode(validRequestText(rng))
        : concatBytes(`{"name":"noop","id":"`, [0xff, 0xfe, 0xc0, 0x80], `"}`);
      return { kind, data };
    }
    case "badText":
      return {
        kind,
        data: concatBytes(
          `{"name":"noop","id":"`,
          rng.pick([[0xff], [0xed, 0xa0, 0x80], [0xc0, 0x80]]),
          `"}`,
        ),
        textBytes: true,
      };
    case "ping":
      return { kind, data: rng.bytes(rng.range(0, 125)), ping: true };
    default: {
      const size = ctx.maxMessageBytes + rng.pick([-300, 0, 200, 300, 4096]);
      return {
        kind,
        data: `{"name":"noop","id":"giant","params":"${
          "z".repeat(Math.max(0, size - 40))
        }"}`,
      };
    }
  }
}

// ---- raw TCP and HTTP --------------------------------------------------------

/** What to write to the WebSocket port over a raw TCP connection. */
export interface TcpInput {
  kind: string;
  /** Written first: a request head, or just garbage. */
  bytes: Uint8Array;
  /**
   * When set, `bytes` is a valid upgrade request and these frames (raw,
   * possibly malformed) follow once the 101 arrives.
   */
  frames?: Uint8Array[];
}

/** A WebSocket frame built by hand, valid or not. */
export function rawFrame(
  opcode: number,
  payload: Uint8Array,
  options: {
    fin?: boolean;
    rsv?: number;
    mask?: boolean;
    lengthOverride?: bigint;
  } = {},
): Uint8Array {
  const { fin = true, rsv = 0, mask = true } = options;
  const length = options.lengthOverride ?? BigInt(payload.length);
  const head: number[] = [
    (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f),
  ];
  const maskBit = mask ? 0x80 : 0;
  if (length < 126n) head.push(maskBit | Number(length));
  else if (length < 65536n) {
    head.push(
      maskBit | 126,
      Number(length >> 8n) & 0xff,
      Number(length) & 0xff,
    );
  } else {
    head.push(maskBit | 127);
    for (let i = 7; i >= 0; i--) {
      head.push(Number((length >> BigInt(8 * i)) & 0xffn));
    }
  }
  const key = [0x12, 0x34, 0x56, 0x78];
  const body = mask ? payload.map((b, i) => b ^ key[i % 4]) : payload;
  return concatBytes(head, mask ? key : [], body);
}

const TCP_WEIGHTS = {
  garbage: 10,
  http: 30,
  upgradeFrames: 30,
  auth: 15,
  tls: 3,
  http2: 3,
  slow: 4,
} as const;

function upgradeHead(rng: Rng, extra: string[] = []): string {
  const key = btoa(String.fromCharCode(...rng.bytes(16)));
  return [
    "GET / HTTP/1.1",
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    ...extra,
    "",
    "",
  ].join("\r\n");
}

/** One hostile input for the WebSocket port, over raw TCP. */
export function tcpInput(rng: Rng, ctx: FuzzContext): TcpInput {
  const kind = rng.weighted(TCP_WEIGHTS);
  const bearer = `Authorization: Bearer ${ctx.secret}`;
  switch (kind) {
    case "garbage": {
      const bytes = rng.bytes(rng.range(1, 4096));
      return { kind, bytes };
    }
    case "tls":
      // The start of a TLS ClientHello: someone dialled wss:// at ws://.
      return {
        kind,
        bytes: concatBytes([
          0x16,
          0x03,
          0x01,
          0x02,
          0x00,
          0x01,
          0x00,
          0x01,
          0xfc,
          0x03,
          0x03,
        ], rng.bytes(64)),
      };
    case "http2":
      return {
        kind,
        bytes: encoder.encode(
          "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        ),
      };
    case "slow":
      // A request head cut short: the daemon must not wait on it for ever.
      return {
        kind,
        bytes: encoder.encode(upgradeHead(rng).slice(0, rng.range(1, 60))),
      };
    case "http": {
      const heads = [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!notbase64!!\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 12\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket, h2c\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Version: 13\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n Folded: header\r\n\r\n",
        `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${
          "h".repeat(rng.pick([8_000, 70_000, 400_000]))
        }\r\n\r\n`,
        `GET / HTTP/1.1\r\nHost: x\r\n${
          Array.from({ length: 500 }, (_, i) => `X-H${i}: v`).join("\r\n")
        }\r\n\r\n`,
        `GET /${"p".repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
        "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: y\r\nConnection: close\r\n\r\n",
      ];
      let text = rng.pick(heads);
      if (rng.chance(0.2)) {
        text = decoder.decode(mutate(rng, encoder.encode(text)));
      }
      return { kind, bytes: encoder.encode(text) };
    }
    case "auth": {
      // Upgrade requests with Authorization headers, right and wrong.
      const header = rng.pick([
        bearer,
        `Authorization: Bearer ${ctx.secret}x`,
        `Authorization: Bearer ${ctx.secret.slice(0, -1)}`,
        `Authorization: bearer ${ctx.secret}`,
        `Authorization: Bearer  ${ctx.secret}`,
        "Authorization: Bearer ",
        "Authorization: Bearer",
        "Authorization: Basic Zm9vOmJhcg==",
        `Authorization: Bearer ${"s".repeat(rng.pick([16, 1000, 60_000]))}`,
        `Authorization: Bearer ${ctx.secret}\r\nAuthorization: Bearer wrong-wrong-wrong-wrong`,
        `Authorization: Bearer wrong-wrong-wrong-wrong\r\n${bearer}`,
        `Authorization: Bearer ${ctx.secret.replace(/./, "\u00e9")}`,
        "Authorization: Bearer \u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000",
      ]);
      return {
        kind,
        bytes: encoder.encode(upgradeHead(rng, [header])),
        frames: hostileFrames(rng, ctx),
      };
    }
    default:
      return {
        kind,
        bytes: encoder.encode(
          upgradeHead(rng, rng.chance(0.5) ? [bearer] : []),
        ),
        frames: hostileFrames(rng, ctx),
      };
  }
}

/** Malformed WebSocket frames, to follow a successful upgrade. */
function hostileFrames(rng: Rng, ctx: FuzzContext): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const count = rng.range(1, 4);
  const text = () => encoder.encode(validRequestText(rng));
  for (let i = 0; i < count; i++) {
    switch (rng.int(16)) {
      case 0:
        frames.push(rawFrame(1, text(), { mask: false })); // unmasked from a client
        break;
      case 1:
        frames.push(rawFrame(1, text(), { rsv: rng.range(1, 7) })); // reserved bits
        break;
      case 2:
        frames.push(rawFrame(rng.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xf]), text())); // reserved opcodes
        break;
      case 3:
        frames.push(rawFrame(9, rng.bytes(200))); // control frame over 125 bytes
        break;
      case 4:
        frames.push(rawFrame(9, rng.bytes(4), { fin: false })); // fragmented control frame
        break;
      case 5:
        frames.push(rawFrame(0, text())); // continuation with nothing to continue
        break;
      case 6:
        frames.push(rawFrame(1, text(), { fin: false }), rawFrame(1, text())); // new message inside one
        break;
      case 7:
        frames.push(
          rawFrame(1, new Uint8Array(0), {
            lengthOverride: 0x7fffffffffffffffn,
          }),
        ); // absurd length
        break;
      case 8:
        frames.push(
          rawFrame(1, new Uint8Array(0), {
            lengthOverride: BigInt(ctx.maxMessageBytes * 64),
          }),
        );
        break;
      case 9:
        frames.push(rawFrame(8, Uint8Array.from([0x03]))); // close with a 1-byte payload
        break;
      case 10:
        frames.push(
          rawFrame(
            8,
            concatBytes([
              rng.pick([0x03, 0x13, 0x00, 0xff]),
              rng.pick([0xe7, 0x88, 0x00, 0xed]),
            ], [0xff, 0xfe]),
          ),
        ); // bad close code and reason
        break;
      case 11:
        frames.push(rawFrame(1, Uint8Array.from([0xff, 0xfe, 0xfd]))); // invalid UTF-8 text
        break;
      case 12:
        frames.push(rng.bytes(rng.range(1, 64))); // bytes that are not a frame
        break;
      case 13: {
        // A valid message split into many fragments.
        const whole = text();
        const cut = Math.max(1, whole.length >> 1);
        frames.push(
          rawFrame(1, whole.slice(0, cut), { fin: false }),
          rawFrame(9, rng.bytes(3)),
          rawFrame(0, whole.slice(cut)),
        );
        break;
      }
      case 14:
        frames.push(rawFrame(1, text())); // a valid frame, for contrast
        break;
      default:
        frames.push(rawFrame(1, text()).slice(0, rng.range(1, 6))); // a frame cut short
    }
  }
  return frames;
}

// ---- reports -----------------------------------------------------------------

/** A short, printable summary of an input: its start, escaped, and its size. */
export function describeBytes(bytes: Uint8Array | string, max = 120): string {
  const text = typeof bytes === "string"
    ? bytes.slice(0, max)
    : decoder.decode(bytes.subarray(0, max));
  const size = typeof bytes === "string" ? bytes.length : bytes.length;
  const shown = JSON.stringify(text);
  return size > max ? `${shown}... (${size} bytes)` : shown;
}
