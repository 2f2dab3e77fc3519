/**
 * The daemon's limits, black-box, on real daemons, sockets and scripts: each
 * limit is hit, the over-the-limit request gets its refusal (one answer, with
 * its id), and afterwards a normal request succeeds again.
 *
 * - `maxLocalConnections`: one connection more gets one -5 line and is
 *   closed; once a connection closes, a new one is served.
 * - `maxRunning` / `maxQueued`: scripts beyond `maxRunning` wait (they do not
 *   start), one beyond the queue is refused -5 "busy"; a finished script lets
 *   the queued one start.
 * - `maxInFlight`: a local connection's request beyond it is refused -5;
 *   another connection is not affected.
 * - `rate`, per local connection (`{perSecond, burst}`) and per peer (a bare
 *   number N: burst 2N): requests over the burst are refused -5 until the
 *   bucket refills (waited for by retrying with a deadline).
 * - `maxPeers`: a connection beyond it is answered 503 before the upgrade;
 *   a freed place is taken again.
 * - `handshakeTimeoutMs`: the server closes a peer that says it is of this
 *   project and never sends HELLO; a client abandons a server that never
 *   answers its upgrade, and tries again. A TCP connection that never
 *   finishes its upgrade request is NOT closed (Deno.serve has no head
 *   timeout; README, Security): that test is kept, ignored.
 * - Sizes: params that grow when re-encoded (90,000 × `1e20`, about 450 KB
 *   as sent) are relayed as sent and answered; with `maxMessageBytes` 4096
 *   on both daemons, every line from just under to at the limit gets an
 *   answer (not silence), and one over it gets -4; with 8192 on the server
 *   and 4096 on the client, a line the server takes but the client's frame
 *   limit would not is answered -4 by the server, not sent into silence.
 *
 * @module
 */

import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  startPair,
} from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";
import { RawPeerClient } from "../helpers/raw_peer.ts";
import { StalledWebSocket } from "../helpers/stalled_ws.ts";
import { deadline } from "../helpers/wait.ts";
import WebSocket from "ws";
import {
  assertNoId,
  hasStarted,
  release,
  releaseAll,
  retryUntilAdmitted,
  waitStarted,
} from "./_trust_helpers.ts";

const TIMEOUT = 10_000;
const SCRIPTS = ["noop", "exit-with", "wait-release"];

/** Answers keyed by id (every answer here carries one). */
function byId(answers: Answer[]): Map<unknown, Answer> {
  return new Map(answers.map((a) => [a.id, a]));
}

Deno.test("maxLocalConnections: one more connection gets one -5 line and is closed; a freed place is served", async () => {
  await using pair = await startPair({
    server: { maxLocalConnections: 2 },
    scripts: SCRIPTS,
  });
  const { server } = pair;
  const first = await LocalClient.connect(server.socket);
  await using second = await LocalClient.connect(server.socket);
  try {
    // Both are served: each one's request is answered (so both are counted).
    assertEquals(
      (await first.request({ name: "noop", id: "c1" })).status,
      0,
      "first connection",
    );
    assertEquals(
      (await second.request({ name: "noop", id: "c2" })).status,
      0,
      "second connection",
    );

    const mark = server.lines.length;
    await using third = await LocalClient.connect(server.socket);
    // Written before the refusal may have arrived: it must not be run.
    await third.send({ name: "noop", id: "c3" }).catch(() => {});
    const refusal = await third.next(TIMEOUT);
    assertEquals(refusal.status, -5, `the refusal: ${JSON.stringify(refusal)}`);
    assertMatch(String(refusal.error), /maxLocalConnections/, "its error");
    assertNoId(refusal, "the refusal (it answers no request)");
    await third.ended(TIMEOUT);
    assertEquals(third.buffered, 0, "one line only, then the close");
    await server.waitForLog(/local connection refused/, TIMEOUT, mark);

    // The two served connections still work.
    assertEquals(
      (await second.request({ name: "noop", id: "c2-again" })).status,
      0,
      "second connection after the refusal",
    );

    // One closes: its place is free again (the daemon notices asynchronously,
    // so a new connection is tried until it is served, with a deadline).
    await first.close();
    const served = await (async () => {
      const end = Date.now() + TIMEOUT;
      while (true) {
        await using next = await LocalClient.connect(server.socket);
        await next.send({ name: "noop", id: "c4" }).catch(() => {});
        const answer = await next.next(TIMEOUT);
        if (answer.id === "c4" || Date.now() > end) return answer;
        await next.ended(TIMEOUT);
      }
    })();
    assertEquals(
      [served.status, served.id],
      [0, "c4"],
      `a new connection after one closed: ${JSON.stringify(served)}`,
    );
  } finally {
    await first.close();
  }
});

