import { assert, assertEquals } from "../helpers/assert.ts";
import {
  type DaemonProcess,
  type Prefix,
  startPair,
} from "../helpers/daemon.ts";
import {
  type Answer,
  assertNoStrayAnswers,
  LocalClient,
} from "../helpers/local_client.ts";

/**
 * A script that exits with params (a number) once `<prefix>/gate` exists. It
 * lets a test hold one request open until every other answer has arrived, so
 * "answers come in the order requests finish" is checked without timing. It
 * gives up when the prefix is gone or after about 30 s, so a failed test
 * leaves nothing running.
 */
const WAIT_GATE = `#!/bin/sh
i=0
while [ ! -e "$WSDAEMON_PREFIX/gate" ] && [ -d "$WSDAEMON_PREFIX" ] && [ $i -lt 1500 ]; do
  sleep 0.02
  i=$((i + 1))
done
exit "$1"
`;

/** Sorts answers by id, for comparing sets of answers. */
function byId(answers: Answer[]): Answer[] {
  return [...answers].sort((a, b) => String(a.id).localeCompare(String(b.id)));
}

Deno.test("requests in flight each get one answer, on their own connection", async (t) => {
  await using pair = await startPair();
  const sides: [string, DaemonProcess, Prefix][] = [
    ["server to client", pair.server, pair.clientPrefix],
    ["client to server", pair.client, pair.serverPrefix],
  ];
  await pair.serverPrefix.addScript("wait-gate", WAIT_GATE);
  await pair.clientPrefix.addScript("wait-gate", WAIT_GATE);

  for (const [label, asker, runner] of sides) {
    await t.step(
      `50 on one connection, answered as they finish (${label})`,
      async () => {
        await using local = await LocalClient.connect(asker.socket);
        // The first request cannot finish until the other 49 have answered.
        await local.send({ name: "wait-gate", id: "gated", params: 9 });
        const expected: Answer[] = [];
        for (let i = 1; i < 50; i++) {
          const delay = ((i * 7) % 5) * 0.05;
          const code = i % 6;
          await local.send({
            name: "sleep-exit",
            id: `r${String(i).padStart(2, "0")}`,
            params: [delay, code],
          });
          expected.push({ status: code, id: `r${String(i).padStart(2, "0")}` });
        }
        const answers = await local.take(49, 15_000);
        assertEquals(
          byId(answers).map(({ status, id }) => ({ status, id })),
          expected,
          "the 49 ungated answers",
        );
        await Deno.writeTextFile(runner.file("gate"), "");
        const gated = await local.next(15_000);
        assertEquals([gated.status, gated.id], [9, "gated"]);
        await Deno.remove(runner.file("gate"));
        await assertNoStrayAnswers(local, "after-50");
      },
    );
  }

  await t.step(
    "50 across 5 connections at once, each gets only its own",
    async () => {
      await using stack = new AsyncDisposableStack();
      const locals: LocalClient[] = [];
      for (let c = 0; c < 5; c++) {
        locals.push(stack.use(await LocalClient.connect(pair.server.socket)));
      }
      const expected = locals.map((_, c) =>
        Array.from({ length: 10 }, (_, i) => ({
          status: (c + i) % 7,
          id: `k${c}-${i}`,
        }))
      );
      await Promise.all(locals.map(async (local, c) => {
        for (let i = 0; i < 10; i++) {
          await local.send({
            name: "sleep-exit",
            id: `k${c}-${i}`,
            params: [((c + 3 * i) % 4) * 0.05, (c + i) % 7],
          });
        }
      }));
      const answers = await Promise.all(
        locals.map((local) => local.take(10, 15_000)),
      );
      for (let c = 0; c < 5; c++) {
        assertEquals(
          byId(answers[c]).map(({ status, id }) => ({ status, id })),
          byId(expected[c]),
          `answers on connection ${c}`,
        );
      }
      // Every request has been answered; any misrouted copy was written already.
      for (let c = 0; c < 5; c++) {
        await assertNoStrayAnswers(locals[c], `end-${c}`);
      }
    },
  );

  await t.step("requests without an id get answers without an id", async () => {
    await using local = await LocalClient.connect(pair.server.socket);
    for (let code = 0; code < 5; code++) {
      await local.send({
        name: "sleep-exit",
        params: [(4 - code) * 0.05, code],
      });
    }
    const answers = await local.take(5);
    for (const answer of answers) {
      assert(
        !Object.hasOwn(answer, "id"),
        `answer has an id: ${JSON.stringify(answer)}`,
      );
    }
    assertEquals(answers.map((a) => a.status).sort(), [0, 1, 2, 3, 4]);
    await assertNoStrayAnswers(local, "after-no-id");
  });

  await t.step("a repeated id gets one answer per request", async () => {
    await using local = await LocalClient.connect(pair.server.socket);
    for (let code = 0; code < 5; code++) {
      await local.send({
        name: "sleep-exit",
        id: "dup",
        params: [(4 - code) * 0.05, code],
      });
    }
    const answers = await local.take(5);
    assertEquals(answers.map((a) => a.id), ["dup", "dup", "dup", "dup", "dup"]);
    assertEquals(answers.map((a) => a.status).sort(), [0, 1, 2, 3, 4]);
    await assertNoStrayAnswers(local, "after-dup");
  });

  await t.step(
    "the same id on two connections: each gets its own status",
    async () => {
      await using first = await LocalClient.connect(pair.server.socket);
      await using second = await LocalClient.connect(pair.server.socket);
      // The first finishes last, so matching by arrival would swap them.
      await first.send({ name: "sleep-exit", id: "same", params: [0.3, 1] });
      await second.send({ name: "sleep-exit", id: "same", params: [0, 2] });
      const [a, b] = await Promise.all([first.next(), second.next()]);
      assertEquals([a.status, a.id], [1, "same"]);
      assertEquals([b.status, b.id], [2, "same"]);
      await assertNoStrayAnswers(first, "after-same-1");
      await assertNoStrayAnswers(second, "after-same-2");
    },
  );
});
