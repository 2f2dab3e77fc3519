/**
 * The server URL of a client config, from `proxy` (a bare host, as the
 * original takes it, or a ws:// or wss:// URL) and `port`.
 *
 * @module
 */

import { ConfigError, describe } from "./config_messages.ts";

/** The server URL of a client config: `proxy` as a URL, or a bare host. */
export function clientUrl(
  proxy: string,
  port: number | undefined,
  file: string,
): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(proxy)) {
    let url: URL;
    try {
      url = new URL(proxy);
    } catch {
      throw new ConfigError(
        `${file}: field "proxy": expected a ws:// or wss:// URL or a host name, found ${
          describe(proxy)
        }`,
      );
    }
    if (url.protocol !== "ws:" && url.protocol !== "wss:") {
      throw new ConfigError(
        `${file}: field "proxy": expected a ws:// or wss:// URL, found ${
          describe(proxy)
        }`,
      );
    }
    // The URL parser drops a scheme's default port (ws://h:80), so whether a
    // port was written is read from the text itself.
    const hasPort =
      /^[a-z][a-z0-9+.-]*:\/\/(?:[^/?#@]*@)?(?:\[[^\]]*\]|[^/?#:]*):\d+(?:[/?#]|$)/i
        .test(proxy);
    if (!hasPort && port !== undefined) url.port = String(port);
    return url.href;
  }
  if (port === undefined || port === 0) {
    throw new ConfigError(
      `${file}: field "port": expected an integer from 1 to 65535 (needed when "proxy" is a bare host), found ${
        describe(port)
      }`,
    );
  }
  if (/[\s/?#@]/.test(proxy)) {
    throw new ConfigError(
      `${file}: field "proxy": expected a host name or a ws:// or wss:// URL, found ${
        describe(proxy)
      }`,
    );
  }
  // A bare IPv6 address needs brackets in a URL.
  const host = proxy.includes(":") && !proxy.startsWith("[")
    ? `[${proxy}]`
    : proxy;
  return `ws://${host}:${port}`;
}
