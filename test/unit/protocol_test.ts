import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  encodeCommand,
  encodeStatusFrame,
  encodeStatusLine,
  MAX_DEPTH,
  type Message,
  nestingDepth,
  parseCommand,
  parseHello,
  parseMessage,
  parseStatusData,
  ProtocolError,
  Status,
  withId,
  withRef,
} from "../../src/protocol.ts";

/** Runs `fn`, which must throw a ProtocolError, and returns it. */
function protocolError(fn: () => unknown): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert(caught !== undefined, "expected a ProtocolError, but nothing threw");
  assert(
    caught instanceof ProtocolError,
    `expected a ProtocolError, got ${caught}`,
  );
  return caught;
}

function message(params: unknown, id?: string): Message {
  const fields: Record<string, unknown> = { name: "+cmd", params };
  if (id !== undefined) fields.id = id;
  return {
    name: "+cmd",
    id,
    hasId: id !== undefined,
    params,
    fields,
  };
}

Deno.test("parseMessage reads name, id, params and keeps every field", () => {
  const parsed = parseMessage(
    '{"name":"deploy","id":"cf2b","params":{"param1":"val1"},"extra":[1]}',
  );
  assertEquals(parsed.name, "deploy");
  assertEquals(parsed.hasId, true);
  assertEquals(parsed.id, "cf2b");
  assertEquals(parsed.params, { param1: "val1" });
  assertEquals(parsed.fields, {
    name: "deploy",
    id: "cf2b",
    params: { param1: "val1" },
    extra: [1],
  });
  // Surrounding whitespace, e.g. the "\r" of a CRLF line, is no error.
  assertEquals(parseMessage('  {"name":"x"}\r').name, "x");
});

Deno.test("parseMessage: an absent id stays absent; strings and numbers are kept", () => {
  const noId = parseMessage('{"name":"x","params":1}');
  assertEquals(noId.hasId, false);
  assertEquals(noId.id, undefined);
  assertEquals(withId({ status: 0 }, noId), { status: 0 });
  assert(!("id" in withId({ status: 0 }, noId)), "id key added");

  for (const id of [7, "", "job-42", -1.5, 0]) {
    const parsed = parseMessage(JSON.stringify({ name: "x", id }));
    assertEquals(parsed.hasId, true);
    assertEquals(parsed.id, id);
    assertEquals(withId({ status: 1 }, parsed), { status: 1, id });
  }

  // Absent params stay undefined rather than becoming null.
  assertEquals(noId.params, 1);
  assertEquals(parseMessage('{"name":"x"}').params, undefined);
});

Deno.test("parseMessage rejects an id that is not a string or a number with -4, echoing none", () => {
  const deep = "[".repeat(10_000) + "]".repeat(10_000);
  for (
    const [text, found] of [
      ['{"name":"x","id":null}', "null"],
      ['{"name":"x","id":[1]}', "an array"],
      ['{"name":"x","id":{"a":1}}', "an object"],
      ['{"name":"x","id":true}', "boolean true"],
      ['{"name":"x","id":1e400}', "number Infinity"],
      [`{"name":"x","id":${deep}}`, "an array"],
      [`{"name":["x"],"id":${deep}}`, "an array"],
    ]
  ) {
    const error = protocolError(() => parseMessage(text));
    assertEquals(error.status, -4);
    assertEquals(error.hasId, false);
    // Deep ones are refused for their depth before their id is looked at.
    if (!text.includes(deep)) {
      assertMatch(error.message, /'id' must be a string or a number/);
      assert(error.message.endsWith(`found ${found}`), error.message);
    }
    const report = error.toReport();
    assert(!("id" in report), `id in ${JSON.stringify(report)}`);
    // Every answer can be encoded, whatever the message held.
    encodeStatusLine(report);
  }
});

Deno.test("withRef adds a ref that wins, without re-encoding the message", () => {
  const text = '{"name":"x","params":[1e20,1e20],"ref":"forged"}';
  const framed = withRef(text, "abc");
  assertEquals(JSON.parse(framed).ref, "abc");
  assertEquals(framed.length, text.length + ',"ref":"abc"'.length);
  assert(framed.includes("1e20"), "params re-encoded");
  assertEquals(JSON.parse(withRef('{"name":"x"}', "r")), {
    name: "x",
    ref: "r",
  });
});

Deno.test("parseMessage rejects what is not JSON with -4 and no id", () => {
  for (const text of ["nope", "", '{"name":"x"', '{"name":"x"}{"name":"y"}']) {
    const error = protocolError(() => parseMessage(text));
    assertEquals(error.status, Status.REJECTED);
    assertEquals(error.status, -4);
    assertEquals(error.hasId, false);
    assertMatch(error.message, /not valid JSON/);
    const report = error.toReport();
    assertEquals(report.status, -4);
    assert(!("id" in report), `id in ${JSON.stringify(report)}`);
    assertEquals(report.error, error.message);
  }
});

