/**
 * Statuses cannot be forged, and ids cannot break answers, on real daemons,
 * sockets and scripts.
 *
 * - The scenario: a request from the server's socket runs on the
 *   client; a local process on the CLIENT writes `&cmd STATUS` naming the
 *   victim's id. The client refuses to relay it (-5) and the asker gets the
 *   script's true status. The same without ids, in the other direction, by
 *   guessing refs ("0".."100" and random 128-bit hex, in the STATUS data or
 *   at the top level), and with `+cmd STATUS` on another local connection
 *   (it is echoed to that connection only).
 * - A raw WebSocket peer that connects to an open server as an original
 *   client sends STATUS frames with guessed ids and refs for a request the
 *   server sent to ANOTHER (real) client daemon: every one is dropped, and
 *   the asker still gets the true status. (With an original peer, statuses
 *   match by id for requests sent to that peer: the documented exception,
 *   used here only for the raw peer's own request.)
 * - A 10,000-deep array as `id` (with a good and a bad name) answers -4 with
 *   no `id`; the daemons stay up across a PAUSE and a restart of the client.
 * - Ids: strings and numbers are echoed exactly; null, arrays, objects and
 *   booleans answer -4 with no id; a readable id of a bad message is echoed.
 *
 * @module
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import { DaemonProcess, startPair } from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";
import { RawConnection, RawPeerClient } from "../helpers/raw_peer.ts";
import { until } from "../helpers/wait.ts";
import {
  assertNoId,
  release,
  releaseAll,
  waitStarted,
} from "./_trust_helpers.ts";

const TIMEOUT = 10_000;
const SCRIPTS = ["noop", "exit-with", "sleep-exit", "wait-release"];

/** A local `&cmd STATUS` line with `data`, and extra top-level fields. */
function forgedStatus(
  data: Record<string, unknown>,
  top: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    name: "&cmd",
    ...top,
    params: { code: "STATUS", data },
  });
}

