import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { checkCommand, pauseMs, peerMode } from "../../src/commands/table.ts";

Deno.test("pauseMs accepts whole milliseconds from 0 to a day", () => {
  for (const ms of [0, 1, 5000, 86_400_000]) assertEquals(pauseMs(ms), ms);
});

Deno.test("pauseMs explains bad data", () => {
  for (
    const [data, found] of [
      [-1, "-1"],
      [86_400_001, "86400001"],
      [1.5, "1.5"],
      ["1000", '"1000"'],
      [null, "null"],
      [undefined, "nothing"],
      [{ ms: 5 }, '{"ms":5}'],
    ] as const
  ) {
    const result = pauseMs(data);
    assert(typeof result === "string", `accepted ${String(data)}`);
    assertMatch(result, /PAUSE data must be an integer number of milliseconds/);
    assertMatch(result, /from 0 to 86400000/);
    assert(result.endsWith(`found ${found}`), result);
  }
});

Deno.test("PAUSE runs on a client only, with valid data", () => {
  assertEquals(checkCommand({ code: "PAUSE", data: 2500 }, "client", "+cmd"), {
    code: "PAUSE",
    data: 2500,
  });
  // A server's &cmd PAUSE runs on its client: allowed.
  assertEquals(checkCommand({ code: "PAUSE", data: 5 }, "server", "&cmd"), {
    code: "PAUSE",
    data: 5,
  });
  for (
    const [mode, origin] of [
      ["server", "+cmd"],
      ["client", "&cmd"],
      ["server", "peer"],
    ] as const
  ) {
    const checked = checkCommand({ code: "PAUSE", data: 2500 }, mode, origin);
    assert("error" in checked, `PAUSE accepted: ${mode} ${origin}`);
    assertMatch(checked.error, /only on a client/);
  }
  const badData = checkCommand(
    { code: "PAUSE", data: "soon" },
    "client",
    "+cmd",
  );
  assert("error" in badData, "PAUSE accepted with bad data");
  assertMatch(badData.error, /PAUSE data must be/);
});

Deno.test("STATUS runs in both modes with an integer status", () => {
  for (const mode of ["client", "server"] as const) {
    assertEquals(
      checkCommand(
        { code: "STATUS", data: { status: 3, id: "a" } },
        mode,
        "+cmd",
      ),
      { code: "STATUS", data: { status: 3, id: "a" } },
    );
    for (const data of [undefined, 3, { id: "a" }, { status: "0" }]) {
      const checked = checkCommand({ code: "STATUS", data }, mode, "peer");
      assert("error" in checked, `STATUS accepted ${JSON.stringify(data)}`);
      assertMatch(checked.error, /^STATUS data/);
    }
  }
});

Deno.test("unknown codes are errors naming the code, from anywhere", () => {
  for (const code of ["REBOOT", "pause", "", "toString", "__proto__"]) {
    for (const mode of ["client", "server"] as const) {
      for (const origin of ["+cmd", "&cmd", "peer"] as const) {
        const checked = checkCommand({ code, data: 1 }, mode, origin);
        assert("error" in checked, `${code} accepted on a ${mode}`);
        assert(
          checked.error.startsWith(
            `unknown command code ${
              JSON.stringify(code)
            }: expected one of "PAUSE", "STATUS", "RESULT", "INFO"`,
          ),
          checked.error,
        );
      }
    }
  }
});

Deno.test("the link's own protocol codes are never commands", () => {
  for (const code of ["HELLO", "ACK", "PONG", "EVENT", "PING"]) {
    if (code === "PING") continue; // PING is a command too (a round trip)
    const checked = checkCommand({ code, data: {} }, "server", "+cmd");
    assert("error" in checked, `${code} accepted`);
    assertMatch(checked.error, /part of the link protocol/);
  }
});

Deno.test("RESULT is a +cmd only", () => {
  assertEquals(
    checkCommand({ code: "RESULT", data: { id: "a" } }, "client", "+cmd"),
    { code: "RESULT", data: { id: "a" } },
  );
  for (const origin of ["&cmd", "peer"] as const) {
    const checked = checkCommand(
      { code: "RESULT", data: { id: "a" } },
      "client",
      origin,
    );
    assert("error" in checked, `RESULT accepted from ${origin}`);
    assertMatch(checked.error, /send it as \+cmd/);
  }
});

Deno.test("introspection commands run anywhere and ignore their data", () => {
  for (const code of ["INFO", "PEERS", "PING"]) {
    for (const origin of ["+cmd", "&cmd", "peer"] as const) {
      assertEquals(
        checkCommand({ code, data: { any: 1 } }, "server", origin),
        { code, data: null } as never,
      );
    }
  }
  assertEquals(
    checkCommand(
      { code: "SCRIPTS", data: { peer: "web-1" } },
      "server",
      "+cmd",
    ),
    { code: "SCRIPTS", data: { peer: "web-1" } },
  );
  const bad = checkCommand(
    { code: "SCRIPTS", data: { peer: 3 } },
    "server",
    "+cmd",
  );
  assert("error" in bad);
});

Deno.test("SUBSCRIBE checks its event names and peer lists", () => {
  assertEquals(
    checkCommand({ code: "SUBSCRIBE", data: undefined }, "client", "+cmd"),
    { code: "SUBSCRIBE", data: {} },
  );
  assertEquals(
    checkCommand(
      {
        code: "SUBSCRIBE",
        data: { events: ["script.started"], peers: ["web-*"] },
      },
      "client",
      "+cmd",
    ),
    {
      code: "SUBSCRIBE",
      data: { events: ["script.started"], peers: ["web-*"] },
    },
  );
  for (
    const data of [
      { events: ["nope"] },
      { events: "script.started" },
      { peers: [1] },
      { events: [] as string[], peers: [""] },
      [1],
    ]
  ) {
    const checked = checkCommand({ code: "SUBSCRIBE", data }, "client", "+cmd");
    assert("error" in checked, `accepted ${JSON.stringify(data)}`);
    assertMatch(checked.error, /^SUBSCRIBE data/);
  }
});

Deno.test("a daemon's peer runs in the other mode", () => {
  assertEquals(peerMode("client"), "server");
  assertEquals(peerMode("server"), "client");
});