Deno.test("parseMessage rejects a JSON value that is not an object with -4", () => {
  for (
    const [text, found] of [
      ["3", "number 3"],
      ['"deploy"', 'the string "deploy"'],
      ["null", "null"],
      ["true", "boolean true"],
      ['[{"name":"x","id":"a"}]', "an array"],
    ]
  ) {
    const error = protocolError(() => parseMessage(text));
    assertEquals(error.status, -4);
    assertEquals(error.hasId, false, `hasId for ${text}`);
    assertMatch(error.message, /must be a JSON object/);
    assert(error.message.endsWith(`found ${found}`), error.message);
    assert(!("id" in error.toReport()), `id in report for ${text}`);
  }
});

Deno.test("parseMessage rejects a missing or non-string name with -4, keeping the id", () => {
  const cases: [string, boolean, unknown, string][] = [
    ["{}", false, undefined, "no 'name'"],
    ['{"params":{}}', false, undefined, "no 'name'"],
    ['{"id":"a1"}', true, "a1", "no 'name'"],
    ['{"id":"a2","name":3}', true, "a2", "number 3"],
    ['{"id":7,"name":null}', true, 7, "null"],
  ];
  for (const [text, hasId, id, found] of cases) {
    const error = protocolError(() => parseMessage(text));
    assertEquals(error.status, -4, text);
    assertEquals(error.hasId, hasId, `hasId for ${text}`);
    assertEquals(error.id, id, `id for ${text}`);
    assertMatch(error.message, /'name' must be a string/);
    assert(error.message.endsWith(`found ${found}`), error.message);
    const report = error.toReport();
    assertEquals("id" in report, hasId, `id in report for ${text}`);
    if (hasId) assertEquals(report.id, id);
    assertEquals(report.status, -4);
  }
});

Deno.test("parseCommand reads params.code and params.data", () => {
  assertEquals(parseCommand(message({ code: "PAUSE", data: 5000 })), {
    code: "PAUSE",
    data: 5000,
  });
  assertEquals(
    parseCommand(message({ code: "STATUS", data: { status: 0, id: "x" } })),
    { code: "STATUS", data: { status: 0, id: "x" } },
  );
  // An unknown code is no parse error: deciding what runs is not this layer's.
  assertEquals(parseCommand(message({ code: "NEW", extra: 1 })), {
    code: "NEW",
    data: undefined,
  });
});

Deno.test("parseCommand rejects params without a string code with -4, keeping the id", () => {
  for (
    const params of [undefined, null, 3, "PAUSE", ["PAUSE"], {}, { code: 3 }, {
      data: 1,
    }]
  ) {
    const label = JSON.stringify(params) ?? "undefined";
    const withAnId = protocolError(() => parseCommand(message(params, "c1")));
    assertEquals(withAnId.status, -4, label);
    assertEquals(withAnId.hasId, true, label);
    assertEquals(withAnId.id, "c1", label);
    assertMatch(withAnId.message, /'params\.code' must be a string/);
    assertEquals(withAnId.toReport().id, "c1");

    const without = protocolError(() => parseCommand(message(params)));
    assertEquals(without.hasId, false, label);
    assert(!("id" in without.toReport()), `id in report for ${label}`);
  }
});

Deno.test("parseStatusData accepts an object with an integer status", () => {
  assertEquals(parseStatusData({ status: 0, id: "a" }), { status: 0, id: "a" });
  assertEquals(parseStatusData({ status: -2 }), { status: -2 });
  assertEquals(parseStatusData({ status: 255, id: "a", signal: "SIGKILL" }), {
    status: 255,
    id: "a",
    signal: "SIGKILL",
  });
});

Deno.test("parseStatusData explains what is wrong with bad data", () => {
  for (const data of [undefined, null, 3, "0", [0]]) {
    const result = parseStatusData(data);
    assert(typeof result === "string", `accepted ${JSON.stringify(data)}`);
    assertMatch(result, /STATUS data must be an object/);
  }
  for (
    const [data, found] of [
      [{}, "no 'status'"],
      [{ status: "0" }, 'the string "0"'],
      [{ status: 1.5 }, "number 1.5"],
      [{ status: null, id: "a" }, "null"],
    ] as const
  ) {
    const result = parseStatusData(data);
    assert(typeof result === "string", `accepted ${JSON.stringify(data)}`);
    assertMatch(result, /data\.status must be an integer/);
    assert(result.endsWith(`found ${found}`), result);
  }
});