Deno.test("maxRunning and maxQueued: extra scripts wait, one beyond the queue is refused -5 busy, then all run", async () => {
  await using pair = await startPair({
    client: { maxRunning: 2, maxQueued: 1, logLevel: "debug" },
    scripts: SCRIPTS,
  });
  const { server, client, clientPrefix } = pair;
  await using local = await LocalClient.connect(server.socket);
  try {
    await local.send(
      { name: "wait-release", id: "run-a", params: 11 },
      { name: "wait-release", id: "run-b", params: 12 },
    );
    await waitStarted(clientPrefix, "run-a");
    await waitStarted(clientPrefix, "run-b");
    await local.send(
      { name: "wait-release", id: "queued-c", params: 13 },
      { name: "wait-release", id: "over-d", params: 14 },
      { name: "noop", id: "over-e" },
    );
    const refused = byId(await local.take(2, TIMEOUT));
    for (const id of ["over-d", "over-e"]) {
      const answer = refused.get(id);
      assert(answer, `an answer for ${id}: ${JSON.stringify([...refused])}`);
      assertEquals(answer.status, -5, `${id}: ${JSON.stringify(answer)}`);
      assertMatch(String(answer.error), /busy/, `${id}'s error`);
      assertEquals(answer.peer, "client", `${id} is refused by the client`);
    }
    // queued-c was taken before over-d was refused: it waits, not runs.
    assert(
      !(await hasStarted(clientPrefix, "queued-c")),
      "queued-c started although 2 scripts were running (maxRunning 2)",
    );
    assertEquals(
      client.count(/script wait-release id="queued-c": started/),
      0,
      "queued-c launched while 2 scripts ran",
    );

    // One ends: the queued one takes its slot.
    await release(clientPrefix, "run-a");
    const a = await local.next(TIMEOUT);
    assertEquals([a.id, a.status], ["run-a", 11], "run-a's status");
    await waitStarted(clientPrefix, "queued-c");
    assertEquals(local.buffered, 0, "run-b and queued-c still run");

    await release(clientPrefix, "all");
    const rest = byId(await local.take(2, TIMEOUT));
    assertEquals(rest.get("run-b")?.status, 12, "run-b's status");
    assertEquals(rest.get("queued-c")?.status, 13, "queued-c's status");
    assert(
      !(await hasStarted(clientPrefix, "over-d")),
      "the refused over-d never ran",
    );

    const after = await local.request({ name: "noop", id: "after" }, TIMEOUT);
    assertEquals([after.status, after.id], [0, "after"], "a normal request");
  } finally {
    await releaseAll(clientPrefix);
  }
});

