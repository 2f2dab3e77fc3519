/**
 * dial() against real servers on loopback: Deno.serve (plain and TLS) that
 * upgrades and echoes, a raw TLS listener that counts what arrives, and a TCP
 * listener that never answers. Certificates are made here, per test.
 */

import { dial, DialError } from "../../src/remote/dial.ts";
import { generateSelfSigned } from "../../src/tls/certificate.ts";
import { createTestCa, type Leaf } from "../helpers/tls.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../helpers/assert.ts";
import { deadline } from "../helpers/wait.ts";
import { createHash } from "node:crypto";

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const TIMEOUT_MS = 5_000;
const WAIT_MS = 5_000;

/** Deno.serve on 127.0.0.1 that echoes frames or answers `refuse` instead. */
async function startEchoServer(
  options: { tls?: Leaf; refuse?: number } = {},
) {
  const authorization: (string | null)[] = [];
  const serverSockets: Promise<void>[] = [];
  const tls = options.tls
    ? { cert: options.tls.certPem, key: options.tls.keyPem }
    : {};
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {}, ...tls },
    (request) => {
      authorization.push(request.headers.get("authorization"));
      if (options.refuse) {
        return new Response("no", { status: options.refuse });
      }
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => socket.send(event.data);
      const { promise, resolve } = Promise.withResolvers<void>();
      socket.onclose = () => resolve();
      serverSockets.push(promise);
      return response;
    },
  );
  const { port } = server.addr;
  await Promise.resolve();
  return {
    authorization,
    url: (host: string) =>
      `${options.tls ? "wss" : "ws"}://${host}:${port}/link`,
    async close() {
      await Promise.all(serverSockets);
      await server.shutdown();
    },
  };
}

/**
 * A TLS listener that completes the handshake and counts the application
 * bytes the client then sends, until the client hangs up.
 */
function startByteCounter(leaf: Leaf) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: leaf.certPem,
    key: leaf.keyPem,
  });
  const received = (async () => {
    const conn = await listener.accept();
    let bytes = 0;
    try {
      await conn.handshake();
      const buffer = new Uint8Array(4096);
      for (
        let n = await conn.read(buffer);
        n !== null;
        n = await conn.read(buffer)
      ) {
        bytes += n;
      }
    } catch {
      // The client cut the connection without close_notify: also the end.
    } finally {
      conn.close();
      listener.close();
    }
    return bytes;
  })();
  return { port: listener.addr.port, received };
}

/**
 * A hand-written WebSocket server: answers the upgrade with a 101 followed,
 * in the same write, by `after` (raw frames); hangs up on the next read.
 */
function startRawUpgrader(after: Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    try {
      const buffer = new Uint8Array(8192);
      const n = await conn.read(buffer);
      const request = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
      const key = /^sec-websocket-key: *(\S+)/im.exec(request)?.[1] ?? "";
      const accept = createHash("sha1").update(key + WS_GUID).digest("base64");
      const head = new TextEncoder().encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
          `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      await conn.write(new Uint8Array([...head, ...after]));
      // Whatever the client sends next (its close frame) ends the exchange.
      await conn.read(buffer);
    } catch {
      // A reset is a hang-up too.
    } finally {
      conn.close();
      listener.close();
    }
  })();
  return { port: listener.addr.port, done };
}

/** An unmasked server text frame (payload under 126 bytes). */
function textFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  return new Uint8Array([0x81, payload.length, ...payload]);
}

type Frame = string | ArrayBuffer;

/** Sends `frames`, collects as many echoes, closes with 4000 "done". */
async function roundTrip(socket: WebSocket, frames: Frame[]) {
  const echoes: unknown[] = [];
  const closed = Promise.withResolvers<CloseEvent>();
  const all = Promise.withResolvers<void>();
  socket.onmessage = (event) => {
    echoes.push(event.data);
    if (echoes.length === frames.length) all.resolve();
  };
  socket.onclose = (event) => closed.resolve(event);
  socket.onerror = () => {};
  for (const frame of frames) socket.send(frame);
  assertEquals(typeof socket.bufferedAmount, "number");
  await deadline(all.promise, WAIT_MS, "echoes");
  socket.close(4000, "done");
  const event = await deadline(closed.promise, WAIT_MS, "close event");
  assertEquals([event.code, event.reason], [4000, "done"]);
  assertEquals(socket.readyState, WebSocket.CLOSED);
  return echoes;
}

async function assertDialError(
  promise: Promise<unknown>,
  kind: DialError["kind"],
  pattern?: RegExp,
): Promise<DialError> {
  const error = await assertRejects(() => promise, pattern);
  assert(error instanceof DialError, `expected a DialError, got ${error}`);
  assertEquals(error.kind, kind, `kind of "${error.message}"`);
  return error;
}

Deno.test("dial ws:// sends the secret and carries text and binary frames", async () => {
  const server = await startEchoServer();
  const socket = await dial({
    url: server.url("127.0.0.1"),
    secret: "s3cret",
    headers: { "X-Peer": "test" },
    timeoutMs: TIMEOUT_MS,
  });
  assertEquals(socket.readyState, WebSocket.OPEN);
  const echoes = await roundTrip(socket, [
    "hello",
    new Uint8Array([1, 2, 3]).buffer,
  ]);
  // Text arrives as a string, binary as an ArrayBuffer, as in a browser.
  assertEquals(echoes[0], "hello");
  assert(echoes[1] instanceof ArrayBuffer, `binary echo: ${echoes[1]}`);
  assertEquals([...new Uint8Array(echoes[1])], [1, 2, 3]);
  assertEquals(server.authorization, ["Bearer s3cret"]);
  await server.close();
});

Deno.test("dial delivers frames that arrive with the 101 to handlers set after the await", async () => {
  const server = startRawUpgrader(textFrame("hello at once"));
  const socket = await dial({
    url: `ws://127.0.0.1:${server.port}/`,
    timeoutMs: TIMEOUT_MS,
  });
  for (let i = 0; i < 10; i++) await Promise.resolve();
  const first = Promise.withResolvers<unknown>();
  socket.onmessage = (event) => first.resolve(event.data);
  assertEquals(
    await deadline(first.promise, WAIT_MS, "frame"),
    "hello at once",
  );
  const closed = Promise.withResolvers<void>();
  socket.onclose = () => closed.resolve();
  socket.close(1000, "bye");
  await deadline(closed.promise, WAIT_MS, "close");
  await server.done;
});

