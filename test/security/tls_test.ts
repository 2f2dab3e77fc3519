/**
 * wss:// between real daemons, with certificates made here: a self-signed
 * server certificate that clients pin, and a test CA whose certificates a
 * client trusts through `ca`. A pin decides alone: a certificate other than
 * the pinned one is refused before the upgrade request (which carries the
 * secret) is written, even when `ca` vouches for it. Where no daemon can tell
 * what a client sent, a TLS listener that counts the bytes after the
 * handshake plays the server.
 */

import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import type { DaemonProcess, Prefix } from "../helpers/daemon.ts";
import { generateSelfSigned } from "../../src/tls/certificate.ts";
import { createTestCa } from "../helpers/tls.ts";
import {
  assertNoSecretInLogs,
  newSecret,
  runClient,
  type Running,
  runServer,
  TlsCounter,
  waitForNth,
} from "./_support.ts";

const DEBUG = ["--log-level", "debug"];
const TLS = { cert: "tls/cert.pem", key: "tls/key.pem" };
const HOSTS = ["127.0.0.1", "localhost"];
/** How long a connection (or two refused attempts) may take here. */
const WAIT_MS = 5_000;

/** Writes a certificate and its key where `TLS` says. */
function withCertificate(leaf: { certPem: string; keyPem: string }) {
  return async (prefix: Prefix) => {
    await Deno.mkdir(prefix.file("tls"), { mode: 0o700 });
    await Deno.writeTextFile(prefix.file(TLS.cert), leaf.certPem);
    await Deno.writeTextFile(prefix.file(TLS.key), leaf.keyPem, {
      mode: 0o600,
    });
    await Deno.chmod(prefix.file(TLS.key), 0o600);
  };
}

/** Writes `pem` to `<prefix>/ca.pem`. */
function withCa(pem: string) {
  return (prefix: Prefix) => Deno.writeTextFile(prefix.file("ca.pem"), pem);
}

/** Lines of the server since `from` that show a connection got anywhere. */
function serverSaw(server: DaemonProcess, from: number): string[] {
  return server.lines.slice(from).filter((line) =>
    /connection refused|connection open|says hello|sent no HELLO|upgrade refused/
      .test(line)
  );
}

/** Waits for two failed attempts of `client` whose reason matches `reason`. */
async function refusedTwice(client: DaemonProcess, reason: RegExp) {
  await withLog(
    client,
    waitForNth(
      client,
      new RegExp(
        `(cannot reach|connection attempt to) wss://\\S+ ?(failed)?: .*${reason.source}`,
      ),
      2,
      WAIT_MS,
    ),
  );
}

/** `promise`, or its error with the last lines of `daemon`'s log added. */
async function withLog<T>(daemon: DaemonProcess, promise: Promise<T>) {
  try {
    return await promise;
  } catch (error) {
    throw new Error(
      `${(error as Error).message}\n--- last lines of ${daemon.prefix} ---\n${
        daemon.lines.slice(-4).join("\n")
      }`,
    );
  }
}

/** Requests both ways over a pair that has said hello. */
async function roundTrips(server: Running, client: Running) {
  await withLog(
    client.daemon,
    client.daemon.waitForLog(/peer server \(wss:\/\/.*\) says hello/, WAIT_MS),
  );
  await server.daemon.waitForLog(/peer client \(.*\) says hello/, WAIT_MS);
  assertEquals(
    await server.request({ name: "exit-with", id: "s", params: 3 }),
    { status: 3, id: "s", peer: "client" },
  );
  assertEquals(
    await client.request({ name: "exit-with", id: "c", params: 4 }),
    { status: 4, id: "c", peer: "server" },
  );
}