Deno.test("maxInFlight: a connection's request beyond it is refused -5; other connections and later requests pass", async () => {
  await using pair = await startPair({
    server: { maxInFlight: 2 },
    scripts: SCRIPTS,
  });
  const { server, clientPrefix } = pair;
  await using busy = await LocalClient.connect(server.socket);
  await using other = await LocalClient.connect(server.socket);
  try {
    await busy.send(
      { name: "wait-release", id: "f1", params: 1 },
      { name: "wait-release", id: "f2", params: 2 },
      { name: "noop", id: "f3" },
      { name: "&cmd", id: "f4", params: { code: "PAUSE", data: 10 } },
    );
    const over = byId(await busy.take(2, TIMEOUT));
    for (const id of ["f3", "f4"]) {
      const answer = over.get(id);
      assert(answer, `an answer for ${id}: ${JSON.stringify([...over])}`);
      assertEquals(answer.status, -5, `${id}: ${JSON.stringify(answer)}`);
      assertMatch(String(answer.error), /maxInFlight/, `${id}'s error`);
    }
    await waitStarted(clientPrefix, "f1");
    await waitStarted(clientPrefix, "f2");

    // Per connection: another connection is not affected.
    const elsewhere = await other.request({ name: "noop", id: "o1" }, TIMEOUT);
    assertEquals([elsewhere.status, elsewhere.id], [0, "o1"], "other");

    // One answered: the connection may send again.
    await release(clientPrefix, "f1");
    const f1 = await busy.next(TIMEOUT);
    assertEquals([f1.id, f1.status], ["f1", 1], "f1's status");
    const again = await busy.request({ name: "noop", id: "f5" }, TIMEOUT);
    assertEquals([again.status, again.id], [0, "f5"], "after one answered");

    await release(clientPrefix, "all");
    const f2 = await busy.next(TIMEOUT);
    assertEquals([f2.id, f2.status], ["f2", 2], "f2's status");
    assertEquals(busy.buffered, 0, "no stray answer");
  } finally {
    await releaseAll(clientPrefix);
  }
});

Deno.test("rate per local connection: requests over the burst are refused -5 until the bucket refills", async () => {
  await using pair = await startPair({
    server: { rate: { perSecond: 2, burst: 3 } },
    scripts: SCRIPTS,
  });
  const { server } = pair;
  await using local = await LocalClient.connect(server.socket);
  const ids = ["r0", "r1", "r2", "r3", "r4"];
  await local.send(...ids.map((id) => ({ name: "noop", id })));
  const answers = byId(await local.take(ids.length, TIMEOUT));
  const statuses = ids.map((id) => answers.get(id)?.status);
  assertEquals(
    statuses.filter((s) => s === 0).length,
    3,
    `exactly the burst (3) passes: ${JSON.stringify([...answers.values()])}`,
  );
  assertEquals(
    statuses.filter((s) => s === -5).length,
    2,
    `the rest is refused -5: ${JSON.stringify([...answers.values()])}`,
  );
  for (const answer of answers.values()) {
    if (answer.status === -5) {
      assertMatch(String(answer.error), /rate/, "a refusal's error");
    }
  }

  // Per connection: a fresh connection has its own full bucket.
  await using fresh = await LocalClient.connect(server.socket);
  await fresh.send(
    { name: "noop", id: "n0" },
    { name: "noop", id: "n1" },
    { name: "noop", id: "n2" },
  );
  const freshAnswers = await fresh.take(3, TIMEOUT);
  assertEquals(
    freshAnswers.map((a) => a.status),
    [0, 0, 0],
    `a new connection's burst: ${JSON.stringify(freshAnswers)}`,
  );

  // The first connection passes again once its bucket has refilled.
  const later = await retryUntilAdmitted(
    local,
    { name: "noop", id: "later" },
    TIMEOUT,
    "the rate bucket to refill",
  );
  assertEquals([later.status, later.id], [0, "later"], "after the refill");
});

