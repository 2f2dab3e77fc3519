/**
 * Self-signed server certificates and their SHA-256 pins.
 *
 * A daemon in server mode can make its own certificate; clients then trust it
 * by pinning its fingerprint rather than through a CA. The key is ECDSA P-256
 * (small, fast, accepted by rustls, Node and OpenSSL alike) made with WebCrypto,
 * and the certificate is built with @peculiar/x509, which is pure JavaScript:
 * nothing is read from disk, so this works unchanged inside `deno compile`.
 *
 * @example
 * ```ts
 * const { certPem, keyPem, fingerprint } = await generateSelfSigned({
 *   hosts: ["daemon.example", "127.0.0.1"],
 * });
 * Deno.serve({ cert: certPem, key: keyPem, port: 3443 }, handler);
 * console.log(`clients pin ${fingerprint}`);
 * ```
 *
 * @module
 */

// @peculiar/x509 decorates its ASN.1 classes: the polyfill must load first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import { isIP } from "node:net";
export { parsePin } from "./pin.ts";

x509.cryptoProvider.set(crypto);

export interface SelfSignedOptions {
  /** Names the certificate is valid for; the first is also its subject CN. */
  hosts: string[];
  /**
   * How many days the certificate stays valid.
   * @default {3650}
   */
  days?: number;
}

export interface SelfSigned {
  /** The certificate, `-----BEGIN CERTIFICATE-----`. */
  certPem: string;
  /** Its private key, PKCS#8 `-----BEGIN PRIVATE KEY-----`. */
  keyPem: string;
  /** `sha256:<64 lowercase hex>`, as {@linkcode fingerprintOf} gives it. */
  fingerprint: string;
}

/** Validity starts an hour early so peers with a slow clock accept it too. */
const CLOCK_SKEW_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
const CERTIFICATE_PEM =
  /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/;

/** Makes an ECDSA P-256 key and a self-signed serverAuth leaf for `hosts`. */
export async function generateSelfSigned(
  options: SelfSignedOptions,
): Promise<SelfSigned> {
  const { hosts, days = 3650 } = options;
  const names = subjectAltNames(hosts);
  if (names.length === 0) {
    throw new RangeError(
      "Cannot generate a certificate as 'hosts' must name at least one host: current value is []",
    );
  }
  if (!(days > 0)) {
    throw new RangeError(
      `Cannot generate a certificate as 'days' must be positive: current value is ${days}`,
    );
  }
  const algorithm = { name: "ECDSA", namedCurve: "P-256" };
  const keys = await crypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [names[0].value] }],
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + days * DAY_MS),
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  const certPem = cert.toString("pem");
  return {
    certPem,
    keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"),
    fingerprint: fingerprintOf(certPem),
  };
}

/**
 * `sha256:<64 lowercase hex>` of the DER of the first certificate in `certPem`
 * (what `openssl x509 -fingerprint -sha256` prints, without colons).
 */
export function fingerprintOf(certPem: string): string {
  const match = CERTIFICATE_PEM.exec(certPem);
  if (!match) {
    throw new TypeError(
      "Cannot fingerprint the certificate as the PEM holds no '-----BEGIN CERTIFICATE-----' block",
    );
  }
  const der = Buffer.from(match[1].replace(/\s+/g, ""), "base64");
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

type GeneralName = { type: "ip" | "dns"; value: string };

/** IP literals become IP SANs (clients match IPs only there), the rest DNS. */
function subjectAltNames(hosts: string[]): GeneralName[] {
  const seen = new Set<string>();
  const names: GeneralName[] = [];
  for (const raw of hosts) {
    let host = raw.trim();
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    if (host === "") continue;
    const name: GeneralName = isIP(host)
      ? { type: "ip", value: canonicalIp(host) }
      : { type: "dns", value: host.toLowerCase() };
    const key = `${name.type}:${name.value}`;
    if (seen.has(key)) continue;
    seen.add(key);
    names.push(name);
  }
  return names;
}

/**
 * WHATWG URL serialisation: one spelling per address (so duplicates are found)
 * and hex groups only, the only IPv6 form the encoder takes (`::ffff:10.0.0.1`
 * becomes `::ffff:a00:1`).
 */
function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/**
 * 16 random bytes. The top bit is clear so the DER INTEGER is positive without
 * a padding byte, and the next one set so no leading zero byte gets stripped.
 */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x3f) | 0x40;
  return bytes.toString("hex");
}