Deno.test("a pinned wss:// server: the right pin round-trips; another pin is refused before a byte is sent", async (t) => {
  const real = await generateSelfSigned({ hosts: HOSTS });
  const other = await generateSelfSigned({ hosts: HOSTS });
  const secret = newSecret();
  await using server = await runServer({ secret, tls: TLS }, {
    args: DEBUG,
    setup: withCertificate(real),
  });
  assertMatch(server.daemon.url, /^wss:\/\/127\.0\.0\.1:\d+$/, "ready line");
  const proxy = `wss://127.0.0.1:${server.port}`;
  const daemons = [server.daemon];

  await t.step(
    "pinning another certificate: refused, the server sees nothing",
    async () => {
      const from = server.daemon.lines.length;
      await using client = await runClient(server.port, {
        proxy,
        secret,
        pin: other.fingerprint,
        offline: "reject",
      }, { args: DEBUG });
      daemons.push(client.daemon);
      await refusedTwice(
        client.daemon,
        new RegExp(
          `presented certificate ${real.fingerprint}, expected the pinned ${other.fingerprint}`,
        ),
      );
      const answer = await client.request({ name: "noop", id: "n" });
      assertEquals(answer.status, -2, JSON.stringify(answer));
      assertEquals(serverSaw(server.daemon, from), [], "server lines");
    },
  );

  await t.step(
    "against a counting TLS listener: no byte after the handshake; with its pin, the request and the secret",
    async () => {
      await using counter = new TlsCounter(other);
      {
        await using client = await runClient(counter.port, {
          proxy: `wss://127.0.0.1:${counter.port}`,
          secret,
          pin: real.fingerprint,
        }, { args: DEBUG });
        daemons.push(client.daemon);
        await refusedTwice(client.daemon, /presented certificate/);
        await counter.waitFor(
          () => counter.finished.length >= 2,
          "two handshakes, then hang-ups",
        );
      }
      const refused = counter.connections.length;
      assertEquals(
        counter.connections.map((c) => c.bytes),
        counter.connections.map(() => 0),
        "bytes after the handshake, per connection",
      );
      // The control: the listener does see what a client sends once the pin
      // matches, the secret included.
      {
        await using client = await runClient(counter.port, {
          proxy: `wss://127.0.0.1:${counter.port}`,
          secret,
          pin: other.fingerprint,
        }, { args: DEBUG });
        daemons.push(client.daemon);
        await counter.waitFor(
          () =>
            counter.connections.slice(refused).some((c) =>
              c.text.includes("\r\n\r\n")
            ),
          "the upgrade request",
        );
      }
      const request = counter.connections.slice(refused).find((c) =>
        c.text.includes("\r\n\r\n")
      )!;
      assertMatch(request.text, /^GET \S* HTTP\/1\.1\r\n/);
      assert(
        request.text.toLowerCase().includes(
          `\r\nauthorization: bearer ${secret.toLowerCase()}\r\n`,
        ),
        `the request carries the secret: ${JSON.stringify(request.text)}`,
      );
    },
  );

  await t.step(
    "the right pin (as sha256:hex, and as openssl prints it) round-trips",
    async () => {
      const openssl = "sha256:" +
        real.fingerprint.slice(7).toUpperCase().match(/../g)!.join(":");
      for (const pin of [real.fingerprint, openssl]) {
        await using client = await runClient(server.port, {
          proxy,
          secret,
          pin,
        }, { args: DEBUG });
        daemons.push(client.daemon);
        await client.daemon.waitForLog(/INFO connected to wss:\/\//);
        await roundTrips(server, client);
        assertEquals((await client.daemon.stop()).code, 0);
        await server.daemon.waitForLog(/peer client \(.*\) disconnected/);
      }
    },
  );

  assertNoSecretInLogs(daemons, [secret]);
});

Deno.test("ca and pin: a certificate the CA signed is refused when it is not the pinned one; ca alone trusts it by name", async (t) => {
  const ca = await createTestCa();
  const signed = await ca.issue(HOSTS);
  const real = await generateSelfSigned({ hosts: HOSTS });
  const secret = newSecret();
  await using server = await runServer({ secret, tls: TLS }, {
    args: DEBUG,
    setup: withCertificate(signed),
  });
  const proxy = `wss://127.0.0.1:${server.port}`;
  const daemons = [server.daemon];

  await t.step(
    "ca of the signer and a pin of another certificate: refused",
    async () => {
      const from = server.daemon.lines.length;
      await using client = await runClient(server.port, {
        proxy,
        secret,
        ca: "ca.pem",
        pin: real.fingerprint,
      }, { args: DEBUG, setup: withCa(ca.certPem) });
      daemons.push(client.daemon);
      await refusedTwice(
        client.daemon,
        new RegExp(
          `presented certificate ${signed.fingerprint}, expected the pinned ${real.fingerprint}`,
        ),
      );
      assertEquals(serverSaw(server.daemon, from), [], "server lines");
    },
  );

  await t.step(
    "neither ca nor pin (the system's roots only): refused",
    async () => {
      const from = server.daemon.lines.length;
      await using client = await runClient(server.port, { proxy, secret }, {
        args: DEBUG,
      });
      daemons.push(client.daemon);
      await refusedTwice(client.daemon, /TLS handshake with \S+ failed/);
      assertEquals(serverSaw(server.daemon, from), [], "server lines");
    },
  );

  await t.step("ca alone: connects, requests go both ways", async () => {
    await using client = await runClient(server.port, {
      proxy,
      secret,
      ca: "ca.pem",
    }, { args: DEBUG, setup: withCa(ca.certPem) });
    daemons.push(client.daemon);
    await roundTrips(server, client);
  });

  await t.step(
    "ca alone, but the certificate names another host: refused",
    async () => {
      const elsewhere = await ca.issue(["other.example"]);
      await using misnamed = await runServer({ secret, tls: TLS }, {
        args: DEBUG,
        setup: withCertificate(elsewhere),
      });
      daemons.push(misnamed.daemon);
      await using client = await runClient(misnamed.port, {
        proxy: `wss://127.0.0.1:${misnamed.port}`,
        secret,
        ca: "ca.pem",
      }, { args: DEBUG, setup: withCa(ca.certPem) });
      daemons.push(client.daemon);
      await refusedTwice(client.daemon, /TLS handshake with \S+ failed/);
      assertEquals(serverSaw(misnamed.daemon, 0), [], "server lines");
    },
  );

  assertNoSecretInLogs(daemons, [secret]);
});