/** 32 random hex digits, the shape of a daemon's ref. */
function randomRef(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Refs a forger might try: "0".."100", then `randomCount` random ones. */
function guessedRefs(randomCount: number): string[] {
  const refs = Array.from({ length: 101 }, (_, i) => String(i));
  for (let i = 0; i < randomCount; i++) refs.push(randomRef());
  return refs;
}

/** Every answer is a -5 refusal (of a forged STATUS). */
function assertAllRefused(answers: Answer[], what: string): void {
  const other = answers.filter((a) => a.status !== -5);
  assertEquals(
    other,
    [],
    `${what}: every forged STATUS is refused -5 (${answers.length} answers)`,
  );
}

/** The raw peer's next frame other than the server's HELLO. */
async function nextNotHello(
  raw: RawConnection,
): Promise<Record<string, unknown>> {
  while (true) {
    const frame = await raw.nextJson(TIMEOUT);
    const params = frame.params as Record<string, unknown> | undefined;
    if (frame.name !== "&cmd" || params?.code !== "HELLO") return frame;
  }
}

/** A 10,000-deep array, as JSON text. */
const DEEP = "[".repeat(10_000) + "]".repeat(10_000);

/** Log lines that show a crash or a stack overflow. */
const CRASH = /Uncaught|RangeError|Maximum call stack|panicked/;

Deno.test("forgery, the issue's scenario: a STATUS written to the client's socket is refused, the asker gets the true status (with and without id)", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const { server, client } = pair;
  await using asker = await LocalClient.connect(server.socket);
  await using askerNoId = await LocalClient.connect(server.socket);
  await using bystander = await LocalClient.connect(server.socket);
  await using forger = await LocalClient.connect(client.socket);

  // The victims: 1 s scripts on the client, true exit codes 3 and 4.
  await asker.send({ name: "sleep-exit", id: "victim-1", params: [1, 3] });
  await askerNoId.send({ name: "sleep-exit", params: [1, 4] });

  const forgedWithId = await forger.request(
    forgedStatus({ status: 77, id: "victim-1" }),
    TIMEOUT,
  );
  assertEquals(
    forgedWithId.status,
    -5,
    `the client refuses to relay a STATUS: ${JSON.stringify(forgedWithId)}`,
  );
  assertNoId(forgedWithId, "the refusal of a command without id");
  const forgedNamed = await forger.request(
    forgedStatus({ status: 77, id: "victim-1" }, { id: "forger-1" }),
    TIMEOUT,
  );
  assertEquals(
    [forgedNamed.status, forgedNamed.id],
    [-5, "forger-1"],
    `a forged STATUS with its own id: ${JSON.stringify(forgedNamed)}`,
  );
  const forgedNoId = await forger.request(
    forgedStatus({ status: 77 }),
    TIMEOUT,
  );
  assertEquals(forgedNoId.status, -5, "a forged STATUS without id");

  // +cmd STATUS on another connection of the server is echoed there only.
  const echoed = await bystander.request(
    {
      name: "+cmd",
      params: { code: "STATUS", data: { status: 77, id: "victim-1" } },
    },
    TIMEOUT,
  );
  assertEquals(
    [echoed.status, echoed.id],
    [77, "victim-1"],
    "+cmd STATUS is written back to its own connection",
  );

  const truth = await asker.next(TIMEOUT);
  assertEquals(
    [truth.status, truth.id, truth.peer],
    [3, "victim-1", "client"],
    `the asker gets the script's true status: ${JSON.stringify(truth)}`,
  );
  const truthNoId = await askerNoId.next(TIMEOUT);
  assertEquals(
    [truthNoId.status, truthNoId.peer],
    [4, "client"],
    `the asker without id gets the true status: ${JSON.stringify(truthNoId)}`,
  );
  assertNoId(truthNoId, "the answer to a request without id");
  assertEquals(
    [asker.buffered, askerNoId.buffered, bystander.buffered, forger.buffered],
    [0, 0, 0, 0],
    "no other answer on any connection",
  );
  const after = await asker.request({ name: "noop", id: "after" }, TIMEOUT);
  assertEquals([after.status, after.id], [0, "after"], "the next answer");
});

Deno.test("forgery by guessed refs, both directions: every forged STATUS is refused, the askers get the true statuses", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const { server, client, serverPrefix, clientPrefix } = pair;
  try {
    for (
      const [label, askerSide, forgerSide, runsIn, code] of [
        ["server→client", server, client, clientPrefix, 5],
        ["client→server", client, server, serverPrefix, 6],
      ] as const
    ) {
      await using asker = await LocalClient.connect(askerSide.socket);
      await using askerNoId = await LocalClient.connect(askerSide.socket);
      await using forger = await LocalClient.connect(forgerSide.socket);
      const id = `victim-${label}`;
      await asker.send({ name: "wait-release", id, params: code });
      await askerNoId.send({ name: "wait-release", params: code + 10 });
      await waitStarted(runsIn, id);
      await waitStarted(runsIn, "no-id");

      const lines: string[] = [];
      for (const ref of guessedRefs(50)) {
        lines.push(
          forgedStatus({ status: 77, id, ref }),
          forgedStatus({ status: 78, ref }),
          forgedStatus({ status: 79, id }, { ref }),
          forgedStatus({ status: 80 }, { ref, id }),
        );
      }
      lines.push(
        forgedStatus({ status: 81, id }),
        forgedStatus({ status: 82 }),
      );
      await forger.send(...lines);
      assertAllRefused(await forger.take(lines.length, TIMEOUT), label);
      assertEquals(
        [asker.buffered, askerNoId.buffered],
        [0, 0],
        `${label}: no answer reached the askers before their scripts ended`,
      );

      await release(runsIn, id);
      const truth = await asker.next(TIMEOUT);
      assertEquals(
        [truth.status, truth.id],
        [code, id],
        `${label}: the true status: ${JSON.stringify(truth)}`,
      );
      await release(runsIn, "no-id");
      const truthNoId = await askerNoId.next(TIMEOUT);
      assertEquals(
        truthNoId.status,
        code + 10,
        `${label}: the true status without id: ${JSON.stringify(truthNoId)}`,
      );
      assertNoId(truthNoId, `${label}: a request without id`);
      await Deno.remove(runsIn.file("release"), { recursive: true });
      await Deno.remove(runsIn.file("started"), { recursive: true });
    }
  } finally {
    await releaseAll(serverPrefix, clientPrefix);
  }
});

