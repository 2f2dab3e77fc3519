import { assertEquals } from "../helpers/assert.ts";
import { CONFIG_KEYS } from "../../src/config.ts";

const README = new URL("../../README.md", import.meta.url);

/** The rows of the README's configuration table: key → the modes it lists. */
function documentedKeys(text: string): Map<string, string> {
  const section = text.slice(
    text.indexOf("## Configuration"),
    text.indexOf("\n## ", text.indexOf("## Configuration") + 5),
  );
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const match = line.match(
      /^\| `([A-Za-z]+)`\s*\| (both|server|client)\s*\|/,
    );
    if (match) rows.set(match[1], match[2]);
  }
  return rows;
}

Deno.test("the README's configuration table lists exactly the schema's keys, each for its modes", async () => {
  const rows = documentedKeys(await Deno.readTextFile(README));
  const server = new Set(CONFIG_KEYS.server);
  const client = new Set(CONFIG_KEYS.client);
  const expected = new Map<string, string>();
  for (const key of new Set([...server, ...client])) {
    expected.set(
      key,
      server.has(key) && client.has(key)
        ? "both"
        : server.has(key)
        ? "server"
        : "client",
    );
  }
  const sorted = (map: Map<string, string>) =>
    [...map].sort(([a], [b]) => a < b ? -1 : 1);
  assertEquals(sorted(rows), sorted(expected));
});
