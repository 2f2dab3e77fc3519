import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { checkCommand, pauseMs, peerMode } from "../../src/commands.ts";

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
  assertEquals(checkCommand({ code: "PAUSE", data: 2500 }, "client"), {
    code: "PAUSE",
    ms: 2500,
  });
  const onServer = checkCommand({ code: "PAUSE", data: 2500 }, "server");
  assert("error" in onServer, "PAUSE accepted on a server");
  assertMatch(onServer.error, /only on a client/);
  const badData = checkCommand({ code: "PAUSE", data: "soon" }, "client");
  assert("error" in badData, "PAUSE accepted with bad data");
  assertMatch(badData.error, /PAUSE data must be/);
});

Deno.test("STATUS runs in both modes with an integer status", () => {
  for (const mode of ["client", "server"] as const) {
    assertEquals(
      checkCommand({ code: "STATUS", data: { status: 3, id: "a" } }, mode),
      { code: "STATUS", data: { status: 3, id: "a" } },
    );
    for (const data of [undefined, 3, { id: "a" }, { status: "0" }]) {
      const checked = checkCommand({ code: "STATUS", data }, mode);
      assert("error" in checked, `STATUS accepted ${JSON.stringify(data)}`);
      assertMatch(checked.error, /^STATUS data/);
    }
  }
});

Deno.test("unknown codes are errors naming the code, HELLO included", () => {
  for (const code of ["REBOOT", "pause", "", "HELLO", "PING"]) {
    for (const mode of ["client", "server"] as const) {
      const checked = checkCommand({ code, data: 1 }, mode);
      assert("error" in checked, `${code} accepted on a ${mode}`);
      assertEquals(
        checked.error,
        `unknown command code ${
          JSON.stringify(code)
        }: expected "PAUSE", "STATUS" or "RESULT"`,
      );
    }
  }
});

Deno.test("a daemon's peer runs in the other mode", () => {
  assertEquals(peerMode("client"), "server");
  assertEquals(peerMode("server"), "client");
});
