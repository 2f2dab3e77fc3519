import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { checkScriptName } from "../../src/scripts.ts";

const utf8Length = (text: string) => new TextEncoder().encode(text).length;

Deno.test("plain file names are accepted", () => {
  for (
    const name of [
      "noop",
      "exit-with",
      "deploy.sh",
      "a..b",
      "a.",
      "x-",
      "snake_case_2",
      "with space",
      "back\\slash",
      "café",
      "😀",
      "a".repeat(255),
    ]
  ) {
    assertEquals(checkScriptName(name), undefined, JSON.stringify(name));
  }
});

Deno.test("names that could escape scripts/ or be taken for options are rejected, saying why", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    [".", /'\.'/],
    ["..", /'\.\.'/],
    [".hidden", /starts with '\.'/],
    ["...", /'\.'/],
    ["-x", /starts with '-'/],
    ["--help", /starts with '-'/],
    ["a/b", /'\/'/],
    ["../config.json", /'\/'/],
    ["/bin/sh", /'\/'/],
    ["noop/", /'\/'/],
    ["a\0b", /NUL/],
    ["noop\0", /NUL/],
    ["a".repeat(256), /longer than 255 bytes/],
  ];
  for (const [name, reason] of cases) {
    const result = checkScriptName(name);
    assert(result !== undefined, `accepted ${JSON.stringify(name)}`);
    assertMatch(result, reason, JSON.stringify(name));
  }
});

Deno.test("the 255 limit counts UTF-8 bytes, not characters", () => {
  // "é" is 2 bytes: 127 of them and one "a" make 255 bytes in 128 characters.
  const fits = "é".repeat(127) + "a";
  assertEquals(utf8Length(fits), 255);
  assertEquals(checkScriptName(fits), undefined);

  const tooLong = "é".repeat(128);
  assertEquals(tooLong.length, 128);
  assertEquals(utf8Length(tooLong), 256);
  const result = checkScriptName(tooLong);
  assert(result !== undefined, "accepted 256 bytes of é");
  assertMatch(result, /longer than 255 bytes/);

  // A 4-byte character that crosses the limit.
  const crossing = "a".repeat(252) + "😀";
  assertEquals(utf8Length(crossing), 256);
  assert(checkScriptName(crossing) !== undefined, "accepted 256 bytes");
});