Deno.test("rate per peer, as a bare number N (burst 2N): the peer's requests over it are refused -5 by the daemon that runs them", async () => {
  await using pair = await startPair({
    client: { rate: 1 },
    scripts: SCRIPTS,
  });
  const { server, client } = pair;
  // From the server's socket (default rate there): the client's rate for
  // its peer, burst 2, is what refuses.
  await using local = await LocalClient.connect(server.socket);
  const ids = ["p0", "p1", "p2", "p3"];
  await local.send(...ids.map((id) => ({ name: "noop", id })));
  const answers = byId(await local.take(ids.length, TIMEOUT));
  const list = JSON.stringify([...answers.values()]);
  assertEquals(
    ids.filter((id) => answers.get(id)?.status === 0).length,
    2,
    `a bare rate 1 lets a burst of 2 through: ${list}`,
  );
  const refusals = ids.map((id) => answers.get(id)!).filter((a) =>
    a.status === -5
  );
  assertEquals(refusals.length, 2, `the rest is refused -5: ${list}`);
  for (const answer of refusals) {
    assertMatch(String(answer.error), /rate/, "a refusal's error");
    assertEquals(answer.peer, "client", "refused by the client daemon");
  }

  // The same config key limits the client's own local connections.
  await using clientLocal = await LocalClient.connect(client.socket);
  await clientLocal.send(
    { name: "noop", id: "l0" },
    { name: "noop", id: "l1" },
    { name: "noop", id: "l2" },
  );
  const localAnswers = byId(await clientLocal.take(3, TIMEOUT));
  assertEquals(
    ["l0", "l1", "l2"].map((id) => localAnswers.get(id)?.status).sort(),
    [-5, 0, 0],
    `the client's local connection, burst 2: ${
      JSON.stringify([...localAnswers.values()])
    }`,
  );

  const later = await retryUntilAdmitted(
    local,
    { name: "noop", id: "later" },
    TIMEOUT,
    "the peer's rate bucket to refill",
  );
  assertEquals([later.status, later.id], [0, "later"], "after the refill");
});

Deno.test("maxPeers and handshakeTimeoutMs on the server: 503 before the upgrade, a silent peer of this project is closed, its place taken again", async () => {
  await using pair = await startPair({
    server: { maxPeers: 2, handshakeTimeoutMs: 500 },
    scripts: SCRIPTS,
  });
  const { server } = pair;

  // A peer that says it is of this project (the header), then is silent.
  const mark = server.lines.length;
  const silent = new WebSocket(server.url, {
    headers: { "ws-daemon": "0.1.0" },
  });
  const silentClosed = new Promise<number>((resolve) =>
    silent.on("close", (code: number) => resolve(code))
  );
  silent.on("error", () => {});
  try {
    await deadline(
      new Promise((resolve, reject) => {
        silent.on("open", resolve);
        silent.on("unexpected-response", () => reject(new Error("refused")));
      }),
      TIMEOUT,
      "the silent peer to be upgraded",
    );

    // Two peers now (the client daemon and the silent one): a third is
    // refused before the upgrade.
    const refused = await StalledWebSocket.connect(server.url).then(
      (ws) => {
        ws.close();
        return "upgraded";
      },
      (error: Error) => error.message,
    );
    assertMatch(refused, /refused: HTTP\/1\.1 503/, "a third peer");
    await server.waitForLog(/connection refused \(503\).*maxPeers/, TIMEOUT);

    // The silent one is closed after handshakeTimeoutMs.
    const code = await deadline(silentClosed, TIMEOUT, "the silent peer");
    assertEquals(code, 4008, "close code for a peer without HELLO");
    await server.waitForLog(/no HELLO within 500 ms/, TIMEOUT, mark);
  } finally {
    silent.terminate();
    await silentClosed;
  }

  // Its place is free again: a peer that sends nothing and did not say it
  // is of this project (an original) is upgraded and kept.
  const original = await RawPeerClient.connect(server.url, TIMEOUT);
  await server.waitForLog(/taken for an original/, TIMEOUT, mark);
  await original.close();
  await server.waitForLog(/peer peer-\d+ .*disconnected/, TIMEOUT, mark);

  await using local = await LocalClient.connect(server.socket);
  const after = await local.request({ name: "noop", id: "after" }, TIMEOUT);
  assertEquals(
    [after.status, after.id, after.peer],
    [0, "after", "client"],
    "a normal request",
  );
});

