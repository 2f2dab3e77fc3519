import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import {
  encodeJoinLine,
  isValidHost,
  isValidPeerName,
  type JoinLine,
  parseJoinLine,
} from "../../src/cli/join_line.ts";

/** 43 base64url characters, as 32 bytes give. */
const TOKEN = "Zk9v-_Ab".repeat(5) + "xyz";
const PIN = "sha256:" + "ab12".repeat(16);
const LINE: JoinLine = {
  host: "srv.example",
  port: 3006,
  peer: "client-1",
  token: TOKEN,
  fingerprint: PIN,
};
const TEXT = `wsd://srv.example:3006/client-1#${TOKEN}@${PIN}`;

/** Parses `text`, which must fail, and returns the message. */
function parseError(text: string): string {
  const error = assertThrows(() => parseJoinLine(text));
  const { message } = error;
  assert(
    message.startsWith("Cannot read join line as "),
    `message pattern: ${message}`,
  );
  assert(!message.includes("\n"), `one line: ${JSON.stringify(message)}`);
  assert(!message.includes(TOKEN), `the token is not repeated: ${message}`);
  return message;
}

Deno.test("a join line round-trips", () => {
  assertEquals(TOKEN.length, 43);
  assertEquals(encodeJoinLine(LINE), TEXT);
  assertEquals(parseJoinLine(TEXT), LINE);
  for (
    const line of [
      { ...LINE, host: "10.0.0.5", port: 1 },
      { ...LINE, host: "a", port: 65535, peer: "A" },
      { ...LINE, host: "db-1.internal.", peer: "_x.y-z" },
      { ...LINE, peer: "p".repeat(64) },
      { ...LINE, token: "-".repeat(43) },
      { ...LINE, token: "_".repeat(43) },
    ]
  ) {
    assertEquals(parseJoinLine(encodeJoinLine(line)), line);
  }
});

Deno.test("an IPv6 host is written in brackets and read without them", () => {
  const line = { ...LINE, host: "2001:db8::7" };
  const text = encodeJoinLine(line);
  assertEquals(text, `wsd://[2001:db8::7]:3006/client-1#${TOKEN}@${PIN}`);
  assertEquals(parseJoinLine(text), line);
  assertEquals(
    encodeJoinLine({ ...LINE, host: "[::1]" }).slice(0, 17),
    "wsd://[::1]:3006/",
  );
  assertEquals(
    parseJoinLine(encodeJoinLine({ ...LINE, host: "[::1]" })).host,
    "::1",
  );
});

Deno.test("what a paste adds is tolerated", () => {
  assertEquals(parseJoinLine(`  ${TEXT}\n`), LINE);
  assertEquals(parseJoinLine(TEXT.replace("wsd://", "WSD://")), LINE);
  assertEquals(
    parseJoinLine(TEXT.replace(PIN, PIN.toUpperCase())).fingerprint,
    PIN,
  );
});

