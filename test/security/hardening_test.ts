/**
 * Regressions found by a hostile review of the trust work: slow connections
 * taking every fd, answers outgrowing the frame limit, a peer setting the
 * asker's id, a shared secret claiming a token's name, one token holding
 * many links.
 */

import WebSocket from "ws";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { deadline } from "../helpers/wait.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { newSecret, RawHttp, runClient, runServer } from "./_support.ts";

const DEBUG = ["--log-level", "debug"];

/** An npm:ws client of a server daemon, speaking as the test says. */
async function peer(
  port: number,
  headers: Record<string, string>,
): Promise<{ ws: WebSocket; frames: string[]; next(): Promise<string> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { headers });
  const frames: string[] = [];
  let wake: (() => void) | undefined;
  ws.on("message", (data: unknown) => {
    frames.push(String(data));
    wake?.();
  });
  await deadline(
    new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    }),
    5_000,
    "the peer to connect",
  );
  return {
    ws,
    frames,
    async next() {
      while (frames.length === 0) {
        await deadline(
          new Promise<void>((resolve) => wake = resolve),
          5_000,
          "a frame",
        );
      }
      return frames.shift()!;
    },
  };
}

function closeQuietly(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once("close", () => resolve());
    ws.terminate();
  });
}

const hello = (name: string) =>
  JSON.stringify({
    name: "&cmd",
    params: {
      code: "HELLO",
      data: { version: "9.9.9", name, features: ["request-ref"] },
    },
  });

Deno.test("beyond maxPeers connections still sending their head are dropped at connect; a client gets in afterwards", async () => {
  const secret = newSecret();
  await using server = await runServer({
    secret,
    maxPeers: 4,
    handshakeTimeoutMs: 1_500,
  });
  const silent = await Promise.all(
    Array.from({ length: 12 }, () => RawHttp.connect(server.port)),
  );
  try {
    const early = await Promise.allSettled(silent.map((c) => c.ended(700)));
    const dropped = early.filter((r) => r.status === "fulfilled").length;
    assert(dropped >= 8, `dropped at once: ${dropped} of 12 (4 may wait)`);
    await Promise.all(silent.map((c) => c.ended(5_000)));
  } finally {
    for (const c of silent) await c[Symbol.asyncDispose]();
  }
  await using client = await runClient(server.port, { secret });
  await server.daemon.waitForLog(/peer client \(.*\) says hello/);
  assertEquals(
    (await client.request({ name: "exit-with", id: "in", params: 5 })).status,
    5,
  );
});

Deno.test("a refusal quoting a long name still arrives when it is longer than the request", async () => {
  const token = newSecret("tok");
  await using server = await runServer({
    maxMessageBytes: 4096,
    peers: { edge: { token, scripts: ["exit-*"] } },
  });
  await using client = await runClient(server.port, {
    secret: token,
    name: "edge",
    maxMessageBytes: 4096,
  });
  await server.daemon.waitForLog(/peer edge \(.*\) says hello/);
  // Backslashes double each time the name is quoted.
  const name = "\\".repeat(255);
  const pad = "x".repeat(4096 - 600);
  await using local = await LocalClient.connect(client.socket);
  const answer = await local.request({ name, id: pad, params: 1 });
  assertEquals(answer.status, -5, JSON.stringify(answer).slice(0, 200));
  assertEquals(answer.id, pad);
});

Deno.test("a peer's status cannot put an id on the asker's answer", async () => {
  await using server = await runServer({}, { args: DEBUG });
  const raw = await peer(server.port, { "ws-daemon": "9.9.9" });
  try {
    raw.ws.send(hello("evil"));
    await server.daemon.waitForLog(/peer evil \(.*\) says hello/);
    await using local = await LocalClient.connect(server.socket);
    await local.send({ name: "noop" });
    let request: Record<string, unknown>;
    do request = JSON.parse(await raw.next()); while (request.name !== "noop");
    raw.ws.send(JSON.stringify({
      name: "&cmd",
      params: {
        code: "STATUS",
        data: { status: 0, ref: request.ref, id: "job-1", peer: "someone" },
      },
    }));
    const answer = await local.next();
    assertEquals(answer, { status: 0, peer: "evil" });
  } finally {
    await closeQuietly(raw.ws);
  }
});

Deno.test("a shared secret does not give a name that belongs to a token", async () => {
  const secret = newSecret("shared");
  const token = newSecret("tok");
  await using server = await runServer({
    secret,
    peers: { "client-1": { token } },
  });
  await using client = await runClient(server.port, {
    secret: token,
    name: "client-1",
  });
  await server.daemon.waitForLog(/peer client-1 \(.*\) says hello/);
  const raw = await peer(server.port, {
    authorization: `Bearer ${secret}`,
    "ws-daemon": "9.9.9",
  });
  try {
    raw.ws.send(hello("client-1"));
    await server.daemon.waitForLog(
      /which belongs to a peer with a token of its own/,
    );
    await server.daemon.waitForLog(/peer peer-\d+ \(.*\) says hello/);
    assertEquals(server.daemon.count(/replaces/), 0, "nobody was replaced");
    assertEquals(
      client.daemon.count(/code 4009\b/),
      0,
      "the client was not cut",
    );
  } finally {
    await closeQuietly(raw.ws);
  }
});

Deno.test("one token holds one link: its new connections replace the old, and other peers still fit in maxPeers", async () => {
  const a = newSecret("a");
  const b = newSecret("b");
  await using server = await runServer({
    maxPeers: 2,
    peers: { a: { token: a }, b: { token: b } },
  });
  await using _first = await runClient(server.port, { secret: a, name: "a" });
  await server.daemon.waitForLog(/peer a \(.*\) says hello/);
  const raws: WebSocket[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      raws.push((await peer(server.port, { authorization: `Bearer ${a}` })).ws);
    }
    await using _second = await runClient(server.port, {
      secret: b,
      name: "b",
    });
    await server.daemon.waitForLog(/peer b \(.*\) says hello/);
    assertEquals(server.daemon.count(/connection refused \(503\)/), 0);
    assertMatch(
      server.daemon.lines.filter((l) => /peer a: a new connection/.test(l))
        .join("\n"),
      /replaces/,
    );
  } finally {
    for (const ws of raws) await closeQuietly(ws);
  }
});
