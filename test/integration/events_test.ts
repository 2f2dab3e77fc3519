import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";
import { until } from "../helpers/wait.ts";

const SCRIPTS = ["print", "noop", "chatter", "exit-with"];

function subscribe(marker: "+cmd" | "&cmd", data?: unknown) {
  return {
    name: marker,
    id: `sub-${marker}`,
    params: { code: "SUBSCRIBE", data },
  };
}

/** Lines of `local` until one matches `done`; the events among them. */
async function eventsUntil(
  local: LocalClient,
  done: (line: Answer) => boolean,
): Promise<Answer[]> {
  const seen: Answer[] = [];
  for (;;) {
    const line = await local.next();
    seen.push(line);
    if (done(line)) return seen;
  }
}

Deno.test("a subscriber sees the exact event sequence of one request on both daemons", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  await using watchServer = await LocalClient.connect(pair.server.socket);
  await using watchClient = await LocalClient.connect(pair.client.socket);
  // The client's events, watched from the server through the link.
  await using watchThrough = await LocalClient.connect(pair.server.socket);
  // First, so that its own round trip is not among the events watched.
  const through = await watchThrough.request(subscribe("&cmd", {
    events: ["script.started", "script.output", "script.finished"],
  }));
  assertEquals([through.status, through.peer], [0, "client"]);
  const answered = await watchServer.request(subscribe("+cmd"));
  assertEquals(answered.status, 0);
  assertEquals((await watchClient.request(subscribe("+cmd"))).status, 0);

  await using asker = await LocalClient.connect(pair.server.socket);
  const status = await asker.request({ name: "print", id: "e1", params: "x" });
  assertEquals(status.status, 0);

  const onServer = await eventsUntil(
    watchServer,
    (l) => l.event === "status.returned",
  );
  assertEquals(onServer.map((l) => l.event), [
    "request.sent",
    "status.returned",
  ]);
  for (const line of onServer) {
    assertMatch(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const data = line.data as Answer;
    assertEquals([data.name, data.id, data.peer], ["print", "e1", "client"]);
  }
  assertEquals((onServer[1].data as Answer).status, 0);
  assert(typeof (onServer[1].data as Answer).durationMs === "number");

  const onClient = await eventsUntil(
    watchClient,
    (l) => l.event === "script.finished",
  );
  const kinds = onClient.map((l) =>
    l.event === "script.output"
      ? `output:${(l.data as Answer).stream}`
      : l.event
  );
  assertEquals(kinds[0], "request.received");
  assertEquals(kinds[1], "script.started");
  assertEquals(kinds.at(-1), "script.finished");
  assertEquals(
    kinds.slice(2, -1).sort(),
    ["output:stderr", "output:stderr", "output:stdout"],
  );
  const finished = onClient.at(-1)!.data as Answer;
  assertEquals(
    [
      finished.name,
      finished.id,
      finished.peer,
      finished.status,
      finished.exitCode,
      finished.signal,
    ],
    ["print", "e1", "server", 0, 0, null],
  );
  const started = onClient[1].data as Answer;
  assert(typeof started.pid === "number");

  const relayed = await eventsUntil(
    watchThrough,
    (l) => l.event === "script.finished",
  );
  assertEquals(relayed[0].event, "script.started");
  for (const line of relayed) assertEquals(line.from, "client");
  assertEquals((relayed.at(-1)!.data as Answer).id, "e1");

  // UNSUBSCRIBE stops the stream; the connection still answers requests.
  const off = await watchClient.request({
    name: "+cmd",
    id: "off",
    params: { code: "UNSUBSCRIBE" },
  });
  assertEquals([off.status, off.id], [0, "off"]);
  await asker.request({ name: "noop", id: "e2" });
  const after = await watchClient.request({ name: "noop", id: "own" });
  assertEquals([after.id, after.status], ["own", 0], "no event came first");
});

Deno.test("a subscriber that never reads does not hold up requests, and gets a dropped count later", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const stalled = await Deno.connect({
    transport: "unix",
    path: pair.client.socket,
  });
  try {
    await stalled.write(
      new TextEncoder().encode(JSON.stringify(subscribe("+cmd")) + "\n"),
    );
    await using asker = await LocalClient.connect(pair.server.socket);
    // 20 runs × 300 lines × ~250 bytes of events: far past the backlog.
    for (let i = 0; i < 20; i++) {
      const answer = await asker.request(
        { name: "chatter", id: `c${i}`, params: 300 },
        10_000,
      );
      assertEquals(answer.status, 0);
    }
    // Now read: the backlog drains, and one "dropped" line says how much.
    const reader = stalled.readable.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    let dropped: Answer | undefined;
    await until(
      async () => {
        const { value, done } = await reader.read();
        if (done) return true;
        text += value;
        const lines = text.split("\n");
        text = lines.pop()!;
        for (const line of lines) {
          const parsed = JSON.parse(line);
          if (parsed.event === "dropped") dropped = parsed;
        }
        return dropped !== undefined;
      },
      20_000,
      "a dropped line",
    );
    reader.releaseLock();
    assert(dropped !== undefined, "a dropped line came");
    assert(
      (dropped.data as { count: number }).count > 0,
      JSON.stringify(dropped),
    );
  } finally {
    stalled.close();
  }
});

Deno.test("answers decided by the asker itself are logged and on the bus too", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  await using watch = await LocalClient.connect(pair.server.socket);
  assertEquals(
    (await watch.request(subscribe("+cmd", { events: ["status.returned"] })))
      .status,
    0,
  );
  await using asker = await LocalClient.connect(pair.server.socket);
  const cases = [
    [{ name: "noop", id: "n1", to: "nobody" }, -2],
    [{ name: "noop", id: "n2", to: "zz-*" }, -2],
    [{ name: "noop", id: "n3", to: 5 }, -4],
    [{ name: "bad/name", id: "n4" }, -1],
  ] as const;
  for (const [request, status] of cases) {
    assertEquals((await asker.request(request)).status, status);
    const event = await watch.next();
    assertEquals(event.event, "status.returned");
    const data = event.data as Answer;
    assertEquals([data.id, data.status], [request.id, status]);
    await pair.server.waitForLog(
      new RegExp(
        `request ${request.name} id="${request.id}" .*status ${status}`,
      ),
    );
  }
});

Deno.test("a subscription through a link: &cmd UNSUBSCRIBE stops it, and a dropped link ends it with subscription.ended", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  await using watch = await LocalClient.connect(pair.server.socket);
  await using asker = await LocalClient.connect(pair.server.socket);
  const filter = { events: ["script.finished"] };
  assertEquals((await watch.request(subscribe("&cmd", filter))).status, 0);
  await asker.request({ name: "noop", id: "u1" });
  assertEquals((await watch.next()).event, "script.finished");
  const off = await watch.request({
    name: "&cmd",
    id: "off",
    params: { code: "UNSUBSCRIBE" },
  });
  assertEquals([off.status, (off.data as Answer).subscriptions], [0, 1]);
  await asker.request({ name: "noop", id: "u2" });
  const own = await watch.request({ name: "noop", id: "own" });
  assertEquals(own.id, "own", "no event came after UNSUBSCRIBE");

  assertEquals((await watch.request(subscribe("&cmd", filter))).status, 0);
  pair.client.child.kill("SIGKILL");
  const ended = await watch.next();
  assertEquals(ended.event, "subscription.ended");
  assertEquals([(ended.data as Answer).peer, ended.from], ["client", "client"]);
});
