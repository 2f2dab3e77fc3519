/**
 * A private CA and leaves it signs, for tests where a certificate must be
 * valid through a chain (`ca`) rather than pinned. The daemon only makes
 * self-signed certificates (src/tls/certificate.ts), so this lives in tests.
 *
 * @module
 */

import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { isIP } from "node:net";
import { fingerprintOf } from "../../src/tls/certificate.ts";

x509.cryptoProvider.set(crypto);

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING = { name: "ECDSA", hash: "SHA-256" };
const HOUR_MS = 60 * 60 * 1000;

export interface Leaf {
  certPem: string;
  keyPem: string;
  fingerprint: string;
}

export interface TestCa {
  /** The CA certificate, to pass as `ca`. */
  certPem: string;
  /** Issues a serverAuth leaf for `hosts` (IP literals as IP SANs). */
  issue(hosts: string[]): Promise<Leaf>;
}

export async function createTestCa(
  name = "ws-daemon test CA",
): Promise<TestCa> {
  const keys = await newKeys();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [name] }],
    ...validity(),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });

  async function issue(hosts: string[]): Promise<Leaf> {
    const leafKeys = await newKeys();
    const cert = await x509.X509CertificateGenerator.create({
      subject: [{ CN: [hosts[0]] }],
      issuer: ca.subject,
      ...validity(),
      signingAlgorithm: SIGNING,
      publicKey: leafKeys.publicKey,
      signingKey: keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(
          hosts.map((host) => ({
            type: isIP(host) ? "ip" as const : "dns" as const,
            value: host,
          })),
        ),
        await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const certPem = cert.toString("pem");
    const pkcs8 = await crypto.subtle.exportKey("pkcs8", leafKeys.privateKey);
    return {
      certPem,
      keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"),
      fingerprint: fingerprintOf(certPem),
    };
  }

  return { certPem: ca.toString("pem"), issue };
}

function newKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
}

function validity(): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return {
    notBefore: new Date(now - HOUR_MS),
    notAfter: new Date(now + 24 * HOUR_MS),
  };
}
