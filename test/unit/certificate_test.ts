import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import {
  fingerprintOf,
  generateSelfSigned,
  parsePin,
} from "../../src/tls/certificate.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../helpers/assert.ts";

const OPENSSL = "/usr/bin/openssl";

function extension<T extends x509.Extension>(
  cert: x509.X509Certificate,
  type: new (raw: BufferSource) => T,
): T {
  const found = cert.getExtension(type);
  assert(found, `certificate has no ${type.name}`);
  return found;
}

Deno.test("generateSelfSigned makes a P-256 serverAuth leaf with the hosts as SANs", async () => {
  const { certPem, keyPem } = await generateSelfSigned({
    hosts: ["localhost", "127.0.0.1", "::1", "[::ffff:10.0.0.1]", "LocalHost"],
    days: 30,
  });
  assertMatch(certPem, /^-----BEGIN CERTIFICATE-----\n/);
  assertMatch(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);

  const cert = new x509.X509Certificate(certPem);
  assertEquals(cert.subject, "CN=localhost");
  assertEquals(cert.issuer, cert.subject);
  assert(await cert.isSelfSigned(), "self-signed");
  assertEquals(cert.publicKey.algorithm.name, "ECDSA");
  assertEquals(
    (cert.publicKey.algorithm as EcKeyAlgorithm).namedCurve,
    "P-256",
  );

  const constraints = extension(cert, x509.BasicConstraintsExtension);
  assertEquals([constraints.ca, constraints.critical], [false, true]);
  const usage = extension(cert, x509.KeyUsagesExtension);
  assertEquals(usage.usages, x509.KeyUsageFlags.digitalSignature);
  // usages is an asn1 subclass of Array: copy it to compare.
  assertEquals([...extension(cert, x509.ExtendedKeyUsageExtension).usages], [
    x509.ExtendedKeyUsage.serverAuth,
  ]);
  // IPs as IP SANs (clients match IPs only there), names lowercased, deduped.
  const names = extension(cert, x509.SubjectAlternativeNameExtension).names
    .toJSON();
  assertEquals(names, [
    { type: "dns", value: "localhost" },
    { type: "ip", value: "127.0.0.1" },
    { type: "ip", value: "::1" },
    { type: "ip", value: "::ffff:a00:1" },
  ]);

  const serial = cert.serialNumber;
  assertEquals(serial.length, 32, `16-byte serial, got ${serial}`);
  assert(parseInt(serial[0], 16) < 8, "serial is positive");
  const days = (cert.notAfter.getTime() - Date.now()) / 86_400_000;
  assert(days > 29.9 && days <= 30, `valid for 30 days, got ${days}`);
  assert(cert.notBefore.getTime() < Date.now() - 59 * 60_000, "backdated 1h");
});

Deno.test("generateSelfSigned defaults to 3650 days and random serials", async () => {
  const [a, b] = await Promise.all([
    generateSelfSigned({ hosts: ["a.example"] }),
    generateSelfSigned({ hosts: ["a.example"] }),
  ]);
  const certA = new x509.X509Certificate(a.certPem);
  const days = (certA.notAfter.getTime() - Date.now()) / 86_400_000;
  assert(days > 3649.9 && days <= 3650, `valid for 3650 days, got ${days}`);
  assert(
    certA.serialNumber !== new x509.X509Certificate(b.certPem).serialNumber,
    "serials differ",
  );
  assert(a.fingerprint !== b.fingerprint, "fingerprints differ");
});

Deno.test("generateSelfSigned refuses no hosts and a non-positive validity", async () => {
  await assertRejects(() => generateSelfSigned({ hosts: [] }), /'hosts'/);
  await assertRejects(() => generateSelfSigned({ hosts: [" "] }), /'hosts'/);
  await assertRejects(
    () => generateSelfSigned({ hosts: ["x"], days: 0 }),
    /'days' must be positive: current value is 0/,
  );
});

Deno.test("fingerprintOf matches node:crypto and openssl", async () => {
  const { certPem, fingerprint } = await generateSelfSigned({
    hosts: ["localhost"],
  });
  assertMatch(fingerprint, /^sha256:[0-9a-f]{64}$/);
  assertEquals(fingerprintOf(certPem), fingerprint);
  // Leading text and a second certificate do not change which one counts.
  const other = await generateSelfSigned({ hosts: ["other"] });
  assertEquals(
    fingerprintOf(`subject=CN=localhost\n${certPem}${other.certPem}`),
    fingerprint,
  );

  const node = new X509Certificate(certPem).fingerprint256;
  assertEquals(`sha256:${node.replace(/:/g, "").toLowerCase()}`, fingerprint);

  if (!existsSync(OPENSSL)) {
    console.warn(`${OPENSSL} not found: openssl comparison skipped`);
    return;
  }
  const child = new Deno.Command(OPENSSL, {
    args: ["x509", "-noout", "-fingerprint", "-sha256"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(certPem));
  await writer.close();
  const { code, stdout } = await child.output();
  assertEquals(code, 0);
  // e.g. "sha256 Fingerprint=AB:CD:…" (older releases say "SHA256")
  const printed = new TextDecoder().decode(stdout).trim().split("=")[1];
  assertEquals(parsePin(`sha256:${printed}`), fingerprint);
});

Deno.test("fingerprintOf refuses text without a certificate", () => {
  assertThrows(() => fingerprintOf("hello"), /BEGIN CERTIFICATE/);
});

Deno.test("parsePin normalises pasted pins and refuses the rest", () => {
  const hex = "ab".repeat(32);
  const colons = Array(32).fill("AB").join(":");
  assertEquals(parsePin(`sha256:${hex}`), `sha256:${hex}`);
  assertEquals(parsePin(`sha256:${hex.toUpperCase()}`), `sha256:${hex}`);
  assertEquals(parsePin(`SHA256:${colons}`), `sha256:${hex}`);
  assertEquals(parsePin(`  sha256:${colons}\n`), `sha256:${hex}`);

  for (
    const bad of [
      "",
      hex, // no algorithm
      `sha1:${hex}`,
      `sha256:${hex.slice(2)}`, // 31 bytes
      `sha256:${hex}ab`, // 33 bytes
      `sha256:${hex.slice(1)}g`,
      `sha256:${colons.slice(1)}`, // colons out of place
      `sha256:${colons}:`,
      `sha256: ${hex}`,
    ]
  ) {
    assertEquals(parsePin(bad), undefined, JSON.stringify(bad));
  }
});

Deno.test("Deno.serve takes the pair, and a client trusting the certificate reaches it by name and IP", async () => {
  const { certPem, keyPem } = await generateSelfSigned({
    hosts: ["localhost", "127.0.0.1"],
  });
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      cert: certPem,
      key: keyPem,
      onListen() {},
    },
    () => new Response("ok"),
  );
  // Deno's fetch (rustls) checks the chain and the name: a second TLS stack
  // besides node:tls, which the dial tests use.
  const client = Deno.createHttpClient({ caCerts: [certPem] });
  try {
    for (const host of ["localhost", "127.0.0.1"]) {
      const response = await fetch(`https://${host}:${server.addr.port}/`, {
        client,
      });
      assertEquals(await response.text(), "ok", host);
    }
  } finally {
    client.close();
    await server.shutdown();
  }
});
