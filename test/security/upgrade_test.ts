/**
 * The server's WebSocket port, spoken to by hand: request heads written byte
 * for byte on a TCP connection, the status line read back. Malformed
 * upgrades, plain HTTP, foreign origins, a full server, and connections that
 * say nothing. After all of it, the daemon must still serve a real client.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import {
  assertNoSecretInLogs,
  clientFrame,
  newSecret,
  Opcode,
  RawHttp,
  runClient,
  runServer,
  type ServerFrame,
  textFrame,
  upgradeHead,
  type UpgradeRequest,
  waitForNth,
} from "./_support.ts";

const DEBUG = ["--log-level", "debug"];
const ORIGIN = "https://ok.example";
const HANDSHAKE_MS = 500;

/** Closes an upgraded raw connection as a polite client does. */
async function closeUpgraded(raw: RawHttp): Promise<ServerFrame[]> {
  await raw.write(clientFrame(Opcode.CLOSE, new Uint8Array([0x03, 0xe8])));
  const frames = await raw.readUntilClose();
  await raw.ended();
  // The server ended its side first (RFC 6455 7.1.1); a client then closes.
  raw.close();
  return frames;
}

/** Opens an upgraded raw connection; checks the 101 and the HELLO. */
async function upgraded(request: UpgradeRequest): Promise<RawHttp> {
  const raw = await RawHttp.connect(request.port);
  try {
    await raw.write(upgradeHead(request));
    const head = await raw.readHead();
    assertEquals(head.status, 101, head.statusLine);
    const hello = JSON.parse((await raw.readFrame()).text);
    assertEquals(hello.params?.code, "HELLO", "the first frame");
  } catch (error) {
    await raw[Symbol.asyncDispose]();
    throw error;
  }
  return raw;
}

Deno.test("upgrade requests: malformed 400, plain HTTP 426, foreign Origin 403, a silent peer closed with 4008; then a client still works", async (t) => {
  const secret = newSecret();
  await using server = await runServer({
    secret,
    allowedOrigins: [ORIGIN],
    handshakeTimeoutMs: HANDSHAKE_MS,
  }, { args: DEBUG });
  const { port } = server;
  const auth = { Authorization: `Bearer ${secret}` };

  await t.step("malformed upgrades get 400, plain HTTP 426", async () => {
    const cases: [string, UpgradeRequest, number][] = [
      ["no Sec-WebSocket-Key", {
        port,
        headers: { ...auth, "Sec-WebSocket-Key": null },
      }, 400],
      ["a Sec-WebSocket-Key of 5 bytes", {
        port,
        headers: { ...auth, "Sec-WebSocket-Key": "c2hvcnQ=" },
      }, 400],
      ["Connection: keep-alive", {
        port,
        headers: { ...auth, Connection: "keep-alive" },
      }, 400],
      ["no Connection header", {
        port,
        headers: { ...auth, Connection: null },
      }, 400],
      ["Sec-WebSocket-Version: 12", {
        port,
        headers: { ...auth, "Sec-WebSocket-Version": "12" },
      }, 400],
      ["no Sec-WebSocket-Version", {
        port,
        headers: { ...auth, "Sec-WebSocket-Version": null },
      }, 400],
      ["POST", { port, method: "POST", headers: auth }, 400],
      ["a plain GET", {
        port,
        headers: {
          ...auth,
          Upgrade: null,
          Connection: null,
          "Sec-WebSocket-Key": null,
          "Sec-WebSocket-Version": null,
        },
      }, 426],
      ["Upgrade: h2c", {
        port,
        headers: {
          ...auth,
          Upgrade: "h2c",
          Connection: "Upgrade, HTTP2-Settings",
        },
      }, 426],
    ];
    const wrong: string[] = [];
    for (const [label, request, expected] of cases) {
      const head = await RawHttp.exchange(port, upgradeHead(request));
      if (head.status !== expected) {
        wrong.push(`${label}: expected ${expected}, got ${head.statusLine}`);
      }
      if (expected === 426) {
        assertEquals(head.headers.get("upgrade"), "websocket", label);
      }
    }
    assertEquals(wrong, [], "statuses");
    assertEquals(
      server.daemon.count(/connection open/),
      0,
      "links opened by malformed requests",
    );
  });

  await t.step(
    "Origin: a foreign one gets 403; the listed one, or none, 101",
    async () => {
      for (
        const origin of [
          "https://evil.example",
          `${ORIGIN}.evil.example`,
          "http://ok.example",
          "null",
        ]
      ) {
        const from = server.daemon.lines.length;
        const head = await RawHttp.exchange(
          port,
          upgradeHead({ port, headers: { ...auth, Origin: origin } }),
        );
        assertEquals(head.status, 403, `Origin ${origin}: ${head.statusLine}`);
        await server.daemon.waitForLog(/upgrade refused \(403\)/, 5_000, from);
      }
      for (const origin of [ORIGIN, null]) {
        await using raw = await upgraded({
          port,
          headers: { ...auth, Origin: origin },
        });
        const frames = await closeUpgraded(raw);
        assertEquals(frames.at(-1)?.opcode, Opcode.CLOSE, `Origin ${origin}`);
      }
      // Also an upgrade whose Connection header lists more than "Upgrade".
      await using raw = await upgraded({
        port,
        headers: { ...auth, Connection: "keep-alive, Upgrade" },
      });
      await closeUpgraded(raw);
    },
  );

  await t.step(
    `an authenticated peer that sends no HELLO is closed with 4008 within ${HANDSHAKE_MS} ms; one that does is kept`,
    async () => {
      await using talker = await upgraded({ port, headers: auth });
      await talker.write(textFrame(JSON.stringify({
        name: "&cmd",
        params: {
          code: "HELLO",
          data: { version: "0.1.0", name: "raw-talker", features: [] },
        },
      })));
      await server.daemon.waitForLog(/peer raw-talker \(.*\) says hello/);

      await using silent = await upgraded({ port, headers: auth });
      const start = Date.now();
      const frames = await silent.readUntilClose(2_000);
      const elapsed = Date.now() - start;
      const close = frames.at(-1)!;
      assertEquals(
        [close.opcode, close.code],
        [Opcode.CLOSE, 4008],
        `the close frame: ${close.text}`,
      );
      assert(
        elapsed >= HANDSHAKE_MS - 100 && elapsed < 2_000,
        `closed after ${elapsed} ms`,
      );
      await server.daemon.waitForLog(
        new RegExp(`no HELLO within ${HANDSHAKE_MS} ms; closing it`),
      );
      await silent.write(
        clientFrame(Opcode.CLOSE, new Uint8Array([0x0f, 0xa8])),
      );
      await silent.ended(2_000);

      // The one that said HELLO earlier is still served.
      await talker.write(textFrame(
        JSON.stringify({ name: "exit-with", id: "t", params: 3 }),
      ));
      const status = JSON.parse((await talker.readFrame()).text);
      assertEquals(status.params?.data, { status: 3, id: "t" });
      await closeUpgraded(talker);
    },
  );

  await t.step(
    "after all of that, a client daemon connects and requests go both ways",
    async () => {
      await using client = await runClient(port, { secret }, { args: DEBUG });
      await server.daemon.waitForLog(/peer client \(.*\) says hello/);
      assertEquals(
        await server.request({ name: "exit-with", id: "s", params: 5 }),
        { status: 5, id: "s", peer: "client" },
      );
      assertEquals(
        await client.request({ name: "exit-with", id: "c", params: 6 }),
        { status: 6, id: "c", peer: "server" },
      );
      assertNoSecretInLogs([server.daemon, client.daemon], [secret]);
    },
  );
});