Deno.test("forgery by a raw original peer: STATUS frames with guessed ids and refs for another client's request are dropped", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const { server, clientPrefix } = pair;
  const mark = server.lines.length;
  await using raw = await RawPeerClient.connect(server.url, TIMEOUT);
  await server.waitForLog(/taken for an original/, TIMEOUT, mark);
  try {
    await using asker = await LocalClient.connect(server.socket);
    // Round-robin: one of two requests goes to each client.
    await asker.send(
      { name: "wait-release", id: "rr-1", params: 6 },
      { name: "wait-release", id: "rr-2", params: 7 },
    );
    const toRaw = await nextNotHello(raw);
    const rawId = toRaw.id as string;
    assert(rawId === "rr-1" || rawId === "rr-2", `raw got ${toRaw.id}`);
    const victim = rawId === "rr-1" ? "rr-2" : "rr-1";
    const truthCode = victim === "rr-1" ? 6 : 7;
    await waitStarted(clientPrefix, victim);
    assertEquals(raw.buffered, 0, "one request only went to the raw peer");
    assertEquals(
      toRaw.name,
      "wait-release",
      `the request reached the raw peer: ${JSON.stringify(toRaw)}`,
    );

    // STATUS data frames (Part 1 layout, with and without a guessed ref):
    // none may settle the victim, which went to the other client.
    const dataFrames: string[] = [
      forgedStatus({ status: 77, id: victim }),
      forgedStatus({ status: 77 }),
    ];
    for (const ref of guessedRefs(50)) {
      dataFrames.push(
        forgedStatus({ status: 77, id: victim, ref }),
        forgedStatus({ status: 77, ref }),
      );
    }
    // With a top-level ref: a relayed STATUS, refused with a frame back.
    const topRefs = guessedRefs(10);
    const topFrames = topRefs.map((ref) =>
      forgedStatus({ status: 77, id: victim }, { ref })
    );
    // Hostile frames of other kinds, for good measure, sent first: frames
    // are handled in order, so once the data frames are dropped these have
    // been handled too.
    const junk = [
      `{"name":"noop","id":${DEEP}}`,
      `{"name":"&cmd","params":{"code":"STATUS","data":{"status":77,"id":${DEEP}}}}`,
      `{"name":"&cmd","params":{"code":"STATUS","data":{"status":77,"id":"${victim}","x":${DEEP}}}}`,
    ];
    // A frame nested too deep is refused before it is read as a status.
    const dropped =
      /status that no request of this link waits for; dropped|frame rejected: Cannot read message as it nests/;
    const before = server.count(dropped);
    for (const frame of [...junk, ...dataFrames, ...topFrames]) raw.send(frame);

    // Until every one is dropped, or (the failure) one reaches the asker.
    await until(
      () =>
        asker.buffered > 0 ||
        server.count(dropped) - before >= dataFrames.length,
      TIMEOUT,
      `the server to drop ${dataFrames.length} forged STATUS frames`,
    );
    if (asker.buffered > 0) {
      const forged = await asker.next(TIMEOUT);
      throw new Error(
        `a forged status reached the asker: ${JSON.stringify(forged)}`,
      );
    }
    const refusals = [];
    for (let i = 0; i < topFrames.length; i++) {
      refusals.push(await nextNotHello(raw));
    }
    for (const [i, frame] of refusals.entries()) {
      const data = (frame.params as Record<string, unknown>)?.data as
        | Record<string, unknown>
        | undefined;
      assertEquals(
        [data?.status, data?.ref],
        [-5, topRefs[i]],
        `a relayed STATUS is refused: ${JSON.stringify(frame)}`,
      );
    }
    assertEquals(asker.buffered, 0, "no forged status reached the asker");

    await release(clientPrefix, victim);
    const truth = await asker.next(TIMEOUT);
    assertEquals(
      [truth.status, truth.id, truth.peer],
      [truthCode, victim, "client"],
      `the asker gets the true status: ${JSON.stringify(truth)}`,
    );

    // The raw peer answers its own request (Part 1: by id): that one counts.
    raw.send(forgedStatus({ status: 9, id: rawId }));
    const own = await asker.next(TIMEOUT);
    assertEquals(
      [own.status, own.id],
      [9, rawId],
      "an original peer's status for its own request",
    );
    assert(server.running, "the server is up");
    assertEquals(server.lines.filter((l) => CRASH.test(l)), [], "no crash");
  } finally {
    await releaseAll(clientPrefix);
  }
});

