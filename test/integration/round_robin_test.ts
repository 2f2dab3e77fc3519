import { assert, assertEquals } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
} from "../helpers/daemon.ts";
import { type Answer, LocalClient } from "../helpers/local_client.ts";

const CLIENTS = ["c1", "c2", "c3"];

/** What `record` wrote for one request in `prefix`: its WSDAEMON_* lines. */
async function recorded(prefix: Prefix, id: string): Promise<string[]> {
  const text = await Deno.readTextFile(prefix.file("out", id));
  return text.split("\n").filter((line) => line.startsWith("WSDAEMON_"));
}

async function outFiles(prefix: Prefix): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(prefix.file("out"))))
      .map((entry) => entry.name)
      .filter((name) => !name.endsWith(".tmp"))
      .sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

Deno.test("a server spreads requests over 3 clients in turn and each answer returns to its asker", async () => {
  await using stack = new AsyncDisposableStack();
  const serverPrefix = stack.use(
    await Prefix.create(serverConfig(), { scripts: ["record", "noop"] }),
  );
  const server = stack.use(await DaemonProcess.start(serverPrefix));

  const prefixes = new Map<string, Prefix>();
  await Promise.all(CLIENTS.map(async (name) => {
    const prefix = stack.use(
      await Prefix.create(clientConfig(server.port, { name }), {
        scripts: ["record", "noop"],
      }),
    );
    prefixes.set(name, prefix);
    const client = stack.use(await DaemonProcess.start(prefix));
    await Promise.all([
      server.waitForLog(new RegExp(`peer ${name} .* says hello`)),
      client.waitForLog(/peer server .* says hello/),
    ]);
  }));

  // Two askers whose requests interleave: a0, b0, a1, b1, …, a4.
  await using a = await LocalClient.connect(server.socket);
  await using b = await LocalClient.connect(server.socket);
  const askers = { a, b };
  const sent: Record<string, string[]> = { a: [], b: [] };
  for (let i = 0; i < 9; i++) {
    const asker = i % 2 === 0 ? "a" : "b";
    const id = `${asker}${Math.floor(i / 2)}`;
    sent[asker].push(id);
    await askers[asker].send({ name: "record", id, params: { i } });
  }
  const answers: Record<string, Answer[]> = {
    a: await a.take(5, 15_000),
    b: await b.take(4, 15_000),
  };

  const ranBy = new Map<string, string>();
  for (const asker of ["a", "b"]) {
    assertEquals(
      answers[asker].map((answer) => answer.id).sort(),
      sent[asker],
      `ids answered to asker ${asker}`,
    );
    for (const answer of answers[asker]) {
      assertEquals(answer.status, 0, `status of ${answer.id}`);
      assert(
        typeof answer.peer === "string" && CLIENTS.includes(answer.peer),
        `answer ${JSON.stringify(answer)} names no known client`,
      );
      ranBy.set(answer.id as string, answer.peer);
    }
  }
  for (const name of CLIENTS) {
    const ids = [...ranBy].filter(([, peer]) => peer === name)
      .map(([id]) => id).sort();
    assertEquals(ids.length, 3, `requests answered by ${name}: ${ids}`);
    const prefix = prefixes.get(name)!;
    assertEquals(await outFiles(prefix), ids, `requests ${name} ran`);
    for (const id of ids) {
      assertEquals(await recorded(prefix, id), [
        `WSDAEMON_PREFIX=${prefix.path}`,
        `WSDAEMON_ID=${id}`,
        "WSDAEMON_PEER=server",
      ]);
    }
  }

  // Nothing more arrives on either asker.
  for (const [label, local] of Object.entries(askers)) {
    const answer = await local.request({ name: "noop", id: `end-${label}` });
    assertEquals([answer.status, answer.id], [0, `end-${label}`]);
  }
});