Deno.test("maxPeers 1: with one client connected another upgrade gets 503; once it is gone, a new one is accepted", async () => {
  const secret = newSecret();
  await using server = await runServer({ secret, maxPeers: 1 }, {
    args: DEBUG,
  });
  const { port } = server;
  const auth = { Authorization: `Bearer ${secret}` };
  {
    await using first = await runClient(port, { secret }, { args: DEBUG });
    await server.daemon.waitForLog(/peer client \(.*\) says hello/);
    const head = await RawHttp.exchange(
      port,
      upgradeHead({ port, headers: auth }),
    );
    assertEquals(head.status, 503, head.statusLine);
    await server.daemon.waitForLog(/connection refused \(503\)/);
    // The client that is in still works.
    assertEquals(
      await server.request({ name: "exit-with", id: "in", params: 1 }),
      { status: 1, id: "in", peer: "client" },
    );
    assertEquals((await first.daemon.stop()).code, 0);
  }
  await server.daemon.waitForLog(/peer client \(.*\) disconnected/);

  await using raw = await upgraded({ port, headers: auth });
  await raw.write(textFrame(
    JSON.stringify({ name: "exit-with", id: "raw", params: 4 }),
  ));
  const status = JSON.parse((await raw.readFrame()).text);
  assertEquals(status.params?.data, { status: 4, id: "raw" });
  await closeUpgraded(raw);
  await waitForNth(server.daemon, /\) disconnected/, 2);

  await using second = await runClient(port, { secret }, { args: DEBUG });
  await waitForNth(server.daemon, /peer client \(.*\) says hello/, 2);
  assertEquals(
    await second.request({ name: "exit-with", id: "again", params: 2 }),
    { status: 2, id: "again", peer: "server" },
  );
  assertEquals(server.daemon.count(/connection refused \(503\)/), 1, "503s");
});

Deno.test(
  `a connection that never finishes its request head is closed within handshakeTimeoutMs (${HANDSHAKE_MS} ms)`,
  async () => {
    await using server = await runServer({
      secret: newSecret(),
      handshakeTimeoutMs: HANDSHAKE_MS,
    });
    await using partial = await RawHttp.connect(server.port);
    await partial.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n`);
    await using silent = await RawHttp.connect(server.port);
    const results = await Promise.allSettled([
      partial.ended(3_000),
      silent.ended(3_000),
    ]);
    assertEquals(
      results.map((r) => r.status),
      ["fulfilled", "fulfilled"],
      "ended within 3 s: [half a request head, nothing at all]",
    );
  },
);

Deno.test(
  "a peer that never answers the server's close frame is disconnected all the same",
  async () => {
    const secret = newSecret();
    await using server = await runServer({
      secret,
      handshakeTimeoutMs: HANDSHAKE_MS,
    });
    await using silent = await upgraded({
      port: server.port,
      headers: { Authorization: `Bearer ${secret}` },
    });
    const frames = await silent.readUntilClose(2_000);
    assertEquals(frames.at(-1)?.code, 4008, "the close frame's code");
    // The close handshake is not answered: the server must still let go of
    // the TCP connection (RFC 6455 7.1.1), not keep it open indefinitely.
    await silent.ended(4_000);
  },
);