Deno.test("dial: an error after open closes the socket without throwing, onerror unset", async () => {
  // Opcode 0x3 is reserved: ws fails the connection (an EventEmitter 'error').
  const server = startRawUpgrader(new Uint8Array([0x83, 0x00]));
  const socket = await dial({
    url: `ws://127.0.0.1:${server.port}/`,
    timeoutMs: TIMEOUT_MS,
  });
  const closed = Promise.withResolvers<CloseEvent>();
  socket.onclose = (event) => closed.resolve(event);
  const event = await deadline(closed.promise, WAIT_MS, "close");
  assertEquals(event.code, 1006);
  assertEquals(socket.readyState, WebSocket.CLOSED);
  await server.done;
});

Deno.test("dial wss:// with the right pin connects by IP and by name", async () => {
  const leaf = await generateSelfSigned({ hosts: ["localhost", "127.0.0.1"] });
  const server = await startEchoServer({ tls: leaf });
  for (const host of ["127.0.0.1", "localhost"]) {
    const socket = await dial({
      url: server.url(host),
      secret: "s3cret",
      pin: leaf.fingerprint,
      timeoutMs: TIMEOUT_MS,
    });
    assertEquals(await roundTrip(socket, [`via ${host}`]), [`via ${host}`]);
  }
  assertEquals(server.authorization, ["Bearer s3cret", "Bearer s3cret"]);
  await server.close();
});

Deno.test("dial wss:// with a pin ignores the certificate's names and issuer", async () => {
  const leaf = await generateSelfSigned({ hosts: ["elsewhere.example"] });
  const server = await startEchoServer({ tls: leaf });
  // The pin is given as openssl prints it; dial normalises it.
  const pasted = "SHA256:" +
    leaf.fingerprint.slice(7).toUpperCase().match(/../g)!.join(":");
  const socket = await dial({
    url: server.url("127.0.0.1"),
    pin: pasted,
    timeoutMs: TIMEOUT_MS,
  });
  assertEquals(await roundTrip(socket, ["x"]), ["x"]);
  await server.close();
});

Deno.test("dial wss:// refuses a certificate other than the pinned one before sending anything", async () => {
  const served = await generateSelfSigned({
    hosts: ["localhost", "127.0.0.1"],
  });
  const pinned = await generateSelfSigned({
    hosts: ["localhost", "127.0.0.1"],
  });
  const server = startByteCounter(served);
  const error = await assertDialError(
    dial({
      url: `wss://127.0.0.1:${server.port}/`,
      secret: "s3cret",
      pin: pinned.fingerprint,
      timeoutMs: TIMEOUT_MS,
    }),
    "pin",
  );
  assertMatch(error.message, new RegExp(served.fingerprint));
  assertMatch(
    error.message,
    new RegExp(`expected the pinned ${pinned.fingerprint}`),
  );
  assertEquals(await deadline(server.received, WAIT_MS, "hang-up"), 0);

  // The control: with the right pin the same listener does see the request
  // (and, never answering it, lets the dial time out).
  const control = startByteCounter(served);
  await assertDialError(
    dial({
      url: `wss://127.0.0.1:${control.port}/`,
      pin: served.fingerprint,
      timeoutMs: 300,
    }),
    "timeout",
  );
  assert(await deadline(control.received, WAIT_MS, "hang-up") > 0, "counted");
});

