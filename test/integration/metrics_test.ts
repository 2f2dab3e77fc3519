import { assert, assertEquals } from "../helpers/assert.ts";
import { freePort, startPair } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";
import parsePrometheusTextFormat from "parse-prometheus-text-format";

interface Family {
  name: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    count?: string;
  }[];
}

async function scrape(url: string, token?: string): Promise<Family[]> {
  const response = await fetch(`${url}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  assertEquals(response.status, 200);
  return parsePrometheusTextFormat(await response.text()) as Family[];
}

function value(
  families: Family[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = families.find((f) => f.name === name);
  assert(family, `no ${name}`);
  const metric = family.metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  return Number(metric?.value ?? metric?.count ?? 0);
}

Deno.test("/metrics is Prometheus text whose counters move as requests run; /healthz is 200, then 503", async () => {
  const serverPort = freePort();
  const clientPort = freePort();
  const token = "t".repeat(20);
  await using pair = await startPair({
    scripts: ["noop", "exit-with"],
    server: { metrics: { listen: `127.0.0.1:${serverPort}`, token } },
    client: { metrics: { listen: `127.0.0.1:${clientPort}` } },
  });
  const server = `http://127.0.0.1:${serverPort}`;
  const client = `http://127.0.0.1:${clientPort}`;
  const unauthorized = await fetch(`${server}/metrics`);
  assertEquals(unauthorized.status, 401);
  await unauthorized.body?.cancel();

  const before = await scrape(server, token);
  assertEquals(value(before, "wsdaemon_connections", { state: "ready" }), 1);
  const sent0 = value(before, "wsdaemon_requests_sent_total", {
    peer: "client",
    outcome: "ok",
  });
  await using local = await LocalClient.connect(pair.server.socket);
  for (let i = 0; i < 3; i++) {
    assertEquals(
      (await local.request({ name: "noop", id: `m${i}` })).status,
      0,
    );
  }
  assertEquals(
    (await local.request({ name: "exit-with", params: 4 })).status,
    4,
  );
  // Names no peer connected under take no label.
  for (let i = 0; i < 5; i++) {
    assertEquals(
      (await local.request({ name: "noop", to: `ghost-${i}` })).status,
      -2,
    );
  }
  const after = await scrape(server, token);
  const labels = after.find((f) => f.name === "wsdaemon_requests_sent_total")!
    .metrics.map((m) => m.labels?.peer);
  assert(!labels.some((peer) => peer?.startsWith("ghost-")), String(labels));
  assertEquals(
    value(after, "wsdaemon_requests_sent_total", {
      peer: "none",
      outcome: "not_delivered",
    }),
    5,
  );
  assertEquals(
    value(after, "wsdaemon_requests_sent_total", {
      peer: "client",
      outcome: "ok",
    }),
    sent0 + 3,
  );
  assertEquals(
    value(after, "wsdaemon_requests_sent_total", {
      peer: "client",
      outcome: "exit_nonzero",
    }),
    1,
  );
  assert(value(after, "wsdaemon_bytes_total", { direction: "out" }) > 0);
  const onClient = await scrape(client);
  assertEquals(
    value(onClient, "wsdaemon_requests_received_total", { peer: "server" }),
    4,
  );
  assertEquals(
    value(onClient, "wsdaemon_runs_total", { peer: "server", outcome: "ok" }),
    3,
  );
  const histogram = onClient.find((f) =>
    f.name === "wsdaemon_script_duration_seconds"
  );
  assertEquals(histogram?.type, "HISTOGRAM");

  const healthy = await fetch(`${client}/healthz`);
  assertEquals(healthy.status, 200);
  assertEquals((await healthy.json()).ready, true);
  // The server goes: the client has no peer, and says so.
  pair.server.child.kill("SIGTERM");
  await pair.client.waitForLog(/peer server .* disconnected/);
  const down = await fetch(`${client}/healthz`);
  assertEquals(down.status, 503);
  const body = await down.json();
  assertEquals([body.ready, body.reason], [
    false,
    "not connected to the server",
  ]);
});

Deno.test("metrics.shared serves /healthz and /metrics on a server's WebSocket port, and upgrades still work", async () => {
  await using pair = await startPair({
    scripts: ["noop"],
    server: { metrics: { shared: true } },
  });
  const base = pair.server.url.replace(/^ws/, "http");
  const health = await fetch(`${base}/healthz`);
  assertEquals(health.status, 200);
  assertEquals((await health.json()).ready, true);
  const families = await scrape(base);
  assertEquals(value(families, "wsdaemon_connections", { state: "ready" }), 1);
  const other = await fetch(`${base}/elsewhere`);
  assertEquals(other.status, 426, "any other plain request is still refused");
  await other.body?.cancel();
  await using local = await LocalClient.connect(pair.server.socket);
  assertEquals((await local.request({ name: "noop", id: "s" })).status, 0);
});
