import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { type Frame, LineSplitter } from "../../src/framing.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);
const line = (text: string): Frame => ({ kind: "line", text });
const oversize = (limit: number): Frame => ({ kind: "oversize", limit });

/** Feeds each chunk in turn, then ends the input; returns every frame. */
function split(
  maxBytes: number,
  chunks: (string | Uint8Array)[],
): Frame[] {
  const splitter = new LineSplitter(maxBytes);
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    frames.push(
      ...splitter.push(typeof chunk === "string" ? bytes(chunk) : chunk),
    );
  }
  frames.push(...splitter.end());
  return frames;
}

Deno.test("a line split across pushes comes out whole, once", () => {
  const splitter = new LineSplitter(1024);
  assertEquals(splitter.push(bytes('{"name":')), []);
  assertEquals(splitter.push(bytes('"noop","id"')), []);
  assertEquals(splitter.push(bytes(':"a"}\n{"na')), [
    line('{"name":"noop","id":"a"}'),
  ]);
  assertEquals(splitter.push(bytes('me":"x"}\n')), [line('{"name":"x"}')]);
  assertEquals(splitter.end(), []);
});

Deno.test("a line fed byte by byte, with multi-byte UTF-8 split, comes out whole", () => {
  // "é" is 2 bytes, "€" 3 and "😀" 4: every one is cut between pushes.
  const text = '{"name":"café","params":"€ 😀"}';
  const all = bytes(text + "\n" + text + "\n");
  const splitter = new LineSplitter(1024);
  const frames: Frame[] = [];
  for (let i = 0; i < all.length; i++) {
    frames.push(...splitter.push(all.subarray(i, i + 1)));
  }
  frames.push(...splitter.end());
  assertEquals(frames, [line(text), line(text)]);
});

Deno.test("a multi-byte character split at a chunk boundary is not mangled", () => {
  const euro = bytes("€"); // e2 82 ac
  assertEquals(
    split(64, [
      new Uint8Array([0x22, euro[0]]),
      new Uint8Array([euro[1]]),
      new Uint8Array([euro[2], 0x22, 0x0a]),
    ]),
    [line('"€"')],
  );
});

Deno.test("many lines in one push all come out, in order", () => {
  const lines = Array.from(
    { length: 50 },
    (_, i) => JSON.stringify({ name: "noop", id: `r${i}` }),
  );
  const splitter = new LineSplitter(1024);
  assertEquals(
    splitter.push(bytes(lines.join("\n") + "\n")),
    lines.map(line),
  );
  assertEquals(splitter.end(), []);
});

Deno.test("blank lines are skipped and CRLF lines still parse", () => {
  const frames = split(1024, [
    '\n\n{"name":"a"}\n   \n\t\n\r\n{"name":"b"}\r\n\r\n',
  ]);
  assertEquals(frames.length, 2);
  assertEquals(frames.map((f) => f.kind), ["line", "line"]);
  assertEquals(
    frames.map((f) => f.kind === "line" && JSON.parse(f.text)),
    [{ name: "a" }, { name: "b" }],
  );
  assertEquals(split(1024, ["\n", "\r\n", "  ", "\n"]), []);
});

Deno.test("the last line without \\n is returned by end()", () => {
  const splitter = new LineSplitter(1024);
  assertEquals(splitter.push(bytes('{"name":"a"}\n{"name"')), [
    line('{"name":"a"}'),
  ]);
  assertEquals(splitter.push(bytes(':"b"}')), []);
  assertEquals(splitter.end(), [line('{"name":"b"}')]);
  // Nothing is left over after end().
  assertEquals(splitter.end(), []);
  // A trailing blank remainder is no line.
  assertEquals(split(1024, ['{"name":"a"}\n  ']), [line('{"name":"a"}')]);
});

Deno.test("a line of exactly the limit is accepted, one byte more is not", () => {
  const limit = 32;
  const exact = "x".repeat(limit);
  assertEquals(split(limit, [exact + "\n"]), [line(exact)]);
  // Split across pushes, and unterminated at the end.
  assertEquals(
    split(limit, [exact.slice(0, 10), exact.slice(10), "\n"]),
    [line(exact)],
  );
  assertEquals(split(limit, [exact]), [line(exact)]);
  // The limit counts bytes, not characters.
  const euros = "€".repeat(limit / 4); // 24 bytes
  assertEquals(split(24, [euros + "\n"]), [line(euros)]);
  assertEquals(split(23, [euros + "\n"]), [oversize(23)]);
  assertEquals(split(limit, [exact + "y\n"]), [oversize(limit)]);
});

Deno.test("an oversize line in one push is reported once, the next line works", () => {
  const limit = 64;
  assertEquals(
    split(limit, [
      '{"name":"a"}\n' + "x".repeat(1000) + '\n{"name":"b"}\n',
    ]),
    [line('{"name":"a"}'), oversize(limit), line('{"name":"b"}')],
  );
});

Deno.test("an oversize line spread across pushes is reported once, the next line works", () => {
  const limit = 64;
  const splitter = new LineSplitter(limit);
  assertEquals(splitter.push(bytes("y".repeat(40))), []);
  assertEquals(splitter.push(bytes("y".repeat(40))), [oversize(limit)]);
  for (let i = 0; i < 100; i++) {
    assertEquals(splitter.push(bytes("y".repeat(50))), [], `push ${i}`);
  }
  assertEquals(splitter.push(bytes('yyy\n{"name":"b"}\n{"na')), [
    line('{"name":"b"}'),
  ]);
  assertEquals(splitter.push(bytes('me":"c"}')), []);
  assertEquals(splitter.end(), [line('{"name":"c"}')]);
});

Deno.test("an oversize line cut off by end of input is reported only once", () => {
  const limit = 16;
  const splitter = new LineSplitter(limit);
  assertEquals(splitter.push(bytes("z".repeat(100))), [oversize(limit)]);
  assertEquals(splitter.push(bytes("z".repeat(100))), []);
  assertEquals(splitter.end(), []);
});

Deno.test("two oversize lines in a row are two reports", () => {
  const limit = 8;
  assertEquals(
    split(limit, ["a".repeat(20) + "\n" + "b".repeat(20) + "\nok\n"]),
    [oversize(limit), oversize(limit), line("ok")],
  );
});

Deno.test("a reused read buffer does not change a held partial line", () => {
  // Readers fill the same buffer on every read; the splitter must copy.
  const buffer = new Uint8Array(6);
  const splitter = new LineSplitter(64);
  buffer.set(bytes('{"name'));
  assertEquals(splitter.push(buffer), []);
  buffer.set(bytes('":"x"}'));
  assertEquals(splitter.push(buffer), []);
  buffer.set(bytes("\nXXXXX"));
  assertEquals(splitter.push(buffer.subarray(0, 1)), [line('{"name":"x"}')]);
});

Deno.test("a limit that is not a positive integer is a RangeError", () => {
  for (const limit of [0, -1, 1.5, NaN]) {
    const error = assertThrows(() => new LineSplitter(limit), /'maxBytes'/);
    assertEquals(error.name, "RangeError");
  }
});
