import { assertEquals } from "../helpers/assert.ts";
import { MAX_LINE_CHARS, OutputLines } from "../../src/launch/launcher.ts";
import { Logger } from "../../src/log.ts";

/** A logger that keeps its info lines instead of writing them. */
class KeptLines extends Logger {
  readonly lines: string[] = [];
  override info(message: string): void {
    this.lines.push(message);
  }
}

const encoder = new TextEncoder();

function feed(...chunks: (string | Uint8Array)[]): string[] {
  const log = new KeptLines();
  const lines = new OutputLines(log, "tag");
  for (const chunk of chunks) {
    lines.push(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
  }
  lines.end();
  return log.lines;
}

Deno.test("output is logged a line at a time, with its tag", () => {
  assertEquals(feed("a\nb\n"), ["tag: a", "tag: b"]);
  assertEquals(feed("a", "b\nc", "\n"), ["tag: ab", "tag: c"]);
  assertEquals(feed("\n\n"), ["tag: ", "tag: "], "empty lines are lines");
});

Deno.test("a last line without a newline is logged at the end", () => {
  assertEquals(feed("a\nrest"), ["tag: a", "tag: rest"]);
  assertEquals(feed(""), []);
});

Deno.test("a character split across chunks is decoded whole", () => {
  const snowman = encoder.encode("☃\n");
  assertEquals(feed(snowman.subarray(0, 1), snowman.subarray(1)), [
    "tag: ☃",
  ]);
});

Deno.test("a line longer than the cap is logged in parts of the cap", () => {
  const long = "x".repeat(MAX_LINE_CHARS * 2 + 5);
  const chunks = long.match(/.{1,1000}/g)!;
  assertEquals(feed(...chunks, "\nnext\n"), [
    `tag: ${"x".repeat(MAX_LINE_CHARS)}`,
    `tag: ${"x".repeat(MAX_LINE_CHARS)}`,
    "tag: xxxxx",
    "tag: next",
  ]);
});

Deno.test("a line that ends inside a big chunk is still cut at the cap", () => {
  const long = "y".repeat(MAX_LINE_CHARS + 10);
  assertEquals(feed(`${long}\nshort\n`), [
    `tag: ${"y".repeat(MAX_LINE_CHARS)}`,
    `tag: ${"y".repeat(10)}`,
    "tag: short",
  ]);
});

Deno.test("a cut never splits a character made of two UTF-16 units", () => {
  const line = "a".repeat(MAX_LINE_CHARS - 1) + "\u{1f600}" + "b";
  const logged = feed(`${line}\n`);
  assertEquals(logged, [
    `tag: ${"a".repeat(MAX_LINE_CHARS - 1)}`,
    "tag: \u{1f600}b",
  ]);
});