Deno.test("every malformed join line says what is wrong", () => {
  const head = "wsd://srv.example:3006/client-1";
  const cases: [string, RegExp][] = [
    ["", /it is empty/],
    ["   \n", /it is empty/],
    [`${head} #${TOKEN}@${PIN}`, /contains whitespace/],
    [
      `https://srv.example:3006/client-1#${TOKEN}@${PIN}`,
      /does not start with 'wsd:\/\/': found 'https:\/\/'/,
    ],
    [
      `srv.example:3006/client-1#${TOKEN}@${PIN}`,
      /does not start with 'wsd:\/\/': found no scheme/,
    ],
    [`wsd://:3006/client-1#${TOKEN}@${PIN}`, /has no host after 'wsd:\/\/'/],
    [`wsd:///client-1#${TOKEN}@${PIN}`, /has no host after 'wsd:\/\/'/],
    [
      `wsd://srv.example/client-1#${TOKEN}@${PIN}`,
      /has no port after the host/,
    ],
    [
      `wsd://srv.example:/client-1#${TOKEN}@${PIN}`,
      /has no port after the host/,
    ],
    [
      `wsd://srv.example:0/client-1#${TOKEN}@${PIN}`,
      /port must be an integer from 1 to 65535: found "0"/,
    ],
    [
      `wsd://srv.example:65536/client-1#${TOKEN}@${PIN}`,
      /port must be .*found "65536"/,
    ],
    [
      `wsd://srv.example:30x6/client-1#${TOKEN}@${PIN}`,
      /port must be .*found "30x6"/,
    ],
    [
      `wsd://srv.example:-1/client-1#${TOKEN}@${PIN}`,
      /port must be .*found "-1"/,
    ],
    [
      `wsd://user@srv.example:3006/client-1#${TOKEN}@${PIN}`,
      /host must be a DNS name or an IP address: found "user@srv.example"/,
    ],
    [
      `wsd://srv..example:3006/client-1#${TOKEN}@${PIN}`,
      /host must be a DNS name/,
    ],
    [
      `wsd://::1:3006/client-1#${TOKEN}@${PIN}`,
      /IPv6 host must be in brackets/,
    ],
    [
      `wsd://[::1:3006/client-1#${TOKEN}@${PIN}`,
      /IPv6 host has no closing '\]'/,
    ],
    [`wsd://[::1]/client-1#${TOKEN}@${PIN}`, /has no port after the host/],
    [
      `wsd://[::1]3006/client-1#${TOKEN}@${PIN}`,
      /after the IPv6 host where ':PORT' belongs/,
    ],
    [
      `wsd://[srv.example]:3006/client-1#${TOKEN}@${PIN}`,
      /host in brackets must be an IPv6 address/,
    ],
    [
      `wsd://srv.example:3006#${TOKEN}@${PIN}`,
      /has no peer name after the port/,
    ],
    [
      `wsd://srv.example:3006/#${TOKEN}@${PIN}`,
      /has no peer name after the port/,
    ],
    [
      `wsd://srv.example:3006/.hidden#${TOKEN}@${PIN}`,
      /peer name must be .*found "\.hidden"/,
    ],
    [
      `wsd://srv.example:3006/-x#${TOKEN}@${PIN}`,
      /peer name must be .*found "-x"/,
    ],
    [
      `wsd://srv.example:3006/a/b#${TOKEN}@${PIN}`,
      /peer name must be .*found "a\/b"/,
    ],
    [
      `wsd://srv.example:3006/${"p".repeat(65)}#${TOKEN}@${PIN}`,
      /peer name must be 1 to 64/,
    ],
    [`${head}`, /has no token after '#'/],
    [`${head}@${PIN}`, /has no token after '#'/],
    [`${head}#@${PIN}`, /has no token after '#'/],
    [
      `${head}#${TOKEN.slice(1)}@${PIN}`,
      /token must be 43 base64url characters .*found 42 characters$/,
    ],
    [`${head}#${TOKEN}x@${PIN}`, /token must be .*found 44 characters$/],
    [
      `${head}#${TOKEN.slice(1)}+@${PIN}`,
      /token must be .*found 43 characters with others among them/,
    ],
    [`${head}#${TOKEN}#${TOKEN}@${PIN}`, /token must be 43/],
    [`${head}#${TOKEN}`, /has no certificate pin after '@'/],
    [`${head}#${TOKEN}@`, /has no certificate pin after '@'/],
    [
      `${head}#${TOKEN}@sha256:abc`,
      /certificate pin must be 'sha256:' and 64 hex digits: found "sha256:abc"/,
    ],
    [
      `${head}#${TOKEN}@${PIN.replace("sha256", "sha1")}`,
      /certificate pin must be/,
    ],
    [`${head}#${TOKEN}@${PIN}0`, /certificate pin must be/],
    [`${head}#${TOKEN}@${PIN.slice(0, -1)}g`, /certificate pin must be/],
    [`${head}#${TOKEN}@${PIN}@${PIN}`, /certificate pin must be/],
  ];
  for (const [text, pattern] of cases) {
    const message = parseError(text);
    assert(
      pattern.test(message),
      `${JSON.stringify(text)}: expected ${pattern}, got ${
        JSON.stringify(message)
      }`,
    );
  }
});

Deno.test("encodeJoinLine refuses what parseJoinLine could not read", () => {
  const cases: [Partial<JoinLine>, RegExp][] = [
    [
      { host: "" },
      /'host' must be a DNS name or an IP address: current value is ""/,
    ],
    [{ host: "a b" }, /'host'/],
    [{ host: "[srv.example]" }, /'host'/],
    [
      { port: 0 },
      /'port' must be an integer from 1 to 65535: current value is 0/,
    ],
    [{ port: 3006.5 }, /'port'/],
    [{ peer: ".x" }, /'peer' must be 1 to 64 characters/],
    [
      { token: "short" },
      /'token' must be 43 base64url characters: current value has 5 characters/,
    ],
    [{ token: TOKEN.slice(1) + "=" }, /'token'/],
    [
      { fingerprint: PIN.toUpperCase() },
      /'fingerprint' must be "sha256:" and 64 lowercase hex digits/,
    ],
  ];
  for (const [change, pattern] of cases) {
    const error = assertThrows(
      () => encodeJoinLine({ ...LINE, ...change }),
      pattern,
    );
    assert(
      error instanceof RangeError,
      `RangeError for ${JSON.stringify(change)}`,
    );
    assert(!error.message.includes("\n"), "one line");
  }
});

Deno.test("peer names and hosts follow the join line's rules", () => {
  for (const name of ["a", "client-1", "_x", "A.b_c-d", "9", "p".repeat(64)]) {
    assert(isValidPeerName(name), name);
  }
  for (const name of ["", ".a", "-a", "a/b", "a b", "é", "p".repeat(65)]) {
    assert(!isValidPeerName(name), name);
  }
  for (
    const host of [
      "localhost",
      "srv.example",
      "10.0.0.1",
      "::1",
      "[::1]",
      "fe80::1",
      "my_host",
      "x.",
    ]
  ) {
    assert(isValidHost(host), host);
  }
  for (
    const host of [
      "",
      "a b",
      "-a",
      "a..b",
      "[10.0.0.1]",
      "h:1",
      "a@b",
      "*.example",
      `${"a".repeat(64)}.x`,
    ]
  ) {
    assert(!isValidHost(host), host);
  }
});