Deno.test("a 10,000-deep id answers -4 without id; the server stays up across a PAUSE and a restart of the client", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const { server, clientPrefix } = pair;
  let client: DaemonProcess = pair.client;
  await using serverLocal = await LocalClient.connect(server.socket);

  const deepLines = [
    `{"name":"sleep-exit","id":${DEEP}}`,
    `{"name":"sleep-exit","id":${DEEP},"params":[0,1]}`,
    `{"name":"../x","id":${DEEP}}`,
    `{"name":5,"id":${DEEP}}`,
    `{"id":${DEEP}}`,
    `{"name":"&cmd","id":${DEEP},"params":{"code":"STATUS","data":{"status":1}}}`,
    `{"name":"+cmd","id":${DEEP},"params":{"code":"STATUS","data":{"status":1}}}`,
  ];
  const checkDeep = async (local: LocalClient, where: string) => {
    await local.send(...deepLines);
    const answers = await local.take(deepLines.length, TIMEOUT);
    for (const [i, answer] of answers.entries()) {
      assertEquals(
        answer.status,
        -4,
        `${where}, deep id #${i}: ${JSON.stringify(answer)}`,
      );
      assertNoId(answer, `${where}, deep id #${i}`);
      assert(
        typeof answer.error === "string" && answer.error !== "",
        `${where}, deep id #${i}: an error says why`,
      );
    }
  };
  await checkDeep(serverLocal, "server's socket");
  {
    await using clientLocal = await LocalClient.connect(client.socket);
    await checkDeep(clientLocal, "client's socket");

    // The link drops (PAUSE) and comes back.
    const mark = server.lines.length;
    const paused = await clientLocal.request(
      { name: "+cmd", id: "pause", params: { code: "PAUSE", data: 200 } },
      TIMEOUT,
    );
    assertEquals([paused.status, paused.id], [0, "pause"], "PAUSE");
    await server.waitForLog(/peer client .*disconnected/, TIMEOUT, mark);
    await server.waitForLog(/peer client .* says hello/, TIMEOUT, mark);
  }
  const afterPause = await serverLocal.request(
    { name: "noop", id: "after-pause" },
    TIMEOUT,
  );
  assertEquals(
    [afterPause.status, afterPause.id],
    [0, "after-pause"],
    "a normal request after the PAUSE",
  );

  // Deep ids again, then the client dies and a new one starts.
  await checkDeep(serverLocal, "server's socket, again");
  const mark = server.lines.length;
  await client.kill();
  await server.waitForLog(/peer client .*disconnected/, TIMEOUT, mark);
  client = await DaemonProcess.start(clientPrefix);
  try {
    await server.waitForLog(/peer client .* says hello/, TIMEOUT, mark);
    const after = await serverLocal.request(
      { name: "noop", id: "after-restart" },
      TIMEOUT,
    );
    assertEquals(
      [after.status, after.id, after.peer],
      [0, "after-restart", "client"],
      "the server answers a normal request after the client's restart",
    );
    assert(server.running, "the server is up");
    for (const daemon of [server, client]) {
      assertEquals(daemon.lines.filter((l) => CRASH.test(l)), [], "no crash");
    }
  } finally {
    await client.kill();
  }
});