Deno.test("encodeStatusLine is one JSON line ending in \\n", () => {
  const report = {
    status: -4,
    id: "line1\nline2",
    error: "bad\r\nthing\u2028",
  };
  const line = encodeStatusLine(report);
  assert(line.endsWith("\n"), "no trailing newline");
  assertEquals(line.indexOf("\n"), line.length - 1, "more than one line");
  assert(!line.includes("\r"), "a raw \\r in the line");
  assertEquals(JSON.parse(line), report);
  assertEquals(
    encodeStatusLine({ status: 0, id: "x" }),
    '{"status":0,"id":"x"}\n',
  );
});

Deno.test("encodeCommand writes the keys in PROTOCOL.md order", () => {
  assertEquals(
    encodeCommand("&cmd", "STATUS", { status: 3, id: "abc" }),
    '{"name":"&cmd","params":{"code":"STATUS","data":{"status":3,"id":"abc"}}}',
  );
  assertEquals(
    encodeCommand("+cmd", "PAUSE", 1000),
    '{"name":"+cmd","params":{"code":"PAUSE","data":1000}}',
  );
  assertEquals(
    encodeStatusFrame({ status: 0, id: "cf2b" }),
    '{"name":"&cmd","params":{"code":"STATUS","data":{"status":0,"id":"cf2b"}}}',
  );
  // A frame is always one line.
  assert(!encodeCommand("&cmd", "STATUS", { id: "a\nb" }).includes("\n"));
});

Deno.test("parseHello is lenient: extra fields, wrong types and missing keys", () => {
  assertEquals(
    parseHello({
      version: "1.2.3",
      name: "edge",
      features: ["request-ref", 3, null, "heartbeat"],
      futureField: { x: 1 },
    }),
    { version: "1.2.3", name: "edge", features: ["request-ref", "heartbeat"] },
  );
  assertEquals(parseHello({}), { version: "unknown", name: "", features: [] });
  assertEquals(
    parseHello({ version: 2, name: ["x"], features: "heartbeat" }),
    { version: "unknown", name: "", features: [] },
  );
  for (const data of [undefined, null, "hello", 1]) {
    assertEquals(parseHello(data), undefined, JSON.stringify(data));
  }
});

Deno.test("parseMessage rejects nesting deeper than MAX_DEPTH with -4, before decoding", () => {
  const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
  const ok = parseMessage(`{"name":"x","params":${deep(MAX_DEPTH - 1)}}`);
  assertEquals(ok.name, "x");
  for (
    const text of [
      `{"name":"x","params":${deep(MAX_DEPTH + 1)}}`,
      `{"name":"x","id":"a","params":${deep(500_000)}}`,
      `{"name":${"{".repeat(MAX_DEPTH * 2)}`,
    ]
  ) {
    const error = protocolError(() => parseMessage(text));
    assertEquals(error.status, -4);
    assertMatch(error.message, /nests arrays or objects more than 256 deep/);
  }
  // Brackets inside strings are text, not nesting.
  const quoted = parseMessage(
    JSON.stringify({ name: "x", params: "[".repeat(10_000) + '\\"' }),
  );
  assertEquals(quoted.name, "x");
  assertEquals(nestingDepth('["a\\"[[[", [1]]', 1), 2);
});

Deno.test("a message refused for its depth still answers with its id, and a peer's with its ref", () => {
  const deep = "[".repeat(300) + "]".repeat(300);
  for (
    const [text, hasId, id] of [
      [
        `{"name":"noop","id":"params-300","params":${deep}}`,
        true,
        "params-300",
      ],
      [`{"params":${deep},"id":42,"name":"x"}`, true, 42],
      [
        `{"name":"x","x":{"id":"inner","y":${deep}},"id":"outer"}`,
        true,
        "outer",
      ],
      [`{"name":"x","id":"a\\"b","p":${deep}}`, true, 'a"b'],
      [`{"name":"x","id":null,"p":${deep}}`, false, undefined],
      [`{"name":"x","id":[1],"p":${deep}}`, false, undefined],
      [`{"name":"x","id":${deep}}`, false, undefined],
      [`{"name":"x","p":${deep}}`, false, undefined],
      [`{"name":"x","p":"\\"id\\":1","q":${deep}}`, false, undefined],
    ] as const
  ) {
    const error = protocolError(() => parseMessage(text));
    assertEquals(error.status, -4, text.slice(0, 60));
    assertEquals(error.hasId, hasId, `hasId of ${text.slice(0, 60)}`);
    if (hasId) assertEquals(error.id, id);
    assertEquals("id" in error.toReport(), hasId);
  }
  const withRefError = protocolError(() =>
    parseMessage(`{"name":"x","ref":"abc","params":${deep}}`)
  );
  assertEquals(withRefError.ref, "abc");
});
