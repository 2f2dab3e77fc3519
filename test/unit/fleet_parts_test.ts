import { assert, assertEquals } from "../helpers/assert.ts";
import { OutputCapture, wholeCharacters } from "../../src/launch/capture.ts";
import { summarize } from "../../src/outbox/fanout.ts";
import { parseTarget } from "../../src/targets.ts";
import { parseMessage, ProtocolError } from "../../src/protocol.ts";
import {
  DroppingSink,
  type EventLine,
} from "../../src/events/subscriptions.ts";

const encoder = new TextEncoder();

Deno.test("a cut inside a UTF-8 sequence leaves the sequence out", () => {
  const text = encoder.encode("aé€😀");
  // a(1) é(2) €(3) 😀(4) = 10 bytes; every prefix ends on a boundary or not.
  const boundaries = [0, 1, 3, 6, 10];
  for (let cut = 0; cut <= text.length; cut++) {
    const kept = wholeCharacters(text.subarray(0, cut));
    assertEquals(
      kept,
      Math.max(...boundaries.filter((b) => b <= cut)),
      `cut at ${cut}`,
    );
  }
  // Invalid bytes are not a sequence to wait for.
  assertEquals(wholeCharacters(new Uint8Array([0x61, 0xff])), 2);
});

Deno.test("output capture keeps maxBytes and says when it cut", () => {
  const capture = new OutputCapture(5);
  capture.push(encoder.encode("abc"));
  assertEquals([capture.text(), capture.truncated], ["abc", false]);
  capture.push(encoder.encode("déf"));
  assertEquals([capture.text(), capture.truncated], ["abcd", true]);
  const none = new OutputCapture(0);
  none.push(encoder.encode("x"));
  assertEquals([none.text(), none.truncated], ["", true]);
});

Deno.test("a fan-out's status is 0, or the first non-zero in name order", () => {
  assertEquals(summarize(new Map([["b", 0], ["a", 0]])), {
    status: 0,
    peers: { a: 0, b: 0 },
  });
  assertEquals(summarize(new Map([["web-2", -1], ["db", 0], ["web-1", 3]])), {
    status: 3,
    peers: { db: 0, "web-1": 3, "web-2": -1 },
  });
});

Deno.test("to: a name, a glob, a list; anything else is -4", () => {
  const target = (to: unknown) =>
    parseTarget(parseMessage(JSON.stringify({ name: "x", to })));
  assertEquals(target("web-1"), { kind: "one", name: "web-1" });
  assertEquals(target("*"), { kind: "glob", glob: "*" });
  assertEquals(target("web-*"), { kind: "glob", glob: "web-*" });
  assertEquals(target(["a", "b", "a"]), { kind: "names", names: ["a", "b"] });
  assertEquals(parseTarget(parseMessage('{"name":"x"}')), undefined);
  for (
    const bad of ["", 1, null, [], [""], ["a*"], new Array(257).fill("n"), {}]
  ) {
    try {
      target(bad);
      throw new Error(`accepted ${JSON.stringify(bad)}`);
    } catch (error) {
      assert(error instanceof ProtocolError, String(error));
      assertEquals(error.status, -4);
    }
  }
});

Deno.test("a full sink counts what it drops and says so once it has room", () => {
  const written: EventLine[] = [];
  let room = 2;
  const sink = new DroppingSink({
    write: (line) => {
      if (room === 0) return false;
      room--;
      written.push(line);
      return true;
    },
  });
  const line = (n: number): EventLine => ({
    event: `e${n}`,
    time: "",
    data: n,
  });
  for (let n = 0; n < 5; n++) sink.push(line(n));
  assertEquals(written.map((l) => l.event), ["e0", "e1"]);
  assertEquals(sink.dropped, 3);
  room = 10;
  assert(sink.catchUp());
  sink.push(line(5));
  assertEquals(written.map((l) => l.event), ["e0", "e1", "dropped", "e5"]);
  assertEquals(written[2].data, { count: 3 });
});