Deno.test("ids: strings and numbers are echoed exactly; null, arrays, objects and booleans answer -4 without id", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  for (const daemon of [pair.server, pair.client]) {
    await using local = await LocalClient.connect(daemon.socket);
    const echoed: unknown[] = [
      "job-1",
      "",
      'a\nb \u00e9 \u{1F600} \\ "',
      "x".repeat(1000),
      0,
      42,
      -7,
      1.5,
      1e21,
      "42",
    ];
    // "42" and 42 are in flight together, with different exit codes.
    const requests = echoed.map((id, i) => ({
      name: "exit-with",
      id,
      params: i + 1,
    }));
    await local.send(...requests);
    const answers = await local.take(requests.length, TIMEOUT);
    for (const [i, id] of echoed.entries()) {
      const answer = answers.find((a) => Object.is(a.id, id));
      assert(
        answer,
        `an answer echoing id ${JSON.stringify(id)}: ${
          JSON.stringify(answers)
        }`,
      );
      assertEquals(answer.status, i + 1, `status for id ${JSON.stringify(id)}`);
    }

    const rejected = [
      "null",
      "[]",
      "[1]",
      '["job-1"]',
      "{}",
      '{"a":1}',
      "true",
      "false",
    ];
    const lines = rejected.flatMap((id) => [
      `{"name":"noop","id":${id}}`,
      `{"name":"&cmd","id":${id},"params":{"code":"PAUSE","data":1}}`,
      `{"name":"+cmd","id":${id},"params":{"code":"STATUS","data":{"status":0}}}`,
    ]);
    await local.send(...lines);
    const refusals = await local.take(lines.length, TIMEOUT);
    for (const [i, answer] of refusals.entries()) {
      assertEquals(answer.status, -4, `${lines[i]}: ${JSON.stringify(answer)}`);
      assertNoId(answer, lines[i]);
    }

    // A bad message whose id can be read gets its id back.
    const noName = await local.request({ id: "no-name" }, TIMEOUT);
    assertEquals([noName.status, noName.id], [-4, "no-name"], "no name");
    const badCode = await local.request(
      { name: "+cmd", id: 17, params: { code: "NOPE" } },
      TIMEOUT,
    );
    assertEquals([badCode.status, badCode.id], [-4, 17], "unknown code");
    assertEquals(local.buffered, 0, "one answer per message");
  }
});

Deno.test("ids: a string id is echoed on the answer to a message nested too deep elsewhere (params, an extra field)", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const deep300 = "[".repeat(300) + "]".repeat(300);
  for (const daemon of [pair.server, pair.client]) {
    await using local = await LocalClient.connect(daemon.socket);
    const lines = [
      `{"name":"noop","id":"params-300","params":${deep300}}`,
      `{"name":"noop","id":"params-10000","params":${DEEP}}`,
      `{"name":"noop","id":"extra-field","x":${DEEP}}`,
      `{"name":"noop","params":${DEEP},"id":"id-last"}`,
    ];
    await local.send(...lines);
    const answers = await local.take(lines.length, TIMEOUT);
    for (const id of ["params-300", "params-10000", "extra-field", "id-last"]) {
      assert(
        answers.some((a) => a.id === id),
        `the answer to the message with id ${id} carries it: ${
          JSON.stringify(answers)
        }`,
      );
    }
    const after = await local.request({ name: "noop", id: "after" }, TIMEOUT);
    assertEquals([after.status, after.id], [0, "after"], "a normal request");
  }
});