/** Resolves when the other side ends `conn` (end of input or a reset). */
async function endOf(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(4096);
  try {
    while ((await conn.read(buffer)) !== null) { /* ignored */ }
  } catch {
    // Reset: ended as well.
  }
}

Deno.test("handshakeTimeoutMs on the server: TCP connections that never finish their upgrade request are closed", async () => {
  const HANDSHAKE_MS = 500;
  await using pair = await startPair({
    server: { handshakeTimeoutMs: HANDSHAKE_MS },
    scripts: SCRIPTS,
  });
  const { server } = pair;
  const address = new URL(server.url);
  const connect = () =>
    Deno.connect({ hostname: address.hostname, port: Number(address.port) });
  // One says nothing at all; one sends half a request head.
  const mute = await connect();
  const half = await connect();
  try {
    await half.write(
      new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${address.host}\r\n`),
    );
    const started = performance.now();
    await deadline(
      Promise.all([endOf(mute), endOf(half)]),
      HANDSHAKE_MS + 4_500,
      `the server to close, within handshakeTimeoutMs (${HANDSHAKE_MS} ms) and a margin, connections whose upgrade never comes`,
    );
    assert(
      performance.now() - started >= HANDSHAKE_MS - 100,
      "closed no earlier than handshakeTimeoutMs",
    );
  } finally {
    for (const conn of [mute, half]) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }

  await using local = await LocalClient.connect(server.socket);
  const after = await local.request({ name: "noop", id: "after" }, TIMEOUT);
  assertEquals([after.status, after.id], [0, "after"], "a normal request");
});

Deno.test("handshakeTimeoutMs on a client: a server that never answers the upgrade is abandoned and tried again", async () => {
  // A TCP server that accepts and never says a word.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) accepted.push(conn);
    } catch {
      // Closed.
    }
  })();
  try {
    await using prefix = await Prefix.create(
      clientConfig(listener.addr.port, {
        handshakeTimeoutMs: 300,
        offline: "reject",
      }),
      { scripts: SCRIPTS },
    );
    await using client = await DaemonProcess.start(prefix);
    const waitAccepted = (n: number) =>
      deadline(
        (async () => {
          while (accepted.length < n) {
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        })(),
        TIMEOUT,
        `${n} connection attempt(s)`,
      );
    await waitAccepted(1);
    // The client gives the first attempt up: its connection ends.
    await deadline(
      endOf(accepted[0]),
      TIMEOUT,
      "the client to abandon an upgrade that is never answered",
    );
    await waitAccepted(2);
    assert(client.running, `the client keeps running:\n${client.log()}`);

    // Meanwhile its local socket answers: no server, -2 at once.
    await using local = await LocalClient.connect(client.socket);
    const answer = await local.request({ name: "noop", id: "x" }, TIMEOUT);
    assertEquals([answer.status, answer.id], [-2, "x"], "no server yet");
  } finally {
    listener.close();
    await accepting;
    for (const conn of accepted) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }
});

Deno.test("params that grow when re-encoded (90,000 × 1e20, ~450 KB) are relayed as sent and answered", async () => {
  await using pair = await startPair({ scripts: SCRIPTS });
  const { server } = pair;
  await using local = await LocalClient.connect(server.socket);

  const big = `[${new Array(90_000).fill("1e20").join(",")}]`;
  const line = `{"name":"noop","id":"big","params":${big}}`;
  assert(line.length > 440_000 && line.length < 1024 * 1024, "about 450 KB");
  await local.send(line);
  const answer = await local.next(TIMEOUT);
  assertEquals(answer.id, "big", `the answer: ${JSON.stringify(answer)}`);
  // Too long for one argument once encoded for the script: its params go
  // to stdin, and it runs.
  assertEquals(answer.status, 0, `its status: ${JSON.stringify(answer)}`);
  assertEquals(answer.peer, "client", "answered by the peer");

  // Growing params that still fit one argument run.
  const fits = `[${new Array(5_000).fill("1e20").join(",")}]`;
  const ok = await local.request(
    `{"name":"noop","id":"fits","params":${fits}}`,
    TIMEOUT,
  );
  assertEquals(
    [ok.status, ok.id, ok.peer],
    [0, "fits", "client"],
    `5,000 × 1e20 runs: ${JSON.stringify(ok)}`,
  );
});

/** A noop request whose line (without "\n") is exactly `bytes` long. */
function lineOf(id: string, bytes: number): string {
  const head = `{"name":"noop","id":"${id}","params":"`;
  const tail = `"}`;
  return head + "p".repeat(bytes - head.length - tail.length) + tail;
}

Deno.test("maxMessageBytes 4096 on both daemons: every line up to the limit gets an answer, one over it -4", async () => {
  await using pair = await startPair({
    server: { maxMessageBytes: 4096 },
    client: { maxMessageBytes: 4096 },
    scripts: SCRIPTS,
  });
  const sizes: number[] = [];
  for (let size = 3900; size <= 4096; size += 7) sizes.push(size);
  sizes.push(4095, 4096);
  for (
    const [label, daemon] of [["server", pair.server], [
      "client",
      pair.client,
    ]] as const
  ) {
    await using local = await LocalClient.connect(daemon.socket);
    const lines = sizes.map((size, i) => lineOf(`${label}-${i}-${size}`, size));
    for (const [i, text] of lines.entries()) {
      assertEquals(new TextEncoder().encode(text).length, sizes[i], "size");
    }
    await local.send(...lines);
    const answers = byId(await local.take(lines.length, TIMEOUT));
    for (const [i, size] of sizes.entries()) {
      const id = `${label}-${i}-${size}`;
      const answer = answers.get(id);
      assert(
        answer,
        `a ${size}-byte line from the ${label}'s socket gets an answer`,
      );
      assert(
        answer.status === 0 ||
          (answer.status === -4 && /limit/.test(String(answer.error))),
        `a ${size}-byte line: 0, or -4 for the peer's frame limit: ${
          JSON.stringify(answer)
        }`,
      );
    }
    const over = await local.request(lineOf(`${label}-over`, 4097), TIMEOUT);
    assertEquals(over.status, -4, `a 4097-byte line: ${JSON.stringify(over)}`);
    const after = await local.request({ name: "noop", id: "after" }, TIMEOUT);
    assertEquals([after.status, after.id], [0, "after"], "a normal request");
  }
});

Deno.test("maxMessageBytes 8192 on the server, 4096 on the client: a line the server takes but the client would not is answered -4, not dropped", async () => {
  await using pair = await startPair({
    server: { maxMessageBytes: 8192 },
    client: { maxMessageBytes: 4096 },
    scripts: SCRIPTS,
  });
  const sizes = [3000, 4600, 6000, 8000, 8192];
  {
    await using local = await LocalClient.connect(pair.server.socket);
    await local.send(...sizes.map((size) => lineOf(`s-${size}`, size)));
    const answers = byId(await local.take(sizes.length, TIMEOUT));
    const list = JSON.stringify([...answers.values()]);
    assertEquals(answers.get("s-3000")?.status, 0, `3000 bytes run: ${list}`);
    for (const size of sizes.slice(1)) {
      const answer = answers.get(`s-${size}`);
      assertEquals(
        answer?.status,
        -4,
        `a ${size}-byte line, over the client's frame limit: ${list}`,
      );
      assertMatch(String(answer?.error), /4096-byte/, "the error names it");
    }
  }
  {
    // The other way every line the client takes fits the server's limit.
    await using local = await LocalClient.connect(pair.client.socket);
    const up = [3000, 4000, 4096];
    await local.send(...up.map((size) => lineOf(`c-${size}`, size)));
    const answers = byId(await local.take(up.length, TIMEOUT));
    assertEquals(
      up.map((size) => answers.get(`c-${size}`)?.status),
      [0, 0, 0],
      `client to server: ${JSON.stringify([...answers.values()])}`,
    );
  }
});