Deno.test("dial wss:// with a pin refuses a certificate that `ca` vouches for", async () => {
  const ca = await createTestCa();
  const served = await ca.issue(["localhost", "127.0.0.1"]);
  const pinned = await ca.issue(["localhost", "127.0.0.1"]);
  const server = startByteCounter(served);
  await assertDialError(
    dial({
      url: `wss://localhost:${server.port}/`,
      secret: "s3cret",
      ca: ca.certPem,
      pin: pinned.fingerprint,
      timeoutMs: TIMEOUT_MS,
    }),
    "pin",
  );
  assertEquals(await deadline(server.received, WAIT_MS, "hang-up"), 0);
});

Deno.test("dial wss:// with `ca` trusts that CA's certificates, by IP and by name", async () => {
  const ca = await createTestCa();
  const server = await startEchoServer({
    tls: await ca.issue(["localhost", "127.0.0.1"]),
  });
  for (const host of ["127.0.0.1", "localhost"]) {
    const socket = await dial({
      url: server.url(host),
      ca: ca.certPem,
      timeoutMs: TIMEOUT_MS,
    });
    assertEquals(await roundTrip(socket, [host]), [host]);
  }
  await server.close();
});

Deno.test("dial wss:// with `ca` set to a self-signed certificate trusts it", async () => {
  const leaf = await generateSelfSigned({ hosts: ["localhost", "127.0.0.1"] });
  const server = await startEchoServer({ tls: leaf });
  for (const host of ["127.0.0.1", "localhost"]) {
    const socket = await dial({
      url: server.url(host),
      ca: leaf.certPem,
      timeoutMs: TIMEOUT_MS,
    });
    assertEquals(await roundTrip(socket, [host]), [host]);
  }
  await server.close();
});

Deno.test("dial wss:// without a pin refuses an untrusted chain or a wrong name", async () => {
  const ca = await createTestCa();
  const otherCa = await createTestCa("another CA");
  const server = await startEchoServer({ tls: await ca.issue(["localhost"]) });
  for (
    const [host, trust] of [
      ["localhost", undefined], // only the system roots
      ["localhost", otherCa.certPem],
      ["127.0.0.1", ca.certPem], // the certificate names only localhost
    ] as const
  ) {
    await assertDialError(
      dial({ url: server.url(host), ca: trust, timeoutMs: TIMEOUT_MS }),
      "tls",
      /TLS handshake with/,
    );
  }
  assertEquals(server.authorization, []);
  await server.close();
});

Deno.test("dial reports the HTTP status of a refused upgrade", async () => {
  const plain = await startEchoServer({ refuse: 401 });
  const error = await assertDialError(
    dial({
      url: plain.url("127.0.0.1"),
      secret: "wrong",
      timeoutMs: TIMEOUT_MS,
    }),
    "refused-http",
  );
  assertEquals(error.httpStatus, 401);
  assertEquals(
    error.message,
    "server refused the connection: 401 Unauthorized",
  );
  await plain.close();

  const leaf = await generateSelfSigned({ hosts: ["127.0.0.1"] });
  const secure = await startEchoServer({ tls: leaf, refuse: 503 });
  const refused = await assertDialError(
    dial({
      url: secure.url("127.0.0.1"),
      pin: leaf.fingerprint,
      timeoutMs: TIMEOUT_MS,
    }),
    "refused-http",
    /503/,
  );
  assertEquals(refused.httpStatus, 503);
  await secure.close();
});

Deno.test("dial reports a network error at once when nothing listens", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  for (const scheme of ["ws", "wss"]) {
    const started = Date.now();
    await assertDialError(
      dial({ url: `${scheme}://127.0.0.1:${port}/`, timeoutMs: TIMEOUT_MS }),
      "network",
      /ECONNREFUSED/,
    );
    const elapsed = Date.now() - started;
    assert(elapsed < TIMEOUT_MS / 2, `took ${elapsed} ms`);
  }
});

Deno.test("dial gives up at the deadline on a server that never answers", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  for (const scheme of ["ws", "wss"]) {
    const accepted = listener.accept();
    const started = Date.now();
    const error = await assertDialError(
      dial({ url: `${scheme}://127.0.0.1:${port}/`, timeoutMs: 300 }),
      "timeout",
    );
    assertEquals(
      error.message,
      `no connection to 127.0.0.1:${port} within 300 ms`,
    );
    const elapsed = Date.now() - started;
    assert(elapsed >= 290 && elapsed < 3_000, `took ${elapsed} ms`);
    (await accepted).close();
  }
  listener.close();
});

Deno.test("dial refuses options that cannot be honoured", async () => {
  const pin = `sha256:${"0".repeat(64)}`;
  await assertRejects(
    () => dial({ url: "http://127.0.0.1:1/", timeoutMs: 100 }),
    /ws:\/\/ or wss:\/\//,
  );
  await assertRejects(
    () =>
      dial({ url: "wss://127.0.0.1:1/", pin: "sha256:xyz", timeoutMs: 100 }),
    /'pin'/,
  );
  // A pin on plain ws:// would protect nothing: refused, not ignored.
  await assertRejects(
    () => dial({ url: "ws://127.0.0.1:1/", pin, timeoutMs: 100 }),
    /need a wss:\/\/ URL/,
  );
});
